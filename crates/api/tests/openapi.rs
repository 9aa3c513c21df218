//! `GET /openapi.json` against the router it describes: every (method, path) of the document is
//! served, nothing else is, the document agrees with Losant's route table
//! (`apiInfo.flowRoutes.json`), and its schemas are the official ones in OpenAPI 3.1's dialect.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use flowd_api::openapi::{component_name, document, operations, path_parameters, Method};
use flowd_api::{AppParts, AppState};
use flowd_model::schema::{raw, SchemaName};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use tower::ServiceExt;

/// The answers of the router's fallbacks (`lib.rs`): no route, and no such method on a route.
const FALLBACK_MESSAGES: [&str; 2] = ["No such route", "This route does not take that method"];

const OWNER_TOKEN: &str = "openapi-test-owner-token-0123456789abcdef";

/// Losant's route table, copied into the repository with the schemas.
const API_INFO: &str = include_str!("../../model/schemas/apiInfo.flowRoutes.json");

/// Actions of the route table flowd does not serve (yet): they must be absent from the document.
const NOT_SERVED: &[&str] = &["flows.getByVersion", "flows.palette"];

struct Fixture {
    app: Router,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = flowd_store::sqlite::SqliteStore::open(dir.path())
        .await
        .expect("store opens");
    let store: Arc<dyn flowd_store::Store> = Arc::new(store);
    flowd_api::bootstrap::ensure_owner_token(store.as_ref(), Some(OWNER_TOKEN))
        .await
        .expect("owner token");
    let engine = flowd_engine::engine::Engine::start(
        store.clone(),
        flowd_engine::engine::EngineConfig::default(),
    );
    let (_sender, shutting_down) = tokio::sync::watch::channel(false);
    let state = AppState::from(AppParts {
        changes: None,
        store,
        engine,
        limits: Default::default(),
        tokens: Default::default(),
        shutting_down,
    });
    Fixture {
        app: flowd_api::app(state),
        _dir: dir,
    }
}

/// What the router answers, and whether that was one of its fallbacks (no route, no method).
/// A HEAD answer has no body to tell a fallback by; axum routes HEAD exactly as GET (and strips
/// the body), so HEAD is probed as GET.
async fn probe(app: &Router, method: &str, uri: &str) -> (StatusCode, bool) {
    let method = if method == "HEAD" { "GET" } else { method };
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request builds");
    let response = app.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned));
    let fallback = status == StatusCode::NOT_FOUND
        && message.is_some_and(|m| FALLBACK_MESSAGES.contains(&m.as_str()));
    (status, fallback)
}

/// A path template with example values in place of its parameters.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{applicationId}" | "{flowId}" | "{apiTokenId}" | "{integrationId}" | "{webhookId}" => {
                "0123456789abcdef01234567"
            }
            "{flowVersionId}" => "v1",
            "{token}" => "some-webhook-token",
            "{path}" => "some/deeper/path",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether `uri` (a path) fits `template`; a final `{path}` takes the rest of the path, as the
/// webhook route's `{*path}` does.
fn fits(template: &str, uri: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let u: Vec<&str> = uri.split('/').collect();
    for (i, part) in t.iter().enumerate() {
        if *part == "{path}" && i == t.len() - 1 {
            return u.len() > i && u[i..].iter().all(|s| !s.is_empty());
        }
        let Some(segment) = u.get(i) else {
            return false;
        };
        let is_param = part.starts_with('{') && part.ends_with('}');
        let matches = if is_param {
            !segment.is_empty()
        } else {
            part == segment
        };
        if !matches {
            return false;
        }
    }
    t.len() == u.len()
}

/// Whether the document describes `method` on `uri`. As OpenAPI matches, the path that fits
/// with the most literal segments is the one (`/flows/import` before `/flows/{flowId}`); HEAD is
/// served wherever GET is (axum's `get` answers both, as HTTP says), so a GET describes it.
fn described(method: Method, uri: &str) -> bool {
    let literal = |path: &str| path.split('/').filter(|s| !s.starts_with('{')).count();
    let Some(best) = operations()
        .iter()
        .map(|op| op.path)
        .filter(|path| fits(path, uri))
        .max_by_key(|path| literal(path))
    else {
        return false;
    };
    operations().iter().any(|op| {
        op.path == best
            && (op.method == method || (method == Method::Head && op.method == Method::Get))
    })
}

