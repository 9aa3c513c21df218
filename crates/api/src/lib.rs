//! # flowd-api
//!
//! The HTTP layer: Losant's REST API over axum, kept thin. Handlers check the caller, validate
//! the request, call the store (and, with the engine, the run queue) and shape the response.
//!
//! * [`resources`] — one module per Losant resource, each exposing `router()`.
//! * [`auth`] — the bearer-token extractor and the one authorization check.
//! * [`request`] — JSON bodies validated against the official schemas, query parameters, ids.
//! * [`error`] — the one error type and its mapping to Losant error bodies.
//! * [`bootstrap`] — the owner token made on first start.
//! * [`webhook_requests`] — the public webhook URLs (`/webhooks/{token}`) that start runs.
//! * [`catalog`] — `GET /nodes`, flowd's list of the node and trigger types it runs.
//! * [`openapi`] — `GET /openapi.json`, the OpenAPI 3.1 description of every route.
//! * [`runs`] — run history (errors, logs, stats) shared by flows and flow versions.
//! * [`list`], [`hal`], [`documents`], [`workflow`] — pieces shared by several resources.

pub mod app_resource;
pub mod auth;
pub mod bootstrap;
pub mod catalog;
pub mod documents;
pub mod error;
pub mod hal;
pub mod list;
pub mod openapi;
pub mod request;
pub mod resources;
pub mod runs;
pub mod state;
pub mod webhook_requests;
pub mod workflow;

use axum::routing::get;
use axum::{Json, Router};
use error::ApiError;
use serde_json::{json, Value};
pub use state::{AppParts, AppState, Limits};

/// The whole API as a router, ready to serve (or to drive in tests with `oneshot`).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(catalog::router())
        .merge(openapi::router())
        .merge(webhook_requests::router())
        .merge(resources::applications::router())
        .merge(resources::application::router())
        .merge(resources::application_api_tokens::router())
        .merge(resources::application_api_token::router())
        .merge(resources::flows::router())
        .merge(resources::flow::router())
        .merge(resources::flow_debug::router())
        .merge(resources::flow_versions::router())
        .merge(resources::flow_version::router())
        .merge(resources::integrations::router())
        .merge(resources::integration::router())
        .merge(resources::webhooks::router())
        .merge(resources::webhook::router())
        .fallback(|| async { ApiError::NotFound("No such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::NotFound("This route does not take that method".into())
        })
        .with_state(state)
}

/// Liveness: the process is up and serving.
async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// How long readiness waits for the store.
const READY_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the store answers a read and the run queue can take jobs; a 503 naming what is
/// down otherwise (a load balancer then sends requests to another node).
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Value>, ApiError> {
    // Any read will do; this one finds nothing.
    let probe = state.store.get_application("000000000000000000000000");
    let mut down = Vec::new();
    match tokio::time::timeout(READY_STORE_WAIT, probe).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the store failed a read");
            down.push("the store failed a read".to_owned());
        }
        Err(_) => down.push(format!(
            "the store did not answer within {} s",
            READY_STORE_WAIT.as_secs()
        )),
    }
    if let Err(e) = state.engine.queue_ready() {
        down.push(e);
    }
    if !down.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "not ready: {}",
            down.join("; ")
        )));
    }
    Ok(Json(
        json!({ "status": "ok", "queue": state.engine.queue_kind() }),
    ))
}
