//! `/applications/{applicationId}/flows`: list and create workflows, and import exported ones.

use crate::auth::Principal;
use crate::documents::{href, into_object, stamp_created};
use crate::error::{ApiError, ApiResult};
use crate::hal::decorate;
use crate::list::ListSpec;
use crate::request::{JsonBody, Params, PathParams};
use crate::resources::application;
use crate::state::AppState;
use crate::workflow::prepare_graph;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use flowd_engine::cluster::Change;
use flowd_model::schema::SchemaName;
use flowd_model::scope::Action;
use flowd_store::{Column, ListQuery};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/applications/{applicationId}/flows",
            get(list).post(create),
        )
        .route("/applications/{applicationId}/flows/import", post(import))
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

const FLOW_CLASSES: &[&str] = &["cloud", "edge", "embedded", "customNode", "experience"];

/// Fields a client may set on a flow (the `flowPost` schema's properties); the rest are the
/// server's.
const CLIENT_FIELDS: &[&str] = &[
    "name",
    "description",
    "shortDescription",
    "iconData",
    "docsUrl",
    "category",
    "enabled",
    "triggers",
    "nodes",
    "globals",
    "flowClass",
    "minimumAgentVersion",
    "customNodeConfig",
    "customNodeSupports",
];

/// A flow document as a response.
pub fn present(doc: Value, links: bool) -> Value {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let app = crate::documents::text(&doc, "applicationId");
    decorate(
        doc,
        "flow",
        &[
            ("self", href::flow(&app, &id)),
            ("application", href::application(&app)),
            ("flows", href::flows(&app)),
        ],
        links,
    )
}

/// Builds a new flow document from client fields (decision 3: enabled unless said otherwise,
/// class `cloud` by default).
fn new_flow(
    mut fields: Map<String, Value>,
    application_id: &str,
    who: &Principal,
    engine: &flowd_engine::engine::Engine,
) -> ApiResult<Map<String, Value>> {
    // `null` (allowed for `iconData`) means "not set", as in a PATCH: the field is left out,
    // since the `flow` schema has no null there.
    fields.retain(|k, v| CLIENT_FIELDS.contains(&k.as_str()) && !v.is_null());
    let id = flowd_model::id::new_id();
    stamp_created(&mut fields, &id, "flowId", who);
    fields.insert("applicationId".into(), json!(application_id));
    fields.entry("description").or_insert(json!(""));
    fields.entry("enabled").or_insert(json!(true));
    fields.entry("flowClass").or_insert(json!("cloud"));
    drop_empty_category(&mut fields);
    prepare_graph(&mut fields, &id, engine)?;
    Ok(fields)
}

/// `category: ""` is how a client says "no category" (`flowPost`/`flowPatch` allow it); the
/// `flow` schema has no empty category, so the field is left out of the stored flow instead.
pub(crate) fn drop_empty_category(doc: &mut Map<String, Value>) {
    if doc.get("category").and_then(Value::as_str) == Some("") {
        doc.remove("category");
    }
}

async fn create(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Action::FlowsPost, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    params.bool("includeCustomNodes", false)?;
    let fields = into_object(body.validated(SchemaName::FlowPost)?)?;
    let doc = Value::Object(new_flow(fields, &application_id, &who, &state.engine)?);
    state.store.insert_flow(&doc).await?;
    let flow_id = crate::documents::text(&doc, "id");
    state
        .changed(Change::Flow {
            application_id: application_id.clone(),
            flow_id: flow_id.clone(),
        })
        .await;
    Ok((StatusCode::CREATED, Json(present(doc, params.links()))))
}

/// Whether a flow's default version (develop when none is set) has a trigger matching one of
/// the `triggerFilter` entries (`{type, key?}`).
async fn matches_trigger_filter(
    state: &AppState,
    flow: &Value,
    filters: &[Value],
) -> ApiResult<bool> {
    let flow_id = flow.get("id").and_then(Value::as_str).unwrap_or_default();
    let version;
    let source = match flow.get("defaultVersionId").and_then(Value::as_str) {
        Some(version_id) => {
            version = state.store.get_version(flow_id, version_id).await?;
            version.as_ref().unwrap_or(flow)
        }
        None => flow,
    };
    let triggers = source.get("triggers").and_then(Value::as_array);
    Ok(filters.iter().any(|filter| {
        triggers.into_iter().flatten().any(|trigger| {
            ["type", "key"]
                .iter()
                .all(|field| match filter.get(*field) {
                    None => true,
                    Some(wanted) => trigger.get(*field) == Some(wanted),
                })
        })
    }))
}

