//! `WorkflowTriggerNode` ("Workflow"): presses a virtual button of another flow of the same
//! application — now (`immediate`), later (`schedule`, relative seconds or an absolute date,
//! under a run id that a later schedule replaces and `cancel` removes). The target button is
//! found by its `meta.uiId` or its key. `resultPath` receives the result object of NODES.md.
//!
//! A chain of Workflow Trigger nodes that starts runs which start runs … is cut at
//! [`MAX_CHAIN`] levels with a `ValidationError`, so a flow triggering itself cannot run
//! forever. Scheduled runs are kept in memory: a restart forgets them.

use crate::engine::Press;
use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome, Resume};
use crate::nodes::{json_template, optional_path, path, render, render_json, template};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

/// Deepest chain of runs started by Workflow Trigger nodes.
pub const MAX_CHAIN: u32 = 32;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    behavior: Option<String>,
    trigger_workflow_id: Option<String>,
    flow_version_template: Option<String>,
    trigger_virtual_button_id: Option<String>,
    payload_template_type: Option<String>,
    payload_template: Option<String>,
    scheduling: Option<String>,
    seconds_template: Option<String>,
    date_template: Option<String>,
    run_id_template: Option<String>,
    result_path: Option<String>,
}

enum Payload {
    Default,
    Json(JsonTemplate),
    Text(Template),
    Path(PayloadPath),
}

enum When {
    Now,
    After(Template),
    At(Template),
}

enum Behavior {
    Trigger { when: When },
    Cancel,
}

pub struct WorkflowTrigger {
    behavior: Behavior,
    flow: Template,
    version: Template,
    button: String,
    payload: Payload,
    run_id: Template,
    result: Option<PayloadPath>,
}

fn tmpl(spec: &NodeSpec<'_>, field: &str, text: &Option<String>) -> Result<Template, CompileError> {
    template(spec, field, text.as_deref().unwrap_or(""))
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let c: Config = spec.config()?;
    let behavior = match c.behavior.as_deref().unwrap_or("immediate") {
        "immediate" => Behavior::Trigger { when: When::Now },
        "schedule" => Behavior::Trigger {
            when: match c.scheduling.as_deref().unwrap_or("relative") {
                "relative" => When::After(tmpl(spec, "secondsTemplate", &c.seconds_template)?),
                "absolute" => When::At(tmpl(spec, "dateTemplate", &c.date_template)?),
                other => {
                    return Err(spec.error(format!(
                        "scheduling must be relative or absolute, not \"{other}\""
                    )))
                }
            },
        },
        "cancel" => Behavior::Cancel,
        other => {
            return Err(spec.error(format!(
                "behavior must be immediate, schedule or cancel, not \"{other}\""
            )))
        }
    };
    // A missing target is reported when the node runs, not when the flow is saved: exports
    // often carry half-configured nodes that their authors never ran.
    let button = c.trigger_virtual_button_id.clone().unwrap_or_default();
    let payload_text = c.payload_template.clone().unwrap_or_default();
    let payload = if payload_text.trim().is_empty() {
        Payload::Default
    } else {
        match c.payload_template_type.as_deref().unwrap_or("json") {
            "json" => Payload::Json(json_template(spec, "payloadTemplate", &payload_text)?),
            "string" => Payload::Text(template(spec, "payloadTemplate", &payload_text)?),
            "path" => Payload::Path(path(spec, "payloadTemplate", &payload_text)?),
            other => {
                return Err(spec.error(format!(
                    "payloadTemplateType must be json, string or path, not \"{other}\""
                )))
            }
        }
    };
    Ok(CompiledNodeType::new(
        WorkflowTrigger {
            behavior,
            flow: tmpl(spec, "triggerWorkflowId", &c.trigger_workflow_id)?,
            version: tmpl(spec, "flowVersionTemplate", &c.flow_version_template)?,
            button,
            payload,
            run_id: tmpl(spec, "runIdTemplate", &c.run_id_template)?,
            result: optional_path(spec, "resultPath", c.result_path.as_deref())?,
        },
        1,
    ))
}

