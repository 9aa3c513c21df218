//! `flowd run FLOW.json`: runs a workflow file once, without a server, so flows can be tested in
//! CI. It prints the debug output as it happens and a summary, and exits 1 when the run failed.
//!
//! The file is a workflow document as Losant exports it (an object with `triggers` and `nodes`),
//! or an import body (`{"flows": [...]}`) holding exactly one flow. The run uses a throwaway
//! store; `--storage FILE` seeds workflow storage from a JSON object and writes it back after.

use flowd_engine::engine::{default_button_payload, Engine, EngineConfig};
use flowd_engine::observer::{DebugMessage, RunObserver};
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `flowd run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The workflow file.
    pub file: PathBuf,
    /// The trigger to fire: a virtual button's key or `meta.uiId`, or any trigger's key.
    /// Default: the first virtual button (or the first trigger).
    #[arg(long)]
    pub trigger: Option<String>,
    /// The run's `data`, as JSON (default: the button's default payload, else `{}`).
    #[arg(long)]
    pub payload: Option<String>,
    /// A JSON object of workflow storage entries, read before and written after the run.
    #[arg(long)]
    pub storage: Option<PathBuf>,
}

/// Prints debug messages as runs produce them.
struct Printer;

impl RunObserver for Printer {
    fn debug(&self, message: &Arc<DebugMessage>) {
        let node = message.node_id.as_deref().unwrap_or("-");
        let value = if message.value.is_null() {
            String::new()
        } else {
            format!(" {}", message.value)
        };
        println!(
            "debug [{}] {node}: {}{value}",
            message.level, message.message
        );
    }
}

fn load_flow(file: &PathBuf) -> Result<Value, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let doc: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", file.display()))?;
    if let Some(flows) = doc.get("flows").and_then(Value::as_array) {
        return match flows.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!(
                "{} holds {} flows; flowd run takes one",
                file.display(),
                flows.len()
            )),
        };
    }
    if doc.get("nodes").is_none() && doc.get("triggers").is_none() {
        return Err(format!(
            "{} has no triggers or nodes; is it a workflow?",
            file.display()
        ));
    }
    Ok(doc)
}

/// Runs the file; the error is a message for the terminal. Returns whether the run succeeded.
pub async fn run(args: RunArgs) -> Result<bool, String> {
    let source = load_flow(&args.file)?;
    let data = match &args.payload {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| format!("--payload is not JSON: {e}"))?,
        ),
    };
    let seed = match &args.storage {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(entries)) => entries,
                _ => {
                    return Err(format!(
                        "{} must hold a JSON object of storage entries",
                        path.display()
                    ))
                }
            }
        }
        _ => Default::default(),
    };

    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary store: {e}"))?;
    let store = SqliteStore::open(dir.path())
        .await
        .map_err(|e| e.to_string())?;
    let store: Arc<dyn Store> = Arc::new(store);
    let engine = Engine::start_with_observers(
        store.clone(),
        EngineConfig::default(),
        vec![Arc::new(Printer)],
    );

    let now = flowd_model::time::now_iso();
    let app_id = flowd_model::id::new_id();
    let flow_id = flowd_model::id::new_id();
    store
        .insert_application(
            &json!({"id": app_id, "name": "flowd run", "creationDate": now, "lastUpdated": now,
            "globals": []}),
        )
        .await
        .map_err(|e| e.to_string())?;
    let empty = Vec::new();
    let triggers = source
        .get("triggers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let nodes = source
        .get("nodes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    flowd_model::graph::validate_graph(triggers, nodes).map_err(|e| e.0)?;
    let mut flow = json!({
        "id": flow_id, "applicationId": app_id, "flowClass": "cloud", "enabled": true,
        "name": source.get("name").and_then(Value::as_str).unwrap_or("flow"),
        "triggers": triggers, "nodes": nodes, "globals": source.get("globals").cloned().unwrap_or(json!([])),
        "creationDate": now, "lastUpdated": now,
    });
    engine.check(&flow, None).map_err(|e| e.0)?;
    if let Some(map) = flow.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    store.insert_flow(&flow).await.map_err(|e| e.to_string())?;

    let storage = engine
        .storage()
        .flow(&flow_id)
        .await
        .map_err(|e| e.to_string())?;
    for (key, value) in seed {
        storage
            .set(&key, value)
            .map_err(|e| format!("storage entry {key}: {e}"))?;
    }

    let compiled = engine
        .compiled(&app_id, &flow_id, &VersionRef::Develop)
        .await?
        .ok_or("the workflow could not be loaded")?;
    let trigger = match &args.trigger {
        Some(key) => compiled
            .trigger("virtualButton", key)
            .or_else(|| {
                compiled
                    .triggers
                    .iter()
                    .position(|t| t.key.as_deref() == Some(key.as_str()))
            })
            .ok_or_else(|| format!("the workflow has no trigger \"{key}\""))?,
        None => compiled
            .triggers
            .iter()
            .position(|t| t.type_name == "virtualButton")
            .or(if compiled.triggers.is_empty() {
                None
            } else {
                Some(0)
            })
            .ok_or("the workflow has no trigger to fire")?,
    };
    let data = data.unwrap_or_else(|| default_button_payload(&compiled.triggers[trigger].meta));
    let start = RunStart {
        run_id: flowd_model::id::new_id(),
        trigger,
        data,
        relay_id: None,
        relay_type: Some("user".into()),
        device_id: None,
        time_ms: chrono::Utc::now().timestamp_millis(),
    };
    let result = engine.run_now(compiled, start).await;

    println!(
        "run: {} path(s) completed, {} failed, {} ms",
        result.paths_completed,
        result.paths_failed,
        result.wall_time.as_millis()
    );
    if let Some(failure) = &result.failure {
        println!(
            "error: {} at node {} ({}): {}",
            failure.error.name,
            failure.node_id.as_deref().unwrap_or("-"),
            failure.node_label.as_deref().unwrap_or("-"),
            failure.error.message
        );
    }
    if let Some(path) = &args.storage {
        let entries = Value::Object(storage.entries());
        let text = serde_json::to_string_pretty(&entries).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    engine.shutdown().await;
    Ok(result.failure.is_none())
}
