//! Save-time checks of a workflow graph, beyond what the JSON schema can say: node ids are
//! unique, every `outputIds` target exists, no node feeds itself, and every node type is one
//! Losant knows. Messages follow Losant's wording and name the node.
//!
//! Runs on `serde_json::Value` documents that already passed the schema, so shapes are known;
//! anything unexpected is still handled without panicking.

use crate::catalogue::is_known_node_type;
use serde_json::Value;
use std::collections::HashSet;

/// Why a graph was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GraphError(pub String);

fn describe_node(index: usize, node: &Value) -> String {
    let type_name = node.get("type").and_then(Value::as_str).unwrap_or("?");
    match node.get("id").and_then(Value::as_str) {
        Some(id) => format!("Node \"{id}\" ({type_name})"),
        None => format!("nodes[{index}] ({type_name})"),
    }
}

fn describe_trigger(index: usize, trigger: &Value) -> String {
    let type_name = trigger.get("type").and_then(Value::as_str).unwrap_or("?");
    match trigger.get("key").and_then(Value::as_str) {
        Some(key) => format!("Trigger \"{key}\" ({type_name})"),
        None => format!("triggers[{index}] ({type_name})"),
    }
}

fn targets(element: &Value) -> impl Iterator<Item = &str> {
    element
        .get("outputIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
}

/// Checks the `triggers` and `nodes` arrays of a workflow (or version) document.
pub fn validate_graph(triggers: &[Value], nodes: &[Value]) -> Result<(), GraphError> {
    let mut ids = HashSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let type_name = node.get("type").and_then(Value::as_str).unwrap_or("");
        if !is_known_node_type(type_name) {
            return Err(GraphError(format!(
                "{}: unknown node type \"{type_name}\".",
                describe_node(index, node)
            )));
        }
        if let Some(id) = node.get("id").and_then(Value::as_str) {
            if !ids.insert(id) {
                return Err(GraphError(format!(
                    "{}: Node IDs must be unique.",
                    describe_node(index, node)
                )));
            }
        }
    }
    for (index, node) in nodes.iter().enumerate() {
        let own_id = node.get("id").and_then(Value::as_str);
        for target in targets(node) {
            if Some(target) == own_id {
                return Err(GraphError(format!(
                    "{}: A node cannot connect to itself.",
                    describe_node(index, node)
                )));
            }
            if !ids.contains(target) {
                return Err(GraphError(format!(
                    "{}: Referenced output ID {target} does not exist.",
                    describe_node(index, node)
                )));
            }
        }
    }
    check_groups(nodes)?;
    for (index, trigger) in triggers.iter().enumerate() {
        for target in targets(trigger) {
            if !ids.contains(target) {
                return Err(GraphError(format!(
                    "{}: Referenced output ID {target} does not exist.",
                    describe_trigger(index, trigger)
                )));
            }
        }
    }
    Ok(())
}

fn group_of(node: &Value) -> Option<&str> {
    node.pointer("/meta/groupId")
        .and_then(Value::as_str)
        .filter(|g| !g.is_empty())
}

