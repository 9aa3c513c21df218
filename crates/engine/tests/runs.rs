//! Whole runs through the public API: an engine over a SQLite store in a temporary directory,
//! a flow inserted through the store, compiled by the engine and run with `run_now`. Covers
//! chains and branches, forks (each path its own payload), halting errors, waits that overlap
//! other paths, and the run time limit (also against a graph that cycles forever).

use flowd_engine::compile::CompiledFlow;
use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::error::ErrorName;
use flowd_engine::observer::{DebugMessage, RunResult};
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_engine::services::RunLimits;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// An engine with one flow whose virtual button (`btn`) feeds `first`.
struct Setup {
    engine: Engine,
    flow: Arc<CompiledFlow>,
    flow_id: String,
    _dir: tempfile::TempDir,
}

async fn setup(config: EngineConfig, first: &[&str], nodes: Value) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).await.expect("store");
    let store: Arc<dyn Store> = Arc::new(store);
    let now = flowd_model::time::now_iso();
    let app_id = flowd_model::id::new_id();
    let flow_id = flowd_model::id::new_id();
    store
        .insert_application(
            &json!({"id": app_id, "name": "runs", "creationDate": now, "lastUpdated": now}),
        )
        .await
        .expect("application");
    store
        .insert_flow(&json!({
            "id": flow_id, "applicationId": app_id, "name": "f", "flowClass": "cloud",
            "enabled": true, "creationDate": now, "lastUpdated": now, "globals": [],
            "triggers": [{"key": "btn", "type": "virtualButton", "config": {},
                "meta": {"uiId": "btn"}, "outputIds": [first]}],
            "nodes": nodes,
        }))
        .await
        .expect("flow");
    let engine = Engine::start(store, config);
    let flow = engine
        .compiled(&app_id, &flow_id, &VersionRef::Develop)
        .await
        .expect("compiles")
        .expect("exists");
    Setup {
        engine,
        flow,
        flow_id,
        _dir: dir,
    }
}

impl Setup {
    async fn run(&self, data: Value) -> (RunResult, Vec<DebugMessage>) {
        let run_id = flowd_model::id::new_id();
        let result = self
            .engine
            .run_now(
                self.flow.clone(),
                RunStart {
                    run_id: run_id.clone(),
                    trigger: 0,
                    data,
                    relay_id: None,
                    relay_type: Some("user".into()),
                    device_id: None,
                    time_ms: chrono::Utc::now().timestamp_millis(),
                },
            )
            .await;
        (result, self.debug_of(&run_id))
    }

    fn debug_of(&self, run_id: &str) -> Vec<DebugMessage> {
        self.engine
            .debug()
            .recent(&self.flow_id)
            .into_iter()
            .filter(|m| m.run_id == run_id)
            .map(|m| DebugMessage::clone(&m))
            .collect()
    }
}

fn node(id: &str, type_name: &str, config: Value, outputs: Value) -> Value {
    json!({"id": id, "type": type_name, "config": config,
        "meta": {"label": format!("{id} label")}, "outputIds": outputs})
}

fn debug(id: &str, message: &str, property: &str) -> Value {
    node(
        id,
        "DebugNode",
        json!({"message": message, "property": property, "level": "info"}),
        json!([[]]),
    )
}

fn delay(id: &str, seconds: &str, next: &[&str]) -> Value {
    node(id, "DelayNode", json!({ "delay": seconds }), json!([next]))
}

fn limited(run_time: Duration) -> EngineConfig {
    EngineConfig {
        limits: RunLimits {
            run_time,
            ..RunLimits::default()
        },
        ..Default::default()
    }
}

