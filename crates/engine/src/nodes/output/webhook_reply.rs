//! `WebhookReplyNode` ("Webhook: Reply"): answers the webhook request a run was started by,
//! when that webhook waits for a reply (`waitForReply: true`).
//!
//! Config: `replyIdPath` (default `data.replyId`), `responseCodeTemplate` (a status; blank or
//! not a status from 200 to 599 ⇒ 200), `bodyTemplateType` (`string`: `bodyTemplate` is a
//! template; `path`: `bodyTemplate` is a payload path whose value is the body, text as it is and
//! anything else as JSON; `payload`: the whole payload as JSON), `headerInfo`
//! (`[{keyTemplate, valueTemplate}]`; the older `key` spelling is read too).
//!
//! Decisions:
//! * No reply id at the path, or one nobody waits for any more (already answered — the first
//!   reply wins —, timed out, another application's, or a webhook that does not wait): the node
//!   does nothing and the path goes on. That is how Losant's node behaves without
//!   `waitForReply`.
//! * `Content-Type` may be `application/json`, `application/xml`, `text/plain`, `text/xml` or
//!   `text/csv` (with parameters such as a charset); anything else, or none, is
//!   `application/json` (Losant's rule).
//! * A body over 256 KB halts the run with `PayloadTooLarge`; a header name or value that HTTP
//!   cannot carry halts it with `ValidationError`; the request then gets its 504 when the wait
//!   ends, unless a Workflow Error flow replies (its `data.replyId`).
//! * `isWebsocketMessage: true` (WebSocket webhooks) is a compile error: flowd's webhooks are
//!   HTTP only.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{path, render, template};
use crate::path::PayloadPath;
use crate::replies::{WebhookReply, MAX_REPLY_BYTES};
use crate::template::Template;
use crate::value::JsValue;
use serde::Deserialize;
use serde_json::Value;

/// Reply content types Losant allows; others become `application/json`.
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/xml",
    "text/plain",
    "text/xml",
    "text/csv",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    reply_id_path: Option<String>,
    is_websocket_message: Option<bool>,
    response_code_template: Option<String>,
    body_template_type: Option<String>,
    body_template: Option<String>,
    encoding_template: Option<String>,
    header_info: Option<Vec<HeaderConfig>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeaderConfig {
    key_template: Option<String>,
    key: Option<String>,
    value_template: Option<String>,
}

enum Body {
    Text(Template),
    Path(PayloadPath),
    Payload,
}

pub struct WebhookReplyNode {
    reply_id: PayloadPath,
    status: Template,
    body: Body,
    headers: Vec<(Template, Template)>,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    if config.is_websocket_message == Some(true) {
        return Err(spec.error(
            "isWebsocketMessage: flowd's webhooks are HTTP only (WebSocket webhooks are not supported yet)",
        ));
    }
    let _ = config.encoding_template;
    let reply_id = match config.reply_id_path.as_deref().map(str::trim) {
        None | Some("") => "data.replyId",
        Some(text) => text,
    };
    let body_text = config.body_template.unwrap_or_default();
    let body = match config.body_template_type.as_deref().unwrap_or("string") {
        "string" | "" => Body::Text(template(spec, "bodyTemplate", &body_text)?),
        "path" if body_text.trim().is_empty() => {
            return Err(
                spec.error("bodyTemplate must name a payload path when bodyTemplateType is path")
            )
        }
        "path" => Body::Path(path(spec, "bodyTemplate", body_text.trim())?),
        "payload" => Body::Payload,
        other => {
            return Err(spec.error(format!(
                "bodyTemplateType must be string, path or payload, not \"{other}\""
            )))
        }
    };
    let mut headers = Vec::new();
    for (index, header) in config
        .header_info
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let key = header.key_template.or(header.key).unwrap_or_default();
        headers.push((
            template(spec, &format!("headerInfo[{index}].keyTemplate"), &key)?,
            template(
                spec,
                &format!("headerInfo[{index}].valueTemplate"),
                header.value_template.as_deref().unwrap_or(""),
            )?,
        ));
    }
    Ok(CompiledNodeType::new(
        WebhookReplyNode {
            reply_id: path(spec, "replyIdPath", reply_id)?,
            status: template(
                spec,
                "responseCodeTemplate",
                config.response_code_template.as_deref().unwrap_or(""),
            )?,
            body,
            headers,
        },
        1,
    ))
}

