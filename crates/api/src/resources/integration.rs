//! `/applications/{applicationId}/integrations/{integrationId}`: get, patch and delete one
//! integration. A change reconnects it when its connection settings changed; a delete (or
//! `enabled: false`) disconnects it.

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_updated};
use crate::error::{ApiError, ApiResult};
use crate::hal::success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::resources::integrations::{check, present};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::ResourceKind;
use serde_json::Value;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/integrations/{integrationId}",
        get(fetch).patch(patch).delete(remove),
    )
}

async fn load(state: &AppState, application_id: &str, integration_id: &str) -> ApiResult<Value> {
    application::load(state, application_id).await?;
    let id = path_id(integration_id, "Integration")?;
    state
        .store
        .get_resource(ResourceKind::Integration, application_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Integration"))
}

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, integration_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(Action::IntegrationGet, Some(&application_id))?;
    let doc = load(&state, &application_id, &integration_id).await?;
    Ok(Json(present(&state, doc, params.links())))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, integration_id)): PathParams<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::IntegrationPatch, Some(&application_id))?;
    let stored = load(&state, &application_id, &integration_id).await?;
    let changes = into_object(body.validated(SchemaName::IntegrationPatch)?)?;
    let mut doc = into_object(stored)?;
    merge(&mut doc, changes);
    stamp_updated(&mut doc, &who);
    check(&doc)?;
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state
        .store
        .update_resource(ResourceKind::Integration, &doc)
        .await?
    {
        return Err(ApiError::not_found("Integration"));
    }
    state.engine.integrations().apply(&doc);
    Ok(Json(present(&state, doc, params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, integration_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(Action::IntegrationDelete, Some(&application_id))?;
    let doc = load(&state, &application_id, &integration_id).await?;
    let id = crate::documents::text(&doc, "id");
    if !state
        .store
        .delete_resource(ResourceKind::Integration, &application_id, &id)
        .await?
    {
        return Err(ApiError::not_found("Integration"));
    }
    state.engine.integrations().remove(&id);
    Ok(Json(success()))
}