fn spec_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            routes.insert((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn the_document_is_the_table_and_is_served_without_a_token() {
    let table: BTreeSet<(String, String)> = operations()
        .iter()
        .map(|op| (op.method.as_str().to_owned(), op.path.to_owned()))
        .collect();
    assert_eq!(
        table.len(),
        operations().len(),
        "an operation is listed twice"
    );
    assert_eq!(spec_routes(), table);

    let f = fixture().await;
    let response = f
        .app
        .clone()
        .oneshot(
            Request::get("/openapi.json")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    let served: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(&served, document());
    assert_eq!(served["openapi"], "3.1.0");
}

#[tokio::test]
async fn every_described_operation_is_served() {
    let f = fixture().await;
    for op in operations() {
        let uri = concrete(op.path);
        let (status, fallback) = probe(&f.app, op.method.as_str(), &uri).await;
        assert!(
            !fallback,
            "{} {uri}: not served ({status})",
            op.method.as_str()
        );
    }
}

#[tokio::test]
async fn nothing_undescribed_is_served() {
    let f = fixture().await;
    // Every method on every described path: served exactly when described.
    let paths: BTreeSet<&str> = operations().iter().map(|op| op.path).collect();
    for path in &paths {
        let uri = concrete(path);
        for method in Method::ALL {
            let (status, fallback) = probe(&f.app, method.as_str(), &uri).await;
            assert_eq!(
                !fallback,
                described(method, &uri),
                "{} {uri} answered {status}",
                method.as_str()
            );
        }
    }
    // Below and beside every described path, every segment Losant or flowd uses anywhere: a
    // route served there must be described (by its own template or by one it fits).
    let mut prefixes: BTreeSet<String> = paths.iter().map(|p| concrete(p)).collect();
    prefixes.insert(String::new());
    for uri in prefixes.clone() {
        let parent = uri
            .rsplit_once('/')
            .map(|(p, _)| p.to_owned())
            .unwrap_or_default();
        prefixes.insert(parent);
    }
    let words = vocabulary();
    let mut probed = 0;
    for prefix in &prefixes {
        for word in &words {
            for uri in [
                format!("{prefix}/{word}"),
                format!("{prefix}/{word}/0123456789abcdef01234567"),
            ] {
                for method in Method::ALL {
                    let (status, fallback) = probe(&f.app, method.as_str(), &uri).await;
                    probed += 1;
                    assert!(
                        fallback || described(method, &uri),
                        "{} {uri} is served ({status}) but not described",
                        method.as_str()
                    );
                }
            }
        }
    }
    assert!(probed > 10_000, "only {probed} probes");
}

/// Every path written as a literal in a `.route("…", …)` of the API's sources: each must be a
/// described path. (Routes whose path is built with `format!` are found by the probes above.)
#[test]
fn every_literal_route_in_the_sources_is_described() {
    let shape = |path: &str| -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let described: HashSet<String> = operations().iter().map(|op| shape(op.path)).collect();
    let mut found = 0;
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("source file");
            let mut rest = text.as_str();
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let literal = rest.trim_start();
                let Some(literal) = literal.strip_prefix('"') else {
                    continue;
                };
                let Some(end) = literal.find('"') else {
                    continue;
                };
                let route = &literal[..end];
                found += 1;
                assert!(
                    described.contains(&shape(route)),
                    "{}: route {route} is not described",
                    path.display()
                );
            }
        }
    }
    assert!(found >= 10, "only {found} literal routes found");
}