fn ids(messages: &[DebugMessage]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m.node_id.as_deref().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_chain_branches_on_a_condition() {
    let setup = setup(
        EngineConfig::default(),
        &["prep"],
        json!([
            node("prep", "MutateNode", json!({"rules": [
                {"type": "set", "valueTemplate": "{{data.level}}", "valueTemplateType": "json",
                 "destination": "working.level"},
                {"type": "set", "valueTemplate": "tank-{{data.id}}", "destination": "working.tag"}
            ]}), json!([["check"]])),
            node("check", "ConditionalNode",
                json!({"expression": "{{working.level}} > 100"}), json!([["low"], ["high"]])),
            debug("low", "low {{working.tag}}", ""),
            debug("high", "high {{working.tag}} at {{working.level}}", "working"),
        ]),
    )
    .await;

    let (result, messages) = setup.run(json!({"level": 150, "id": 7})).await;
    assert_eq!(result.failure, None);
    assert_eq!((result.paths_completed, result.paths_failed), (1, 0));
    assert_eq!(ids(&messages), ["high"]);
    assert_eq!(messages[0].message, "high tank-7 at 150");
    assert_eq!(messages[0].level, "info");
    assert_eq!(messages[0].value, json!({"level": 150, "tag": "tank-7"}));

    let (result, messages) = setup.run(json!({"level": 50, "id": 8})).await;
    assert_eq!((result.paths_completed, result.paths_failed), (1, 0));
    assert_eq!(ids(&messages), ["low"]);
    assert_eq!(messages[0].message, "low tank-8");
    // Without a property the whole payload is shown.
    assert_eq!(messages[0].value["data"], json!({"level": 50, "id": 8}));
    assert_eq!(messages[0].value["flowVersion"], "develop");
}

#[tokio::test]
async fn a_debug_node_wired_onwards_passes_the_payload_on() {
    // Only a Debug node that ends its path may hand its message the payload itself.
    let setup = setup(
        EngineConfig::default(),
        &["first"],
        json!([
            node(
                "first",
                "DebugNode",
                json!({"message": "in"}),
                json!([["copy"]])
            ),
            node(
                "copy",
                "MutateNode",
                json!({"rules": [
                    {"type": "set", "valueTemplate": "{{data.v}}", "valueTemplateType": "json",
                     "destination": "working.v"}
                ]}),
                json!([["last"]])
            ),
            debug("last", "out", ""),
        ]),
    )
    .await;
    let (result, messages) = setup.run(json!({"v": 42})).await;
    assert_eq!(result.failure, None);
    assert_eq!(ids(&messages), ["first", "last"]);
    assert_eq!(messages[0].value["data"], json!({"v": 42}));
    assert_eq!(messages[0].value.get("working"), None);
    assert_eq!(messages[1].value["data"], json!({"v": 42}));
    assert_eq!(messages[1].value["working"], json!({"v": 42}));
}

#[tokio::test]
async fn each_path_of_a_fork_has_its_own_payload() {
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(node(
            &format!("m{i}"),
            "MutateNode",
            json!({"rules": [
                {"type": "set", "valueTemplate": format!("b{i}"), "destination": "working.branch"},
                {"type": "set", "valueTemplate": "true", "valueTemplateType": "json",
                 "destination": format!("working.mine{i}")},
                {"type": "remove", "source": "data.shared"}
            ]}),
            json!([[format!("d{i}")]]),
        ));
        nodes.push(debug(&format!("d{i}"), "{{working.branch}}", "."));
    }
    let setup = setup(EngineConfig::default(), &["m1", "m2", "m3"], json!(nodes)).await;
    let (result, messages) = setup.run(json!({"shared": {"x": 1}})).await;
    assert_eq!(result.failure, None);
    assert_eq!((result.paths_completed, result.paths_failed), (3, 0));
    let mut seen: Vec<&str> = ids(&messages);
    seen.sort_unstable();
    assert_eq!(seen, ["d1", "d2", "d3"]);
    for message in &messages {
        let i = &message.node_id.as_deref().unwrap()[1..];
        assert_eq!(message.message, format!("b{i}"));
        // Only this path's own changes: one `mine` key, and every path removed `shared` from
        // its own copy only (each still started from the trigger's payload).
        let mut expected = serde_json::Map::new();
        expected.insert("branch".into(), json!(format!("b{i}")));
        expected.insert(format!("mine{i}"), json!(true));
        assert_eq!(message.value["working"], Value::Object(expected));
        assert_eq!(message.value["data"], json!({}));
    }
}

