//! Workflow storage in Shared mode, where several engines use one store: what runs and the API
//! see is the same as in Cached mode, and increments and node state made through different
//! engines at once are neither lost nor stale (on one SQLite store, and through two PostgreSQL
//! pools on one schema, as two processes would have).

mod common;

use common::button_flow;
use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::storage::{StorageError, StorageHandle, StorageMode};
use flowd_store::postgres::{PostgresStore, ScratchSchema};
use flowd_store::sqlite::SqliteStore;
use flowd_store::{StorageCaps, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Runs each engine does at once in the counting tests.
const RUNS_PER_ENGINE: usize = 500;

fn shared() -> EngineConfig {
    EngineConfig {
        storage_mode: StorageMode::Shared,
        ..EngineConfig::default()
    }
}

/// A flow that adds one to `count` per run.
async fn counting_flow(store: &dyn Store) -> (String, String) {
    let nodes = json!([{"id": "count", "type": "StoreValueNode",
        "config": {"keyName": "count", "valueType": "incr", "value": "1"}}]);
    button_flow(store, "count", nodes).await
}

/// Runs the flow once on `engine` with `data`; panics unless its one path completed.
async fn run(engine: &Engine, app: &str, flow: &str, data: Value) {
    let result = common::run_once(engine, app, flow, data).await;
    assert_eq!(
        (
            result.paths_completed,
            result.failure.map(|f| f.error.to_string())
        ),
        (1, None)
    );
}

async fn stored(engine: &Engine, flow: &str, key: &str) -> Option<Value> {
    let storage = engine.storage().handle(flow).await.unwrap();
    storage.get(key).await.unwrap()
}

/// Every engine runs the counting flow [`RUNS_PER_ENGINE`] times, all at once; returns the
/// runs per second.
async fn count_on_every_engine(engines: &[Engine], app: &str, flow: &str) -> f64 {
    let began = Instant::now();
    let runs = engines
        .iter()
        .flat_map(|engine| (0..RUNS_PER_ENGINE).map(move |_| run(engine, app, flow, json!({}))));
    futures::future::join_all(runs).await;
    let total = engines.len() * RUNS_PER_ENGINE;
    let rate = total as f64 / began.elapsed().as_secs_f64();
    for engine in engines {
        assert_eq!(
            stored(engine, flow, "count").await,
            Some(json!(total)),
            "every engine sees every increment"
        );
    }
    rate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_sqlite_store_lose_no_increment() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let (app, flow) = counting_flow(&*store).await;
    let engines = [
        Engine::start(store.clone(), shared()),
        Engine::start(store.clone(), shared()),
    ];
    let rate = count_on_every_engine(&engines, &app, &flow).await;
    println!("SQLite, Shared mode: {rate:.0} incr runs/s");
    for engine in &engines {
        engine.shutdown().await;
    }
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_schema_lose_no_increment() {
    let schema = ScratchSchema::for_tests().await;
    let url = ScratchSchema::test_database();
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        let store = PostgresStore::connect_in_schema(&url, schema.name())
            .await
            .unwrap();
        stores.push(Arc::new(store));
    }
    let (app, flow) = counting_flow(&*stores[0]).await;
    let engines: Vec<Engine> = stores
        .iter()
        .map(|store| Engine::start(store.clone(), shared()))
        .collect();
    let rate = count_on_every_engine(&engines, &app, &flow).await;
    println!("PostgreSQL, Shared mode: {rate:.0} incr runs/s");
    for engine in &engines {
        engine.shutdown().await;
    }
    for store in &stores {
        store.close().await.unwrap();
    }
}

/// A latch set through one engine is latched on the other, and its reset too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_state_is_one_between_engines() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let (app, flow) = button_flow(&*store, "latch", common::latched_alarms()).await;
    let (a, b) = (
        Engine::start(store.clone(), shared()),
        Engine::start(store.clone(), shared()),
    );
    let alarms = |engine: &Engine| {
        let engine = engine.clone();
        let flow = flow.clone();
        async move { stored(&engine, &flow, "alarms").await }
    };
    run(&a, &app, &flow, json!({"t": 95})).await;
    assert_eq!(alarms(&b).await, Some(json!(1)));
    run(&b, &app, &flow, json!({"t": 96})).await;
    assert_eq!(
        alarms(&a).await,
        Some(json!(1)),
        "latched through the other engine"
    );
    run(&b, &app, &flow, json!({"t": 70})).await;
    run(&a, &app, &flow, json!({"t": 91})).await;
    assert_eq!(
        alarms(&b).await,
        Some(json!(2)),
        "reset through the other engine"
    );
    for engine in [a, b] {
        engine.shutdown().await;
    }
    store.close().await.unwrap();
}

