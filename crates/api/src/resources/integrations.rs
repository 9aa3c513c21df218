//! `/applications/{applicationId}/integrations`: list and create integrations (connections to
//! outside brokers). flowd connects MQTT integrations; other types are refused when created.

use crate::auth::Principal;
use crate::documents::{href, into_object, stamp_created};
use crate::error::{ApiError, ApiResult};
use crate::hal::decorate;
use crate::list::ListSpec;
use crate::request::{JsonBody, Params, PathParams};
use crate::resources::application;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use flowd_engine::integrations::Integrations;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, ResourceKind};
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/integrations",
        get(list).post(create),
    )
}

const LIST: ListSpec = ListSpec {
    sort_fields: &[
        ("name", Column::Name),
        ("id", Column::Id),
        ("creationDate", Column::CreationDate),
        ("integrationType", Column::Kind),
        ("lastUpdated", Column::LastUpdated),
    ],
    default_sort: "name",
    filter_fields: &[("name", Column::Name), ("integrationType", Column::Kind)],
};

/// An integration document as a response, with the live connection's `status`.
pub fn present(state: &AppState, mut doc: Value, links: bool) -> Value {
    let id = crate::documents::text(&doc, "id");
    let app = crate::documents::text(&doc, "applicationId");
    doc["status"] = state.engine.integrations().status(&id);
    decorate(
        doc,
        "integration",
        &[
            ("self", href::integration(&app, &id)),
            ("application", href::application(&app)),
            ("integrations", href::integrations(&app)),
        ],
        links,
    )
}

/// Checks a document about to be saved: what the schema cannot say (a type flowd connects, a
/// usable broker configuration).
pub fn check(doc: &Map<String, Value>) -> ApiResult<()> {
    Integrations::check(&Value::Object(doc.clone())).map_err(ApiError::validation)
}

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(Action::IntegrationsGet, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let list = LIST.parse(&params)?;
    let page = state
        .store
        .list_resources(ResourceKind::Integration, &application_id, &list.query)
        .await?;
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present(&state, d, params.links()))
        .collect();
    let mut body = list.envelope(page, items);
    body["applicationId"] = json!(application_id);
    Ok(Json(decorate(
        body,
        "integrations",
        &[
            ("self", href::integrations(&application_id)),
            ("application", href::application(&application_id)),
        ],
        params.links(),
    )))
}

async fn create(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Action::IntegrationsPost, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let mut doc = into_object(body.validated(SchemaName::IntegrationPost)?)?;
    let id = flowd_model::id::new_id();
    stamp_created(&mut doc, &id, "integrationId", &who);
    doc.insert("applicationId".into(), json!(application_id));
    doc.entry("enabled").or_insert(json!(true));
    doc.entry("topics").or_insert(json!([]));
    check(&doc)?;
    let doc = Value::Object(doc);
    state
        .store
        .insert_resource(ResourceKind::Integration, &doc)
        .await?;
    state.engine.integrations().apply(&doc);
    Ok((
        StatusCode::CREATED,
        Json(present(&state, doc, params.links())),
    ))
}
