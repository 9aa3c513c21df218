//! Application resources that are plain documents the engine keeps live — integrations and
//! webhooks. Their five actions (list, create, get, patch, delete) work the same way; an
//! [`AppResource`] says what differs (names, scopes, schemas, defaults, what flowd cannot honour,
//! how the engine hears of changes) and the handlers here do the rest.
//!
//! Every change is checked before it is stored ([`AppResource::check`], a 400 naming the field)
//! and reported to the engine once stored ([`AppResource::applied`], [`AppResource::removed`]).

use crate::auth::Principal;
use crate::documents::{into_object, merge, stamp_created, stamp_updated, text};
use crate::error::{ApiError, ApiResult};
use crate::hal::{decorate, Success};
use crate::list::ListSpec;
use crate::request::{path_id, JsonBody, Params, PathParams};
use crate::resources::application;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_engine::engine::Engine;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::ResourceKind;
use serde_json::{json, Map, Value};

/// The scopes of a resource's five actions.
pub struct Actions {
    pub list: Action,
    pub post: Action,
    pub get: Action,
    pub patch: Action,
    pub delete: Action,
}

/// What sets one application resource apart.
pub trait AppResource: Send + Sync + 'static {
    const KIND: ResourceKind;
    /// The path segment and the list's `_type`: `integrations`.
    const COLLECTION: &'static str;
    /// One document's `_type`: `integration`.
    const TYPE: &'static str;
    /// The field repeating the id: `integrationId`.
    const ID_FIELD: &'static str;
    /// For messages: `Integration`.
    const LABEL: &'static str;
    const ACTIONS: Actions;
    const POST_SCHEMA: SchemaName;
    const PATCH_SCHEMA: SchemaName;
    const LIST: ListSpec;

    /// Server-set fields and defaults of a new document (ids, dates and the application are
    /// already there).
    fn fill_new(doc: &mut Map<String, Value>);
    /// What the schema allows but flowd cannot honour; the message names the field.
    fn check(doc: &Value) -> Result<(), String>;
    /// The document was stored: the change that makes the engines start or update what keeps
    /// it live.
    fn applied(doc: &Value) -> Change;
    /// The resource was deleted.
    fn removed(id: &str) -> Change;
    /// Live fields a response carries besides the stored document (an integration's status).
    fn live_fields(_engine: &Engine, _doc: &mut Value) {}
    /// Refuses delete options flowd does not support: `includeWorkflows=true` (also delete the
    /// workflows that use the resource) is not done yet, and answering 200 while those
    /// workflows stay would mislead.
    fn check_delete(params: &Params) -> ApiResult<()> {
        if params.bool("includeWorkflows", false)? {
            return Err(ApiError::validation(format!(
                "includeWorkflows: deleting the workflows that use this {} along with it is not \
                 supported by flowd yet; delete those workflows first",
                Self::TYPE
            )));
        }
        Ok(())
    }
}

fn collection_href<R: AppResource>(app: &str) -> String {
    format!("/applications/{app}/{}", R::COLLECTION)
}

/// The collection's routes: `GET`/`POST /applications/{applicationId}/<collection>`.
pub fn collection_routes<R: AppResource>() -> Router<AppState> {
    Router::new().route(
        &format!("/applications/{{applicationId}}/{}", R::COLLECTION),
        get(list::<R>).post(create::<R>),
    )
}

/// One item's routes: `GET`/`PATCH`/`DELETE …/<collection>/{id}`.
pub fn item_routes<R: AppResource>() -> Router<AppState> {
    Router::new().route(
        &format!("/applications/{{applicationId}}/{}/{{id}}", R::COLLECTION),
        get(fetch::<R>).patch(patch::<R>).delete(remove::<R>),
    )
}

