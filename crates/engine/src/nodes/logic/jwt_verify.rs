//! `JWTVerifyNode`: checks a JSON Web Token's signature, expiry, start and issuer. Port 1 when
//! it is valid, port 0 when it is not; `errorPath`, when given, then receives why.
//!
//! * The algorithm is the token's header `alg`: `HS256/384/512` with `secretTemplate` as the
//!   shared secret, or `RS*`/`PS*`/`ES256/384/512` with `secretTemplate` holding a PEM public
//!   key (SPKI, or PKCS#1 for RSA; for EC a private key works too). A
//!   secret that is a PEM key accepts only the asymmetric algorithms and a plain secret only
//!   HMAC, so a token cannot switch the key's kind (the classic `alg` confusion); `none` is
//!   refused.
//! * `exp` (when a number) must be after now, `nbf` (when a number) not after now, and with
//!   `issuerTemplate` rendering non-blank the token's `iss` must equal it.
//!
//! Decisions:
//! * The error written to `errorPath` is `{"type", "message"}` with the names and messages of
//!   Node.js's `jsonwebtoken`, which Losant's node reports: `TokenExpiredError` / `jwt
//!   expired` (plus `expiredAt`, ISO 8601), `NotBeforeError` / `jwt not active` (plus
//!   `date`), and `JsonWebTokenError` for `jwt malformed`, `invalid signature`, `invalid
//!   algorithm`, `jwt signature is required`, `jwt issuer invalid. expected: …`. On the valid
//!   port `errorPath` is left alone.
//! * A leading `Bearer ` is removed from the token. No clock tolerance is applied.
//! * Templates HTML-escape as Handlebars does (`=` becomes `&#x3D;`): write PEM keys with
//!   three braces, `{{{globals.publicKey}}}`.
//! * `tokenTemplate` and `secretTemplate` rendering empty halt with `TemplateError`
//!   (required templates). Service credentials are not supported yet: a node naming one
//!   without a secret is a compile error.

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::logic::jwt_create::{check_credential, verify, Alg, JWT_ERROR};
use crate::nodes::logic::jwt_decode::parse_token;
use crate::nodes::{optional_path, render, render_required, template};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::date_to_iso;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    credential_name_template: Option<String>,
    secret_template: Option<String>,
    issuer_template: Option<String>,
    token_template: Option<String>,
    error_path: Option<String>,
}

pub struct JwtVerify {
    secret: Template,
    issuer: Option<Template>,
    token: Template,
    error: Option<PayloadPath>,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    check_credential(
        spec,
        config.credential_name_template.as_deref(),
        config.secret_template.as_deref(),
    )?;
    let token = config
        .token_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| spec.error("tokenTemplate is required"))?;
    let issuer = match config
        .issuer_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Some(template(spec, "issuerTemplate", text)?),
        None => None,
    };
    Ok(CompiledNodeType::new(
        JwtVerify {
            secret: template(
                spec,
                "secretTemplate",
                config.secret_template.as_deref().unwrap_or(""),
            )?,
            issuer,
            token: template(spec, "tokenTemplate", token)?,
            error: optional_path(spec, "errorPath", config.error_path.as_deref())?,
        },
        2,
    ))
}

fn failure(message: impl Into<String>) -> Value {
    json!({"type": JWT_ERROR, "message": message.into()})
}

/// `None` when the token is valid, else the error to report.
fn check(token: &str, secret: &str, issuer: Option<&str>, now_ms: i64) -> Option<Value> {
    let token = match parse_token(token) {
        Ok(token) => token,
        Err(message) => return Some(failure(message)),
    };
    let alg = match token.header.get("alg").and_then(Value::as_str) {
        Some("none") | None => return Some(failure("jwt signature is required")),
        Some(name) => match Alg::parse(name) {
            Some(alg) => alg,
            None => return Some(failure("invalid algorithm")),
        },
    };
    if token.signature.is_empty() {
        return Some(failure("jwt signature is required"));
    }
    match verify(
        alg,
        secret,
        token.signing_input.as_bytes(),
        &token.signature,
    ) {
        Ok(true) => {}
        Ok(false) => return Some(failure("invalid signature")),
        Err(message) => return Some(failure(message)),
    }
    let claim = |name: &str| token.payload.get(name).and_then(Value::as_f64);
    let iso = |seconds: f64| date_to_iso(seconds * 1000.0).map_or(Value::Null, Value::String);
    let now = now_ms as f64 / 1000.0;
    if let Some(nbf) = claim("nbf") {
        if now < nbf {
            return Some(
                json!({"type": "NotBeforeError", "message": "jwt not active",
                "date": iso(nbf)}),
            );
        }
    }
    if let Some(exp) = claim("exp") {
        if now >= exp {
            return Some(
                json!({"type": "TokenExpiredError", "message": "jwt expired",
                "expiredAt": iso(exp)}),
            );
        }
    }
    if let Some(issuer) = issuer.filter(|i| !i.trim().is_empty()) {
        if token.payload.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Some(failure(format!("jwt issuer invalid. expected: {issuer}")));
        }
    }
    None
}