/// `triggerFilter` arrives either as JSON text or in bracket form
/// (`triggerFilter[0][type]=webhook`), as the official clients send it.
fn trigger_filter(params: &Params) -> ApiResult<Option<Vec<Value>>> {
    if let Some(text) = params.get("triggerFilter") {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::validation(format!("triggerFilter is not valid JSON: {e}")))?;
        flowd_model::schema::validate(SchemaName::FlowTriggerFilter, &value)
            .map_err(|e| ApiError::validation(format!("triggerFilter: {}", e.0)))?;
        return Ok(value.as_array().cloned());
    }
    let mut entries: std::collections::BTreeMap<usize, Map<String, Value>> = Default::default();
    for (name, value) in &params.0 {
        let Some(rest) = name.strip_prefix("triggerFilter[") else {
            continue;
        };
        let parsed = rest.split_once("][").and_then(|(index, field)| {
            Some((index.parse::<usize>().ok()?, field.strip_suffix(']')?))
        });
        let Some((index, field)) = parsed.filter(|(_, f)| *f == "type" || *f == "key") else {
            return Err(ApiError::validation(format!(
                "{name} is not a trigger filter field"
            )));
        };
        entries
            .entry(index)
            .or_default()
            .insert(field.to_owned(), json!(value));
    }
    Ok((!entries.is_empty()).then(|| entries.into_values().map(Value::Object).collect()))
}

