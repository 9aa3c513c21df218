//! `MathNode`: evaluates each of `statements[{expression, resultPath}]` in order and writes the
//! result, as a number, to its `resultPath` (overwriting what is there). Later statements read
//! the payload as earlier ones left it, so they see earlier results. `statements` is optional
//! (the newer revision); none is a node that only continues.
//!
//! Decisions:
//! * **A number, always**: the result is converted with JavaScript's `Number(v)` (`true` → 1,
//!   `"12"` → 12, `null` → 0), so a statement such as `{{a}} + {{b}}` over the strings `"1"` and
//!   `"2"` stores 12, not `"12"`.
//! * **NaN and ±Infinity are stored as `null`**. JSON cannot hold them and the payload is JSON;
//!   `null` is what `JSON.stringify` makes of them, so it is also what Losant's payload shows
//!   once it leaves the engine. A missing input (`undefined`) gives NaN, so the statement
//!   stores `null` and the node still continues (NODES.md). The one visible difference from an
//!   in-memory JavaScript payload: a later statement reading that result sees `null` (which
//!   arithmetic treats as 0) rather than NaN.
//! * An expression or result path that is missing, blank or invalid is a compile error naming
//!   the node and the statement; a helper failing while evaluating halts with
//!   `ExpressionError`.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::expression::Expression;
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::path;
use crate::path::PayloadPath;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    statements: Option<Vec<StatementConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementConfig {
    expression: Option<String>,
    result_path: Option<String>,
}

struct Statement {
    expression: Expression,
    result: PayloadPath,
}

pub struct Math {
    statements: Vec<Statement>,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let mut statements = Vec::new();
    for (i, statement) in config.statements.unwrap_or_default().iter().enumerate() {
        let field = |name: &str| format!("statements[{i}].{name}");
        let text = statement
            .expression
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| spec.error(format!("{} is required", field("expression"))))?;
        let expression = Expression::compile(text)
            .map_err(|e| spec.error(format!("{}: {e}", field("expression"))))?;
        let result = match statement.result_path.as_deref() {
            Some(text) if !text.trim().is_empty() => path(spec, &field("resultPath"), text)?,
            _ => return Err(spec.error(format!("{} is required", field("resultPath")))),
        };
        statements.push(Statement { expression, result });
    }
    Ok(CompiledNodeType::new(Math { statements }, 1))
}

impl Node for Math {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        for statement in &self.statements {
            let value = statement.expression.evaluate(payload).map_err(|e| {
                NodeError::new(
                    ErrorName::ExpressionError,
                    format!("expression \"{}\": {e}", statement.expression.source()),
                )
            })?;
            let number = crate::value::number_to_json(value.to_number()).unwrap_or(Value::Null);
            statement.result.set(payload, number);
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn math(statements: Value, payload: Value) -> Value {
        let (port, payload) =
            run_node("MathNode", &json!({ "statements": statements }), payload).unwrap();
        assert_eq!(port, 0);
        payload
    }

    #[test]
    fn statements_run_in_order_and_see_earlier_results() {
        let after = math(
            json!([
                {"expression": "{{data.t}} * 9 / 5 + 32", "resultPath": "working.f"},
                {"expression": "round({{working.f}})", "resultPath": "working.fRounded"},
                {"expression": "{{working.f}} - {{data.t}}", "resultPath": "data.t"}
            ]),
            json!({"data": {"t": 21.5}}),
        );
        assert_eq!(after["working"]["f"], json!(70.7));
        assert_eq!(after["working"]["fRounded"], json!(71));
        assert_eq!(after["data"]["t"], json!(49.2), "results may overwrite");
    }

    #[test]
    fn the_tank_example() {
        let after = math(
            json!([
                {"expression": "round({{data.levelCm}} / {{data.capacityCm}} * 1000) / 10",
                 "resultPath": "working.percentFull"},
                {"expression": "{{data.capacityCm}} - {{data.levelCm}}",
                 "resultPath": "working.headroomCm"}
            ]),
            json!({"data": {"levelCm": 182.5, "capacityCm": 200}}),
        );
        assert_eq!(after["working"]["percentFull"], json!(91.3));
        assert_eq!(after["working"]["headroomCm"], json!(17.5));
    }

    #[test]
    fn results_are_numbers() {
        let after = math(
            json!([
                {"expression": "{{data.a}} + {{data.b}}", "resultPath": "r.concat"},
                {"expression": "{{data.a}} > 0", "resultPath": "r.bool"},
                {"expression": "2^10", "resultPath": "r.pow"},
                {"expression": "{{data.a}} * 1", "resultPath": "r.int"}
            ]),
            json!({"data": {"a": "1", "b": "2"}}),
        );
        assert_eq!(
            after["r"],
            json!({"concat": 12, "bool": 1, "pow": 1024, "int": 1})
        );
    }

    #[test]
    fn nan_and_infinity_are_stored_as_null() {
        let after = math(
            json!([
                {"expression": "{{data.missing}} * 2", "resultPath": "r.nan"},
                {"expression": "1 / 0", "resultPath": "r.inf"},
                {"expression": "-1 / 0", "resultPath": "r.negInf"},
                {"expression": "'abc' * 1", "resultPath": "r.text"},
                {"expression": "{{r.nan}} + 1", "resultPath": "r.next"}
            ]),
            json!({"data": {}}),
        );
        assert_eq!(
            after["r"],
            json!({"nan": null, "inf": null, "negInf": null, "text": null, "next": 1})
        );
    }

    #[test]
    fn no_statements_only_continues() {
        let payload = json!({"data": {"x": 1}});
        for config in [
            json!({}),
            json!({"statements": []}),
            json!({"statements": null}),
        ] {
            let (port, after) = run_node("MathNode", &config, payload.clone()).unwrap();
            assert_eq!((port, &after), (0, &payload));
        }
    }

    #[test]
    fn an_evaluation_failure_halts() {
        let error = run_node(
            "MathNode",
            &json!({"statements": [
                {"expression": "length({{decodeURIComponent data.s}})", "resultPath": "x"}]}),
            json!({"data": {"s": "%E0%A4%A"}}),
        )
        .unwrap_err();
        assert_eq!(error.name, ErrorName::ExpressionError);
    }

    #[test]
    fn config_is_checked() {
        for bad in [
            json!({"statements": [{"resultPath": "x"}]}),
            json!({"statements": [{"expression": " ", "resultPath": "x"}]}),
            json!({"statements": [{"expression": "1 +", "resultPath": "x"}]}),
            json!({"statements": [{"expression": "1"}]}),
            json!({"statements": [{"expression": "1", "resultPath": ""}]}),
            json!({"statements": [{"expression": "1", "resultPath": "a..b"}]}),
            json!({"statements": [{"expression": 1, "resultPath": "x"}]}),
            json!({"statements": {}}),
        ] {
            let error = compile_node("MathNode", &bad).err().unwrap();
            assert!(error.0.contains("(MathNode)"), "{bad}: {error}");
        }
        let error = compile_node(
            "MathNode",
            &json!({"statements": [{"expression": "1", "resultPath": "a"},
                {"expression": "1 +", "resultPath": "b"}]}),
        )
        .err()
        .unwrap();
        assert!(error.0.contains("statements[1].expression"), "{error}");
    }
}
