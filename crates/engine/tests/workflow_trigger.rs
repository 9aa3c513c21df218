//! Workflow Trigger nodes start runs of other flows: now, later, or not at all once cancelled;
//! a flow that triggers itself is cut after a bounded chain.

use flowd_engine::engine::{Engine, EngineConfig, Press};
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct World {
    engine: Engine,
    store: Arc<dyn Store>,
    app: String,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let app = flowd_model::id::new_id();
        let now = flowd_model::time::now_iso();
        store
            .insert_application(
                &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
            )
            .await
            .unwrap();
        let engine = Engine::start(store.clone(), EngineConfig::default());
        World {
            engine,
            store,
            app,
            _dir: dir,
        }
    }

    async fn flow(&self, id: &str, triggers: Value, nodes: Value) {
        let now = flowd_model::time::now_iso();
        self.store
            .insert_flow(&json!({"id": id, "applicationId": self.app, "name": id, "flowClass": "cloud", "enabled": true,
                "creationDate": now, "lastUpdated": now, "triggers": triggers, "nodes": nodes}))
            .await
            .unwrap();
    }

    async fn press(&self, flow: &str, key: &str, payload: Value) {
        let press = Press {
            key: key.into(),
            payload: Some(payload),
            ..Default::default()
        };
        self.engine
            .press_virtual_button(&self.app, flow, press)
            .await
            .unwrap();
    }

    async fn counter(&self, flow: &str, key: &str) -> Value {
        self.engine
            .storage()
            .flow(flow)
            .await
            .unwrap()
            .get(key)
            .unwrap_or(Value::Null)
    }

    async fn wait_for(&self, flow: &str, key: &str, want: Value, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.counter(flow, key).await == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

fn counter_flow() -> (Value, Value) {
    (
        json!([{"type": "virtualButton", "key": "go", "meta": {"uiId": "go-ui"}, "outputIds": [["count"]]}]),
        json!([
            {"id": "count", "type": "StoreValueNode", "config": {"keyName": "n", "valueType": "incr", "value": "{{data.by}}"}, "outputIds": [["who"]]},
            {"id": "who", "type": "StoreValueNode", "config": {"keyName": "relay", "valueType": "template", "value": "{{relayType}}"}}
        ]),
    )
}

#[tokio::test]
async fn immediate_scheduled_and_cancelled() {
    let w = World::new().await;
    let target = flowd_model::id::new_id();
    let (triggers, nodes) = counter_flow();
    w.flow(&target, triggers, nodes).await;
    let caller = flowd_model::id::new_id();
    w.flow(
        &caller,
        json!([
            {"type": "virtualButton", "key": "now", "outputIds": [["now"]]},
            {"type": "virtualButton", "key": "later", "outputIds": [["later"]]},
            {"type": "virtualButton", "key": "cancel", "outputIds": [["cancel"]]}
        ]),
        json!([
            {"id": "now", "type": "WorkflowTriggerNode", "config": {"behavior": "immediate", "triggerWorkflowId": target,
                "triggerVirtualButtonId": "go-ui", "payloadTemplate": "{\"by\": {{data.by}}}", "resultPath": "working.r"},
             "outputIds": [["keep"]]},
            {"id": "keep", "type": "StoreValueNode", "config": {"keyName": "result", "valueType": "path", "valuePath": "working.r"}},
            {"id": "later", "type": "WorkflowTriggerNode", "config": {"behavior": "schedule", "scheduling": "relative",
                "secondsTemplate": "{{data.secs}}", "triggerWorkflowId": target, "triggerVirtualButtonId": "go",
                "payloadTemplate": "{\"by\": 100}", "runIdTemplate": "job-1", "resultPath": "working.r"}, "outputIds": [["keep"]]},
            {"id": "cancel", "type": "WorkflowTriggerNode", "config": {"behavior": "cancel", "runIdTemplate": "job-1", "resultPath": "working.r"},
             "outputIds": [["keep"]]}
        ]),
    )
    .await;

    w.press(&caller, "now", json!({"by": 5})).await;
    assert!(
        w.wait_for(&target, "n", json!(5), Duration::from_secs(5))
            .await,
        "the target ran"
    );
    assert_eq!(w.counter(&target, "relay").await, json!("flow"));
    let result = w.counter(&caller, "result").await;
    assert_eq!(result["success"], true);
    assert_eq!(result["virtualButtonId"], "go-ui");
    assert_eq!(
        result["payload"],
        json!({"by": 5}),
        "the payload sent, in the result"
    );
    let keys: Vec<&str> = result
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "flowId",
            "flowVersion",
            "virtualButtonId",
            "payload",
            "success"
        ]
    );

    // Scheduled in 0.3 s, then replaced, then cancelled: it never runs.
    w.press(&caller, "later", json!({"secs": 0.3})).await;
    assert!(
        w.wait_for(
            &caller,
            "result",
            w.counter(&caller, "result").await,
            Duration::from_millis(10)
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.press(&caller, "later", json!({"secs": 0.3})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(w.counter(&caller, "result").await["newOrUpdate"], "update");
    w.press(&caller, "cancel", json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        w.counter(&caller, "result").await,
        json!({"runId": "job-1", "success": true})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.counter(&target, "n").await,
        json!(5),
        "the cancelled run did not happen"
    );

    // Scheduled and left alone, it runs.
    w.press(&caller, "later", json!({"secs": 0.1})).await;
    assert!(
        w.wait_for(&target, "n", json!(105), Duration::from_secs(5))
            .await
    );
    // Cancelling what is gone says so without failing.
    w.press(&caller, "cancel", json!({})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.counter(&caller, "result").await["success"], false);
}

#[tokio::test]
async fn a_flow_triggering_itself_is_cut() {
    let w = World::new().await;
    let flow = flowd_model::id::new_id();
    w.flow(
        &flow,
        json!([{"type": "virtualButton", "key": "again", "outputIds": [["count"]]}]),
        json!([
            {"id": "count", "type": "StoreValueNode", "config": {"keyName": "n", "valueType": "incr", "value": "1"}, "outputIds": [["self"]]},
            {"id": "self", "type": "WorkflowTriggerNode", "config": {"triggerWorkflowId": flow, "triggerVirtualButtonId": "again"}}
        ]),
    )
    .await;
    w.press(&flow, "again", json!({})).await;
    let limit = flowd_engine::nodes::output::workflow_trigger::MAX_CHAIN as u64 + 1;
    assert!(
        w.wait_for(&flow, "n", json!(limit), Duration::from_secs(10))
            .await,
        "{}",
        w.counter(&flow, "n").await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        w.counter(&flow, "n").await,
        json!(limit),
        "no run past the chain limit"
    );
}