#[tokio::test]
async fn a_throw_halts_every_path() {
    let setup = setup(
        EngineConfig::default(),
        &["bail", "wait"],
        json!([
            node(
                "bail",
                "ThrowErrorNode",
                json!({"messageTemplate": "order {{data.orderId}} rejected on purpose"}),
                json!([])
            ),
            delay("wait", "0.5", &["after"]),
            debug("after", "never", ""),
        ]),
    )
    .await;
    let (result, _) = setup.run(json!({"orderId": "A-1001"})).await;
    assert!(
        result.wall_time < Duration::from_millis(500),
        "did not wait for the delay"
    );
    assert_eq!((result.paths_completed, result.paths_failed), (0, 2));
    let failure = result.failure.expect("a failure");
    assert_eq!(failure.error.name, ErrorName::ThrowError);
    assert_eq!(failure.error.message, "order A-1001 rejected on purpose");
    assert_eq!(failure.node_id.as_deref(), Some("bail"));
    assert_eq!(failure.node_label.as_deref(), Some("bail label"));
    assert_eq!(failure.node_type.as_deref(), Some("ThrowErrorNode"));
    // The waiting path was stopped: its Debug node never runs, even after the delay.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(setup
        .engine
        .debug()
        .recent(&setup.flow_id)
        .iter()
        .all(|m| m.node_id.as_deref() != Some("after")));
}

#[tokio::test]
async fn a_delay_lets_other_paths_finish_first() {
    let setup = setup(
        EngineConfig::default(),
        &["slow", "fast"],
        json!([
            delay("slow", "{{data.secs}}", &["slowDebug"]),
            debug("slowDebug", "slow", ""),
            debug("fast", "fast", ""),
        ]),
    )
    .await;
    let (result, messages) = setup.run(json!({"secs": 0.3})).await;
    assert_eq!(result.failure, None);
    assert_eq!((result.paths_completed, result.paths_failed), (2, 0));
    assert_eq!(ids(&messages), ["fast", "slowDebug"]);
    assert!(result.wall_time >= Duration::from_millis(300));
    assert!(messages[1].time_ms - messages[0].time_ms >= 250);
}

#[tokio::test]
async fn the_run_time_limit_stops_a_long_delay() {
    let setup = setup(
        limited(Duration::from_millis(300)),
        &["wait"],
        json!([delay("wait", "2", &["after"]), debug("after", "never", "")]),
    )
    .await;
    let (result, messages) = setup.run(json!({})).await;
    assert!(
        result.wall_time < Duration::from_secs(1),
        "{:?}",
        result.wall_time
    );
    assert!(messages.is_empty());
    let failure = result.failure.expect("a failure");
    assert_eq!(failure.error.name, ErrorName::TimeoutError);
    assert_eq!(result.paths_failed, 1);
}

#[tokio::test]
async fn a_timed_out_run_reports_the_payload_of_a_path_still_waiting() {
    // A Mutate, then two paths waiting on delays longer than the limit.
    let setup = setup(
        limited(Duration::from_millis(300)),
        &["mark"],
        json!([
            node("mark", "MutateNode",
                json!({"rules": [{"type": "set", "valueTemplate": "marked", "destination": "working.step"}]}),
                json!([["wait", "long"]])),
            delay("wait", "2", &["after"]),
            delay("long", "5", &["after"]),
            debug("after", "never", ""),
        ]),
    )
    .await;
    let (result, messages) = setup.run(json!({"sent": [1, 2]})).await;
    assert!(
        result.wall_time < Duration::from_secs(1),
        "{:?}",
        result.wall_time
    );
    assert!(messages.is_empty());
    assert_eq!((result.paths_completed, result.paths_failed), (0, 2));
    let failure = result.failure.expect("a failure");
    assert_eq!(failure.error.name, ErrorName::TimeoutError);
    let payload = failure.payload.expect("the errored payload");
    // The trigger's data is there (moved into the run, not lost), with what the path did.
    assert_eq!(payload["data"], json!({"sent": [1, 2]}));
    assert_eq!(payload["working"]["step"], "marked", "{payload}");
}

