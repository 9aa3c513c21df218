//! `LatchNode`: fires its "newly latched" port once when `latchExpression` turns truthy, and not
//! again until `resetExpression` has been truthy. The latch state is kept per
//! `latchIdTemplate` (say, per device) across runs and restarts, as node state beside the
//! flow's storage. Port 0: not newly latched; port 1: newly latched.
//!
//! Order within a run: a latched latch whose reset expression is truthy un-latches (port 0); an
//! unlatched latch whose latch expression is truthy latches (port 1). Blank expressions never
//! fire.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::expression::Expression;
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{continue_after_storage, optional_path, render, template, AfterStorage};
use crate::path::PayloadPath;
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    latch_expression: Option<String>,
    reset_expression: Option<String>,
    latch_id_template: Option<String>,
    latch_result_path: Option<String>,
    reset_result_path: Option<String>,
    was_latched_path: Option<String>,
    is_latched_path: Option<String>,
    branch_path: Option<String>,
}

pub struct Latch {
    node_id: String,
    latch: Option<Expression>,
    reset: Option<Expression>,
    id: Option<Template>,
    outputs: LatchOutputs,
}

/// Where a run's view of the latch goes.
#[derive(Clone)]
struct LatchOutputs {
    latch_result: Option<PayloadPath>,
    reset_result: Option<PayloadPath>,
    was_latched: Option<PayloadPath>,
    is_latched: Option<PayloadPath>,
    branch: Option<PayloadPath>,
}

/// One run's pass through the latch: its expressions, and the latch before and after.
struct LatchPass {
    latch_now: bool,
    reset_now: bool,
    was: bool,
    is: bool,
    fired: bool,
}

impl AfterStorage<LatchPass> for LatchOutputs {
    fn port(&self, pass: &LatchPass) -> usize {
        usize::from(pass.fired)
    }

    fn apply(&self, pass: LatchPass, payload: &mut Value) -> Result<(), NodeError> {
        let writes = [
            (&self.latch_result, pass.latch_now),
            (&self.reset_result, pass.reset_now),
            (&self.was_latched, pass.was),
            (&self.is_latched, pass.is),
            (&self.branch, pass.fired),
        ];
        for (path, value) in writes {
            if let Some(path) = path {
                path.set(payload, Value::Bool(value));
            }
        }
        Ok(())
    }
}

fn expression(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<Option<Expression>, CompileError> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Expression::compile(text)
            .map(Some)
            .map_err(|e| spec.error(format!("{field}: {e}"))),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    let id = match c.latch_id_template.as_deref().filter(|t| !t.is_empty()) {
        None => None,
        Some(text) => Some(template(spec, "latchIdTemplate", text)?),
    };
    Ok(CompiledNodeType::new(
        Latch {
            node_id: spec.id.to_owned(),
            latch: expression(spec, "latchExpression", c.latch_expression.as_deref())?,
            reset: expression(spec, "resetExpression", c.reset_expression.as_deref())?,
            id,
            outputs: LatchOutputs {
                latch_result: optional_path(
                    spec,
                    "latchResultPath",
                    c.latch_result_path.as_deref(),
                )?,
                reset_result: optional_path(
                    spec,
                    "resetResultPath",
                    c.reset_result_path.as_deref(),
                )?,
                was_latched: optional_path(spec, "wasLatchedPath", c.was_latched_path.as_deref())?,
                is_latched: optional_path(spec, "isLatchedPath", c.is_latched_path.as_deref())?,
                branch: optional_path(spec, "branchPath", c.branch_path.as_deref())?,
            },
        },
        2,
    )
    .with_storage())
}

fn truthy(expression: &Option<Expression>, payload: &Value) -> Result<bool, NodeError> {
    match expression {
        None => Ok(false),
        Some(e) => e
            .evaluate_truthy(payload)
            .map_err(|e| NodeError::new(ErrorName::ExpressionError, e.to_string())),
    }
}

impl Node for Latch {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let id = match &self.id {
            None => String::new(),
            Some(t) => render(t, payload)?,
        };
        let latch_now = truthy(&self.latch, payload)?;
        let reset_now = truthy(&self.reset, payload)?;
        let pass = cx
            .storage()?
            .update_node_state(&self.node_id, &id, move |state| {
                let was = state.and_then(Value::as_bool).unwrap_or(false);
                let (is, fired) = match (was, reset_now, latch_now) {
                    (true, true, _) => (false, false),
                    (true, false, _) => (true, false),
                    (false, _, true) => (true, true),
                    (false, _, false) => (false, false),
                };
                let pass = LatchPass {
                    latch_now,
                    reset_now,
                    was,
                    is,
                    fired,
                };
                (Value::Bool(is), pass)
            });
        continue_after_storage(pass, &self.outputs, payload)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{compile_node, Harness};
    use serde_json::json;

    #[test]
    fn latches_once_until_reset_per_id() {
        for h in Harness::in_each_storage_mode() {
            let node = compile_node(
            "LatchNode",
            &json!({"latchExpression": "{{data.t}} > 90", "resetExpression": "{{data.t}} < 80",
                    "latchIdTemplate": "{{data.id}}", "wasLatchedPath": "working.was", "branchPath": "working.branch"}),
        )
        .unwrap();
            let port =
                |t: i64, id: &str| h.run(&node, json!({"data": {"t": t, "id": id}})).unwrap();
            assert_eq!(port(95, "a").0, 1, "first crossing fires");
            assert_eq!(port(99, "a").0, 0, "still latched");
            assert_eq!(port(95, "b").0, 1, "another id has its own latch");
            let (p, out) = port(85, "a");
            assert_eq!(
                (p, out["working"]["was"].clone()),
                (0, json!(true)),
                "between thresholds: held"
            );
            assert_eq!(port(70, "a").0, 0, "reset");
            let (p, out) = port(91, "a");
            assert_eq!(
                (p, out["working"]["branch"].clone()),
                (1, json!(true)),
                "fires again after reset"
            );
        }
    }

    #[test]
    fn blank_expressions_never_fire_and_bad_ones_do_not_compile() {
        for h in Harness::in_each_storage_mode() {
            let node = compile_node("LatchNode", &json!({})).unwrap();
            assert_eq!(h.run(&node, json!({})).unwrap().0, 0);
            assert!(compile_node("LatchNode", &json!({"latchExpression": "1 +"})).is_err());
            assert!(compile_node("LatchNode", &json!({"latchIdTemplate": "{{#if}}"})).is_err());
        }
    }
}
