//! The storage endpoints (`/flows/{id}/storage`, `/storage-metadata`) answer alike whichever
//! storage mode the engine runs in; in Shared mode, what one node writes another reads at once,
//! and runs on either see it.

use axum::body::Body;
use axum::http::{header, Method, Request};
use flowd_api::auth::{hash_token, TokenCache};
use flowd_api::{app, AppParts, AppState, Limits};
use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::storage::StorageMode;
use flowd_store::sqlite::SqliteStore;
use flowd_store::{StorageCaps, Store, TokenRecord};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "storage-modes-test-token";

/// One flowd node: the API over an engine in `mode`, on `store`.
fn node(store: &Arc<dyn Store>, mode: StorageMode) -> AppState {
    let caps = StorageCaps {
        max_keys: 3,
        max_bytes: 1_000,
    };
    let config = EngineConfig {
        storage_mode: mode,
        storage_caps: caps,
        ..EngineConfig::default()
    };
    AppState::from(AppParts {
        store: store.clone(),
        engine: Engine::start(store.clone(), config),
        limits: Limits {
            storage: caps,
            ..Limits::default()
        },
        tokens: Arc::new(TokenCache::default()),
        changes: None,
        shutting_down: tokio::sync::watch::channel(false).1,
    })
}

/// A store holding the test's owner token.
async fn store_with_token(dir: &std::path::Path) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir).await.unwrap());
    let now = flowd_model::time::now_iso();
    let token_id = flowd_model::id::new_id();
    store
        .insert_token(&TokenRecord {
            id: token_id.clone(),
            application_id: None,
            token_hash: hash_token(TOKEN),
            doc: json!({"id": token_id, "name": "owner", "scope": ["all.User"],
                "status": "active", "creationDate": now, "lastUpdated": now}),
        })
        .await
        .unwrap();
    store
}

/// Creates, through `state`'s API, an application and a flow that adds 1 to `count` per press;
/// returns the flow's storage URL and their ids.
async fn counting_flow(state: &AppState) -> (String, String, String) {
    let (status, app) = call(
        state,
        Method::POST,
        "/applications",
        Some(json!({"name": "a"})),
    )
    .await;
    assert_eq!(status, 201, "{app}");
    let app_id = app["id"].as_str().unwrap().to_owned();
    let flow = json!({"name": "f",
        "triggers": [{"type": "virtualButton", "key": "b", "outputIds": [["count"]]}],
        "nodes": [{"id": "count", "type": "StoreValueNode",
            "config": {"keyName": "count", "valueType": "incr", "value": "1"}}]});
    let flows = format!("/applications/{app_id}/flows");
    let (status, flow) = call(state, Method::POST, &flows, Some(flow)).await;
    assert_eq!(status, 201, "{flow}");
    let flow_id = flow["id"].as_str().unwrap().to_owned();
    let storage = format!("{flows}/{flow_id}/storage");
    (storage, app_id, flow_id)
}

/// Sends a request to a node; returns the status and the JSON body.
async fn call(state: &AppState, method: Method, uri: &str, body: Option<Value>) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json");
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = app(state.clone())
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status.as_u16(), json)
}

/// What a series of storage requests answers, one line each.
async fn transcript(state: &AppState, storage: &str) -> Vec<String> {
    let metadata = format!("{storage}-metadata");
    let requests = [
        (
            Method::PATCH,
            storage,
            Some(json!({"key": "a", "value": 1})),
        ),
        (
            Method::PATCH,
            storage,
            Some(json!({"key": "b", "value": {"x": [1]}})),
        ),
        (Method::GET, storage, None),
        (Method::GET, &metadata, None),
        (
            Method::PATCH,
            storage,
            Some(json!({"key": "c", "value": "c"})),
        ),
        (
            Method::PATCH,
            storage,
            Some(json!({"key": "d", "value": "one too many"})),
        ),
        (Method::PATCH, storage, Some(json!({"key": "", "value": 1}))),
        (Method::PATCH, storage, Some(json!({"key": "b"}))),
        (Method::GET, storage, None),
        (Method::DELETE, storage, None),
        (Method::GET, storage, None),
        (Method::GET, &metadata, None),
    ];
    let mut lines = Vec::new();
    for (method, uri, body) in requests {
        let what = format!(
            "{method} {} {}",
            &uri[storage.len()..],
            body.clone().unwrap_or_default()
        );
        let (status, answer) = call(state, method, uri, body).await;
        lines.push(format!("{what} → {status} {answer}"));
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_endpoints_answer_alike_in_both_modes() {
    let mut transcripts = Vec::new();
    for mode in [StorageMode::Cached, StorageMode::Shared] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_token(dir.path()).await;
        let state = node(&store, mode);
        let (storage, _, _) = counting_flow(&state).await;
        transcripts.push(transcript(&state, &storage).await);
        state.engine.shutdown().await;
        store.close().await.unwrap();
    }
    assert_eq!(transcripts[0], transcripts[1]);
    let statuses: Vec<&str> = transcripts[0]
        .iter()
        .map(|line| &line[line.find('→').unwrap() + 4..][..3])
        .collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "200", "200", "400", "400", "200", "200", "200", "200", "200"],
        "{:#?}",
        transcripts[0]
    );
    let answers = [
        (2, r#"{"a":1,"b":{"x":[1]}}"#),
        (3, r#"{"memoryUsed":12,"keysCount":2}"#),
        (5, "limited to 3 keys"),
        (8, r#"{"a":1,"c":"c"}"#),
        (11, r#"{"memoryUsed":0,"keysCount":0}"#),
    ];
    for (index, answer) in answers {
        let line = &transcripts[0][index];
        assert!(line.contains(answer), "{line}");
    }
}

/// Two nodes in Shared mode on one store: a write through one is read through the other at
/// once, and runs on either count on from what the other wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_nodes_see_each_others_writes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_token(dir.path()).await;
    let (a, b) = (
        node(&store, StorageMode::Shared),
        node(&store, StorageMode::Shared),
    );
    let (storage, app_id, flow_id) = counting_flow(&a).await;
    let patch = json!({"key": "count", "value": 41});
    assert_eq!(call(&a, Method::PATCH, &storage, Some(patch)).await.0, 200);
    // Pressed on the other node; the press answers once queued, so wait for its run.
    let press = format!("/applications/{app_id}/flows/{flow_id}/virtualButton");
    let (status, answer) = call(&b, Method::POST, &press, Some(json!({"key": "b"}))).await;
    assert_eq!(status, 200, "{answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = call(&a, Method::GET, &storage, None).await;
    while seen != (200, json!({"count": 42})) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        seen = call(&a, Method::GET, &storage, None).await;
    }
    assert_eq!(
        seen,
        (200, json!({"count": 42})),
        "a run on the other node counted on from the API's write"
    );
    assert_eq!(call(&b, Method::DELETE, &storage, None).await.0, 200);
    assert_eq!(
        call(&a, Method::GET, &storage, None).await,
        (200, json!({}))
    );
    for node in [a, b] {
        node.engine.shutdown().await;
    }
    store.close().await.unwrap();
}
