//! The bare-HTTP ceiling of the request/reply benchmark: the least a server must do to answer the
//! benchmark's request (`POST /press` with `{"key":…,"payload":{"count":1}}`) the way the
//! Node-RED anchor flow and flowd's webhook flow do — parse the JSON body, add one to
//! `payload.count`, tag it, bump a counter, answer the payload as JSON — with nothing else: no
//! routing table beyond two routes, no storage, no engine. What it reaches on one pinned core is
//! the physical limit of HTTP on loopback here.
//!
//! `GET /count` answers `{"n": N}`, the number of presses answered, so the benchmark checks it
//! against the load generator's count as it does for the others.
//!
//! Usage: `flowd-bench-ceiling [ADDRESS]` (default `127.0.0.1:18490`).

use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

async fn press(counter: Arc<AtomicU64>, Json(body): Json<Value>) -> Json<Value> {
    let mut payload = match body {
        Value::Object(mut map) => map.remove("payload").unwrap_or(Value::Null),
        _ => Value::Null,
    };
    if let Value::Object(map) = &mut payload {
        let count = map.get("count").and_then(Value::as_f64).unwrap_or(0.0);
        map.insert("count".into(), json!(count + 1.0));
        map.insert("tag".into(), json!("x"));
    }
    counter.fetch_add(1, Ordering::Relaxed);
    Json(payload)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18490".into());
    let counter = Arc::new(AtomicU64::new(0));
    let presses = counter.clone();
    let app = Router::new()
        .route(
            "/press",
            post(move |body: Json<Value>| press(presses.clone(), body)),
        )
        .route(
            "/count",
            get(move || async move { Json(json!({ "n": counter.load(Ordering::Relaxed) })) }),
        );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    eprintln!("ceiling listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
