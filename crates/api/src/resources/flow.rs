//! `/applications/{applicationId}/flows/{flowId}`: the Flow resource of the seed — get, patch,
//! delete, and the flow's persistent storage (get, set, clear, metadata).
//!
//! Storage goes through the engine's storage, as runs reach it (its in-memory map, or the store
//! itself in Shared mode), and a write is answered only once committed. Pressing a virtual button queues a run and answers at once
//! (decision 4); errors, logs and stats come from [`crate::runs`].

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_updated};
use crate::error::{ApiError, ApiResult};
use crate::hal::Success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::resources::flows::present;
use crate::runs::VersionSelection;
use crate::state::AppState;
use crate::workflow::prepare_graph;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_engine::engine::{Press, PressError};
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
        .route(
            "/applications/{applicationId}/flows/{flowId}/virtualButton",
            post(press_virtual_button),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/errors",
            get(errors),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/logs",
            get(logs),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/stats",
            get(stats),
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
    let mut doc = load(&state, &application_id, &flow_id).await?;
    doc["stats"] = crate::runs::summary(&state, &flow_id, state.limits.retention_ms).await?;
    Ok(Json(present(doc, params.links())))
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
        // `get_version` also finds a version by name, and a name may look like an id; the
        // default must be a version's id.
        let found = state.store.get_version(&flow_id, version_id).await?;
        if found
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
            != Some(version_id)
        {
            return Err(ApiError::validation(format!(
                "defaultVersionId: this workflow has no version with id {version_id}"
            )));
        }
    }
    let mut doc = into_object(current)?;
    // Scalars merge; triggers, nodes and globals are replaced wholesale when present.
    merge(&mut doc, changes);
    crate::resources::flows::drop_empty_category(&mut doc);
    prepare_graph(&mut doc, &flow_id, &state.engine)?;
    stamp_updated(&mut doc, &who);
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state.store.update_flow(&doc).await? {
        return Err(ApiError::not_found("Flow"));
    }
    state
        .changed(Change::Flow {
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
        })
        .await;
    Ok(Json(present(doc, params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Success> {
    who.require(Action::FlowDelete, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    if !state.store.delete_flow(&application_id, &flow_id).await? {
        return Err(ApiError::not_found("Flow"));
    }
    state
        .changed(Change::FlowDeleted {
            flow_id: flow_id.clone(),
        })
        .await;
    Ok(Success)
}

async fn storage_entries(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowGetStorageEntries, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let storage = state.engine.storage().handle(&flow_id).await?;
    Ok(Json(Value::Object(storage.entries().await?)))
}

async fn storage_metadata(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowGetStorageEntriesMetadata, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let storage = state.engine.storage().handle(&flow_id).await?;
    let metadata = storage.metadata().await?;
    Ok(Json(
        json!({ "memoryUsed": metadata.memory_used, "keysCount": metadata.keys_count }),
    ))
}

async fn set_storage_entry(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<Success> {
    who.require(Action::FlowSetStorageEntry, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let entry = body.validated(SchemaName::FlowStorageEntry)?;
    let key = entry.get("key").and_then(Value::as_str).unwrap_or_default();
    check_key(key).map_err(|e| ApiError::validation(format!("key: {e}")))?;
    let storage = state.engine.storage().handle(&flow_id).await?;
    match entry.get("value") {
        // Decision 8: a key without a value deletes the entry.
        None => {
            storage.remove(key).await?;
        }
        Some(value) => {
            encode_value(key, value).map_err(|e| ApiError::validation(format!("value: {e}")))?;
            storage.set(key, value.clone()).await?;
        }
    }
    // Answer only once the write is committed (the durability contract).
    state.engine.storage().flush().await?;
    Ok(Success)
}

async fn clear_storage_entries(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowClearStorageEntries, Some(&application_id))?;
    load(&state, &application_id, &flow_id).await?;
    let storage = state.engine.storage().handle(&flow_id).await?;
    storage.clear().await?;
    state.engine.storage().flush().await?;
    Ok(Json(json!({})))
}

async fn press_virtual_button(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<Success> {
    who.require(Action::FlowPressVirtualButton, Some(&application_id))?;
    let mut press = body.validated(SchemaName::VirtualButtonPress)?;
    if press.get("deploymentId").is_some() {
        return Err(ApiError::validation(
            "deploymentId: flowd runs workflows itself; it has no edge deployments",
        ));
    }
    // The schema made it an object; its payload is moved into the run, not copied.
    let payload = press.as_object_mut().and_then(|p| p.remove("payload"));
    let text = |field: &str| press.get(field).and_then(Value::as_str).map(str::to_owned);
    let press = Press {
        key: text("key").unwrap_or_default(),
        payload,
        flow_version: text("flowVersion"),
        device_id: text("deviceId"),
        relay_id: Some(who.token_id.clone()),
        relay_type: Some(who.actor_type().to_owned()),
        depth: 0,
    };
    // The engine answers from its cache of flows; the store is read only on a miss.
    match state
        .engine
        .press_virtual_button(&application_id, &flow_id, press)
        .await
    {
        Ok(_run_id) => Ok(Success),
        Err(PressError::NotFound) => {
            // Say which of the application or the flow is missing.
            load(&state, &application_id, &flow_id).await?;
            Err(ApiError::not_found("Flow"))
        }
        Err(other) => Err(other.into()),
    }
}

async fn history(
    state: &AppState,
    who: &Principal,
    action: Action,
    (application_id, flow_id): &(String, String),
    params: &Params,
) -> ApiResult<VersionSelection> {
    who.require(action, Some(application_id))?;
    load(state, application_id, flow_id).await?;
    VersionSelection::resolve(state, flow_id, params.get("flowVersion")).await
}

async fn errors(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): FlowPath,
) -> ApiResult<Json<crate::runs::ErrorsBody>> {
    let selection = history(&state, &who, Action::FlowErrors, &path, &params).await?;
    Ok(Json(
        crate::runs::errors(&state, &path.1, selection, &params).await?,
    ))
}

async fn logs(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowLog, Some(&path.0))?;
    load(&state, &path.0, &path.1).await?;
    // The logs action has no flowVersion parameter; every version's runs are listed.
    let selection = VersionSelection { version: None };
    Ok(Json(
        crate::runs::logs(&state, &path.1, selection, &params).await?,
    ))
}

async fn stats(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): FlowPath,
) -> ApiResult<Json<crate::runs::StatsBody>> {
    let selection = history(&state, &who, Action::FlowStats, &path, &params).await?;
    Ok(Json(
        crate::runs::stats(&state, &path.1, selection, &params).await?,
    ))
}
