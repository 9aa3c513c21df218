//! `/applications/{applicationId}/flows/{flowId}/versions`: list and create named versions of a
//! workflow, and delete versions in bulk by query.
//!
//! A version is an immutable snapshot of exactly the graph in the request body (omitted parts
//! are empty; develop is not copied). Names are unique per flow; reusing one needs
//! `allowReplacement=true`, which overwrites the old version in place (keeping its id, so a
//! `defaultVersionId` pointing at it stays valid).

use crate::auth::Principal;
use crate::documents::{href, into_object, stamp_created};
use crate::error::{ApiError, ApiResult};
use crate::hal::decorate;
use crate::list::ListSpec;
use crate::request::{JsonBody, Params, PathParams};
use crate::resources::flow;
use crate::state::AppState;
use crate::workflow::prepare_graph;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::Column;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/applications/{applicationId}/flows/{flowId}/versions",
            get(list).post(create),
        )
        .route(
            "/applications/{applicationId}/flows/{flowId}/versions/delete",
            post(delete_many),
        )
}

const LIST: ListSpec = ListSpec {
    sort_fields: &[
        ("version", Column::Version),
        ("id", Column::Id),
        ("creationDate", Column::CreationDate),
        ("lastUpdated", Column::LastUpdated),
    ],
    default_sort: "version",
    filter_fields: &[("version", Column::Version)],
};

/// Names that address something other than a stored version.
const RESERVED_NAMES: &[&str] = &["develop", "default"];

/// Fields a client may set on a version (the `flowVersionPost` schema's properties).
const CLIENT_FIELDS: &[&str] = &[
    "version",
    "notes",
    "enabled",
    "triggers",
    "nodes",
    "globals",
    "minimumAgentVersion",
    "customNodeConfig",
];

/// A flow version document as a response.
pub fn present(doc: Value, links: bool) -> Value {
    let id = crate::documents::text(&doc, "id");
    let app = crate::documents::text(&doc, "applicationId");
    let flow_id = crate::documents::text(&doc, "flowId");
    decorate(
        doc,
        "flowVersion",
        &[
            ("self", href::version(&app, &flow_id, &id)),
            ("flow", href::flow(&app, &flow_id)),
            ("flowVersions", href::versions(&app, &flow_id)),
            ("application", href::application(&app)),
        ],
        links,
    )
}

/// Builds a new version document from client fields.
pub fn new_version(
    mut fields: Map<String, Value>,
    application_id: &str,
    flow_id: &str,
    flow_class: Value,
    who: &Principal,
    engine: &flowd_engine::engine::Engine,
) -> ApiResult<Map<String, Value>> {
    fields.retain(|k, _| CLIENT_FIELDS.contains(&k.as_str()));
    let name = fields
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(ApiError::validation(format!(
            "version: \"{name}\" is reserved and cannot name a version"
        )));
    }
    let id = flowd_model::id::new_id();
    stamp_created(&mut fields, &id, "flowVersionId", who);
    fields.insert("flowId".into(), json!(flow_id));
    fields.insert("applicationId".into(), json!(application_id));
    fields.insert("flowClass".into(), flow_class);
    fields.entry("notes").or_insert(json!(""));
    fields.entry("enabled").or_insert(json!(true));
    prepare_graph(&mut fields, flow_id, engine)?;
    Ok(fields)
}

type FlowPath = PathParams<(String, String)>;

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id)): FlowPath,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowVersionsGet, Some(&application_id))?;
    flow::load(&state, &application_id, &flow_id).await?;
    params.bool("includeCustomNodes", false)?;
    let list = LIST.parse(&params)?;
    let advanced = params.json("query", SchemaName::AdvancedFlowVersionQuery)?;
    let (page, list) = match advanced {
        None => (
            state.store.list_versions(&flow_id, &list.query).await?,
            list,
        ),
        Some(query) => {
            let mut selected = Vec::new();
            for version in state.store.all_versions(&flow_id).await? {
                if flowd_model::query::matches(&query, &version)
                    .map_err(|e| ApiError::validation(format!("query: {}", e.0)))?
                {
                    selected.push(version);
                }
            }
            sort_versions(&mut selected, list.sort_field, list.query.direction);
            (list.page_of(selected), list)
        }
    };
    let items = page
        .items
        .iter()
        .cloned()
        .map(|d| present(d, params.links()))
        .collect();
    let mut body = list.envelope(page, items);
    body["applicationId"] = json!(application_id);
    body["flowId"] = json!(flow_id);
    Ok(Json(decorate(
        body,
        "flowVersions",
        &[
            ("self", href::versions(&application_id, &flow_id)),
            ("flow", href::flow(&application_id, &flow_id)),
        ],
        params.links(),
    )))
}

fn sort_versions(versions: &mut [Value], field: &str, direction: flowd_store::SortDirection) {
    let key = |v: &Value| {
        v.get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase()
    };
    versions.sort_by(|a, b| {
        let order = key(a).cmp(&key(b));
        match direction {
            flowd_store::SortDirection::Asc => order,
            flowd_store::SortDirection::Desc => order.reverse(),
        }
    });
}

async fn create(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Action::FlowVersionsPost, Some(&application_id))?;
    let flow = flow::load(&state, &application_id, &flow_id).await?;
    params.bool("includeCustomNodes", false)?;
    let replace = params.bool("allowReplacement", false)?;
    let fields = into_object(body.validated(SchemaName::FlowVersionPost)?)?;
    let flow_class = flow.get("flowClass").cloned().unwrap_or(json!("cloud"));
    let mut doc = new_version(
        fields,
        &application_id,
        &flow_id,
        flow_class,
        &who,
        &state.engine,
    )?;
    let name = doc
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(existing) = state.store.get_version(&flow_id, &name).await? {
        if !replace {
            return Err(ApiError::validation(format!(
                "version: a version named \"{name}\" already exists; pass allowReplacement=true to replace it"
            )));
        }
        if existing.get("version").and_then(Value::as_str) == Some(name.as_str()) {
            for kept in [
                "id",
                "flowVersionId",
                "creationDate",
                "createdById",
                "createdByType",
            ] {
                if let Some(value) = existing.get(kept) {
                    doc.insert(kept.into(), value.clone());
                }
            }
        }
    }
    let doc = Value::Object(doc);
    state.store.insert_version(&doc, replace).await?;
    state
        .changed(Change::Flow {
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
        })
        .await;
    Ok((StatusCode::CREATED, Json(present(doc, params.links()))))
}

async fn delete_many(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): FlowPath,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowVersionsDelete, Some(&application_id))?;
    let flow = flow::load(&state, &application_id, &flow_id).await?;
    let body = body.validated(SchemaName::FlowVersionsDeletePost)?;
    let query = body.get("query").cloned().unwrap_or(json!({}));
    let default_version = flow.get("defaultVersionId").and_then(Value::as_str);
    // Deletion runs to completion before answering, so no job, email or callback is needed:
    // the response itself is the report.
    let (mut removed, mut failed) = (0u64, 0u64);
    for version in state.store.all_versions(&flow_id).await? {
        let matched = flowd_model::query::matches(&query, &version)
            .map_err(|e| ApiError::validation(format!("query: {}", e.0)))?;
        if !matched {
            continue;
        }
        let id = version
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if Some(id) == default_version {
            failed += 1;
        } else if state.store.delete_version(&flow_id, id).await? {
            removed += 1;
        }
    }
    state
        .changed(Change::Flow {
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
        })
        .await;
    Ok(Json(json!({ "removed": removed, "failed": failed })))
}
