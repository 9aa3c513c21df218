//! `/applications/{applicationId}/tokens`: list and create application API tokens.
//! The token string is shown once, in the creation response; only its hash is kept.

use crate::auth::{generate_token, hash_token, Principal};
use crate::documents::{href, into_object};
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
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, TokenRecord};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/tokens",
        get(list).post(create),
    )
}

const LIST: ListSpec = ListSpec {
    sort_fields: &[
        ("name", Column::Name),
        ("status", Column::Status),
        ("id", Column::Id),
        ("creationDate", Column::CreationDate),
        ("lastUpdated", Column::LastUpdated),
        ("expirationDate", Column::ExpirationDate),
    ],
    default_sort: "name",
    filter_fields: &[("name", Column::Name), ("status", Column::Status)],
};

/// A token document as a response.
pub fn present(doc: Value, links: bool) -> Value {
    let id = crate::documents::text(&doc, "id");
    let app = crate::documents::text(&doc, "ownerId");
    decorate(
        doc,
        "apiToken",
        &[
            ("self", href::token(&app, &id)),
            ("application", href::application(&app)),
            ("apiTokens", href::tokens(&app)),
        ],
        links,
    )
}

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationApiTokensGet, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let list = LIST.parse(&params)?;
    let page = state
        .store
        .list_tokens(&application_id, &list.query)
        .await?;
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present(d, params.links()))
        .collect();
    let mut body = list.envelope(page, items);
    body["ownerId"] = json!(application_id);
    body["ownerType"] = json!("application");
    Ok(Json(decorate(
        body,
        "apiTokens",
        &[
            ("self", href::tokens(&application_id)),
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
    who.require(Action::ApplicationApiTokensPost, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    // The schema's scope enum is the vocabulary: an unknown scope fails validation here.
    let mut doc = into_object(body.validated(SchemaName::ApplicationApiTokenPost)?)?;
    if let Some(expiry) = doc.get("expirationDate").and_then(Value::as_str) {
        match flowd_model::time::parse_iso(expiry) {
            Some(t) if t > chrono::Utc::now() => {
                doc.insert(
                    "expirationDate".into(),
                    json!(flowd_model::time::format_iso(t)),
                );
            }
            _ => {
                return Err(ApiError::validation(
                    "expirationDate: must be a date-time in the future",
                ))
            }
        }
    }
    let id = flowd_model::id::new_id();
    let now = flowd_model::time::now_iso();
    doc.insert("id".into(), json!(id));
    doc.insert("apiTokenId".into(), json!(id));
    doc.insert("ownerId".into(), json!(application_id));
    doc.insert("ownerType".into(), json!("application"));
    doc.insert("creatorId".into(), json!(who.token_id));
    doc.insert("creatorType".into(), json!("apiToken"));
    doc.insert("creationDate".into(), json!(now));
    doc.insert("lastUpdated".into(), json!(now));
    doc.entry("description").or_insert(json!(""));
    doc.entry("scope").or_insert(json!(["all.Application"]));
    doc.entry("status").or_insert(json!("active"));
    // `applicationId` ties the row to its application (and its cascade) in the store.
    doc.insert("applicationId".into(), json!(application_id));
    let token = generate_token();
    let record = TokenRecord {
        id: id.clone(),
        application_id: Some(application_id.clone()),
        token_hash: hash_token(&token),
        doc: Value::Object(doc.clone()),
    };
    state.store.insert_token(&record).await?;
    let mut shown = present(public(record.doc), params.links());
    shown["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// The document without flowd's internal fields.
pub fn public(mut doc: Value) -> Value {
    if let Some(map) = doc.as_object_mut() {
        map.remove("applicationId");
    }
    doc
}