/// What a series of operations answers, one line each (errors included).
async fn transcript(storage: &StorageHandle) -> Vec<String> {
    fn line<T: std::fmt::Debug>(what: &str, answer: Result<T, StorageError>) -> String {
        match answer {
            Ok(value) => format!("{what}: {value:?}"),
            Err(e) => format!("{what}: error {e:?}"),
        }
    }
    let mut lines = vec![
        line("set a", storage.set("a", json!(1)).await),
        line("incr a", storage.increment("a", 2.5).await),
        line("set b", storage.set("b", json!("text")).await),
        line("incr b", storage.increment("b", 1.0).await),
        line("set c (a key too many)", storage.set("c", json!(1)).await),
        line("incr c (a key too many)", storage.increment("c", 1.0).await),
        line(
            "set b (too long)",
            storage.set("b", json!("x".repeat(40))).await,
        ),
        line("set empty key", storage.set("", json!(1)).await),
        line(
            "incr long key",
            storage.increment(&"k".repeat(256), 1.0).await,
        ),
        line(
            "set over 16 KB",
            storage.set("b", json!("x".repeat(17 * 1024))).await,
        ),
        line(
            "incr a by infinity",
            storage.increment("a", f64::INFINITY).await,
        ),
        line("get a", storage.get("a").await),
        line("get c", storage.get("c").await),
        line("entries", storage.entries().await),
        line("metadata", storage.metadata().await),
    ];
    let state = storage.update_node_state("n", "id", |state| (json!(1), state.cloned()));
    lines.push(line("node state first", state.await));
    let state = storage.update_node_state("n", "id", |state| (json!(2), state.cloned()));
    lines.push(line("node state then", state.await));
    lines.push(line("entries (no node state)", storage.entries().await));
    lines.push(line("remove b", storage.remove("b").await));
    lines.push(line("remove b again", storage.remove("b").await));
    lines.push(line("clear", storage.clear().await));
    lines.push(line("metadata after clear", storage.metadata().await));
    lines
}

/// The same operations answer the same, errors and all, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_answer_alike() {
    let mut transcripts = Vec::new();
    for mode in [StorageMode::Cached, StorageMode::Shared] {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let (_, flow) = counting_flow(&*store).await;
        let config = EngineConfig {
            storage_mode: mode,
            storage_caps: StorageCaps {
                max_keys: 2,
                max_bytes: 30,
            },
            ..EngineConfig::default()
        };
        let engine = Engine::start(store.clone(), config);
        let storage = engine.storage().handle(&flow).await.unwrap();
        transcripts.push(transcript(&storage).await);
        engine.shutdown().await;
        store.close().await.unwrap();
    }
    let (cached, shared) = (&transcripts[0], &transcripts[1]);
    for (cached, shared) in cached.iter().zip(shared) {
        assert_eq!(cached, shared);
    }
    assert_eq!(cached.len(), shared.len());
    // And what they agree on is right.
    let expected_prefixes = [
        "set a: ()",
        "incr a: 3.5",
        "set b: ()",
        "incr b: error NotANumber",
        "set c (a key too many): error Limit(\"workflow storage is limited to 2 keys\")",
        "incr c (a key too many): error Limit(\"workflow storage is limited to 2 keys\")",
        "set b (too long): error Limit(\"workflow storage is limited to 30 bytes",
        "set empty key: error Rule(KeyLength)",
        "incr long key: error Rule(KeyLength)",
        "set over 16 KB: error Rule(ValueTooLarge",
        "incr a by infinity: error NotFinite",
        "get a: Some(Number(3.5))",
        "get c: None",
    ];
    for (line, prefix) in cached.iter().zip(expected_prefixes) {
        assert!(line.starts_with(prefix), "{line:?} should start {prefix:?}");
    }
    assert!(cached.contains(&"node state first: None".to_owned()));
    assert!(cached.contains(&"node state then: Some(Number(1))".to_owned()));
    assert!(cached.contains(&"remove b: Some(String(\"text\"))".to_owned()));
    assert!(cached.contains(&"remove b again: None".to_owned()));
}
