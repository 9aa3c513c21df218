//! The fixture harness: every `tests/fixtures/flows/*.json` is a workflow with cases — a trigger
//! to fire, its data, the storage before — and what must follow: paths completed and failed, the
//! halting error, storage after, debug messages. One test runs them all, each case on a fresh
//! store and in each storage mode (Cached and Shared must not differ), and names the file, case
//! and mode that failed.
//!
//! Fixture shape:
//! ```json
//! { "description": "…",
//!   "flow": { "triggers": […], "nodes": […], "globals": […] },
//!   "integrations": [ { "id": "…", "integrationType": "mqtt", "mqttConfig": {…} } ],  // optional
//!   "cases": [
//!     { "name": "…", "trigger": "<button key>", "data": {…}, "storage": {…},
//!       "expect": { "completed": 1, "failed": 0,
//!                   "error": { "name": "…", "nodeId": "…", "message": "substring" },
//!                   "storage": { "key": value, … },          // these keys, these values
//!                   "absent": ["key", …],                    // these keys are not stored
//!                   "debug": ["substring of a message", …] } } ] }
//! ```

use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::node::RunInfo;
use flowd_engine::observer::{DebugMessage, RunObserver};
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_engine::storage::StorageMode;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Debugs(Mutex<Vec<String>>);

impl RunObserver for Debugs {
    fn debug(&self, message: &Arc<DebugMessage>) {
        let line = format!("{} {}", message.message, message.value);
        self.0.lock().unwrap().push(line);
    }
    fn run_finished(&self, _: &RunInfo, _: &flowd_engine::observer::RunResult) {}
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/flows")
}