/// The JSON text of a value, as a reply body carries it: a lone number as JavaScript prints
/// it (`1.0` as `1`); anything else as it is, serialized in place rather than copied first.
fn json_text(value: &Value) -> String {
    let text = match value {
        Value::Number(_) => JsValue::from(value)
            .to_json()
            .map(|v| serde_json::to_string(&v)),
        other => Some(serde_json::to_string(other)),
    };
    // A `Value` always serializes (its keys are strings).
    text.and_then(Result::ok).unwrap_or_default()
}

impl WebhookReplyNode {
    fn reply(&self, payload: &Value) -> Result<WebhookReply, NodeError> {
        let status = render(&self.status, payload)?
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|s| (200..=599).contains(s))
            .unwrap_or(200);
        let body = match &self.body {
            Body::Text(template) => render(template, payload)?,
            Body::Path(path) => match path.get(payload).as_deref() {
                None => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => json_text(other),
            },
            Body::Payload => json_text(payload),
        };
        if body.len() > MAX_REPLY_BYTES {
            return Err(NodeError::new(
                ErrorName::PayloadTooLarge,
                format!(
                    "the reply body is {} bytes; a webhook reply may be at most {MAX_REPLY_BYTES}",
                    body.len()
                ),
            ));
        }
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        let mut content_type = None;
        for (key, value) in &self.headers {
            let name = render(key, payload)?.trim().to_owned();
            let value = render(value, payload)?;
            if name.is_empty() {
                continue;
            }
            if header_ok(&name, &value).is_err() {
                return Err(NodeError::new(
                    ErrorName::ValidationError,
                    format!("header \"{name}\" cannot be sent in an HTTP reply"),
                ));
            }
            if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value);
            } else {
                headers.push((name, value));
            }
        }
        let content_type = content_type
            .filter(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                CONTENT_TYPES.contains(&essence.as_str())
            })
            .unwrap_or_else(|| "application/json".into());
        headers.push(("Content-Type".into(), content_type));
        Ok(WebhookReply {
            status,
            headers,
            body: body.into_bytes(),
        })
    }
}

/// Whether a header name and value can be sent: a token name and a value without control
/// characters other than tab.
fn header_ok(name: &str, value: &str) -> Result<(), ()> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(token) || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(());
    }
    Ok(())
}

impl Node for WebhookReplyNode {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let reply_id = match self.reply_id.get(payload).as_deref() {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Ok(Outcome::Port(0)),
        };
        let reply = self.reply(payload)?;
        cx.services
            .replies
            .send(&cx.run.flow.application_id, &reply_id, reply);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    fn compile_error(config: Value) -> String {
        match compile_node("WebhookReplyNode", &config) {
            Ok(_) => panic!("{config} compiled"),
            Err(e) => e.0,
        }
    }

    /// Runs the node with a pending reply `hook.1` (of the harness's application) and returns
    /// what the waiting request got.
    fn reply_to(config: Value, payload: Value) -> crate::replies::WebhookReply {
        let h = Harness::new();
        let node = compile_node("WebhookReplyNode", &config).expect("compiles");
        let (receiver, _guard) =
            h.services
                .replies
                .open("app", "hook.1", std::time::Duration::from_secs(60));
        let (port, _) = h.run(&node, payload).expect("runs");
        assert_eq!(port, 0);
        h.runtime.block_on(receiver).expect("a reply")
    }