/// Path segments worth probing: those of the document and of Losant's route table, and the
/// resource names of every scope an application token may hold (`devices`, `dataTables`, …).
fn vocabulary() -> BTreeSet<String> {
    let mut words: BTreeSet<String> = BTreeSet::new();
    let api_info: Value = serde_json::from_str(API_INFO).expect("route table");
    let mut templates: Vec<String> = operations().iter().map(|op| op.path.to_owned()).collect();
    for resource in api_info.as_object().expect("resources").values() {
        let base = resource["path"].as_str().unwrap_or_default();
        for action in resource["actions"].as_object().expect("actions").values() {
            templates.push(format!("{base}{}", action["path"].as_str().unwrap_or("")));
        }
    }
    for template in templates {
        for segment in template.split('/') {
            if !segment.is_empty() && !segment.starts_with('{') {
                words.insert(segment.to_owned());
            }
        }
    }
    for scope in flowd_model::scope::application_token_vocabulary() {
        if let Some(resource) = scope.split('.').next() {
            words.insert(resource.to_owned());
        }
    }
    for word in [
        "me",
        "auth",
        "orgs",
        "instances",
        "dashboards",
        "docs",
        "swagger.json",
    ] {
        words.insert(word.to_owned());
    }
    words
}

#[test]
fn losant_route_table_actions_are_described_as_documented() {
    let api_info: Value = serde_json::from_str(API_INFO).expect("route table");
    let paths = &document()["paths"];
    let mut checked = 0;
    for (resource_name, resource) in api_info.as_object().expect("resources") {
        let base = resource["path"].as_str().expect("path");
        for (action_name, action) in resource["actions"].as_object().expect("actions") {
            let id = format!("{resource_name}.{action_name}");
            let path = format!("{base}{}", action["path"].as_str().unwrap_or(""));
            let method = action["method"].as_str().expect("method").to_lowercase();
            let described = &paths[path.as_str()][method.as_str()];
            if NOT_SERVED.contains(&id.as_str()) {
                assert!(described.is_null(), "{id} is described but not served");
                continue;
            }
            assert!(
                described.is_object(),
                "{id}: {method} {path} is not described"
            );
            assert_eq!(described["operationId"], json!(id));
            let parameters = described["parameters"].as_array().expect("parameters");
            for param in action["params"].as_array().into_iter().flatten() {
                if param["in"] != "query" {
                    continue;
                }
                let name = param["name"].as_str().expect("name");
                let ours = parameters
                    .iter()
                    .find(|p| p["name"] == name && p["in"] == "query")
                    .unwrap_or_else(|| panic!("{id}: query parameter {name} is missing"));
                // Losant's defaults are numbers, booleans or text; the document's are typed.
                if let Some(default) = param.get("default") {
                    assert_eq!(
                        &ours["schema"]["default"], default,
                        "{id}: {name}'s default"
                    );
                }
                if let Some(values) = param.get("enum") {
                    assert_eq!(&ours["schema"]["enum"], values, "{id}: {name}'s values");
                }
            }
            let responses = described["responses"].as_object().expect("responses");
            for status in action["responses"].as_object().expect("responses").keys() {
                // 202 is Losant's answer when a bulk delete is queued; flowd deletes at once.
                if status == "202" {
                    continue;
                }
                assert!(responses.contains_key(status), "{id}: no {status} answer");
            }
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} actions checked");
}

#[test]
fn operations_declare_their_parameters_security_and_errors() {
    let mut ids = HashSet::new();
    for op in operations() {
        let described = &document()["paths"][op.path][op.method.as_str().to_lowercase()];
        assert!(ids.insert(op.id), "operationId {} is used twice", op.id);
        let in_path: Vec<&str> = described["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().expect("name"))
            .collect();
        assert_eq!(in_path, path_parameters(op.path), "{}", op.id);
        let security = &described["security"];
        let responses = described["responses"].as_object().expect("responses");
        match op.access {
            flowd_api::openapi::Access::Token(_) => {
                assert_eq!(security, &json!([{"bearerAuth": []}]), "{}", op.id);
                for status in ["401", "403"] {
                    assert_eq!(
                        responses[status]["$ref"],
                        json!(format!(
                            "#/components/responses/{}",
                            if status == "401" {
                                "Unauthorized"
                            } else {
                                "Forbidden"
                            }
                        )),
                        "{}",
                        op.id
                    );
                }
            }
            flowd_api::openapi::Access::Public => assert_eq!(security, &json!([]), "{}", op.id),
            flowd_api::openapi::Access::Webhook => {
                assert_eq!(
                    security,
                    &json!([{}, {"webhookBasicAuth": []}]),
                    "{}",
                    op.id
                )
            }
        }
    }
    for (name, response) in document()["components"]["responses"]
        .as_object()
        .expect("responses")
    {
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/error",
            "{name}"
        );
    }
}

/// Every `$ref` in `value`.
fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

/// A validator for one component, compiled in the document (so its references resolve).
fn component_validator(name: &str) -> jsonschema::Validator {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": document()["components"],
    });
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{name} does not compile: {e}"))
}

