//! `/applications/{applicationId}/webhooks`: list and create webhooks, the public URLs that
//! trigger an application's workflows.
//!
//! The server sets `token`, the secret that will name a webhook's public URL
//! (`/webhooks/{token}`, not served yet): 32 random bytes, base64url without padding (43
//! characters), made once at creation and never changed. A new webhook gets Losant's defaults:
//! `responseCode` 200, `verificationType` `none`, `waitForReply` false, `isWebsocket` false,
//! `enabled` true. What flowd cannot honour yet (other verification types, WebSocket webhooks, a
//! 1xx response code, basic authentication with only one of username and password) is refused
//! with 400 naming the field ([`flowd_engine::triggers::webhook::Webhooks::check`]).

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
use flowd_engine::triggers::webhook::{Webhooks, DEFAULT_RESPONSE_CODE};
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, ResourceKind};
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/webhooks",
        get(list).post(create),
    )
}

const LIST: ListSpec = ListSpec {
    sort_fields: &[
        ("name", Column::Name),
        ("id", Column::Id),
        ("creationDate", Column::CreationDate),
        ("lastUpdated", Column::LastUpdated),
    ],
    default_sort: "name",
    filter_fields: &[("name", Column::Name)],
};

/// Random bytes in a webhook token: 256 bits, as unguessable as a URL needs to be.
const TOKEN_BYTES: usize = 32;

/// A new webhook token: URL-safe base64 without padding, so it can stand in a path as is.
fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A webhook document as a response.
pub fn present(doc: Value, links: bool) -> Value {
    let id = crate::documents::text(&doc, "id");
    let app = crate::documents::text(&doc, "applicationId");
    decorate(
        doc,
        "webhook",
        &[
            ("self", href::webhook(&app, &id)),
            ("application", href::application(&app)),
            ("webhooks", href::webhooks(&app)),
        ],
        links,
    )
}

/// Checks a document about to be saved: what the schema allows but flowd cannot honour.
pub fn check(doc: &Map<String, Value>) -> ApiResult<()> {
    Webhooks::check(&Value::Object(doc.clone())).map_err(ApiError::validation)
}

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(Action::WebhooksGet, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let list = LIST.parse(&params)?;
    let page = state
        .store
        .list_resources(ResourceKind::Webhook, &application_id, &list.query)
        .await?;
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present(d, params.links()))
        .collect();
    let mut body = list.envelope(page, items);
    body["applicationId"] = json!(application_id);
    Ok(Json(decorate(
        body,
        "webhooks",
        &[
            ("self", href::webhooks(&application_id)),
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
    who.require(Action::WebhooksPost, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let mut doc = into_object(body.validated(SchemaName::WebhookPost)?)?;
    let id = flowd_model::id::new_id();
    stamp_created(&mut doc, &id, "webhookId", &who);
    doc.insert("applicationId".into(), json!(application_id));
    doc.insert("token".into(), json!(new_token()));
    doc.entry("responseCode")
        .or_insert(json!(DEFAULT_RESPONSE_CODE));
    doc.entry("verificationType").or_insert(json!("none"));
    doc.entry("waitForReply").or_insert(json!(false));
    doc.entry("isWebsocket").or_insert(json!(false));
    doc.entry("enabled").or_insert(json!(true));
    check(&doc)?;
    let doc = Value::Object(doc);
    state
        .store
        .insert_resource(ResourceKind::Webhook, &doc)
        .await?;
    state.engine.webhooks().apply(&doc);
    Ok((StatusCode::CREATED, Json(present(doc, params.links()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_and_unique() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(a, new_token());
    }
}
