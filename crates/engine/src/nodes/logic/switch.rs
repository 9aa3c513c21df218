//! `SwitchNode`: renders `switchTemplate` and compares the text with each case's rendered
//! `caseTemplate`, in order, by exact string equality. The first match `cases[k]` continues on
//! port `k + 1`; no match continues on port 0, the default (the newer port order of NODES.md;
//! the older revision put the default last). The payload is not changed.
//!
//! Decisions:
//! * `switchTemplate` and every `caseTemplate` are required templates: missing or empty ones
//!   are compile errors, and one that renders empty at run time halts with `TemplateError`
//!   (FLOW-JSON §7.4). Cases are rendered lazily, so a case after the match is never rendered.
//! * `caseLabel` (canvas only) and `dontBreak` (no runtime effect in the newer revision) are
//!   ignored.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{render_required, template};
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    switch_template: Option<String>,
    cases: Vec<CaseConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaseConfig {
    case_template: Option<String>,
}

pub struct Switch {
    value: Template,
    cases: Vec<Template>,
}

fn required(
    spec: &NodeSpec<'_>,
    field: &str,
    text: Option<&str>,
) -> Result<Template, CompileError> {
    match text {
        Some(text) if !text.is_empty() => template(spec, field, text),
        _ => Err(spec.error(format!("{field} is required"))),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let value = required(spec, "switchTemplate", config.switch_template.as_deref())?;
    let cases = config
        .cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            required(
                spec,
                &format!("cases[{i}].caseTemplate"),
                case.case_template.as_deref(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ports = cases.len() + 1;
    Ok(CompiledNodeType::new(Switch { value, cases }, ports))
}

impl Node for Switch {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let value = render_required(&self.value, "switchTemplate", payload)?;
        for (k, case) in self.cases.iter().enumerate() {
            let matched = match case.static_text() {
                Some(text) => text == value,
                None => render_required(case, "caseTemplate", payload)? == value,
            };
            if matched {
                return Ok(Outcome::Port(k + 1));
            }
        }
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn config() -> Value {
        json!({"switchTemplate": "{{data.mode}}", "cases": [
            {"caseTemplate": "auto", "caseLabel": "Auto"},
            {"caseTemplate": "manual", "caseLabel": "Manual", "dontBreak": true},
            {"caseTemplate": "{{globals.special}}"},
            {"caseTemplate": "manual"}
        ]})
    }

    fn port(payload: Value) -> usize {
        run_node("SwitchNode", &config(), payload).unwrap().0
    }

    #[test]
    fn each_case_has_its_port_and_the_default_is_port_0() {
        let g = json!({"special": "boost"});
        assert_eq!(port(json!({"data": {"mode": "auto"}, "globals": g})), 1);
        // The first match wins; dontBreak has no effect.
        assert_eq!(port(json!({"data": {"mode": "manual"}, "globals": g})), 2);
        assert_eq!(port(json!({"data": {"mode": "boost"}, "globals": g})), 3);
        assert_eq!(port(json!({"data": {"mode": "off"}, "globals": g})), 0);
        let payload = json!({"data": {"mode": "auto"}, "globals": g});
        let (_, after) = run_node("SwitchNode", &config(), payload.clone()).unwrap();
        assert_eq!(after, payload, "the payload is unchanged");
    }

    #[test]
    fn comparison_is_of_rendered_strings() {
        let config = json!({"switchTemplate": "{{data.n}}", "cases": [
            {"caseTemplate": "1.0"}, {"caseTemplate": "1"}, {"caseTemplate": "Auto"}]});
        let port = |payload| run_node("SwitchNode", &config, payload).unwrap().0;
        assert_eq!(port(json!({"data": {"n": 1}})), 2, "1 prints as \"1\"");
        assert_eq!(port(json!({"data": {"n": "1.0"}})), 1);
        assert_eq!(port(json!({"data": {"n": "auto"}})), 0, "case matters");
        assert_eq!(port(json!({"data": {"n": " 1"}})), 0, "no trimming");
    }

    #[test]
    fn a_value_that_renders_empty_halts() {
        let error = run_node("SwitchNode", &config(), json!({"data": {}})).unwrap_err();
        assert_eq!(error.name, ErrorName::TemplateError);
        assert!(error.message.contains("switchTemplate"), "{error}");
        // A case that renders empty halts when it is reached.
        let error = run_node(
            "SwitchNode",
            &config(),
            json!({"data": {"mode": "boost"}, "globals": {}}),
        )
        .unwrap_err();
        assert!(error.message.contains("caseTemplate"), "{error}");
        // …and is never rendered when an earlier case matches.
        assert_eq!(port(json!({"data": {"mode": "auto"}, "globals": {}})), 1);
    }

    #[test]
    fn no_cases_always_takes_the_default() {
        let config = json!({"switchTemplate": "x", "cases": []});
        let node = compile_node("SwitchNode", &config).unwrap();
        assert_eq!(node.ports, 1);
        assert_eq!(run_node("SwitchNode", &config, json!({})).unwrap().0, 0);
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(compile_node("SwitchNode", &config()).unwrap().ports, 5);
        for bad in [
            json!({"cases": []}),
            json!({"switchTemplate": "", "cases": []}),
            json!({"switchTemplate": "x"}),
            json!({"switchTemplate": "x", "cases": {}}),
            json!({"switchTemplate": "x", "cases": [{"caseLabel": "no template"}]}),
            json!({"switchTemplate": "x", "cases": [{"caseTemplate": ""}]}),
            json!({"switchTemplate": "x", "cases": [{"caseTemplate": 1}]}),
            json!({"switchTemplate": "{{#if}}", "cases": []}),
            json!({"switchTemplate": "x", "cases": [{"caseTemplate": "{{unknownHelper x}}"}]}),
        ] {
            let error = compile_node("SwitchNode", &bad).err().unwrap();
            assert!(error.0.contains("(SwitchNode)"), "{bad}: {error}");
        }
        let error = compile_node(
            "SwitchNode",
            &json!({"switchTemplate": "x", "cases": [{"caseTemplate": "a"}, {"caseTemplate": ""}]}),
        )
        .err()
        .unwrap();
        assert!(error.0.contains("cases[1].caseTemplate"), "{error}");
    }
}
