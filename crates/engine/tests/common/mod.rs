//! What several engine tests set up alike.

use flowd_engine::engine::Engine;
use flowd_engine::observer::RunResult;
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_store::Store;
use serde_json::{json, Value};

/// Inserts an application and, in it, a cloud flow of `nodes` whose virtual button `b` starts
/// node `first`; returns their ids.
pub async fn button_flow(store: &dyn Store, first: &str, nodes: Value) -> (String, String) {
    let (app, flow) = (flowd_model::id::new_id(), flowd_model::id::new_id());
    let now = flowd_model::time::now_iso();
    store
        .insert_application(
            &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
        )
        .await
        .expect("the application is stored");
    store
        .insert_flow(
            &json!({"id": flow, "applicationId": app, "name": "f", "flowClass": "cloud",
            "creationDate": now, "lastUpdated": now,
            "triggers": [{"type": "virtualButton", "key": "b", "outputIds": [[first]]}],
            "nodes": nodes}),
        )
        .await
        .expect("the flow is stored");
    (app, flow)
}

/// A latch on `data.t` (latched above 90, reset below 80) that adds one to `alarms` each time
/// it latches; start at `latch`.
pub fn latched_alarms() -> Value {
    json!([
        {"id": "latch", "type": "LatchNode", "config": {"latchExpression": "{{data.t}} > 90",
            "resetExpression": "{{data.t}} < 80"}, "outputIds": [[], ["count"]]},
        {"id": "count", "type": "StoreValueNode",
            "config": {"keyName": "alarms", "valueType": "incr", "value": "1"}}
    ])
}

/// Runs the develop version of a flow once on `engine`, from its first trigger, with `data`.
pub async fn run_once(engine: &Engine, app: &str, flow: &str, data: Value) -> RunResult {
    let compiled = engine
        .compiled(app, flow, &VersionRef::Develop)
        .await
        .expect("the flow loads")
        .expect("the flow exists");
    let start = RunStart {
        run_id: flowd_model::id::new_id(),
        trigger: 0,
        data,
        relay_id: None,
        relay_type: None,
        device_id: None,
        time_ms: 0,
    };
    engine.run_now(compiled, start).await
}
