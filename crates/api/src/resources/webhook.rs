//! `/applications/{applicationId}/webhooks/{webhookId}`: get, patch and delete one webhook.
//! A change keeps the webhook's token (its URL never changes); a delete frees it.
//!
//! `DELETE …?includeWorkflows=true` (also delete the workflows that use the webhook) is refused
//! with 400: flowd does not do it yet, and answering 200 while leaving those workflows in place
//! would mislead the caller.

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_updated};
use crate::error::{ApiError, ApiResult};
use crate::hal::success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::resources::webhooks::{check, present};
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
        "/applications/{applicationId}/webhooks/{webhookId}",
        get(fetch).patch(patch).delete(remove),
    )
}

async fn load(state: &AppState, application_id: &str, webhook_id: &str) -> ApiResult<Value> {
    application::load(state, application_id).await?;
    let id = path_id(webhook_id, "Webhook")?;
    state
        .store
        .get_resource(ResourceKind::Webhook, application_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Webhook"))
}

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, webhook_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(Action::WebhookGet, Some(&application_id))?;
    let doc = load(&state, &application_id, &webhook_id).await?;
    Ok(Json(present(doc, params.links())))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, webhook_id)): PathParams<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::WebhookPatch, Some(&application_id))?;
    let stored = load(&state, &application_id, &webhook_id).await?;
    // The schema admits none of the server's fields (`token`, ids, dates), so they stay.
    let changes = into_object(body.validated(SchemaName::WebhookPatch)?)?;
    let mut doc = into_object(stored)?;
    merge(&mut doc, changes);
    stamp_updated(&mut doc, &who);
    check(&doc)?;
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state
        .store
        .update_resource(ResourceKind::Webhook, &doc)
        .await?
    {
        return Err(ApiError::not_found("Webhook"));
    }
    state.engine.webhooks().apply(&doc);
    Ok(Json(present(doc, params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, webhook_id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(Action::WebhookDelete, Some(&application_id))?;
    let doc = load(&state, &application_id, &webhook_id).await?;
    if params.bool("includeWorkflows", false)? {
        return Err(ApiError::validation(
            "includeWorkflows: deleting the workflows that use a webhook along with it is not \
             supported by flowd yet; delete those workflows first",
        ));
    }
    let id = crate::documents::text(&doc, "id");
    if !state
        .store
        .delete_resource(ResourceKind::Webhook, &application_id, &id)
        .await?
    {
        return Err(ApiError::not_found("Webhook"));
    }
    state.engine.webhooks().remove(&id);
    Ok(Json(success()))
}
