//! Latch, Throttle and On Change remember across runs, and across a restart of the engine on the
//! same store, without counting in the flow's storage.

use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

async fn run(engine: &Engine, app: &str, flow: &str, data: Value) -> u64 {
    let compiled = engine
        .compiled(app, flow, &VersionRef::Develop)
        .await
        .unwrap()
        .unwrap();
    let start = RunStart {
        run_id: "r".into(),
        trigger: 0,
        data,
        relay_id: None,
        relay_type: None,
        device_id: None,
        time_ms: 0,
    };
    engine.run_now(compiled, start).await;
    // The alarm branch increments a counter; report it.
    engine
        .storage()
        .flow(flow)
        .await
        .unwrap()
        .get("alarms")
        .and_then(|v| v.as_u64())
        .unwrap_or(0)
}

#[tokio::test]
async fn latch_state_survives_a_restart_and_is_not_storage() {
    let dir = tempfile::tempdir().unwrap();
    let (app, flow) = (flowd_model::id::new_id(), flowd_model::id::new_id());
    {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let now = flowd_model::time::now_iso();
        store
            .insert_application(
                &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
            )
            .await
            .unwrap();
        store
            .insert_flow(&json!({"id": flow, "applicationId": app, "name": "f", "flowClass": "cloud",
                "creationDate": now, "lastUpdated": now,
                "triggers": [{"type": "virtualButton", "key": "b", "outputIds": [["latch"]]}],
                "nodes": [
                    {"id": "latch", "type": "LatchNode", "config": {"latchExpression": "{{data.t}} > 90", "resetExpression": "{{data.t}} < 80"}, "outputIds": [[], ["count"]]},
                    {"id": "count", "type": "StoreValueNode", "config": {"keyName": "alarms", "valueType": "incr", "value": "1"}}
                ]}))
            .await
            .unwrap();
        let engine = Engine::start(store.clone(), EngineConfig::default());
        assert_eq!(run(&engine, &app, &flow, json!({"t": 95})).await, 1);
        assert_eq!(
            run(&engine, &app, &flow, json!({"t": 96})).await,
            1,
            "latched: no second alarm"
        );
        let entries = engine.storage().flow(&flow).await.unwrap().entries();
        assert_eq!(
            entries.keys().collect::<Vec<_>>(),
            ["alarms"],
            "node state is not workflow storage"
        );
        engine.shutdown().await;
        store.close().await.unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let engine = Engine::start(store, EngineConfig::default());
    assert_eq!(
        run(&engine, &app, &flow, json!({"t": 97})).await,
        1,
        "still latched after a restart"
    );
    assert_eq!(
        run(&engine, &app, &flow, json!({"t": 70})).await,
        1,
        "reset"
    );
    assert_eq!(
        run(&engine, &app, &flow, json!({"t": 91})).await,
        2,
        "fires again"
    );
}
