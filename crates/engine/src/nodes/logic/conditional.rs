//! `ConditionalNode`: evaluates `expression` (an expression, FLOW-JSON §9.4) with JavaScript
//! truthiness and continues on port 1 when it is truthy, port 0 when it is falsy (`false`, `0`,
//! `NaN`, `""`, `null`, `undefined`). The payload is not changed.
//!
//! The expression is required and compiled with the flow: a missing, blank or invalid one is a
//! compile error naming the node. A helper inside a `{{…}}` that fails while evaluating halts
//! the run with `ExpressionError`. A missing payload value is `undefined` (falsy), not an
//! error.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::expression::Expression;
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
pub(crate) struct Config {
    expression: Option<String>,
}

pub struct Conditional {
    expression: Expression,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let text = config
        .expression
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| spec.error("expression is required"))?;
    let expression =
        Expression::compile(text).map_err(|e| spec.error(format!("expression: {e}")))?;
    Ok(CompiledNodeType::new(Conditional { expression }, 2))
}

impl Node for Conditional {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let truthy = self.expression.evaluate_truthy(payload).map_err(|e| {
            NodeError::new(
                ErrorName::ExpressionError,
                format!("expression \"{}\": {e}", self.expression.source()),
            )
        })?;
        Ok(Outcome::Port(usize::from(truthy)))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn port(expression: &str, payload: Value) -> usize {
        run_node(
            "ConditionalNode",
            &json!({ "expression": expression }),
            payload,
        )
        .unwrap()
        .0
    }

    #[test]
    fn truthy_goes_to_port_1_and_falsy_to_port_0() {
        let payload = json!({"data": {"t": 30}, "globals": {"limitC": 25}});
        assert_eq!(port("{{data.t}} >= {{globals.limitC}}", payload.clone()), 1);
        assert_eq!(port("{{data.t}} < {{globals.limitC}}", payload.clone()), 0);
        let (_, after) = run_node(
            "ConditionalNode",
            &json!({"expression": "{{data.t}} > 1"}),
            payload.clone(),
        )
        .unwrap();
        assert_eq!(after, payload, "the payload is unchanged");
    }

    #[test]
    fn javascript_truthiness() {
        let payload = json!({"data": {"zero": 0, "empty": "", "null": null, "list": [],
            "obj": {}, "s": "x", "f": false}});
        for (expression, expected) in [
            ("{{data.zero}}", 0),
            ("{{data.empty}}", 0),
            ("{{data.null}}", 0),
            ("{{data.missing}}", 0),
            ("{{data.f}}", 0),
            ("0 / 0", 0),
            ("{{data.list}}", 1),
            ("{{data.obj}}", 1),
            ("{{data.s}}", 1),
            ("'5' == 5", 1),
            ("'5' === 5", 0),
            ("{{data.missing}} === undefined", 1),
        ] {
            assert_eq!(port(expression, payload.clone()), expected, "{expression}");
        }
    }

    #[test]
    fn an_evaluation_failure_halts() {
        let error = run_node(
            "ConditionalNode",
            &json!({"expression": "{{decodeURIComponent data.s}} === 'x'"}),
            json!({"data": {"s": "%E0%A4%A"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::ExpressionError);
        assert!(error.message.contains("decodeURIComponent"), "{error}");
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(
            compile_node("ConditionalNode", &json!({"expression": "true"}))
                .unwrap()
                .ports,
            2
        );
        for bad in [
            json!({}),
            json!({"expression": null}),
            json!({"expression": "  "}),
            json!({"expression": 5}),
            json!({"expression": "{{data.x}} >"}),
            json!({"expression": "data.x > 5"}),
            json!({"expression": "{{#if data.x}}1{{/if}}"}),
        ] {
            let error = compile_node("ConditionalNode", &bad).err().unwrap();
            assert!(
                error.0.contains("\"n\" (ConditionalNode)"),
                "{bad}: {error}"
            );
        }
        assert!(compile_node("ConditionalNode", &json!({"expression": "1", "x": [1]})).is_ok());
    }
}
