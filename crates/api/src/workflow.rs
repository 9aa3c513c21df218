//! What every resource that saves a workflow graph (a flow's develop version, a named version,
//! an import) does before saving: fill in server-generated trigger keys and check the graph.

use crate::documents::check_globals;
use crate::error::{ApiError, ApiResult};
use flowd_model::graph::validate_graph;
use rand::Rng;
use serde_json::{json, Map, Value};

/// Trigger types whose `key` the server makes up when the author leaves it out.
const GENERATED_KEY_TYPES: &[&str] = &["virtualButton", "timer", "flowError", "onBoot", "request"];

fn short_id() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-";
    let mut rng = rand::rng();
    (0..9)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn hex32() -> String {
    let bytes: [u8; 16] = rand::random();
    flowd_model::id::hex_lower(&bytes)
}

/// Makes sure `triggers`, `nodes` and `globals` exist, gives keyless triggers a key
/// (virtual buttons `<flowId>-<shortid>`, others 32 hex, as Losant does), and checks the graph
/// and globals. Keys already present are kept, so Workflow Trigger nodes pointing at them keep
/// working across saves.
pub fn prepare_graph(
    doc: &mut Map<String, Value>,
    flow_id: &str,
    engine: &flowd_engine::engine::Engine,
) -> ApiResult<()> {
    for field in ["triggers", "nodes", "globals"] {
        doc.entry(field).or_insert(json!([]));
    }
    if let Some(triggers) = doc.get_mut("triggers").and_then(Value::as_array_mut) {
        for trigger in triggers.iter_mut().filter_map(Value::as_object_mut) {
            let type_name = trigger.get("type").and_then(Value::as_str).unwrap_or("");
            if trigger.contains_key("key") || !GENERATED_KEY_TYPES.contains(&type_name) {
                continue;
            }
            let key = if type_name == "virtualButton" {
                format!("{flow_id}-{}", short_id())
            } else {
                hex32()
            };
            trigger.insert("key".into(), json!(key));
        }
    }
    let empty = Vec::new();
    let triggers = doc
        .get("triggers")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let nodes = doc.get("nodes").and_then(Value::as_array).unwrap_or(&empty);
    validate_graph(triggers, nodes).map_err(|e| ApiError::Validation(e.0))?;
    check_globals(doc)?;
    // Compiling now turns bad node configs, templates and expressions into a 400 at save time
    // instead of a failure in every run.
    engine.check(&Value::Object(doc.clone()), None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn engine() -> (flowd_engine::engine::Engine, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = flowd_store::sqlite::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let engine =
            flowd_engine::engine::Engine::start(std::sync::Arc::new(store), Default::default());
        (engine, dir)
    }

    #[tokio::test]
    async fn keys_are_generated_only_when_missing() {
        let (engine, _dir) = engine().await;
        let mut doc = json!({"triggers": [
            {"type": "virtualButton"}, {"type": "virtualButton", "key": "mine"},
            {"type": "timer", "config": {"seconds": 60}}, {"type": "flowError"}
        ]})
        .as_object()
        .cloned()
        .unwrap();
        prepare_graph(&mut doc, "aaaaaaaaaaaaaaaaaaaaaaaa", &engine).unwrap();
        let t = doc["triggers"].as_array().unwrap();
        assert!(t[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("aaaaaaaaaaaaaaaaaaaaaaaa-"));
        assert_eq!(t[1]["key"], "mine");
        assert_eq!(t[2]["key"].as_str().unwrap().len(), 32);
        assert_eq!(t[3]["key"].as_str().unwrap().len(), 32);
        // A webhook's key is its webhook's id: never made up, and required.
        let mut webhook = json!({"triggers": [{"type": "webhook"}]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(prepare_graph(&mut webhook, "aaaaaaaaaaaaaaaaaaaaaaaa", &engine).is_err());
        assert!(webhook["triggers"][0].get("key").is_none());
        assert_eq!(doc["nodes"], json!([]));
    }

    #[tokio::test]
    async fn bad_graphs_and_bad_configs_are_refused() {
        let (engine, _dir) = engine().await;
        let mut doc = json!({"nodes": [{"id": "a", "type": "DebugNode", "outputIds": [["a"]]}]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(matches!(
            prepare_graph(&mut doc, "f", &engine),
            Err(ApiError::Validation(_))
        ));
        let mut doc = json!({"nodes": [{"id": "j", "type": "JsonEncodeNode", "config": {"source": "a..b", "destination": "x"}}]})
            .as_object()
            .cloned()
            .unwrap();
        let err = prepare_graph(&mut doc, "f", &engine).unwrap_err();
        assert!(err.to_string().contains("Node \"j\""), "{err}");
    }
}
