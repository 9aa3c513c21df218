//! `DelayNode`: pauses its path for `delay` seconds (a template; the old revision's key
//! `durationTemplate` is accepted too), then continues on port 0 with the payload unchanged.
//! The wait is a timer on the runtime (`tokio::time::sleep`), never a blocked thread; other
//! paths of the run keep going meanwhile, and the run's time limit still applies.
//!
//! Decisions:
//! * **Limit: `RunLimits::max_delay`**, by default [`DEFAULT_MAX_DELAY`] (59 s, Losant's cloud
//!   limit; spec decision 9), configurable. A longer
//!   delay is refused, not shortened: a silent clamp would change what the flow does. When the
//!   template has no `{{…}}` the number is checked as the flow is compiled (a compile error);
//!   otherwise the run halts with `ValidationError` naming the limit.
//! * The text is read as JavaScript's `Number(text)` (`"1.5"`, `"1e1"`, `" 2 "`); fractions of
//!   a second are kept. Text that is not a number, or a negative number, is a
//!   `ValidationError`; a delay of 0 continues at once without waiting.
//! * `delay` is a required template: a missing or blank one is a compile error, and one that
//!   renders empty halts with `TemplateError` (FLOW-JSON §7.4). A number in the config
//!   (`"delay": 5`) is taken as its text.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome, Resume};
use crate::nodes::{render_required, template};
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The longest delay unless configured otherwise.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(59);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    delay: Option<Value>,
    duration_template: Option<Value>,
}

enum Delay {
    Fixed(Duration),
    Template(Template),
}

pub struct DelayNode {
    delay: Delay,
    max: Duration,
}

/// The text of a template field given as a string or a number; `None` when absent or blank.
fn text_of(
    spec: &NodeSpec<'_>,
    field: &str,
    value: Option<&Value>,
) -> Result<Option<String>, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(spec.error(format!(
            "{field} must be a template or a number, not {other}"
        ))),
    }
}

/// Reads a number of seconds and checks it against the limit.
fn seconds(text: &str, max: Duration) -> Result<Duration, String> {
    let n = crate::value::string_to_number(text);
    if text.trim().is_empty() || n.is_nan() {
        return Err(format!("delay must be a number of seconds, not \"{text}\""));
    }
    if n < 0.0 {
        return Err(format!("delay must not be negative ({text} s)"));
    }
    if n > max.as_secs_f64() {
        return Err(format!(
            "delay of {text} s is over the limit of {} s",
            max.as_secs_f64()
        ));
    }
    Ok(Duration::from_secs_f64(n))
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let (field, text) = match text_of(spec, "delay", config.delay.as_ref())? {
        Some(text) => ("delay", text),
        None => match text_of(spec, "durationTemplate", config.duration_template.as_ref())? {
            Some(text) => ("durationTemplate", text),
            None => return Err(spec.error("delay is required")),
        },
    };
    let compiled = template(spec, field, &text)?;
    let delay = match compiled.static_text() {
        Some(text) => {
            Delay::Fixed(seconds(text, spec.limits.max_delay).map_err(|e| spec.error(e))?)
        }
        None => Delay::Template(compiled),
    };
    Ok(CompiledNodeType::new(
        DelayNode {
            delay,
            max: spec.limits.max_delay,
        },
        1,
    ))
}

