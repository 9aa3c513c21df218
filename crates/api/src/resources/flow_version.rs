//! `/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}`: get, patch
//! (`notes`, `enabled`) and delete one version, addressed by id or by name.
//!
//! Its run history (`errors`, `logs`, `stats`) is served from [`crate::runs`].

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_updated};
use crate::error::{ApiError, ApiResult};
use crate::hal::Success;
use crate::request::{JsonBody, Params, PathParams};
use crate::resources::flow;
use crate::resources::flow_versions::present;
use crate::runs::VersionSelection;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    const PATH: &str = "/applications/{applicationId}/flows/{flowId}/versions/{flowVersionId}";
    Router::new()
        .route(PATH, get(fetch).patch(patch).delete(remove))
        .route(&format!("{PATH}/errors"), get(errors))
        .route(&format!("{PATH}/logs"), get(logs))
        .route(&format!("{PATH}/stats"), get(stats))
}

type VersionPath = PathParams<(String, String, String)>;

/// Loads a version by id or name, or answers 404.
pub async fn load(
    state: &AppState,
    application_id: &str,
    flow_id: &str,
    version: &str,
) -> ApiResult<(Value, Value)> {
    let flow = flow::load(state, application_id, flow_id).await?;
    if version.is_empty() || version.chars().count() > 255 {
        return Err(ApiError::not_found("Flow version"));
    }
    let found = state
        .store
        .get_version(flow_id, version)
        .await?
        .ok_or_else(|| ApiError::not_found("Flow version"))?;
    Ok((flow, found))
}

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id, version)): VersionPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowVersionGet, Some(&application_id))?;
    params.bool("includeCustomNodes", false)?;
    let (_, doc) = load(&state, &application_id, &flow_id, &version).await?;
    Ok(Json(present(doc, params.links())))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id, version)): VersionPath,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowVersionPatch, Some(&application_id))?;
    params.bool("includeCustomNodes", false)?;
    let (_, current) = load(&state, &application_id, &flow_id, &version).await?;
    let changes = into_object(body.validated(SchemaName::FlowVersionPatch)?)?;
    let mut doc = into_object(current)?;
    merge(&mut doc, changes);
    stamp_updated(&mut doc, &who);
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state.store.update_version(&doc).await? {
        return Err(ApiError::not_found("Flow version"));
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
    PathParams((application_id, flow_id, version)): VersionPath,
) -> ApiResult<Success> {
    who.require(Action::FlowVersionDelete, Some(&application_id))?;
    let (flow, doc) = load(&state, &application_id, &flow_id, &version).await?;
    let id = doc.get("id").and_then(Value::as_str).unwrap_or_default();
    if flow.get("defaultVersionId").and_then(Value::as_str) == Some(id) {
        return Err(ApiError::validation(
            "This version is the workflow's default version and cannot be deleted; set another default first",
        ));
    }
    state.store.delete_version(&flow_id, id).await?;
    state
        .changed(Change::Flow {
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
        })
        .await;
    Ok(Success)
}

/// The version's run history, for one of the three history actions.
async fn history(
    state: &AppState,
    who: &Principal,
    action: Action,
    (application_id, flow_id, version): &(String, String, String),
) -> ApiResult<VersionSelection> {
    who.require(action, Some(application_id))?;
    let (_, doc) = load(state, application_id, flow_id, version).await?;
    Ok(VersionSelection {
        version: Some(crate::runs::named(&doc)),
    })
}

async fn errors(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): VersionPath,
) -> ApiResult<Json<crate::runs::ErrorsBody>> {
    let selection = history(&state, &who, Action::FlowVersionErrors, &path).await?;
    Ok(Json(
        crate::runs::errors(&state, &path.1, selection, &params).await?,
    ))
}

async fn logs(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): VersionPath,
) -> ApiResult<Json<Value>> {
    let selection = history(&state, &who, Action::FlowVersionLog, &path).await?;
    Ok(Json(
        crate::runs::logs(&state, &path.1, selection, &params).await?,
    ))
}

async fn stats(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(path): VersionPath,
) -> ApiResult<Json<crate::runs::StatsBody>> {
    let selection = history(&state, &who, Action::FlowVersionStats, &path).await?;
    Ok(Json(
        crate::runs::stats(&state, &path.1, selection, &params).await?,
    ))
}
