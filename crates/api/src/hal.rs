//! HAL-style decoration of responses (decision 2): `_type` always, `_links` unless the request
//! says `_links=false`.

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

/// `{"success": true}`.
pub fn success() -> Value {
    json!({ "success": true })
}