/// A document as a response.
pub fn present<R: AppResource>(engine: &Engine, mut doc: Value, links: bool) -> Value {
    let id = text(&doc, "id");
    let app = text(&doc, "applicationId");
    R::live_fields(engine, &mut doc);
    let collection = collection_href::<R>(&app);
    decorate(
        doc,
        R::TYPE,
        &[
            ("self", format!("{collection}/{id}")),
            ("application", crate::documents::href::application(&app)),
            (R::COLLECTION, collection.clone()),
        ],
        links,
    )
}

fn check<R: AppResource>(doc: &Map<String, Value>) -> ApiResult<()> {
    R::check(&Value::Object(doc.clone())).map_err(ApiError::validation)
}

async fn list<R: AppResource>(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(R::ACTIONS.list, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let list = R::LIST.parse(&params)?;
    let page = state
        .store
        .list_resources(R::KIND, &application_id, &list.query)
        .await?;
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present::<R>(&state.engine, d, params.links()))
        .collect();
    let mut body = list.envelope(page, items);
    body["applicationId"] = json!(application_id);
    Ok(Json(decorate(
        body,
        R::COLLECTION,
        &[
            ("self", collection_href::<R>(&application_id)),
            (
                "application",
                crate::documents::href::application(&application_id),
            ),
        ],
        params.links(),
    )))
}

async fn create<R: AppResource>(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(R::ACTIONS.post, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let mut doc = into_object(body.validated(R::POST_SCHEMA)?)?;
    let id = flowd_model::id::new_id();
    stamp_created(&mut doc, &id, R::ID_FIELD, &who);
    doc.insert("applicationId".into(), json!(application_id));
    R::fill_new(&mut doc);
    check::<R>(&doc)?;
    let doc = Value::Object(doc);
    state.store.insert_resource(R::KIND, &doc).await?;
    state.changed(R::applied(&doc)).await;
    Ok((
        StatusCode::CREATED,
        Json(present::<R>(&state.engine, doc, params.links())),
    ))
}

async fn load<R: AppResource>(
    state: &AppState,
    application_id: &str,
    id: &str,
) -> ApiResult<Value> {
    application::load(state, application_id).await?;
    let id = path_id(id, R::LABEL)?;
    state
        .store
        .get_resource(R::KIND, application_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(R::LABEL))
}

async fn fetch<R: AppResource>(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, id)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    who.require(R::ACTIONS.get, Some(&application_id))?;
    let doc = load::<R>(&state, &application_id, &id).await?;
    Ok(Json(present::<R>(&state.engine, doc, params.links())))
}

async fn patch<R: AppResource>(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, id)): PathParams<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(R::ACTIONS.patch, Some(&application_id))?;
    let stored = load::<R>(&state, &application_id, &id).await?;
    // The PATCH schemas admit none of the server's fields (ids, dates, a webhook's token).
    let changes = into_object(body.validated(R::PATCH_SCHEMA)?)?;
    let mut doc = into_object(stored)?;
    merge(&mut doc, changes);
    stamp_updated(&mut doc, &who);
    check::<R>(&doc)?;
    let doc = Value::Object(doc);
    // Deleted by a concurrent request since it was loaded: say so rather than answer 200.
    if !state.store.update_resource(R::KIND, &doc).await? {
        return Err(ApiError::not_found(R::LABEL));
    }
    state.changed(R::applied(&doc)).await;
    Ok(Json(present::<R>(&state.engine, doc, params.links())))
}

async fn remove<R: AppResource>(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, id)): PathParams<(String, String)>,
) -> ApiResult<Success> {
    who.require(R::ACTIONS.delete, Some(&application_id))?;
    let doc = load::<R>(&state, &application_id, &id).await?;
    R::check_delete(&params)?;
    let id = text(&doc, "id");
    if !state
        .store
        .delete_resource(R::KIND, &application_id, &id)
        .await?
    {
        return Err(ApiError::not_found(R::LABEL));
    }
    state.changed(R::removed(&id)).await;
    Ok(Success)
}