async fn list(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
) -> ApiResult<Json<Value>> {
    who.require(Action::FlowsGet, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    params.bool("includeCustomNodes", false)?;
    params.bool("allVersions", false)?;
    let mut list = LIST.parse(&params)?;
    let flow_class = params.one_of("flowClass", FLOW_CLASSES, "cloud")?;
    let advanced = params.json("query", SchemaName::AdvancedFlowQuery)?;
    let triggers = trigger_filter(&params)?;
    let page = match (&advanced, &triggers) {
        (None, None) => {
            list.query.flow_class = Some(flow_class.to_owned());
            state.store.list_flows(&application_id, &list.query).await?
        }
        _ => {
            // Advanced queries and trigger filters look inside documents: select in memory from
            // the application's flows, then page. The advanced query replaces the other filters.
            let everything = ListQuery {
                sort: list.query.sort,
                direction: list.query.direction,
                filter: if advanced.is_some() {
                    None
                } else {
                    list.query.filter.clone()
                },
                flow_class: if advanced.is_some() {
                    None
                } else {
                    Some(flow_class.to_owned())
                },
                ..ListQuery::all()
            };
            let all = state
                .store
                .list_flows(&application_id, &everything)
                .await?
                .items;
            let mut selected = Vec::new();
            for flow in all {
                let keep = match (&advanced, &triggers) {
                    (Some(query), _) => flowd_model::query::matches(query, &flow)
                        .map_err(|e| ApiError::validation(format!("query: {}", e.0)))?,
                    (None, Some(filters)) => matches_trigger_filter(&state, &flow, filters).await?,
                    (None, None) => true,
                };
                if keep {
                    selected.push(flow);
                }
            }
            if advanced.is_some() {
                list.filter = None;
                list.filter_field = None;
            }
            list.page_of(selected)
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
    if advanced.is_none() {
        body["flowClass"] = json!(flow_class);
    }
    Ok(Json(decorate(
        body,
        "flows",
        &[
            ("self", href::flows(&application_id)),
            ("application", href::application(&application_id)),
        ],
        params.links(),
    )))
}

/// Points references to imported flows (Workflow Trigger nodes) at their new ids.
fn remap_flow_references(nodes: &mut Value, flow_ids: &HashMap<String, String>) {
    for node in nodes.as_array_mut().into_iter().flatten() {
        if let Some(target) = node.pointer_mut("/config/triggerWorkflowId") {
            if let Some(new_id) = target.as_str().and_then(|old| flow_ids.get(old)) {
                *target = json!(new_id);
            }
        }
    }
}

async fn import(
    State(state): State<AppState>,
    who: Principal,
    params: Params,
    PathParams(application_id): PathParams<String>,
    body: JsonBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    who.require(Action::FlowsImport, Some(&application_id))?;
    application::load(&state, &application_id).await?;
    let body = body.validated(SchemaName::FlowsImportPost)?;
    let empty = Vec::new();
    let flows_in = body
        .get("flows")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let versions_in = body
        .get("flowVersions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);

    // New ids first, so references between the imported documents can be rewritten.
    let mut flow_ids: HashMap<String, String> = HashMap::new();
    let mut version_ids: HashMap<String, String> = HashMap::new();
    for flow in flows_in {
        if let Some(old) = flow.get("id").and_then(Value::as_str) {
            flow_ids.insert(old.to_owned(), String::new());
        }
    }

    let mut flows = Vec::with_capacity(flows_in.len());
    for (index, flow) in flows_in.iter().enumerate() {
        let fields = into_object(flow.clone())?;
        let mut doc = new_flow(fields, &application_id, &who, &state.engine)
            .map_err(|e| ApiError::validation(format!("flows[{index}]: {e}")))?;
        // Decision 3: imported flows start disabled.
        doc.insert("enabled".into(), json!(false));
        let new_id = doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(old) = flow.get("id").and_then(Value::as_str) {
            flow_ids.insert(old.to_owned(), new_id);
        }
        flows.push((
            flow.get("defaultVersionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            doc,
        ));
    }

    let mut versions = Vec::with_capacity(versions_in.len());
    for (index, version) in versions_in.iter().enumerate() {
        let old_flow = version.get("flowId").and_then(Value::as_str).unwrap_or("");
        let Some(new_flow_id) = flow_ids.get(old_flow).filter(|id| !id.is_empty()).cloned() else {
            return Err(ApiError::validation(format!(
                "flowVersions[{index}].flowId: \"{old_flow}\" is not the id of a flow in this import"
            )));
        };
        let flow_class = flows
            .iter()
            .find(|(_, f)| f.get("id").and_then(Value::as_str) == Some(new_flow_id.as_str()))
            .and_then(|(_, f)| f.get("flowClass").cloned())
            .unwrap_or(json!("cloud"));
        let fields = into_object(version.clone())?;
        let old_id = fields.get("id").and_then(Value::as_str).map(str::to_owned);
        let mut doc = crate::resources::flow_versions::new_version(
            fields,
            &application_id,
            &new_flow_id,
            flow_class,
            &who,
            &state.engine,
        )
        .map_err(|e| ApiError::validation(format!("flowVersions[{index}]: {e}")))?;
        if let Some(old) = old_id {
            version_ids.insert(
                old,
                doc.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        if let Some(nodes) = doc.get_mut("nodes") {
            remap_flow_references(nodes, &flow_ids);
        }
        versions.push(Value::Object(doc));
    }

    let mut flow_docs = Vec::with_capacity(flows.len());
    for (old_default, mut doc) in flows {
        if let Some(nodes) = doc.get_mut("nodes") {
            remap_flow_references(nodes, &flow_ids);
        }
        if let Some(new_default) = old_default.and_then(|old| version_ids.get(&old).cloned()) {
            doc.insert("defaultVersionId".into(), json!(new_default));
        }
        flow_docs.push(Value::Object(doc));
    }
    state.store.import_flows(&flow_docs, &versions).await?;
    // Imported flows start disabled; arming them anyway keeps one rule for every new flow.
    for flow in &flow_docs {
        let flow_id = crate::documents::text(flow, "id");
        state
            .changed(Change::Flow {
                application_id: application_id.clone(),
                flow_id: flow_id.clone(),
            })
            .await;
    }

    let links = params.links();
    let result = json!({
        "flows": flow_docs.iter().cloned().map(|d| present(d, links)).collect::<Vec<_>>(),
        "flowVersions": versions.iter().cloned().map(|d| crate::resources::flow_versions::present(d, links)).collect::<Vec<_>>(),
        "importedFlowIdMap": flow_ids
            .iter()
            .filter(|(_, new_id)| !new_id.is_empty())
            .map(|(old, new_id)| (old.clone(), json!(new_id)))
            .collect::<Map<String, Value>>(),
        "importedVersionIdMap": version_ids,
    });
    Ok((StatusCode::CREATED, Json(result)))
}