/// Loop bodies (FLOW-JSON §5): a Loop node's port 1 leads into its group (nodes with
/// `meta.groupId` = the loop's id); inside a group, wires stay in the group; outside, wires do
/// not enter one; a loop cap belongs to the group of the loop it names.
fn check_groups(nodes: &[Value]) -> Result<(), GraphError> {
    let by_id: std::collections::HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| n.get("id").and_then(Value::as_str).map(|id| (id, n)))
        .collect();
    for (index, node) in nodes.iter().enumerate() {
        let own_group = group_of(node);
        let is_loop = node.get("type").and_then(Value::as_str) == Some("LoopNode");
        let own_id = node.get("id").and_then(Value::as_str);
        let ports = node.get("outputIds").and_then(Value::as_array);
        for (port, targets) in ports.into_iter().flatten().enumerate() {
            let required = if is_loop && port == 1 {
                own_id
            } else {
                own_group
            };
            for target in targets
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let Some(target_node) = by_id.get(target) else {
                    continue;
                };
                if group_of(target_node) != required {
                    return Err(GraphError(format!(
                        "{}: Referenced output ID {target} does not exist in the required group.",
                        describe_node(index, node)
                    )));
                }
            }
        }
        if node.get("type").and_then(Value::as_str) == Some("LoopCapNode") {
            let names = node.pointer("/config/loopNodeId").and_then(Value::as_str);
            if own_group.is_none() || names != own_group {
                return Err(GraphError(format!(
                    "{}: a loop cap must be in the body of the loop it names (meta.groupId = config.loopNodeId).",
                    describe_node(index, node)
                )));
            }
        }
        if let Some(group) = own_group {
            let owner = by_id
                .get(group)
                .and_then(|n| n.get("type"))
                .and_then(Value::as_str);
            if owner != Some("LoopNode") {
                return Err(GraphError(format!(
                    "{}: meta.groupId \"{group}\" is not the id of a Loop node.",
                    describe_node(index, node)
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(triggers: Value, nodes: Value) -> Result<(), GraphError> {
        validate_graph(triggers.as_array().unwrap(), nodes.as_array().unwrap())
    }

    #[test]
    fn accepts_a_wired_graph() {
        check(
            json!([{"type": "virtualButton", "outputIds": [["a"]]}]),
            json!([{"id": "a", "type": "DebugNode", "outputIds": [["b"]]}, {"id": "b", "type": "DebugNode"}]),
        )
        .unwrap();
        check(json!([]), json!([])).unwrap();
    }

    #[test]
    fn refuses_duplicate_ids() {
        let err = check(
            json!([]),
            json!([{"id": "a", "type": "DebugNode"}, {"id": "a", "type": "MathNode"}]),
        )
        .unwrap_err();
        assert_eq!(err.0, "Node \"a\" (MathNode): Node IDs must be unique.");
    }

    #[test]
    fn refuses_dangling_and_self_links() {
        let err = check(
            json!([]),
            json!([{"id": "a", "type": "DebugNode", "outputIds": [["zz"]]}]),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "Node \"a\" (DebugNode): Referenced output ID zz does not exist."
        );
        let err = check(
            json!([]),
            json!([{"id": "a", "type": "DebugNode", "outputIds": [["a"]]}]),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "Node \"a\" (DebugNode): A node cannot connect to itself."
        );
        let err = check(
            json!([{"type": "timer", "key": "t1", "outputIds": [["x"]]}]),
            json!([]),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            "Trigger \"t1\" (timer): Referenced output ID x does not exist."
        );
    }

    #[test]
    fn loop_bodies_keep_to_their_groups() {
        let body = |group: &str| json!({"groupId": group});
        let ok = json!([
            {"id": "l", "type": "LoopNode", "outputIds": [["after"], ["b"]]},
            {"id": "b", "type": "DebugNode", "meta": body("l"), "outputIds": [["cap"]]},
            {"id": "cap", "type": "LoopCapNode", "meta": body("l"), "config": {"loopNodeId": "l"}},
            {"id": "after", "type": "DebugNode"}
        ]);
        check(json!([]), ok.clone()).unwrap();
        let mut outside = ok.clone();
        outside[1]["meta"] = json!({});
        let err = check(json!([]), outside).unwrap_err();
        assert!(err.0.contains("required group"), "{err}");
        let mut leak = ok.clone();
        leak[1]["outputIds"] = json!([["after"]]);
        assert!(check(json!([]), leak)
            .unwrap_err()
            .0
            .contains("required group"));
        let mut wrong_cap = ok.clone();
        wrong_cap[2]["config"]["loopNodeId"] = json!("other");
        assert!(check(json!([]), wrong_cap)
            .unwrap_err()
            .0
            .contains("loop cap"));
        let mut bad_group = ok;
        bad_group[3]["meta"] = body("after");
        assert!(check(json!([]), bad_group).is_err());
    }

    #[test]
    fn refuses_unknown_node_types() {
        let err = check(json!([]), json!([{"id": "a", "type": "TeleportNode"}])).unwrap_err();
        assert_eq!(
            err.0,
            "Node \"a\" (TeleportNode): unknown node type \"TeleportNode\"."
        );
    }
}