impl Node for JwtVerify {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let token = render_required(&self.token, "tokenTemplate", payload)?;
        let secret = render_required(&self.secret, "secretTemplate", payload)?;
        let issuer = match &self.issuer {
            Some(template) => Some(render(template, payload)?),
            None => None,
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        match check(&token, &secret, issuer.as_deref(), now_ms) {
            None => Ok(Outcome::Port(1)),
            Some(error) => {
                if let Some(path) = &self.error {
                    path.set(payload, error);
                }
                Ok(Outcome::Port(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::error::ErrorName;
    use crate::nodes::logic::jwt_create::test_keys::*;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn mint(claims: Value, secret: &str, alg: &str) -> String {
        let config = json!({"secretTemplate": "{{{k}}}", "algorithmTemplate": alg,
            "dataTemplate": claims.to_string(), "expiresIn": null, "destinationPath": "t"});
        let (_, after) = run_node("JWTCreateNode", &config, json!({ "k": secret })).unwrap();
        after["t"]
            .as_str()
            .unwrap_or_else(|| panic!("{alg}: {}", after["t"]))
            .to_owned()
    }

    fn verify_node(token: &str, secret: &str, issuer: &str) -> (usize, Value) {
        let config = json!({"secretTemplate": "{{{data.secret}}}", "issuerTemplate": issuer,
            "tokenTemplate": "{{data.token}}", "errorPath": "working.jwtErr"});
        run_node(
            "JWTVerifyNode",
            &config,
            json!({"data": {"token": token, "secret": secret}}),
        )
        .unwrap()
    }

    #[test]
    fn valid_tokens_take_port_1() {
        let token = mint(json!({"sub": "u"}), "s3cret", "HS256");
        let (port, after) = verify_node(&token, "s3cret", "");
        assert_eq!(port, 1);
        assert!(after.get("working").is_none());
        let (port, _) = verify_node(&format!("Bearer {token}"), "s3cret", "");
        assert_eq!(port, 1);
        for (alg, private, public) in [
            ("RS256", RSA_PRIVATE_PKCS8, RSA_PUBLIC),
            ("PS512", RSA_PRIVATE_PKCS1, RSA_PUBLIC),
            ("ES256", P256_PRIVATE_SEC1, P256_PUBLIC),
            ("ES384", P384_PRIVATE_PKCS8, P384_PUBLIC),
            ("ES512", P521_PRIVATE_SEC1, P521_PUBLIC),
        ] {
            let token = mint(json!({"sub": "u"}), private, alg);
            assert_eq!(verify_node(&token, public, "").0, 1, "{alg}");
        }
        for line in NODE_TOKENS.lines() {
            let (alg, token) = line.split_once(' ').unwrap();
            let key = match alg {
                "RS256" => RSA_PUBLIC,
                "ES256" => P256_PUBLIC,
                "ES384" => P384_PUBLIC,
                "ES512" => P521_PUBLIC,
                _ => "s3cret",
            };
            assert_eq!(verify_node(token, key, "").0, 1, "{alg}");
        }
    }

    #[test]
    fn invalid_tokens_take_port_0_with_the_reason() {
        let now = chrono::Utc::now().timestamp();
        let cases = [
            (
                mint(json!({"sub": "u"}), "s3cret", "HS256"),
                "other",
                "",
                "JsonWebTokenError",
                "invalid signature",
            ),
            (
                "not.a.jwt".to_owned(),
                "s3cret",
                "",
                "JsonWebTokenError",
                "jwt malformed",
            ),
            (
                "abc".to_owned(),
                "s3cret",
                "",
                "JsonWebTokenError",
                "jwt malformed",
            ),
            (
                mint(json!({"exp": now - 10}), "s3cret", "HS256"),
                "s3cret",
                "",
                "TokenExpiredError",
                "jwt expired",
            ),
            (
                mint(json!({"nbf": now + 600}), "s3cret", "HS256"),
                "s3cret",
                "",
                "NotBeforeError",
                "jwt not active",
            ),
            (
                mint(json!({"iss": "a"}), "s3cret", "HS256"),
                "s3cret",
                "b",
                "JsonWebTokenError",
                "jwt issuer invalid. expected: b",
            ),
            (
                mint(json!({}), "s3cret", "HS256"),
                "s3cret",
                "b",
                "JsonWebTokenError",
                "jwt issuer invalid. expected: b",
            ),
            // An HMAC token checked against a public key, and the other way round.
            (
                mint(json!({}), "s3cret", "HS256"),
                RSA_PUBLIC,
                "",
                "JsonWebTokenError",
                "invalid algorithm",
            ),
            (
                mint(json!({}), RSA_PRIVATE_PKCS8, "RS256"),
                "s3cret",
                "",
                "JsonWebTokenError",
                "invalid algorithm",
            ),
            (
                mint(json!({}), P256_PRIVATE_SEC1, "ES256"),
                P384_PUBLIC,
                "",
                "JsonWebTokenError",
                "P-256",
            ),
            // alg none.
            (
                "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.".to_owned(),
                "s3cret",
                "",
                "JsonWebTokenError",
                "jwt signature is required",
            ),
        ];
        for (token, secret, issuer, kind, message) in cases {
            let (port, after) = verify_node(&token, secret, issuer);
            assert_eq!(port, 0, "{token}");
            let error = &after["working"]["jwtErr"];
            assert_eq!(error["type"], kind, "{error}");
            let text = error["message"].as_str().unwrap();
            assert!(
                text.contains(message) || (message == "P-256" && !text.is_empty()),
                "{text} lacks {message}"
            );
        }
        let expired = mint(json!({"exp": 1700000000}), "s", "HS256");
        let error = check(&expired, "s", None, 1_800_000_000_000).unwrap();
        assert_eq!(error["expiredAt"], "2023-11-14T22:13:20.000Z");
        // The issuer matches; exactly at exp is expired.
        let token = mint(json!({"iss": "me", "exp": 1800000000}), "s", "HS256");
        assert!(check(&token, "s", Some("me"), 1_799_999_999_999).is_none());
        assert!(check(&token, "s", Some("me"), 1_800_000_000_000).is_some());
    }

    #[test]
    fn empty_templates_halt() {
        let config =
            json!({"secretTemplate": "{{data.secret}}", "tokenTemplate": "{{data.token}}"});
        let e = run_node("JWTVerifyNode", &config, json!({"data": {"secret": "s"}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        let e = run_node(
            "JWTVerifyNode",
            &config,
            json!({"data": {"token": "a.b.c"}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        // Without an errorPath the invalid port is still taken.
        let (port, after) = run_node(
            "JWTVerifyNode",
            &config,
            json!({"data": {"token": "a.b.c", "secret": "s"}}),
        )
        .unwrap();
        assert_eq!(port, 0);
        assert_eq!(after, json!({"data": {"token": "a.b.c", "secret": "s"}}));
    }

    #[test]
    fn config_is_checked() {
        let ok = json!({"secretTemplate": "{{globals.jwtSecret}}",
            "tokenTemplate": "{{data.headers.authorization}}", "errorPath": "working.jwtErr"});
        assert_eq!(compile_node("JWTVerifyNode", &ok).unwrap().ports, 2);
        let e = compile_node(
            "JWTVerifyNode",
            &json!({"credentialNameTemplate": "cred", "tokenTemplate": "{{t}}"}),
        )
        .err()
        .unwrap();
        assert!(e.0.contains("credentials are not supported yet"), "{e}");
        for bad in [
            json!({"tokenTemplate": "{{t}}"}),
            json!({"secretTemplate": "s"}),
            json!({"secretTemplate": "s", "tokenTemplate": "{{t}}", "errorPath": "a..b"}),
            json!({"secretTemplate": "s", "tokenTemplate": ["x"]}),
            json!({"secretTemplate": "{{#if}}", "tokenTemplate": "{{t}}"}),
        ] {
            let e = compile_node("JWTVerifyNode", &bad).err().unwrap();
            assert!(e.0.contains("(JWTVerifyNode)"), "{bad}: {e}");
        }
    }
}
