//! `/applications/{applicationId}/tokens/{apiTokenId}`: get, patch (name, description, status)
//! and delete one application API token.

use crate::auth::Principal;
use crate::documents::{into_object, merge};
use crate::error::{ApiError, ApiResult};
use crate::hal::Success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::resources::application_api_tokens::{present, public};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::TokenRecord;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/tokens/{apiTokenId}",
        get(fetch).patch(patch).delete(remove),
    )
}

async fn load(state: &AppState, application_id: &str, token_id: &str) -> ApiResult<TokenRecord> {
    application::load(state, application_id).await?;
    let id = path_id(token_id, "API token")?;
    state
        .store
        .get_token(application_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("API token"))
}

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, token_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationApiTokenGet, Some(&application_id))?;
    let record = load(&state, &application_id, &token_id).await?;
    Ok(Json(present(public(record.doc), params.links())))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, token_id)): PathParams<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationApiTokenPatch, Some(&application_id))?;
    let mut record = load(&state, &application_id, &token_id).await?;
    let changes = into_object(body.validated(SchemaName::ApiTokenPatch)?)?;
    for user_only in ["defaultRole", "orgRoles"] {
        if changes.contains_key(user_only) {
            return Err(ApiError::validation(format!(
                "{user_only}: only user tokens have roles; this is an application token"
            )));
        }
    }
    let mut doc = into_object(record.doc)?;
    merge(&mut doc, changes);
    doc.insert("lastUpdated".into(), json!(flowd_model::time::now_iso()));
    record.doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state.store.update_token(&record).await? {
        return Err(ApiError::not_found("API token"));
    }
    state.changed(Change::Tokens).await;
    Ok(Json(present(public(record.doc), params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, token_id)): PathParams<(String, String)>,
) -> ApiResult<Success> {
    who.require(Action::ApplicationApiTokenDelete, Some(&application_id))?;
    let record = load(&state, &application_id, &token_id).await?;
    state
        .store
        .delete_token(&application_id, &record.id)
        .await?;
    state.changed(Change::Tokens).await;
    Ok(Success)
}
