//! `DebugNode`: sends a caption (`message`, a template) and the payload — or only the part at
//! `property` — to the flow's debug output at a `level` (`verbose`, the default, `info`, `warn`
//! or `error`). The payload is not changed; the path continues on port 0.
//!
//! Decisions:
//! * A `property` that reads `undefined` shows `null` (the debug value is JSON, which has no
//!   `undefined`).
//! * A blank `level` is the default `verbose`; any other unknown level is a compile error.
//! * `message` is optional, so an empty caption is fine; a caption that fails to render (a
//!   helper refusing its arguments) halts with `TemplateError`, as every template failure does
//!   (FLOW-JSON §7.4).

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{optional_path, render, template};
use crate::path::PayloadPath;
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;

/// The levels the debug panel filters on.
const LEVELS: [&str; 4] = ["verbose", "info", "warn", "error"];

#[derive(Deserialize)]
pub(crate) struct Config {
    message: Option<String>,
    property: Option<String>,
    level: Option<String>,
}

pub struct Debug {
    message: Template,
    property: Option<PayloadPath>,
    level: &'static str,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let level = match config.level.as_deref().map(str::trim) {
        None | Some("") => LEVELS[0],
        Some(level) => LEVELS
            .iter()
            .copied()
            .find(|l| *l == level)
            .ok_or_else(|| {
                spec.error(format!(
                    "level must be one of verbose, info, warn, error, not \"{level}\""
                ))
            })?,
    };
    Ok(CompiledNodeType::new(
        Debug {
            message: template(spec, "message", config.message.as_deref().unwrap_or(""))?,
            property: optional_path(spec, "property", config.property.as_deref())?,
            level,
        },
        1,
    ))
}

impl Node for Debug {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let message = match self.message.static_text() {
            Some(text) => text.to_owned(),
            None => render(&self.message, payload)?,
        };
        let value = match &self.property {
            Some(path) => path.get(payload).map_or(Value::Null, |v| v.into_owned()),
            // A Debug node often ends its path: then the message takes the payload itself.
            None if cx.payload_ends_here => std::mem::take(payload),
            None => payload.clone(),
        };
        cx.debug(message, value, self.level);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{ErrorName, NodeError};
    use crate::node::{NodeContext, Outcome};
    use crate::observer::DebugMessage;
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    /// Runs a Debug node and returns its port, the payload after it and what it sent.
    fn run_debug(
        config: Value,
        payload: Value,
    ) -> Result<(usize, Value, Vec<DebugMessage>), NodeError> {
        run_debug_at(config, payload, false)
    }

    fn run_debug_at(
        config: Value,
        mut payload: Value,
        payload_ends_here: bool,
    ) -> Result<(usize, Value, Vec<DebugMessage>), NodeError> {
        let node = compile_node("DebugNode", &config).expect("compiles");
        let harness = Harness::new();
        let run = crate::testing::run_info(&harness.flow_id);
        let mut debug = Vec::new();
        let outcome = node.node.execute(
            &mut NodeContext {
                run: &run,
                storage: None,
                services: &harness.services,
                debug: &mut debug,
                node_id: "dbg",
                payload_ends_here,
            },
            &mut payload,
        )?;
        let Outcome::Port(port) = outcome else {
            panic!("a Debug node never waits")
        };
        Ok((port, payload, debug))
    }

    #[test]
    fn sends_the_message_and_the_whole_payload() {
        let payload = json!({"data": {"t": 21.5}});
        let (port, after, sent) = run_debug(
            json!({"message": "reading {{data.t}}", "level": "info"}),
            payload.clone(),
        )
        .unwrap();
        assert_eq!(port, 0);
        assert_eq!(after, payload, "the payload is unchanged");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].message, "reading 21.5");
        assert_eq!(sent[0].level, "info");
        assert_eq!(sent[0].value, payload);
        assert_eq!(sent[0].node_id.as_deref(), Some("dbg"));
    }

    #[test]
    fn at_the_end_of_its_path_the_message_takes_the_payload_itself() {
        let payload = json!({"data": {"t": 21.5}, "working": {"s": "x"}});
        let (port, _, sent) =
            run_debug_at(json!({"message": "end"}), payload.clone(), true).unwrap();
        assert_eq!(port, 0);
        assert_eq!(sent[0].value, payload, "the whole payload, unchanged");
        // With a property, only that part is copied, the end of the path or not.
        let (_, after, sent) =
            run_debug_at(json!({"property": "working"}), payload.clone(), true).unwrap();
        assert_eq!(sent[0].value, json!({"s": "x"}));
        assert_eq!(after, payload);
    }

    #[test]
    fn property_shows_only_that_part() {
        let payload = json!({"data": {"t": 1}, "working": {"x": [1, 2]}});
        let (_, _, sent) = run_debug(json!({"property": "working.x"}), payload.clone()).unwrap();
        assert_eq!(sent[0].value, json!([1, 2]));
        assert_eq!(sent[0].message, "");
        assert_eq!(sent[0].level, "verbose", "the default level");
        // A property that is not there shows null; a blank one shows the whole payload.
        let (_, _, sent) = run_debug(json!({"property": "data.nope"}), payload.clone()).unwrap();
        assert_eq!(sent[0].value, Value::Null);
        let (_, _, sent) = run_debug(json!({"property": " "}), payload.clone()).unwrap();
        assert_eq!(sent[0].value, payload);
    }

    #[test]
    fn missing_values_print_nothing_in_the_message() {
        let (_, _, sent) =
            run_debug(json!({"message": "[{{data.nope}}]"}), json!({"data": {}})).unwrap();
        assert_eq!(sent[0].message, "[]");
    }

    #[test]
    fn a_message_that_fails_to_render_halts() {
        let error = run_debug(
            json!({"message": "{{decodeURIComponent data.s}}"}),
            json!({"data": {"s": "%E0%A4%A"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        for level in ["verbose", "info", "warn", "error", ""] {
            assert!(compile_node("DebugNode", &json!({ "level": level })).is_ok());
        }
        let error = compile_node("DebugNode", &json!({"level": "fatal"}))
            .err()
            .unwrap();
        assert!(
            error.0.contains("fatal") && error.0.contains("\"n\""),
            "{error}"
        );
        assert!(compile_node("DebugNode", &json!({"level": 3})).is_err());
        assert!(compile_node("DebugNode", &json!({"message": "{{#if}}"})).is_err());
        assert!(compile_node("DebugNode", &json!({"property": "a..b"})).is_err());
        assert!(compile_node("DebugNode", &json!({"property": "{{data}}"})).is_err());
        // No config at all, nulls, and unknown fields are fine.
        assert!(compile_node("DebugNode", &Value::Null).is_ok());
        assert!(compile_node(
            "DebugNode",
            &json!({"message": null, "property": null, "level": null, "x": 1})
        )
        .is_ok());
        assert_eq!(compile_node("DebugNode", &json!({})).unwrap().ports, 1);
    }
}
