//! HAL-style decoration of responses (decision 2): `_type` always, `_links` unless the request
//! says `_links=false`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// Adds `_type` and, when wanted, `_links` built from `(rel, href)` pairs (the first is `self`).
pub fn decorate(
    mut doc: Value,
    type_name: &str,
    links: &[(&str, String)],
    with_links: bool,
) -> Value {
    if let Some(object) = doc.as_object_mut() {
        object.insert("_type".into(), json!(type_name));
        if with_links {
            let links: Map<String, Value> = links
                .iter()
                .map(|(rel, href)| ((*rel).to_owned(), json!({ "href": href })))
                .collect();
            object.insert("_links".into(), Value::Object(links));
        }
    }
    doc
}

/// `{"success":true}`, the answer of actions that have nothing else to say; its bytes are a
/// constant (building and serializing a map for it was measurable on the press path).
pub struct Success;

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            r#"{"success":true}"#,
        )
            .into_response()
    }
}
