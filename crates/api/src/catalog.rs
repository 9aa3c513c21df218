//! `GET /nodes`: flowd's own listing (Losant has none to copy) of what a workflow may use here —
//! every node type and trigger type flowd runs, with the config fields each knows, and the node
//! types Losant has that flowd keeps in saved flows but cannot run yet. Public, like
//! `/health`: it describes the server, not anyone's data.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/nodes", get(list))
}

async fn list() -> Json<Value> {
    let nodes: Vec<Value> = flowd_engine::nodes::REGISTRY
        .iter()
        .map(|t| json!({"type": t.name, "configFields": (t.config_fields)()}))
        .collect();
    let triggers: Vec<Value> = flowd_engine::triggers::REGISTRY
        .iter()
        .map(|t| json!({"type": t.name, "configFields": (t.config_fields)()}))
        .collect();
    let not_yet: Vec<&str> = flowd_model::catalogue::NODE_TYPES
        .iter()
        .copied()
        .filter(|t| !flowd_engine::nodes::is_supported(t))
        .collect();
    Json(json!({
        "nodes": nodes,
        "triggers": triggers,
        "unsupportedNodes": not_yet,
    }))
}