async fn run_case(
    file: &str,
    flow: &Value,
    integrations: &Value,
    case: &Value,
    storage_mode: StorageMode,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(dir.path())
            .await
            .map_err(|e| e.to_string())?,
    );
    let debugs = Arc::new(Debugs::default());
    let config = EngineConfig {
        storage_mode,
        ..EngineConfig::default()
    };
    let engine = Engine::start_with_observers(store.clone(), config, vec![debugs.clone()]);
    let now = flowd_model::time::now_iso();
    let (app, flow_id) = (flowd_model::id::new_id(), flowd_model::id::new_id());
    store
        .insert_application(
            &json!({"id": app, "name": "fixtures", "creationDate": now, "lastUpdated": now}),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut doc = flow.clone();
    for (k, v) in [
        ("id", json!(flow_id)),
        ("applicationId", json!(app)),
        ("name", json!(file)),
        ("flowClass", json!("cloud")),
        ("creationDate", json!(now)),
        ("lastUpdated", json!(now)),
    ] {
        doc[k] = v;
    }
    flowd_model::graph::validate_graph(
        doc["triggers"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        doc["nodes"].as_array().map(Vec::as_slice).unwrap_or(&[]),
    )
    .map_err(|e| format!("graph: {e}"))?;
    store.insert_flow(&doc).await.map_err(|e| e.to_string())?;
    // The application's integrations, connected before the run (the MQTT node's broker).
    for integration in integrations.as_array().into_iter().flatten() {
        let mut integration = integration.clone();
        integration["applicationId"] = json!(app);
        engine.integrations().apply(&integration);
        let id = integration["id"].as_str().unwrap_or_default();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while engine.integrations().status(id)["connectInfo"]["ts"].is_null() {
            if std::time::Instant::now() > deadline {
                return Err(format!("integration {id} did not connect within 10 s"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let storage = engine
        .storage()
        .handle(&flow_id)
        .await
        .map_err(|e| e.to_string())?;
    for (key, value) in case["storage"].as_object().into_iter().flatten() {
        storage
            .set(key, value.clone())
            .await
            .map_err(|e| e.to_string())?;
    }
    let compiled = engine
        .compiled(&app, &flow_id, &VersionRef::Develop)
        .await
        .map_err(|e| format!("compile: {e}"))?
        .ok_or("flow vanished")?;
    let key = case["trigger"].as_str().unwrap_or_default();
    let trigger = compiled
        .trigger("virtualButton", key)
        .or_else(|| {
            compiled
                .triggers
                .iter()
                .position(|t| t.key.as_deref() == Some(key))
        })
        .ok_or_else(|| format!("no trigger {key}"))?;
    let data = case.get("data").cloned().unwrap_or_else(|| {
        flowd_engine::engine::default_button_payload(&compiled.triggers[trigger].meta)
    });
    let start = RunStart {
        run_id: "fixture".into(),
        trigger,
        data,
        relay_id: None,
        relay_type: None,
        device_id: None,
        time_ms: case["time"]
            .as_i64()
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
    };
    let result = engine.run_now(compiled, start).await;
    let expect = &case["expect"];
    let mut problems = Vec::new();
    if let Some(n) = expect["completed"].as_u64() {
        if result.paths_completed != n {
            problems.push(format!(
                "completed {} paths, expected {n}",
                result.paths_completed
            ));
        }
    }
    if let Some(n) = expect["failed"].as_u64() {
        if result.paths_failed != n {
            problems.push(format!(
                "failed {} paths, expected {n}",
                result.paths_failed
            ));
        }
    }
    match (&result.failure, expect.get("error")) {
        (Some(f), None) => problems.push(format!(
            "unexpected error {} at {:?}: {}",
            f.error.name, f.node_id, f.error.message
        )),
        (None, Some(e)) => problems.push(format!("expected error {e}, the run succeeded")),
        (Some(f), Some(e)) => {
            if let Some(name) = e["name"].as_str() {
                if f.error.name.as_str() != name {
                    problems.push(format!(
                        "error name {}, expected {name} ({})",
                        f.error.name, f.error.message
                    ));
                }
            }
            if let Some(node) = e["nodeId"].as_str() {
                if f.node_id.as_deref() != Some(node) {
                    problems.push(format!("error at {:?}, expected {node}", f.node_id));
                }
            }
            if let Some(text) = e["message"].as_str() {
                if !f.error.message.contains(text) {
                    problems.push(format!(
                        "error message {:?} lacks {text:?}",
                        f.error.message
                    ));
                }
            }
        }
        (None, None) => {}
    }
    let stored = storage.entries().await.map_err(|e| e.to_string())?;
    for (key, want) in expect["storage"].as_object().into_iter().flatten() {
        let got = stored.get(key);
        if got != Some(want) {
            problems.push(format!("storage {key} = {got:?}, expected {want}"));
        }
    }
    for key in expect["absent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if let Some(got) = stored.get(key) {
            problems.push(format!("storage {key} = {got}, expected absent"));
        }
    }
    let debug = debugs.0.lock().unwrap().clone();
    for text in expect["debug"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !debug.iter().any(|line| line.contains(text)) {
            problems.push(format!("no debug message contains {text:?}; got {debug:?}"));
        }
    }
    engine.shutdown().await;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_behaves_as_written() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures/flows exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures found");
    let mut failures = Vec::new();
    let mut cases = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let fixture: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: not JSON: {e}"));
                continue;
            }
        };
        for case in fixture["cases"].as_array().into_iter().flatten() {
            cases += 1;
            let case_name = case["name"].as_str().unwrap_or("?");
            for mode in [StorageMode::Cached, StorageMode::Shared] {
                if let Err(problem) = run_case(
                    &name,
                    &fixture["flow"],
                    &fixture["integrations"],
                    case,
                    mode,
                )
                .await
                {
                    failures.push(format!("{name} / {case_name} ({mode:?}): {problem}"));
                }
            }
        }
    }
    println!("{cases} fixture cases in {} files", files.len());
    assert!(
        failures.is_empty(),
        "{} of {cases} fixture cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every node type flowd runs has at least one fixture.
#[test]
fn every_node_type_has_a_fixture() {
    let mut used = std::collections::HashSet::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap().flatten() {
        let fixture: Value = serde_json::from_str(&std::fs::read_to_string(entry.path()).unwrap())
            .unwrap_or_default();
        for node in fixture["flow"]["nodes"].as_array().into_iter().flatten() {
            if let Some(t) = node["type"].as_str() {
                used.insert(t.to_owned());
            }
        }
    }
    let missing: Vec<&str> = flowd_engine::nodes::REGISTRY
        .iter()
        .map(|t| t.name)
        .filter(|name| !used.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "node types without a fixture: {missing:?}"
    );
}