    fn header<'a>(reply: &'a crate::replies::WebhookReply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_error(json!({"isWebsocketMessage": true})).contains("HTTP only"));
        assert!(compile_error(json!({"bodyTemplateType": "xml"})).contains("bodyTemplateType"));
        assert!(compile_error(json!({"bodyTemplateType": "path"})).contains("payload path"));
        assert!(compile_error(json!({"bodyTemplate": "{{#if}}"})).contains("bodyTemplate"));
        assert!(compile_error(json!({"replyIdPath": "a..b"})).contains("replyIdPath"));
    }

    #[test]
    fn replies_with_status_headers_and_a_templated_body() {
        let reply = reply_to(
            json!({"responseCodeTemplate": "{{data.code}}", "bodyTemplate": "{\"queued\":{{data.n}}}",
                   "headerInfo": [{"keyTemplate": "Content-Type", "valueTemplate": "application/json"},
                                  {"key": "X-Run", "valueTemplate": "{{data.n}}"}]}),
            json!({"data": {"replyId": "hook.1", "code": "202", "n": 3}}),
        );
        assert_eq!(reply.status, 202);
        assert_eq!(reply.body, br#"{"queued":3}"#);
        assert_eq!(header(&reply, "x-run"), Some("3"));
        assert_eq!(header(&reply, "content-type"), Some("application/json"));
    }

    #[test]
    fn bodies_from_a_path_or_the_payload() {
        let reply = reply_to(
            json!({"bodyTemplateType": "path", "bodyTemplate": "working.result"}),
            json!({"data": {"replyId": "hook.1"}, "working": {"result": {"mean": 2.5}}}),
        );
        assert_eq!(reply.body, br#"{"mean":2.5}"#);
        let reply = reply_to(
            json!({"bodyTemplateType": "path", "bodyTemplate": "working.text",
                   "headerInfo": [{"keyTemplate": "content-type", "valueTemplate": "text/csv; charset=utf-8"}]}),
            json!({"data": {"replyId": "hook.1"}, "working": {"text": "a,b\n1,2"}}),
        );
        assert_eq!(reply.body, b"a,b\n1,2");
        assert_eq!(
            header(&reply, "content-type"),
            Some("text/csv; charset=utf-8")
        );
        let reply = reply_to(
            json!({"bodyTemplateType": "payload"}),
            json!({"data": {"replyId": "hook.1"}}),
        );
        assert_eq!(reply.body, br#"{"data":{"replyId":"hook.1"}}"#);
    }

    #[test]
    fn a_path_body_prints_as_javascript_would() {
        for (value, text) in [
            (json!(2.0), "2"),
            (json!(-0.0), "0"),
            (json!(2.5), "2.5"),
            (json!(null), "null"),
            (json!(false), "false"),
            (json!([1, "a", {"b": null}]), r#"[1,"a",{"b":null}]"#),
            (json!({"z": 1, "a": [2]}), r#"{"z":1,"a":[2]}"#),
        ] {
            let reply = reply_to(
                json!({"bodyTemplateType": "path", "bodyTemplate": "working.v"}),
                json!({"data": {"replyId": "hook.1"}, "working": {"v": value}}),
            );
            assert_eq!(String::from_utf8_lossy(&reply.body), text, "{value}");
        }
    }

    #[test]
    fn bad_statuses_become_200_and_odd_content_types_json() {
        for code in ["", "abc", "99", "1000", "{{data.none}}"] {
            let reply = reply_to(
                json!({"responseCodeTemplate": code, "bodyTemplate": "x",
                       "headerInfo": [{"keyTemplate": "Content-Type", "valueTemplate": "text/html"}]}),
                json!({"data": {"replyId": "hook.1"}}),
            );
            assert_eq!(reply.status, 200, "{code}");
            assert_eq!(header(&reply, "content-type"), Some("application/json"));
        }
    }

    #[test]
    fn without_a_waiting_request_nothing_happens() {
        let h = Harness::new();
        let node = compile_node("WebhookReplyNode", &json!({"bodyTemplate": "x"})).unwrap();
        // No reply id, and a reply id nobody waits for: the path goes on.
        assert_eq!(h.run(&node, json!({"data": {}})).unwrap().0, 0);
        assert_eq!(
            h.run(&node, json!({"data": {"replyId": "hook.gone"}}))
                .unwrap()
                .0,
            0
        );
        // Another application's waiting request is not answered.
        let (mut receiver, _guard) =
            h.services
                .replies
                .open("someone-else", "hook.9", std::time::Duration::from_secs(60));
        h.run(&node, json!({"data": {"replyId": "hook.9"}}))
            .unwrap();
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn oversized_bodies_and_bad_headers_halt() {
        let h = Harness::new();
        let node = compile_node(
            "WebhookReplyNode",
            &json!({"bodyTemplateType": "path", "bodyTemplate": "data.big"}),
        )
        .unwrap();
        let big = "x".repeat(256 * 1024 + 1);
        let error = h
            .run(&node, json!({"data": {"replyId": "hook.1", "big": big}}))
            .unwrap_err();
        assert_eq!(error.name, ErrorName::PayloadTooLarge);
        let node = compile_node(
            "WebhookReplyNode",
            &json!({"headerInfo": [{"keyTemplate": "Bad Header", "valueTemplate": "x"}]}),
        )
        .unwrap();
        let error = h
            .run(&node, json!({"data": {"replyId": "hook.1"}}))
            .unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
    }
}
