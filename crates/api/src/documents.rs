//! Pieces of document handling shared by several resources: authorship stamps, merging a PATCH
//! into a stored document, and checks that the schemas cannot express.

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use serde_json::{json, Map, Value};

/// A string field of a document, or "" (documents here come from the store and have them).
pub fn text(doc: &Value, field: &str) -> String {
    doc.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Sets ids, dates and authorship on a new document.
pub fn stamp_created(doc: &mut Map<String, Value>, id: &str, id_field: &str, by: &Principal) {
    let now = flowd_model::time::now_iso();
    doc.insert("id".into(), json!(id));
    doc.insert(id_field.into(), json!(id));
    doc.insert("creationDate".into(), json!(now));
    doc.insert("createdById".into(), json!(by.token_id));
    doc.insert("createdByType".into(), json!(by.actor_type()));
    stamp_updated(doc, by);
    doc.insert("lastUpdated".into(), json!(now));
}

/// Sets the last-updated date and author.
pub fn stamp_updated(doc: &mut Map<String, Value>, by: &Principal) {
    doc.insert("lastUpdated".into(), json!(flowd_model::time::now_iso()));
    doc.insert("lastUpdatedById".into(), json!(by.token_id));
    doc.insert("lastUpdatedByType".into(), json!(by.actor_type()));
}

/// Copies the fields of a PATCH body over a document. Fields set to `null` are removed (how
/// Losant clears an optional field such as `defaultVersionId`).
pub fn merge(doc: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            doc.remove(&key);
        } else {
            doc.insert(key, value);
        }
    }
}

/// The body as an object (schemas guarantee it; this keeps the code free of unwraps).
pub fn into_object(value: Value) -> ApiResult<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::validation(
            "The request body must be a JSON object",
        )),
    }
}

/// Global values are JSON text (`"75"`, `"\"abc\""`); a run parses them, so a value that does
/// not parse is refused when saved rather than failing every run later.
pub fn check_globals(doc: &Map<String, Value>) -> ApiResult<()> {
    let Some(globals) = doc.get("globals").and_then(Value::as_array) else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::new();
    for (index, global) in globals.iter().enumerate() {
        let key = global.get("key").and_then(Value::as_str).unwrap_or("");
        if !seen.insert(key) {
            return Err(ApiError::validation(format!(
                "globals[{index}].key: \"{key}\" is used more than once"
            )));
        }
        let text = global.get("json").and_then(Value::as_str).unwrap_or("");
        if let Err(e) = serde_json::from_str::<Value>(text) {
            return Err(ApiError::validation(format!(
                "globals[{index}].json: the value of \"{key}\" is not valid JSON ({e})"
            )));
        }
    }
    Ok(())
}

/// Paths of the resources, for `_links`.
pub mod href {
    pub fn applications() -> String {
        "/applications".into()
    }
    pub fn application(app: &str) -> String {
        format!("/applications/{app}")
    }
    pub fn tokens(app: &str) -> String {
        format!("/applications/{app}/tokens")
    }
    pub fn token(app: &str, token: &str) -> String {
        format!("/applications/{app}/tokens/{token}")
    }
    pub fn flows(app: &str) -> String {
        format!("/applications/{app}/flows")
    }
    pub fn flow(app: &str, flow: &str) -> String {
        format!("/applications/{app}/flows/{flow}")
    }
    pub fn versions(app: &str, flow: &str) -> String {
        format!("/applications/{app}/flows/{flow}/versions")
    }
    pub fn version(app: &str, flow: &str, version: &str) -> String {
        format!("/applications/{app}/flows/{flow}/versions/{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_and_removes() {
        let mut doc = json!({"a": 1, "b": 2, "c": [1]})
            .as_object()
            .cloned()
            .unwrap();
        merge(
            &mut doc,
            json!({"a": 5, "b": null, "c": []})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(Value::Object(doc), json!({"a": 5, "c": []}));
    }

    #[test]
    fn globals_must_parse_and_be_unique() {
        let ok = json!({"globals": [{"key": "a", "json": "75"}, {"key": "b", "json": "\"x\""}]});
        assert!(check_globals(ok.as_object().unwrap()).is_ok());
        let bad = json!({"globals": [{"key": "a", "json": "{nope"}]});
        let err = check_globals(bad.as_object().unwrap()).unwrap_err();
        assert!(err.to_string().starts_with("globals[0].json"), "{err}");
        let dup = json!({"globals": [{"key": "a", "json": "1"}, {"key": "a", "json": "2"}]});
        assert!(check_globals(dup.as_object().unwrap()).is_err());
    }
}
