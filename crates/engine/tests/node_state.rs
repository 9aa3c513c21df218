//! Latch, Throttle and On Change remember across runs, and across a restart of the engine on the
//! same store, without counting in the flow's storage, in either storage mode.

mod common;

use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::storage::StorageMode;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

async fn run(engine: &Engine, app: &str, flow: &str, data: Value) -> u64 {
    common::run_once(engine, app, flow, data).await;
    // The alarm branch increments a counter; report it.
    let storage = engine.storage().handle(flow).await.unwrap();
    let alarms = storage.get("alarms").await.unwrap();
    alarms.and_then(|v| v.as_u64()).unwrap_or(0)
}

#[tokio::test]
async fn latch_state_survives_a_restart_and_is_not_storage() {
    for mode in [StorageMode::Cached, StorageMode::Shared] {
        latch_state_survives_a_restart_and_is_not_storage_in(mode).await;
    }
}

async fn latch_state_survives_a_restart_and_is_not_storage_in(mode: StorageMode) {
    let config = EngineConfig {
        storage_mode: mode,
        ..EngineConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let (app, flow) = {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let (app, flow) = common::button_flow(&*store, "latch", common::latched_alarms()).await;
        let engine = Engine::start(store.clone(), config);
        assert_eq!(run(&engine, &app, &flow, json!({"t": 95})).await, 1);
        assert_eq!(
            run(&engine, &app, &flow, json!({"t": 96})).await,
            1,
            "latched: no second alarm"
        );
        let storage = engine.storage().handle(&flow).await.unwrap();
        let entries = storage.entries().await.unwrap();
        assert_eq!(
            entries.keys().collect::<Vec<_>>(),
            ["alarms"],
            "node state is not workflow storage"
        );
        engine.shutdown().await;
        store.close().await.unwrap();
        (app, flow)
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let engine = Engine::start(store, config);
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