#[test]
fn official_schemas_are_components_in_the_2020_12_dialect() {
    let schemas = document()["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in SchemaName::ALL {
        let component = &schemas[component_name(*name)];
        assert!(component.is_object(), "{} is missing", name.file());
        jsonschema::draft202012::meta::validate(component)
            .unwrap_or_else(|e| panic!("{}: not a 2020-12 schema: {e}", name.file()));
        let text = component.to_string();
        assert!(!text.contains("\"$schema\""), "{}", name.file());
        assert!(!text.contains("#/definitions/"), "{}", name.file());
        // Apart from those keywords, the official schema, as it is.
        let mut original = raw(*name).clone();
        if let Some(root) = original.as_object_mut() {
            root.remove("$schema");
            root.remove("definitions");
        }
        let original = original
            .to_string()
            .replace("#/definitions/", "#/components/schemas/");
        assert_eq!(text, original, "{}", name.file());
    }
    let mut refs = Vec::new();
    references(document(), &mut refs);
    assert!(refs.len() > 100, "only {} references", refs.len());
    for reference in refs {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{reference} leaves the document"));
        assert!(
            document().pointer(pointer).is_some(),
            "{reference} points at nothing"
        );
    }
}

#[test]
fn converted_schemas_accept_and_refuse_as_the_originals_do() {
    let cases = [
        (SchemaName::FlowPost, json!({"name": "f"}), true),
        (
            SchemaName::FlowPost,
            json!({"name": "f", "bogus": 1}),
            false,
        ),
        (SchemaName::FlowPost, json!({"name": 5}), false),
        (
            SchemaName::FlowPost,
            json!({"name": "f", "triggers": [{"type": "virtualButton", "key": "k"}]}),
            true,
        ),
        (
            SchemaName::FlowPost,
            json!({"name": "f", "triggers": [{"type": "teleport"}]}),
            false,
        ),
        (
            SchemaName::ApplicationApiTokenPost,
            json!({"name": "t", "scope": ["all.Application"]}),
            true,
        ),
        (
            SchemaName::ApplicationApiTokenPost,
            json!({"name": "t", "scope": ["all.Nothing"]}),
            false,
        ),
        // Recursion through a hoisted definition: a nested `$and` is checked all the way down.
        (
            SchemaName::AdvancedFlowQuery,
            json!({"$and": [{"$or": [{"name": {"$eq": "x"}}]}]}),
            true,
        ),
        (
            SchemaName::AdvancedFlowQuery,
            json!({"$and": [{"$or": [{"$and": 5}]}]}),
            false,
        ),
        (
            SchemaName::FlowVersionsDeletePost,
            json!({"query": {"$and": [{"version": {"$eq": "v1"}}]}}),
            true,
        ),
        (
            SchemaName::FlowVersionsDeletePost,
            json!({"query": {"$and": [{"$or": 5}]}}),
            false,
        ),
        (SchemaName::FlowStats, json!({"start": "not a time"}), false),
        (
            SchemaName::Error,
            json!({"type": "NotFound", "message": "x"}),
            true,
        ),
    ];
    for (name, instance, valid) in cases {
        let original = flowd_model::schema::validate(name, &instance).is_ok();
        assert_eq!(original, valid, "{} (original) on {instance}", name.file());
        let converted = component_validator(component_name(name)).is_valid(&instance);
        assert_eq!(
            converted,
            valid,
            "{} (converted) on {instance}",
            name.file()
        );
    }
}