fn invalid(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

impl Node for WorkflowTrigger {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let run_id = render(&self.run_id, payload)?;
        if let Behavior::Cancel = self.behavior {
            let result = if cx.services.schedule.cancel(&run_id) {
                json!({"runId": run_id, "success": true})
            } else {
                json!({"runId": run_id, "success": false,
                       "error": {"type": "NotFound", "message": format!("no scheduled run has id \"{run_id}\"")}})
            };
            if let Some(path) = &self.result {
                path.set(payload, result);
            }
            return Ok(Outcome::Port(0));
        }
        if cx.run.depth + 1 > MAX_CHAIN {
            return Err(invalid(format!(
                "Workflow Trigger nodes chained more than {MAX_CHAIN} runs deep; the chain is cut here"
            )));
        }
        let flow_id = render(&self.flow, payload)?.trim().to_owned();
        if flow_id.is_empty() || self.button.trim().is_empty() {
            return Err(invalid(
                "Workflow Trigger: triggerWorkflowId and triggerVirtualButtonId are required",
            ));
        }
        let version = render(&self.version, payload)?.trim().to_owned();
        let data = match &self.payload {
            Payload::Default => None,
            Payload::Json(t) => Some(render_json(t, payload)?),
            Payload::Text(t) => Some(Value::String(render(t, payload)?)),
            Payload::Path(p) => p.get(payload).map(|v| v.into_owned()),
        };
        let press = Press {
            key: self.button.clone(),
            payload: data.clone(),
            flow_version: match version.as_str() {
                "" | "default" => None,
                other => Some(other.to_owned()),
            },
            device_id: None,
            relay_id: Some(cx.run.flow.flow_id.clone()),
            relay_type: Some("flow".into()),
            depth: cx.run.depth + 1,
        };
        let starter = cx.services.runs.get().cloned().ok_or_else(|| {
            NodeError::new(ErrorName::InternalError, "runs cannot be started here")
        })?;
        let application_id = cx.run.flow.application_id.clone();
        let mut result = json!({
            "flowId": flow_id, "flowVersion": if version.is_empty() { "default" } else { &version },
            "virtualButtonId": self.button, "payload": null, "success": true,
        });
        // Set in place, not through `json!` (which would serialize it into a second copy).
        result["payload"] = data.clone().unwrap_or(Value::Null);
        match &self.behavior {
            Behavior::Trigger { when: When::Now } => {
                let result_path = self.result.clone();
                Ok(Outcome::Wait(Box::pin(async move {
                    starter
                        .press(application_id, flow_id, press)
                        .await
                        .map_err(|e| invalid(format!("Workflow Trigger: {e}")))?;
                    let update: crate::node::PayloadUpdate =
                        Box::new(move |payload: &mut Value| {
                            if let Some(path) = result_path {
                                path.set(payload, result);
                            }
                            Ok(())
                        });
                    Ok(Resume {
                        port: 0,
                        update: Some(update),
                        logs: Vec::new(),
                    })
                })))
            }
            Behavior::Trigger { when } => {
                let now = chrono::Utc::now();
                let at = match when {
                    When::After(t) => {
                        let text = render(t, payload)?;
                        let seconds = crate::value::string_to_number(&text);
                        if !seconds.is_finite() || text.trim().is_empty() {
                            return Err(invalid(format!(
                                "secondsTemplate \"{text}\" is not a number of seconds"
                            )));
                        }
                        now + chrono::Duration::milliseconds((seconds.max(0.0) * 1000.0) as i64)
                    }
                    When::At(t) => {
                        let text = render(t, payload)?;
                        flowd_model::time::parse_iso(text.trim()).ok_or_else(|| {
                            invalid(format!("dateTemplate \"{text}\" is not an ISO 8601 date"))
                        })?
                    }
                    When::Now => now,
                };
                let delay = (at - now).to_std().unwrap_or(Duration::ZERO);
                let run_id = if run_id.is_empty() {
                    flowd_model::id::new_id()
                } else {
                    run_id
                };
                let replaced = cx
                    .services
                    .schedule
                    .schedule(run_id.clone(), delay, async move {
                        if let Err(e) = starter.press(application_id, flow_id, press).await {
                            tracing::warn!(error = %e, "a scheduled Workflow Trigger run could not start");
                        }
                    })
                    .ok_or_else(|| invalid("too many scheduled runs are waiting"))?;
                result["runId"] = json!(run_id);
                result["runAt"] = json!(flowd_model::time::format_iso(at));
                result["newOrUpdate"] = json!(if replaced { "update" } else { "new" });
                if let Some(path) = &self.result {
                    path.set(payload, result);
                }
                Ok(Outcome::Port(0))
            }
            Behavior::Cancel => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::compile_node;
    use serde_json::json;

    #[test]
    fn config_is_checked() {
        // A missing target is checked when the node runs (see the fixture).
        assert!(compile_node("WorkflowTriggerNode", &json!({"triggerWorkflowId": "f"})).is_ok());
        assert!(compile_node("WorkflowTriggerNode", &json!({"behavior": "teleport"})).is_err());
        assert!(compile_node("WorkflowTriggerNode", &json!({"behavior": "schedule", "scheduling": "soon", "triggerWorkflowId": "f", "triggerVirtualButtonId": "b"})).is_err());
        assert!(compile_node("WorkflowTriggerNode", &json!({"triggerWorkflowId": "f", "triggerVirtualButtonId": "b", "payloadTemplate": "{nope", "payloadTemplateType": "xml"})).is_err());
        assert!(compile_node(
            "WorkflowTriggerNode",
            &json!({"behavior": "cancel", "runIdTemplate": "r"})
        )
        .is_ok());
    }
}
