//! `/applications/{applicationId}/flows/{flowId}`: the Flow resource of the seed — get, patch,
//! delete, and the flow's persistent storage (get, set, clear, metadata).
//!
//! Press virtual button, errors, logs and stats need the run engine and come with it.

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_updated};
use crate::error::{ApiError, ApiResult};
use crate::hal::success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::resources::flows::present;
use crate::state::AppState;
use crate::workflow::prepare_graph;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_model::storage::{check_key, encode_value};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/applications/{applicationId}/flows/{flowId}",
            get(fetch).patch(patch).delete(remove),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/storage",
            get(storage_entries)
                .patch(set_storage_entry)
                .delete(clear_storage_entries),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/storage-metadata",
            get(storage_metadata),
        )
}

/// Loads a flow of an application or answers 404; used by every resource under a flow.
pub async fn load(state: &AppState, application_id: &str, flow_id: &str) -> ApiResult<Value> {
    application::load(state, application_id).await?;
    let id = path_id(flow_id, "Flow")?;
    state
        .store
        .get_flow(application_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow"))
}

type FlowPath = PathParams<(String, String)>;

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowGet, Some(&application_id))?;
    params.bool("includeCustomNodes", false)?;
    Ok(Json(present(
        load(&state, &application_id, &flow_id).await?,
        params.links(),
    )))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowPatch, Some(&application_id))?;
    params.bool("includeCustomNodes", false)?;
    let current = load(&state, &application_id, &flow_id).await?;
    let changes = into_object(body.validated(SchemaName::FlowPatch)?)?;
    if let Some(version_id) = changes.get("defaultVersionId").and_then(Value::as_str) {
        if state
            .store
            .get_version(&flow_id, version_id)
            .await?
            .is_none()
        {
            return Err(ApiError::validation(format!(
                "defaultVersionId: this workflow has no version with id {version_id}"
            )));
        }
    }
    let mut doc = into_object(current)?;
    // Scalars merge; triggers, nodes and globals are replaced wholesale when present.
    merge(&mut doc, changes);
    prepare_graph(&mut doc, &flow_id)?;
    stamp_updated(&mut doc, &who);
    let doc = Value::Object(doc);
    state.store.update_flow(&doc).await?;
    Ok(Json(present(doc, params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowDelete, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    if !state.store.delete_flow(&application_id, &flow_id).await? {
        return Err(ApiError::not_found("Flow"));
    }
    Ok(Json(success()))
}

async fn storage_entries(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowGetStorageEntries, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    Ok(Json(Value::Object(
        state.store.storage_entries(&flow_id).await?,
    )))
}

async fn storage_metadata(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowGetStorageEntriesMetadata, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let meta = state.store.storage_metadata(&flow_id).await?;
    Ok(Json(
        json!({ "memoryUsed": meta.memory_used, "keysCount": meta.keys_count }),
    ))
}

async fn set_storage_entry(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowSetStorageEntry, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let entry = body.validated(SchemaName::FlowStorageEntry)?;
    let key = entry.get("key").and_then(Value::as_str).unwrap_or_default();
    check_key(key).map_err(|e| ApiError::validation(format!("key: {e}")))?;
    match entry.get("value") {
        // Decision 8: a key without a value deletes the entry.
        None => {
            state.store.storage_delete(&flow_id, key).await?;
        }
        Some(value) => {
            let text = encode_value(key, value)
                .map_err(|e| ApiError::validation(format!("value: {e}")))?;
            state
                .store
                .storage_set(&flow_id, key, &text, state.limits.storage)
                .await?;
        }
    }
    Ok(Json(success()))
}

async fn clear_storage_entries(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowClearStorageEntries, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    state.store.storage_clear(&flow_id).await?;
    Ok(Json(json!({})))
}
