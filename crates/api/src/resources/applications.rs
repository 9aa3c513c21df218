//! `/applications`: list and create applications (Losant's Applications resource).

use crate::auth::Principal;
use crate::documents::{check_globals, href, into_object, stamp_created};
use crate::error::{ApiError, ApiResult};
use crate::hal::decorate;
use crate::list::{ListParams, ListSpec};
use crate::request::{JsonBody, Params};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::Column;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/applications", get(list).post(create))
}

const LIST: ListSpec = ListSpec {
    sort_fields: &[
        ("name", Column::Name),
        ("id", Column::Id),
        ("creationDate", Column::CreationDate),
        // Every application has the same owner here, so owner order is id order.
        ("ownerId", Column::Id),
        ("lastUpdated", Column::LastUpdated),
    ],
    default_sort: "name",
    filter_fields: &[("name", Column::Name)],
};

/// An application document as a response.
pub fn present(doc: Value, links: bool) -> Value {
    let id = crate::documents::text(&doc, "id");
    decorate(
        doc,
        "application",
        &[
            ("self", href::application(&id)),
            ("applications", href::applications()),
            ("flows", href::flows(&id)),
        ],
        links,
    )
}

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
) -> ApiResult<Json<Value>> {
    who.require(Action::ApplicationsGet, None)?;
    let list: ListParams = LIST.parse(&params)?;
    let page = state.store.list_applications(&list.query).await?;
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present(d, params.links()))
        .collect();
    let body = decorate(
        list.envelope(page, items),
        "applications",
        &[("self", href::applications())],
        params.links(),
    );
    Ok(Json(body))
}

async fn create(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Action::ApplicationsPost, None)?;
    let mut doc = into_object(body.validated(SchemaName::ApplicationPost)?)?;
    // These ask Losant to do things flowd has no notion of (organizations, templates); saying
    // so beats silently creating something else.
    for unsupported in ["orgId", "applicationTemplateId", "appliedTemplateIds"] {
        if doc.contains_key(unsupported) {
            return Err(ApiError::validation(format!(
                "{unsupported}: flowd has no organizations or application templates"
            )));
        }
    }
    check_globals(&doc)?;
    let id = flowd_model::id::new_id();
    stamp_created(&mut doc, &id, "applicationId", &who);
    for key in [
        "createdById",
        "createdByType",
        "lastUpdatedById",
        "lastUpdatedByType",
    ] {
        doc.remove(key);
    }
    doc.entry("description").or_insert(json!(""));
    doc.entry("globals").or_insert(json!([]));
    doc.insert("ownerId".into(), json!(who.token_id));
    doc.insert("ownerType".into(), json!("user"));
    let doc = Value::Object(doc);
    state.store.insert_application(&doc).await?;
    Ok((StatusCode::CREATED, Json(present(doc, params.links()))))
}
