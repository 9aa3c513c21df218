//! `ThrowErrorNode`: always halts the run with the error name `ThrowError` and the rendered
//! `messageTemplate` as its message (what a Workflow Error trigger sees as
//! `errorInfo.error.message`). It has no output ports.
//!
//! Decisions:
//! * `messageTemplate` is required: a config without it does not compile.
//! * A message that renders empty still halts with `ThrowError` (the node exists to throw, and
//!   a Workflow Error handler matching on the name should still catch it); the message then
//!   says that the template rendered empty. A template that fails to render halts with
//!   `TemplateError`, as every template failure does.
//! * The old revision's `outputIds: [[]]` is refused when the flow is compiled (the node has 0
//!   ports, and the compiler refuses more wired ports than a node has).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{render, template};
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    message_template: String,
}

pub struct ThrowError {
    message: Template,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        ThrowError {
            message: template(spec, "messageTemplate", &config.message_template)?,
        },
        0,
    ))
}

impl Node for ThrowError {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let message = render(&self.message, payload)?;
        let message = if message.is_empty() {
            format!(
                "(messageTemplate \"{}\" rendered empty)",
                self.message.source()
            )
        } else {
            message
        };
        Err(NodeError::new(ErrorName::ThrowError, message))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::json;

    #[test]
    fn always_throws_the_rendered_message() {
        let config = json!({"messageTemplate": "order {{data.orderId}} rejected on purpose"});
        let error = run_node(
            "ThrowErrorNode",
            &config,
            json!({"data": {"orderId": "A-1001"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::ThrowError);
        assert_eq!(error.message, "order A-1001 rejected on purpose");
        // Missing values print nothing.
        let error = run_node("ThrowErrorNode", &config, json!({"data": {}})).unwrap_err();
        assert_eq!(error.message, "order  rejected on purpose");
    }

    #[test]
    fn an_empty_message_still_throws() {
        let config = json!({"messageTemplate": "{{data.nope}}"});
        let error = run_node("ThrowErrorNode", &config, json!({"data": {}})).unwrap_err();
        assert_eq!(error.name, ErrorName::ThrowError);
        assert!(error.message.contains("rendered empty"), "{error}");
        let error =
            run_node("ThrowErrorNode", &json!({"messageTemplate": ""}), json!({})).unwrap_err();
        assert_eq!(error.name, ErrorName::ThrowError);
    }

    #[test]
    fn a_template_failure_is_a_template_error() {
        let config = json!({"messageTemplate": "{{decodeURIComponent data.s}}"});
        let error = run_node(
            "ThrowErrorNode",
            &config,
            json!({"data": {"s": "%E0%A4%A"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        let node = compile_node("ThrowErrorNode", &json!({"messageTemplate": "x"})).unwrap();
        assert_eq!(node.ports, 0);
        for bad in [
            json!({}),
            json!({"messageTemplate": null}),
            json!({"messageTemplate": 5}),
            json!({"messageTemplate": "{{#each}}"}),
        ] {
            let error = compile_node("ThrowErrorNode", &bad).err().unwrap();
            assert!(error.0.contains("ThrowErrorNode"), "{error}");
        }
        assert!(compile_node("ThrowErrorNode", &json!({"messageTemplate": "x", "y": 1})).is_ok());
    }
}