/// A Loop node over `data.n` items whose body is one Math node ending at a Next cap, in the
/// loop body group (`meta.groupId`), then a Debug node after the loop.
fn loop_nodes(parallel: bool, body: Value) -> Value {
    json!([
        {"id": "loop", "type": "LoopNode",
         "config": {"loopSourcePath": "data.n", "currentItemPath": "working.cur", "parallel": parallel},
         "meta": {"label": "loop"},
         "outputIds": [["after"], ["body"]]},
        body,
        {"id": "next", "type": "LoopCapNode", "meta": {"name": "loop-next", "groupId": "loop"},
         "config": {"loopNodeId": "loop"}, "outputIds": []},
        debug("after", "done", ""),
    ])
}

#[tokio::test]
async fn the_run_time_limit_stops_a_long_loop_of_short_bodies() {
    // 262,144 iterations of a one-node body: each iteration walks fewer than 256 steps, so
    // only the loop's own yields let the limit be checked.
    for parallel in [false, true] {
        let body = json!({"id": "body", "type": "MathNode", "meta": {"groupId": "loop"},
            "config": {"statements": [{"expression": "{{working.cur.index}} + 1", "resultPath": "working.x"}]},
            "outputIds": [["next"]]});
        let setup = setup(
            limited(Duration::from_millis(100)),
            &["loop"],
            loop_nodes(parallel, body),
        )
        .await;
        let (result, messages) = setup.run(json!({"n": 262_144})).await;
        assert!(
            result.wall_time < Duration::from_millis(800),
            "parallel {parallel}: {:?}",
            result.wall_time
        );
        assert!(messages.is_empty(), "parallel {parallel}");
        let failure = result.failure.expect("a failure");
        assert_eq!(
            failure.error.name,
            ErrorName::TimeoutError,
            "parallel {parallel}"
        );
        // The loop's path was waiting on its iterations: its payload is the one before the loop.
        let payload = failure.payload.expect("the errored payload");
        assert_eq!(payload["data"], json!({"n": 262_144}));
        assert!(payload.get("working").is_none(), "{payload}");
    }
}

#[tokio::test]
async fn the_run_time_limit_stops_a_loop_body_that_waits() {
    let body = json!({"id": "body", "type": "DelayNode", "meta": {"groupId": "loop"},
        "config": {"delay": "2"}, "outputIds": [["next"]]});
    let setup = setup(
        limited(Duration::from_millis(300)),
        &["loop"],
        loop_nodes(false, body),
    )
    .await;
    let (result, _) = setup.run(json!({"n": 3})).await;
    assert!(
        result.wall_time < Duration::from_secs(1),
        "{:?}",
        result.wall_time
    );
    let failure = result.failure.expect("a failure");
    assert_eq!(failure.error.name, ErrorName::TimeoutError);
    assert_eq!((result.paths_completed, result.paths_failed), (0, 1));
}

#[tokio::test]
async fn a_run_time_limit_too_long_to_add_to_the_clock_means_no_limit() {
    let setup = setup(
        limited(Duration::from_secs(u64::MAX)),
        &["wait"],
        json!([
            delay("wait", "0.05", &["after"]),
            debug("after", "waited", "")
        ]),
    )
    .await;
    let (result, messages) = setup.run(json!({})).await;
    assert_eq!(result.failure, None);
    assert_eq!(ids(&messages), ["after"]);
}

#[tokio::test]
async fn the_run_time_limit_stops_a_graph_that_cycles_forever() {
    let setup = setup(
        limited(Duration::from_millis(300)),
        &["a"],
        json!([
            node("a", "MutateNode",
                json!({"rules": [{"type": "set", "valueTemplate": "a", "destination": "working.at"}]}),
                json!([["b"]])),
            node("b", "MutateNode",
                json!({"rules": [{"type": "copy", "source": "working.at", "destination": "working.from"}]}),
                json!([["a"]])),
        ]),
    )
    .await;
    let (result, _) = setup.run(json!({})).await;
    assert!(
        result.wall_time < Duration::from_secs(2),
        "{:?}",
        result.wall_time
    );
    let failure = result.failure.expect("a failure");
    assert_eq!(failure.error.name, ErrorName::TimeoutError);
    assert_eq!(result.paths_completed, 0);
    // Stopped between two steps: the payload is the one about to go on.
    let payload = failure.payload.expect("the errored payload");
    assert_eq!(payload["working"]["at"], "a", "{payload}");
}
