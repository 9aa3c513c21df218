//! `RawFunctionNode` ("Function"): runs the user's JavaScript on the payload (or on the part of
//! it at `scopePath`) in the QuickJS sandbox, off the async executor threads. The script mutates
//! `payload` or returns a new value, which replaces it; `console.log` lines go to the flow's
//! debug output. A throw, the time cap or the memory cap halts the run.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::js::{self, JsError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome, Resume};
use crate::nodes::optional_path;
use crate::path::PayloadPath;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    #[serde(default)]
    script: String,
    scope_path: Option<String>,
}

pub struct Function {
    script: Arc<str>,
    scope: Option<PayloadPath>,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    Ok(CompiledNodeType::new(
        Function {
            script: Arc::from(config.script),
            scope: optional_path(spec, "scopePath", config.scope_path.as_deref())?,
        },
        1,
    ))
}

fn to_node_error(error: JsError) -> NodeError {
    match error {
        JsError::Timeout => NodeError::new(
            ErrorName::TimeoutError,
            "the Function node script ran out of time",
        ),
        JsError::OutOfMemory => NodeError::new(
            ErrorName::MemoryError,
            "the Function node script ran out of memory",
        ),
        JsError::Script { name, message } => {
            let name = match name.as_str() {
                "TypeError" => ErrorName::FunctionNodeTypeError,
                "RangeError" | "InternalError" => ErrorName::FunctionNodeRangeError,
                "ReferenceError" => ErrorName::FunctionNodeReferenceError,
                "SyntaxError" => ErrorName::FunctionNodeSyntaxError,
                "URIError" => ErrorName::FunctionNodeUriError,
                "EvalError" => ErrorName::FunctionNodeEvalError,
                _ => ErrorName::FunctionNodeError,
            };
            NodeError::new(name, message)
        }
        JsError::Internal(message) => NodeError::new(ErrorName::InternalError, message),
    }
}

impl Node for Function {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        if self.script.trim().is_empty() {
            return Ok(Outcome::Port(0));
        }
        // Written as JSON here, from the borrowed payload: the worker only parses it.
        let input = match &self.scope {
            None => js::payload_json(payload),
            Some(path) => match path.get(payload) {
                Some(scoped) => js::payload_json(&scoped),
                // A missing scope starts as an empty object, which the script can fill.
                None => Ok("{}".to_owned()),
            },
        }
        .map_err(to_node_error)?;
        let sandbox = cx.services.js.clone();
        let script = Arc::clone(&self.script);
        let scope = self.scope.clone();
        Ok(Outcome::Wait(Box::pin(async move {
            let outcome = sandbox
                .run_json(script, input)
                .await
                .map_err(to_node_error)?;
            let result = outcome.payload;
            Ok(Resume {
                port: 0,
                logs: outcome.logs,
                update: Some(Box::new(move |payload: &mut Value| {
                    match scope {
                        None => *payload = result,
                        Some(path) => path.set(payload, result),
                    }
                    Ok(())
                })),
            })
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::json;

    #[test]
    fn mutates_or_replaces_the_payload() {
        let config = json!({"script": "payload.working = { avg: payload.data.vals.reduce((a,b)=>a+b,0) / payload.data.vals.length };"});
        let (port, out) = run_node(
            "RawFunctionNode",
            &config,
            json!({"data": {"vals": [1, 2, 3]}}),
        )
        .unwrap();
        assert_eq!(port, 0);
        assert_eq!(out["working"]["avg"], json!(2));
        let config = json!({"script": "return { fresh: true };"});
        let (_, out) = run_node("RawFunctionNode", &config, json!({"data": 1})).unwrap();
        assert_eq!(out, json!({"fresh": true}));
    }

    #[test]
    fn scope_path_narrows_the_payload() {
        let config = json!({"script": "payload.n = payload.n * 2;", "scopePath": "data"});
        let (_, out) = run_node(
            "RawFunctionNode",
            &config,
            json!({"data": {"n": 21}, "other": 1}),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"n": 42}, "other": 1}));
    }

    #[test]
    fn failures_halt_with_their_names() {
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "throw new TypeError('bad');"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::FunctionNodeTypeError);
        assert_eq!(e.message, "bad");
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "payload.a.b.c = 1;"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::FunctionNodeTypeError);
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "throw 'plain';"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(
            (e.name, e.message.as_str()),
            (ErrorName::FunctionNodeError, "plain")
        );
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "while(true){}"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::TimeoutError);
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "let a=[]; while(true){a.push('xxxxxxxxxxxxxxxx'+a.length)}"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::MemoryError);
        let e = run_node(
            "RawFunctionNode",
            &json!({"script": "require('fs')"}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::FunctionNodeReferenceError);
    }

    #[test]
    fn empty_scripts_pass_through() {
        let (_, out) =
            run_node("RawFunctionNode", &json!({"script": "  "}), json!({"a": 1})).unwrap();
        assert_eq!(out, json!({"a": 1}));
        assert!(compile_node("RawFunctionNode", &json!({"script": 5})).is_err());
        assert!(compile_node(
            "RawFunctionNode",
            &json!({"script": "x", "scopePath": "a..b"})
        )
        .is_err());
    }
}
