//! `JWTDecodeNode`: reads a JSON Web Token without checking its signature and writes its
//! claims to `destinationPath` — or, with `complete: true`, `{header, payload, signature}`
//! (the signature as the token's base64url text).
//!
//! Decisions:
//! * A token that is not three base64url parts with a JSON object for a header is a failure
//!   of the node's action: `{"error": {"type": "JsonWebTokenError", "message": "jwt
//!   malformed"}}` is written to `destinationPath` ("otherwise it will be an error object")
//!   and the run continues. Claims that are not JSON are kept as their text, as Node.js's
//!   `jsonwebtoken` does. The signature part is not decoded here (JWT: Verify checks it).
//! * A leading `Bearer ` (any case) is removed, so `{{data.headers.authorization}}` works.
//! * `tokenTemplate` rendering empty halts with `TemplateError` (a required template).

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::jwt_create::error_value;
use crate::nodes::{optional_path, render_required, template};
use crate::path::PayloadPath;
use crate::template::Template;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    token_template: Option<String>,
    complete: Option<bool>,
    destination_path: Option<String>,
}

/// A token split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub header: Value,
    pub payload: Value,
    /// The third part, base64url.
    pub signature: String,
    /// `header.payload`, the signed text.
    pub signing_input: String,
}

/// The token text without a `Bearer ` prefix or surrounding space.
pub(crate) fn token_text(text: &str) -> &str {
    let t = text.trim();
    match t.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => t[7..].trim(),
        _ => t,
    }
}

/// base64url as JWTs are read in practice: padding optional, stray trailing bits ignored.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode_part(part: &str) -> Option<Vec<u8>> {
    LENIENT.decode(part).ok()
}

/// Splits and decodes a compact JWS; `Err("jwt malformed")` when it is not one.
pub(crate) fn parse_token(text: &str) -> Result<Token, String> {
    let malformed = || "jwt malformed".to_owned();
    let text = token_text(text);
    let parts: Vec<&str> = text.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(malformed());
    };
    let header_json: Value = decode_part(header)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .filter(Value::is_object)
        .ok_or_else(malformed)?;
    let payload_bytes = decode_part(payload).ok_or_else(malformed)?;
    let payload_json = serde_json::from_slice(&payload_bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&payload_bytes).into_owned()));
    Ok(Token {
        header: header_json,
        payload: payload_json,
        signature: signature.to_owned(),
        signing_input: format!("{header}.{payload}"),
    })
}

pub struct JwtDecode {
    token: Template,
    complete: bool,
    destination: PayloadPath,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let text = config
        .token_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| spec.error("tokenTemplate is required"))?;
    let destination = optional_path(spec, "destinationPath", config.destination_path.as_deref())?
        .ok_or_else(|| spec.error("destinationPath is required"))?;
    Ok(CompiledNodeType::new(
        JwtDecode {
            token: template(spec, "tokenTemplate", text)?,
            complete: config.complete.unwrap_or(false),
            destination,
        },
        1,
    ))
}

impl Node for JwtDecode {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let text = render_required(&self.token, "tokenTemplate", payload)?;
        let result = match parse_token(&text) {
            Ok(token) if self.complete => json!({
                "header": token.header,
                "payload": token.payload,
                "signature": token.signature,
            }),
            Ok(token) => token.payload,
            Err(message) => error_value(message),
        };
        self.destination.set(payload, result);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_token;
    use crate::error::ErrorName;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    // {"alg":"HS256","typ":"JWT"}.{"sub":"node","iat":1700000000}, HMAC with "s3cret".
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.\
        uIH_zmoVkn1PmxNPBRv_Ba-b0SbRbBsf3yBTI-JR0Mo";

    fn decode(config: Value, token: &str) -> Value {
        let (port, after) =
            run_node("JWTDecodeNode", &config, json!({"data": {"token": token}})).unwrap();
        assert_eq!(port, 0);
        after["working"]["claims"].clone()
    }

    fn config(complete: bool) -> Value {
        json!({"tokenTemplate": "{{data.token}}", "complete": complete,
            "destinationPath": "working.claims"})
    }

    #[test]
    fn claims_or_the_complete_token() {
        assert_eq!(
            decode(config(false), TOKEN),
            json!({"sub": "node", "iat": 1700000000})
        );
        assert_eq!(
            decode(config(true), TOKEN),
            json!({"header": {"alg": "HS256", "typ": "JWT"},
                "payload": {"sub": "node", "iat": 1700000000},
                "signature": "uIH_zmoVkn1PmxNPBRv_Ba-b0SbRbBsf3yBTI-JR0Mo"})
        );
        // No signature check, and a Bearer prefix is dropped.
        let tampered = format!("Bearer {}x", &TOKEN[..TOKEN.len() - 1]);
        assert_eq!(decode(config(false), &tampered)["sub"], "node");
        let (_, after) = run_node(
            "JWTDecodeNode",
            &json!({"tokenTemplate": "{{data.token}}", "destinationPath": "w"}),
            json!({"data": {"token": TOKEN}}),
        )
        .unwrap();
        assert_eq!(after["w"]["iat"], 1700000000);
    }

    #[test]
    fn malformed_tokens_write_an_error() {
        for bad in [
            "abc",
            "a.b",
            "a.b.c.d",
            "eyJhIjoxfQ.%%%.x",
            "bm90IGpzb24.eyJhIjoxfQ.x",
        ] {
            let result = decode(config(false), bad);
            assert_eq!(result["error"]["type"], "JsonWebTokenError", "{bad}");
        }
        // Claims that are not JSON stay text; an unsigned token decodes.
        let parsed = parse_token("eyJhbGciOiJub25lIn0.aGVsbG8.").unwrap();
        assert_eq!(parsed.payload, json!("hello"));
        assert_eq!(parsed.signature, "");
        let e = run_node("JWTDecodeNode", &config(false), json!({"data": {}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(
            compile_node("JWTDecodeNode", &config(true)).unwrap().ports,
            1
        );
        for bad in [
            json!({"destinationPath": "w"}),
            json!({"tokenTemplate": "{{t}}"}),
            json!({"tokenTemplate": "{{t}}", "destinationPath": "w", "complete": "yes"}),
            json!({"tokenTemplate": "{{#if}}", "destinationPath": "w"}),
            json!({"tokenTemplate": "{{t}}", "destinationPath": "{{w}}"}),
        ] {
            let e = compile_node("JWTDecodeNode", &bad).err().unwrap();
            assert!(e.0.contains("(JWTDecodeNode)"), "{bad}: {e}");
        }
    }
}
