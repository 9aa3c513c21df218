//! `/applications/{applicationId}`: get, patch and delete one application.

use crate::auth::Principal;
use crate::documents::{check_globals, into_object, merge};
use crate::error::{ApiError, ApiResult};
use crate::hal::Success;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::applications::present;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}",
        get(fetch).patch(patch).delete(remove),
    )
}

/// Loads an application or answers 404; used by every resource under an application.
pub async fn load(state: &AppState, application_id: &str) -> ApiResult<Value> {
    let id = path_id(application_id, "Application")?;
    state
        .store
        .get_application(id)
        .await?
        .ok_or_else(|| ApiError::not_found("Application"))
}

async fn fetch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationGet, Some(&application_id))?;
    Ok(Json(present(
        load(&state, &application_id).await?,
        params.links(),
    )))
}

async fn patch(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationPatch, Some(&application_id))?;
    let current = load(&state, &application_id).await?;
    let changes = into_object(body.validated(SchemaName::ApplicationPatch)?)?;
    let mut doc = into_object(current)?;
    merge(&mut doc, changes);
    check_globals(&doc)?;
    doc.insert("lastUpdated".into(), json!(flowd_model::time::now_iso()));
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state.store.update_application(&doc).await? {
        return Err(ApiError::not_found("Application"));
    }
    state
        .changed(Change::Application {
            application_id: application_id.clone(),
        })
        .await;
    Ok(Json(present(doc, params.links())))
}

async fn remove(
    State(state): State<AppState>,
    who: Principal,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Success> {
    who.require(Action::ApplicationDelete, Some(&application_id))?;
    let id = path_id(&application_id, "Application")?;
    // The store deletes the flows with the application; the engine must forget them too.
    let flows = state
        .store
        .list_flows(id, &flowd_store::ListQuery::all())
        .await?
        .items;
    if !state.store.delete_application(id).await? {
        return Err(ApiError::not_found("Application"));
    }
    // Its tokens went with it.
    state.changed(Change::Tokens).await;
    let flow_ids = flows
        .iter()
        .filter_map(|flow| flow.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    state
        .changed(Change::ApplicationDeleted {
            application_id: id.to_owned(),
            flow_ids,
        })
        .await;
    Ok(Success)
}