impl Node for DelayNode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let duration = match &self.delay {
            Delay::Fixed(duration) => *duration,
            Delay::Template(template) => {
                let text = render_required(template, "delay", payload)?;
                seconds(&text, self.max)
                    .map_err(|e| NodeError::new(ErrorName::ValidationError, e))?
            }
        };
        if duration.is_zero() {
            return Ok(Outcome::Port(0));
        }
        Ok(Outcome::Wait(Box::pin(async move {
            tokio::time::sleep(duration).await;
            Ok(Resume::port(0))
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::node::Outcome;
    use crate::testing::{compile_node, run_node, Harness};
    use serde_json::{json, Value};
    use std::time::{Duration, Instant};

    #[test]
    fn waits_then_continues_with_the_payload_unchanged() {
        let payload = json!({"data": {"secs": "0.2"}});
        let began = Instant::now();
        let (port, after) = run_node(
            "DelayNode",
            &json!({"delay": "{{data.secs}}"}),
            payload.clone(),
        )
        .unwrap();
        assert!(began.elapsed() >= Duration::from_millis(200));
        assert_eq!(port, 0);
        assert_eq!(after, payload);
    }

    /// Executes a node without waiting, returning what it did.
    fn execute(harness: &Harness, node: &crate::node::CompiledNodeType, payload: Value) -> Outcome {
        let run = crate::testing::run_info(&harness.flow_id);
        let mut debug = Vec::new();
        let mut payload = payload;
        node.node
            .execute(
                &mut crate::node::NodeContext {
                    run: &run,
                    storage: None,
                    services: &harness.services,
                    debug: &mut debug,
                    node_id: "n",
                    payload_ends_here: false,
                },
                &mut payload,
            )
            .unwrap()
    }

    #[test]
    fn the_wait_is_a_future_not_a_blocked_thread() {
        let node = compile_node("DelayNode", &json!({"delay": "0.3"})).unwrap();
        let harness = Harness::new();
        let waits: Vec<_> = (0..3)
            .map(|_| match execute(&harness, &node, json!({})) {
                Outcome::Wait(future) => future,
                _ => panic!("a delay waits"),
            })
            .collect();
        // Three waits on one thread overlap: together they take one delay, not three.
        let began = Instant::now();
        let resumed = harness.runtime.block_on(futures::future::join_all(waits));
        assert!(
            began.elapsed() < Duration::from_millis(800),
            "{:?}",
            began.elapsed()
        );
        assert!(resumed
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.port == 0)));
    }

    #[test]
    fn the_older_key_and_numbers_are_accepted() {
        for config in [
            json!({"durationTemplate": "0.05"}),
            json!({"delay": 0.05}),
            json!({"delay": "", "durationTemplate": "{{data.s}}"}),
        ] {
            let (port, _) = run_node("DelayNode", &config, json!({"data": {"s": 0.05}})).unwrap();
            assert_eq!(port, 0, "{config}");
        }
        // `delay` wins when both are given.
        let node =
            compile_node("DelayNode", &json!({"delay": "0", "durationTemplate": "5"})).unwrap();
        let harness = Harness::new();
        let began = Instant::now();
        harness.run(&node, json!({})).unwrap();
        assert!(began.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn zero_continues_at_once() {
        let node = compile_node("DelayNode", &json!({"delay": "{{data.s}}"})).unwrap();
        let harness = Harness::new();
        let (port, _) = harness.run(&node, json!({"data": {"s": 0}})).unwrap();
        assert_eq!(port, 0);
        let node = compile_node("DelayNode", &json!({"delay": "0"})).unwrap();
        let outcome = execute(&harness, &node, json!({}));
        assert!(matches!(outcome, Outcome::Port(0)), "no wait for 0 s");
    }

    #[test]
    fn bad_values_at_run_time_halt() {
        let run = |payload: Value| {
            run_node("DelayNode", &json!({"delay": "{{data.s}}"}), payload).unwrap_err()
        };
        let error = run(json!({"data": {"s": 60}}));
        assert_eq!(error.name, ErrorName::ValidationError);
        assert!(error.message.contains("limit of 59 s"), "{error}");
        let error = run(json!({"data": {"s": "soon"}}));
        assert_eq!(error.name, ErrorName::ValidationError);
        assert!(error.message.contains("number of seconds"), "{error}");
        assert_eq!(
            run(json!({"data": {"s": -1}})).name,
            ErrorName::ValidationError
        );
        assert_eq!(
            run(json!({"data": {"s": "Infinity"}})).name,
            ErrorName::ValidationError
        );
        // Rendering empty is a template failure.
        let error = run(json!({"data": {}}));
        assert_eq!(error.name, ErrorName::TemplateError);
        assert!(error.message.contains("delay"), "{error}");
    }

    #[test]
    fn config_is_checked() {
        for ok in ["59", "0", "1.5", " 2 ", "{{data.s}}", "1e1"] {
            let node = compile_node("DelayNode", &json!({ "delay": ok })).unwrap();
            assert_eq!(node.ports, 1);
        }
        for (bad, says) in [
            (json!({}), "delay is required"),
            (json!({"delay": ""}), "delay is required"),
            (
                json!({"delay": null, "durationTemplate": " "}),
                "delay is required",
            ),
            (json!({"delay": "60"}), "limit of 59 s"),
            (json!({"durationTemplate": "120"}), "limit of 59 s"),
            (json!({"delay": 59.5}), "limit of 59 s"),
            (json!({"delay": "soon"}), "number of seconds"),
            (json!({"delay": "-1"}), "negative"),
            (json!({"delay": true}), "template or a number"),
            (json!({"delay": "{{#if}}"}), "delay"),
        ] {
            let error = compile_node("DelayNode", &bad).err().unwrap();
            assert!(
                error.0.contains("(DelayNode)") && error.0.contains(says),
                "{bad}: {error}"
            );
        }
    }
}