#[tokio::test]
async fn public_answers_match_their_described_schemas() {
    let f = fixture().await;
    for op in operations() {
        if !matches!(op.access, flowd_api::openapi::Access::Public) {
            continue;
        }
        let response = f
            .app
            .clone()
            .oneshot(Request::get(op.path).body(Body::empty()).expect("request"))
            .await
            .expect("answer");
        assert_eq!(response.status().as_u16(), op.status, "{}", op.path);
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("body");
        let body: Value = serde_json::from_slice(&bytes).expect("JSON");
        let schema = document()["paths"][op.path]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .expect("a schema reference");
        let name = schema.trim_start_matches("#/components/schemas/");
        let validator = component_validator(name);
        assert!(validator.is_valid(&body), "{}: {body}", op.path);
        assert!(
            !validator.is_valid(&json!({"unexpected": true})),
            "{name} takes anything"
        );
    }
}

/// Sends a request with the owner token; the status and the JSON answer.
async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {OWNER_TOKEN}"))
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request builds");
    let response = app.clone().oneshot(request).await.expect("router answers");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What Schemathesis found (scripts/fuzz-api), each checked against the document: bodies the
/// request schemas allow came back in shapes the response schemas refuse.
#[tokio::test]
async fn fuzz_findings_stay_fixed() {
    let f = fixture().await;
    let (status, app) = call(&f.app, "POST", "/applications", Some(json!({"name": "a"}))).await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_str().expect("id").to_owned();
    let flow_schema = component_validator("flow");

    // `category: ""` and `iconData: null` are allowed by flowPost (and the import), not by flow.
    let body = json!({"name": "f", "category": "", "iconData": null});
    let (status, flow) = call(
        &f.app,
        "POST",
        &format!("/applications/{app}/flows"),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{flow}");
    assert!(flow_schema.is_valid(&flow), "{flow}");
    assert!(
        flow.get("category").is_none() && flow.get("iconData").is_none(),
        "{flow}"
    );
    let import = json!({"flows": [{"id": "0123456789abcdef01234567", "name": "i", "category": "",
        "iconData": null}]});
    let uri = format!("/applications/{app}/flows/import");
    let (status, imported) = call(&f.app, "POST", &uri, Some(import)).await;
    assert_eq!(status, 201, "{imported}");
    assert!(
        component_validator("flowsImportResult").is_valid(&imported),
        "{imported}"
    );

    // PATCH with `category: ""` clears a category.
    let flow_uri = format!(
        "/applications/{app}/flows/{}",
        flow["id"].as_str().expect("id")
    );
    let (status, set) = call(
        &f.app,
        "PATCH",
        &flow_uri,
        Some(json!({"category": "logic"})),
    )
    .await;
    assert_eq!((status, &set["category"]), (200, &json!("logic")), "{set}");
    let (status, cleared) = call(&f.app, "PATCH", &flow_uri, Some(json!({"category": ""}))).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(
        flow_schema.is_valid(&cleared) && cleared.get("category").is_none(),
        "{cleared}"
    );

    // An `end` past year 9999 has no ISO 8601 form: refused, where the last day of 9999 works.
    for (what, schema) in [("stats", "flowStats"), ("errors", "flowErrors")] {
        let uri = format!("{flow_uri}/{what}?end=4611686018427387903");
        let (status, body) = call(&f.app, "GET", &uri, None).await;
        assert_eq!(
            (status, &body["type"]),
            (400, &json!("Validation")),
            "{what}: {body}"
        );
        let uri = format!("{flow_uri}/{what}?end=253402300799999");
        let (status, body) = call(&f.app, "GET", &uri, None).await;
        assert_eq!(status, 200, "{what}: {body}");
        assert!(
            component_validator(schema).is_valid(&body),
            "{what}: {body}"
        );
    }
}
