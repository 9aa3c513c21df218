//! `JWTCreateNode`: signs a JSON Web Token and writes it (a string) to `destinationPath`.
//!
//! * Claims: `dataTemplateType: "json"` (the default) renders `dataTemplate` as a JSON
//!   template; `"path"` reads the object at the payload path `dataTemplate`. The claims get
//!   `iat` (now, in seconds), `exp` (`iat + expiresIn`) and `iss` (`issuerTemplate`, when it
//!   renders non-blank) — each only when the data does not already hold it: the data's own
//!   claims win.
//! * Header: `{"alg": …, "typ": "JWT"}`, then the keys of the optional `headerTemplate`
//!   (`headerTemplateType` `json` or `path`). An `alg` in the custom header replaces
//!   `algorithmTemplate`, as Losant documents.
//! * Signing: `algorithmTemplate` (default `HS256`) is one of `HS256 HS384 HS512` (the secret
//!   is the UTF-8 text of `secretTemplate`), `RS256 RS384 RS512 PS256 PS384 PS512` (a PEM RSA
//!   private key, PKCS#1 or PKCS#8) or `ES256 ES384 ES512` (a PEM EC private key, SEC1 or
//!   PKCS#8, on P-256, P-384, P-521). HS, RS and PS use the `jsonwebtoken` crate; ES uses the
//!   RustCrypto curves directly (`jsonwebtoken` has no ES512, and reads no SEC1 keys).
//! * Failures of the node's own action — an unknown algorithm, a key that does not fit it,
//!   data or a header that is not an object, an `expiresIn` that is not a number — write
//!   `{"error": {"type": "JsonWebTokenError", "message": …}}` to `destinationPath` and the
//!   run continues (WORKFLOW-SPEC §5). Template failures halt (`TemplateError`), and a
//!   `secretTemplate` or `dataTemplate` that renders empty halts too (a required template).
//!
//! Decisions:
//! * `expiresIn` is seconds: absent → 86,400; `null` or `""` → no `exp`; a number, or a
//!   template rendering one. `meta.isExpRequired: false` also means no `exp` (`meta.timeUnit`
//!   only chooses how the editor shows the number).
//! * Service credentials (`credentialNameTemplate`) have no store in flowd yet: a node that
//!   names a credential and no secret is a compile error saying so. With both, the secret is
//!   used.
//! * Templates HTML-escape as Handlebars does (`=` becomes `&#x3D;`), so a PEM key or a
//!   secret with such characters is written with three braces: `{{{globals.privateKey}}}`.
//! * The token is the compact serialisation with unpadded base64url, the header and claims
//!   JSON in their key order (header `alg` first).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::{
    json_template, optional_path, path, render, render_json, render_required, template,
};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template};
use crate::value::{number_to_json, string_to_number};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    credential_name_template: Option<String>,
    secret_template: Option<String>,
    algorithm_template: Option<String>,
    issuer_template: Option<String>,
    data_template: Option<String>,
    data_template_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    expires_in: Option<Value>,
    header_template: Option<String>,
    header_template_type: Option<String>,
    destination_path: Option<String>,
}

/// Keeps a JSON `null` as `Some(Value::Null)`, so that only a missing key is `None`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// Shared with JWT: Verify.

/// The `type` of errors written to the payload: `jsonwebtoken`'s (Node.js) error name.
pub(crate) const JWT_ERROR: &str = "JsonWebTokenError";

/// A signing algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// HMAC, RSA PKCS#1 v1.5 and RSA-PSS, through `jsonwebtoken`.
    Crate(jsonwebtoken::Algorithm),
    Es256,
    Es384,
    Es512,
}

impl Alg {
    pub(crate) fn parse(name: &str) -> Option<Alg> {
        use jsonwebtoken::Algorithm as A;
        Some(match name {
            "HS256" => Alg::Crate(A::HS256),
            "HS384" => Alg::Crate(A::HS384),
            "HS512" => Alg::Crate(A::HS512),
            "RS256" => Alg::Crate(A::RS256),
            "RS384" => Alg::Crate(A::RS384),
            "RS512" => Alg::Crate(A::RS512),
            "PS256" => Alg::Crate(A::PS256),
            "PS384" => Alg::Crate(A::PS384),
            "PS512" => Alg::Crate(A::PS512),
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "ES512" => Alg::Es512,
            _ => return None,
        })
    }

    /// Whether the key is a shared secret (HMAC) rather than a PEM key.
    pub(crate) fn is_hmac(self) -> bool {
        matches!(
            self,
            Alg::Crate(
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            )
        )
    }
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

macro_rules! ec_curve {
    ($module:ident, $curve:ident) => {
        mod $module {
            use $curve::ecdsa::signature::{Signer, Verifier};
            use $curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            use $curve::pkcs8::{DecodePrivateKey, DecodePublicKey};
            use $curve::{PublicKey, SecretKey};

            fn secret_key(pem: &str) -> Result<SecretKey, String> {
                SecretKey::from_sec1_pem(pem)
                    .or_else(|_| SecretKey::from_pkcs8_pem(pem))
                    .map_err(|_| {
                        format!(
                            "the key is not a PEM {} EC private key (SEC1 or PKCS#8)",
                            stringify!($curve)
                        )
                    })
            }

            pub(super) fn sign(pem: &str, message: &[u8]) -> Result<Vec<u8>, String> {
                let key = SigningKey::from_bytes(&secret_key(pem)?.to_bytes())
                    .map_err(|e| e.to_string())?;
                let signature: Signature = key.sign(message);
                Ok(signature.to_bytes().to_vec())
            }

            pub(super) fn verify(
                pem: &str,
                message: &[u8],
                signature: &[u8],
            ) -> Result<bool, String> {
                let public = match PublicKey::from_public_key_pem(pem) {
                    Ok(key) => key,
                    Err(_) => secret_key(pem)
                        .map_err(|_| {
                            format!("the key is not a PEM {} EC public key", stringify!($curve))
                        })?
                        .public_key(),
                };
                let key =
                    VerifyingKey::from_affine(*public.as_affine()).map_err(|e| e.to_string())?;
                let Ok(signature) = Signature::from_slice(signature) else {
                    return Ok(false);
                };
                Ok(key.verify(message, &signature).is_ok())
            }
        }
    };
}

ec_curve!(ec256, p256);
ec_curve!(ec384, p384);
ec_curve!(ec521, p521);

/// The DER inside the first PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN")?;
    let body_start = start + pem[start..].find('\n')? + 1;
    let end = body_start + pem[body_start..].find("-----END")?;
    let text: String = pem[body_start..end]
        .lines()
        .filter(|l| !l.contains(':'))
        .flat_map(|l| l.trim().chars())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn is_pem(key: &str) -> bool {
    key.contains("-----BEGIN")
}

/// Signs `message` (`header.claims`) and gives the base64url signature.
pub(crate) fn sign(alg: Alg, key: &str, message: &[u8]) -> Result<String, String> {
    if alg.is_hmac() == is_pem(key) {
        return Err(if alg.is_hmac() {
            format!("{alg:?} takes a secret, not a PEM key")
                .replace("Crate(", "")
                .replace(')', "")
        } else {
            "secretOrPrivateKey must be an asymmetric key (a PEM private key) for this \
             algorithm"
                .to_owned()
        });
    }
    match alg {
        Alg::Crate(algorithm) => {
            let not_rsa = "the key is not a PEM RSA private key (PKCS#1 or PKCS#8)";
            let encoding_key = if alg.is_hmac() {
                jsonwebtoken::EncodingKey::from_secret(key.as_bytes())
            } else if key.contains("-----BEGIN RSA PRIVATE KEY-----") {
                // PKCS#1: the DER is the key itself (the crate's PEM reader refuses some).
                jsonwebtoken::EncodingKey::from_rsa_der(&pem_body(key).ok_or(not_rsa)?)
            } else {
                jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).map_err(|_| not_rsa)?
            };
            jsonwebtoken::crypto::sign(message, &encoding_key, algorithm)
                .map_err(|e| format!("signing failed: {e}"))
        }
        Alg::Es256 => ec256::sign(key, message).map(|s| b64url(&s)),
        Alg::Es384 => ec384::sign(key, message).map(|s| b64url(&s)),
        Alg::Es512 => ec521::sign(key, message).map(|s| b64url(&s)),
    }
}

/// Checks a base64url signature of `message`. `Err` when the key does not fit the algorithm.
pub(crate) fn verify(alg: Alg, key: &str, message: &[u8], signature: &str) -> Result<bool, String> {
    if alg.is_hmac() == is_pem(key) {
        return Err("invalid algorithm".to_owned());
    }
    let Ok(raw) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature.trim_end_matches('='))
    else {
        return Ok(false);
    };
    match alg {
        Alg::Crate(algorithm) => {
            let decoding_key = if alg.is_hmac() {
                jsonwebtoken::DecodingKey::from_secret(key.as_bytes())
            } else {
                jsonwebtoken::DecodingKey::from_rsa_pem(key.as_bytes())
                    .map_err(|_| "the key is not a PEM RSA public key")?
            };
            jsonwebtoken::crypto::verify(&b64url(&raw), message, &decoding_key, algorithm)
                .map_err(|e| format!("verification failed: {e}"))
        }
        Alg::Es256 => ec256::verify(key, message, &raw),
        Alg::Es384 => ec384::verify(key, message, &raw),
        Alg::Es512 => ec521::verify(key, message, &raw),
    }
}

/// Refuses a node that names a service credential and no secret.
pub(crate) fn check_credential(
    spec: &NodeSpec<'_>,
    credential: Option<&str>,
    secret: Option<&str>,
) -> Result<(), CompileError> {
    let named = |t: Option<&str>| t.is_some_and(|t| !t.trim().is_empty());
    if named(credential) && !named(secret) {
        return Err(spec.error(
            "credentialNameTemplate names a service credential, and credentials are not \
             supported yet; give the secret in secretTemplate instead",
        ));
    }
    if !named(secret) {
        return Err(spec.error("secretTemplate is required"));
    }
    Ok(())
}

/// `{"error": {"type", "message"}}`, what the JWT nodes write when their action fails.
pub(crate) fn error_value(message: impl Into<String>) -> Value {
    json!({"error": {"type": JWT_ERROR, "message": message.into()}})
}

// ---------------------------------------------------------------------------------------------
// The node.

enum Source {
    Json(JsonTemplate),
    Path(PayloadPath),
}

enum Expiry {
    None,
    Seconds(f64),
    Rendered(Template),
}

pub struct JwtCreate {
    secret: Template,
    algorithm: Template,
    issuer: Option<Template>,
    data: Source,
    header: Option<Source>,
    expiry: Expiry,
    destination: PayloadPath,
}

fn source(
    spec: &NodeSpec<'_>,
    field: &str,
    kind_field: &str,
    kind: Option<&str>,
    text: &str,
) -> Result<Source, CompileError> {
    match kind.unwrap_or("json") {
        "json" | "" => Ok(Source::Json(json_template(spec, field, text)?)),
        "path" => Ok(Source::Path(path(spec, field, text)?)),
        other => Err(spec.error(format!(
            "{kind_field} must be json or path, not \"{other}\""
        ))),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    check_credential(
        spec,
        config.credential_name_template.as_deref(),
        config.secret_template.as_deref(),
    )?;
    let secret = template(
        spec,
        "secretTemplate",
        config.secret_template.as_deref().unwrap_or(""),
    )?;
    let algorithm_text = config
        .algorithm_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("HS256");
    let algorithm = template(spec, "algorithmTemplate", algorithm_text)?;
    if let Some(name) = algorithm.static_text() {
        if Alg::parse(name.trim()).is_none() {
            return Err(spec.error(format!(
                "algorithmTemplate: \"{name}\" is not one of HS256, HS384, HS512, RS256, RS384, \
                 RS512, PS256, PS384, PS512, ES256, ES384, ES512"
            )));
        }
    }
    let issuer = match config
        .issuer_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Some(template(spec, "issuerTemplate", text)?),
        None => None,
    };
    let data_text = config
        .data_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| spec.error("dataTemplate is required"))?;
    let data = source(
        spec,
        "dataTemplate",
        "dataTemplateType",
        config.data_template_type.as_deref(),
        data_text,
    )?;
    let header = match config
        .header_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Some(source(
            spec,
            "headerTemplate",
            "headerTemplateType",
            config.header_template_type.as_deref(),
            text,
        )?),
        None => None,
    };
    let exp_required = spec.meta.get("isExpRequired").and_then(Value::as_bool) != Some(false);
    let expiry = match (&config.expires_in, exp_required) {
        (_, false) => Expiry::None,
        (None, true) => Expiry::Seconds(86_400.0),
        (Some(Value::Null), true) => Expiry::None,
        (Some(Value::Number(n)), true) => Expiry::Seconds(n.as_f64().unwrap_or(f64::NAN)),
        (Some(Value::String(text)), true) if text.trim().is_empty() => Expiry::None,
        (Some(Value::String(text)), true) => {
            let compiled = template(spec, "expiresIn", text)?;
            match compiled.static_text() {
                Some(text) => {
                    let n = string_to_number(text);
                    if !n.is_finite() {
                        return Err(spec.error(format!("expiresIn \"{text}\" is not a number")));
                    }
                    Expiry::Seconds(n)
                }
                None => Expiry::Rendered(compiled),
            }
        }
        (Some(other), true) => {
            return Err(spec.error(format!(
                "config: expiresIn must be a number of seconds, not {other}"
            )))
        }
    };
    let destination = optional_path(spec, "destinationPath", config.destination_path.as_deref())?
        .ok_or_else(|| spec.error("destinationPath is required"))?;
    Ok(CompiledNodeType::new(
        JwtCreate {
            secret,
            algorithm,
            issuer,
            data,
            header,
            expiry,
            destination,
        },
        1,
    ))
}

fn read_object(
    source: &Source,
    field: &str,
    payload: &Value,
) -> Result<Result<Map<String, Value>, String>, NodeError> {
    let value = match source {
        Source::Json(template) => {
            if template.source().trim().is_empty() {
                return Err(NodeError::new(
                    ErrorName::TemplateError,
                    format!("{field} rendered empty"),
                ));
            }
            render_json(template, payload)?
        }
        Source::Path(path) => match path.get(payload) {
            Some(value) => value.into_owned(),
            None => {
                return Ok(Err(format!(
                    "{field}: the payload path {path} holds nothing"
                )))
            }
        },
    };
    Ok(match value {
        Value::Object(map) => Ok(map),
        other => Err(format!(
            "{field} must give an object, not {}",
            crate::value::JsValue::from(&other).type_name()
        )),
    })
}

impl JwtCreate {
    /// The token, or the message of a failure of the node's action.
    fn token(&self, payload: &Value) -> Result<Result<String, String>, NodeError> {
        let secret = render_required(&self.secret, "secretTemplate", payload)?;
        let algorithm = render(&self.algorithm, payload)?;
        let issuer = match &self.issuer {
            Some(template) => Some(render(template, payload)?),
            None => None,
        };
        let mut claims = match read_object(&self.data, "dataTemplate", payload)? {
            Ok(claims) => claims,
            Err(message) => return Ok(Err(message)),
        };
        let custom = match &self.header {
            Some(source) => match read_object(source, "headerTemplate", payload)? {
                Ok(header) => header,
                Err(message) => return Ok(Err(message)),
            },
            None => Map::new(),
        };
        let expires = match &self.expiry {
            Expiry::None => None,
            Expiry::Seconds(n) => Some(*n),
            Expiry::Rendered(template) => {
                let text = render(template, payload)?;
                let n = string_to_number(&text);
                if text.trim().is_empty() || !n.is_finite() {
                    return Ok(Err(format!(
                        "expiresIn \"{text}\" is not a number of seconds"
                    )));
                }
                Some(n)
            }
        };
        if expires.is_some_and(|n| !n.is_finite()) {
            return Ok(Err("expiresIn is not a number of seconds".to_owned()));
        }
        let algorithm = match custom.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            Some(other) => {
                return Ok(Err(format!(
                    "the header's alg must be a string, not {other}"
                )))
            }
            None => algorithm.trim().to_owned(),
        };
        let Some(alg) = Alg::parse(&algorithm) else {
            return Ok(Err(format!("\"{algorithm}\" is not a supported algorithm")));
        };
        let mut header = Map::new();
        header.insert("alg".into(), Value::String(algorithm));
        header.insert("typ".into(), Value::String("JWT".into()));
        header.extend(custom);
        let now = chrono::Utc::now().timestamp();
        let iat = match claims.get("iat").and_then(Value::as_f64) {
            Some(iat) => iat,
            None => {
                claims.insert("iat".into(), json!(now));
                now as f64
            }
        };
        if let Some(seconds) = expires {
            if !claims.contains_key("exp") {
                let exp = (iat + seconds).floor();
                claims.insert("exp".into(), number_to_json(exp).unwrap_or(Value::Null));
            }
        }
        if let Some(issuer) = issuer.filter(|i| !i.trim().is_empty()) {
            claims.entry("iss").or_insert(Value::String(issuer));
        }
        let input = format!(
            "{}.{}",
            b64url(Value::Object(header).to_string().as_bytes()),
            b64url(Value::Object(claims).to_string().as_bytes())
        );
        Ok(sign(alg, &secret, input.as_bytes()).map(|signature| format!("{input}.{signature}")))
    }
}

impl Node for JwtCreate {
    fn execute(&self, _: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let result = match self.token(payload)? {
            Ok(token) => Value::String(token),
            Err(message) => error_value(message),
        };
        self.destination.set(payload, result);
        Ok(Outcome::Port(0))
    }
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! Keys made with OpenSSL for these tests only, and tokens signed with them by Node.js.

    pub const RSA_PRIVATE_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDDPP/hpNnVlrS/
quZBoICcfpIzbMk6KslDBiBWxqwu4rADvvSYp7i/B7Wo3jeIeswd76yTNNsL+XlM
Eh+d8R/4peNLQBNfFU52Al8Lf0nhw4dkx8Uqs6U2DaSPtA9I+d3tvHHiPdOzt+Mo
IlxIcVUDFGLtbWZMJA1D2U7jnXDz2eKUJYhnlCdL7Zcao7Tf8iHHYZkXLcwPCZ3i
CBmGvjIdF9CsE148G95yrF35ZUCqJeU2SpZQr3w+FwdhUxX/MYHRCA8FGDVTP9SR
teZStOtNlX3e+0F762KpqeDFccW46alI4hrUaZCDQl4BhAwV3lthHCkVCKbOqQGL
+LWXEAw5AgMBAAECggEAC9QNwptssSKEx9nwQkiZkiGe9Ouh01rVP7DG08sMknic
ZlWy1u7OZBBxAo6X+bZK2IN1RqPco4CVRzUP4k9B+xv9xcjXg5q0WrTxEi6/iKSC
duodeWVR3JD+B9DGXkr5FZalpanOQiShaASQ57iqCFo7VhwbJwDGJvaq72JR/gv5
oVNFnOu62JTUH4HMADtJ6r1rX1vUHc6B3UH+YVqdiwQnTHsljZ/B6Hd2qGXPF7YR
P7LfTSsEzCR6eNejk69jEdrJlW5D1B3uzuBARrnFvs50G3hNtn6O9viK0uEy5kht
GxPYtpOlORIvn0xK3hgiZjSiGedc9LndZDIFNcDoOwKBgQDxcBc013yKVlPrImjB
NQiIB2N3sT7DnYjbh3C1+DdW1HLGBTSyMQ5vyuClE8hg9NWtz3wJVf02nhmZ49lI
L/96nevqZje12iz6eGOK3YGnyVn4Do7DqtrN7wzfRJJchGw4ckZIfEJ8BxfuAnLZ
+4xpqFcid5mFg53MbFThJwvGywKBgQDPA5EN8vm+Zu/cwYcpTzWsDyWdTVsH83pE
tM0/0J1M+lOWt1jJVHAT5Eg3aCVFvUxJNj+8yQeTRnrsAK0htA22RG5J8Bf2X5bG
DzH7EYSZ+R0gyTVSJcShp4cxtDGZZtMKCClDHfC9dhxmz0Oa2b9sjtODVyh5VCV5
RTPfzMHUiwKBgQCFuLmBsN/vlsS/9LzkVcU14jG7N1Y17ejA/hD1GFc+JkizWGrJ
TtZaIJmvlHdlC/XVYJeobBHk0EgJreLIUp1DgngJyTeN5xsGVut7HBgVoDXOZ/G2
ecjaSk5s0oPl7goqcVBwETKZkywzzPNjvCkW0//+vRMwmacqc83HLmMdZQKBgQDH
LiZWJo+3bHGjlS2ISKdaqqRFatWIm/Lrwo6ttPp0w3LD1BuAc1b3PLFjZjhelpmc
466F5WL9iFXjV289u3FqCwOW7oUPz79RR/OOH7fXMkKddhtws9gyte81mqwSbkXm
JB4XbupgURFYtlnU12gAepf2iljuDFGWEkisL+XbqwKBgBpuogEBY5T3D5TINjGA
eWsIpRuM15QELHoVvzqA+VgM1s5R1vYHGrqWRNKjzML88CHfn7+AROcK/R1L33I/
lHCv/TAjCoG/5oMrfDAwfz9m7AhwFtUY4juThM7CrJ6DXDigBJcT0kOMSl/10xwq
6FxHtSjwzRHWCOuT0dOD0W3V
-----END PRIVATE KEY-----
";
    pub const RSA_PRIVATE_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAwzz/4aTZ1Za0v6rmQaCAnH6SM2zJOirJQwYgVsasLuKwA770
mKe4vwe1qN43iHrMHe+skzTbC/l5TBIfnfEf+KXjS0ATXxVOdgJfC39J4cOHZMfF
KrOlNg2kj7QPSPnd7bxx4j3Ts7fjKCJcSHFVAxRi7W1mTCQNQ9lO451w89nilCWI
Z5QnS+2XGqO03/Ihx2GZFy3MDwmd4ggZhr4yHRfQrBNePBvecqxd+WVAqiXlNkqW
UK98PhcHYVMV/zGB0QgPBRg1Uz/UkbXmUrTrTZV93vtBe+tiqangxXHFuOmpSOIa
1GmQg0JeAYQMFd5bYRwpFQimzqkBi/i1lxAMOQIDAQABAoIBAAvUDcKbbLEihMfZ
8EJImZIhnvTrodNa1T+wxtPLDJJ4nGZVstbuzmQQcQKOl/m2StiDdUaj3KOAlUc1
D+JPQfsb/cXI14OatFq08RIuv4ikgnbqHXllUdyQ/gfQxl5K+RWWpaWpzkIkoWgE
kOe4qghaO1YcGycAxib2qu9iUf4L+aFTRZzrutiU1B+BzAA7Seq9a19b1B3Ogd1B
/mFanYsEJ0x7JY2fweh3dqhlzxe2ET+y300rBMwkenjXo5OvYxHayZVuQ9Qd7s7g
QEa5xb7OdBt4TbZ+jvb4itLhMuZIbRsT2LaTpTkSL59MSt4YImY0ohnnXPS53WQy
BTXA6DsCgYEA8XAXNNd8ilZT6yJowTUIiAdjd7E+w52I24dwtfg3VtRyxgU0sjEO
b8rgpRPIYPTVrc98CVX9Np4ZmePZSC//ep3r6mY3tdos+nhjit2Bp8lZ+A6Ow6ra
ze8M30SSXIRsOHJGSHxCfAcX7gJy2fuMaahXIneZhYOdzGxU4ScLxssCgYEAzwOR
DfL5vmbv3MGHKU81rA8lnU1bB/N6RLTNP9CdTPpTlrdYyVRwE+RIN2glRb1MSTY/
vMkHk0Z67ACtIbQNtkRuSfAX9l+Wxg8x+xGEmfkdIMk1UiXEoaeHMbQxmWbTCggp
Qx3wvXYcZs9Dmtm/bI7Tg1coeVQleUUz38zB1IsCgYEAhbi5gbDf75bEv/S85FXF
NeIxuzdWNe3owP4Q9RhXPiZIs1hqyU7WWiCZr5R3ZQv11WCXqGwR5NBICa3iyFKd
Q4J4Cck3jecbBlbrexwYFaA1zmfxtnnI2kpObNKD5e4KKnFQcBEymZMsM8zzY7wp
FtP//r0TMJmnKnPNxy5jHWUCgYEAxy4mViaPt2xxo5UtiEinWqqkRWrViJvy68KO
rbT6dMNyw9QbgHNW9zyxY2Y4XpaZnOOuheVi/YhV41dvPbtxagsDlu6FD8+/UUfz
jh+31zJCnXYbcLPYMrXvNZqsEm5F5iQeF27qYFERWLZZ1NdoAHqX9opY7gxRlhJI
rC/l26sCgYAabqIBAWOU9w+UyDYxgHlrCKUbjNeUBCx6Fb86gPlYDNbOUdb2Bxq6
lkTSo8zC/PAh35+/gETnCv0dS99yP5Rwr/0wIwqBv+aDK3wwMH8/ZuwIcBbVGOI7
k4TOwqyeg1w4oASXE9JDjEpf9dMcKuhcR7Uo8M0R1gjrk9HTg9Ft1Q==
-----END RSA PRIVATE KEY-----
";
    pub const RSA_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAwzz/4aTZ1Za0v6rmQaCA
nH6SM2zJOirJQwYgVsasLuKwA770mKe4vwe1qN43iHrMHe+skzTbC/l5TBIfnfEf
+KXjS0ATXxVOdgJfC39J4cOHZMfFKrOlNg2kj7QPSPnd7bxx4j3Ts7fjKCJcSHFV
AxRi7W1mTCQNQ9lO451w89nilCWIZ5QnS+2XGqO03/Ihx2GZFy3MDwmd4ggZhr4y
HRfQrBNePBvecqxd+WVAqiXlNkqWUK98PhcHYVMV/zGB0QgPBRg1Uz/UkbXmUrTr
TZV93vtBe+tiqangxXHFuOmpSOIa1GmQg0JeAYQMFd5bYRwpFQimzqkBi/i1lxAM
OQIDAQAB
-----END PUBLIC KEY-----
";
    pub const P256_PRIVATE_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIAmFz/YpgKs/0P7h/DBmyjjZ3Cdh4jftpX3WF2MqDI8koAoGCCqGSM49
AwEHoUQDQgAEgTkKk9G4jVMjdb8BwshpbPXCmpIS6TYgYaMGNMkTY9iaP+UPjWbl
tS2kFZpVSrR8nBfQ8mJJ8eSRH1B8NYQ+hQ==
-----END EC PRIVATE KEY-----
";
    pub const P256_PRIVATE_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgCYXP9imAqz/Q/uH8
MGbKONncJ2HiN+2lfdYXYyoMjyShRANCAASBOQqT0biNUyN1vwHCyGls9cKakhLp
NiBhowY0yRNj2Jo/5Q+NZuW1LaQVmlVKtHycF9DyYknx5JEfUHw1hD6F
-----END PRIVATE KEY-----
";
    pub const P256_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEgTkKk9G4jVMjdb8BwshpbPXCmpIS
6TYgYaMGNMkTY9iaP+UPjWbltS2kFZpVSrR8nBfQ8mJJ8eSRH1B8NYQ+hQ==
-----END PUBLIC KEY-----
";
    pub const P384_PRIVATE_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDCVVIHcDsGOQJiqmH7W
pmxgfhEbdzFcxhnaenqpLDFdO2zuWrEjGHoaXJEOb9xcZxChZANiAASrBSMcgYxy
7vDBDHgkUL7J+7198ATli1Wz2I9GX89smUaV/Iwk5um1Bf23HJtm5VI00ohSOOZ2
JMmB1xA2+1jrA5oidcN8N8EACYIVaVCJp6SoyLmxKmi5wxXCC9jfBus=
-----END PRIVATE KEY-----
";
    pub const P384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEqwUjHIGMcu7wwQx4JFC+yfu9ffAE5YtV
s9iPRl/PbJlGlfyMJObptQX9txybZuVSNNKIUjjmdiTJgdcQNvtY6wOaInXDfDfB
AAmCFWlQiaekqMi5sSpoucMVwgvY3wbr
-----END PUBLIC KEY-----
";
    pub const P521_PRIVATE_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MIHcAgEBBEIAnPA3gd+JKf22cH5/BGszwh3KvlI3en7utZGM98A7WjA/tpGQKQXg
+sJ64awYdQ4MpJWgqyDGbAR8VHXUHF4+6DugBwYFK4EEACOhgYkDgYYABAGrYG7J
RPomKZ0U04j7gHNhfyXL2DFrjaD/3Q3529UhNlNnCS07edMf1oc43haGWtZsrImD
uB9QK1je0OHfOZvjqwDhzej3ny34QPpZupL/vcSKQFjDTQVNo3ORtVxRZTczCf8D
k/aLQRndaT9mUrqRJ84PvWU9/Q0eNvQtjdix9Hn/gA==
-----END EC PRIVATE KEY-----
";
    pub const P521_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQBq2BuyUT6JimdFNOI+4BzYX8ly9gx
a42g/90N+dvVITZTZwktO3nTH9aHON4WhlrWbKyJg7gfUCtY3tDh3zmb46sA4c3o
958t+ED6WbqS/73EikBYw00FTaNzkbVcUWU3Mwn/A5P2i0EZ3Wk/ZlK6kSfOD71l
Pf0NHjb0LY3YsfR5/4A=
-----END PUBLIC KEY-----
";
    /// `alg token` lines, signed by Node.js's `crypto` (HS256 with `s3cret`).
    pub const NODE_TOKENS: &str = "RS256 eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.ifguYa-quhNSJ3afqbrRy2NOLYIwvNjnQ9Sd4lc9NQUFPAv25Gmc1RsAY3VzL0z0aAiDNfuj8s40jnXcTCPa6wX2UURzgubImfCqPeC_LvVtPof3K0ldTVyTT-RtJLOplaqESMAfmJbCJ74NBEITKSwz0XbEAmutrryp0vZk5J3m__p5AdspQrgSArz5VD37hOIqftDkh1CnpAoX--jTmKK-nOkHaoR4t8n8SIu54uJeZGZ53s4NqZP-dS7aJl13zLbptjXG0xDOyEs_IXYWAlvxG0ppdffnBCT1UjqQA1Z994EVUxcwiZDGTHTfpC3uC-l_obc12vt0TJDBPclSdw
ES256 eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.zkDVtqNxcKMRMseHgFB1ejN9ssiGIZFvVMs99xjDzd4dKcbl64G57U6QKjhA6iosLKIMG056iF0jS7cXneEtdw
ES384 eyJhbGciOiJFUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.-DpfKzISJHW6VM93oSRPhwq8-Qjv1FZmgwii5oT0yH6ep7xxnKwIaHI1wqomOv9gZO8qFivycFW4Pieu4ZcE9yEh-fw3p8FhidjHUCxh8SMI0rl44eKow-KkPH5Vgo3W
ES512 eyJhbGciOiJFUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.AH0KbivEKQcaGkzOWfkMTmpVw2y8AjRx5KS0yTrO8BX1fcKAohqh096p1ipMeed-MYSEY7mqdy5n3TNsgzHg5PmyAYAGHfgTZFrAV3hmFCCOyHJrtdyvjQyeuVGcNVzVIFxA0ShxURsQoTrrSHQoHTm_jFSrRrY3_MHvJ6GILDlsalF8
HS256 eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJub2RlIiwiaWF0IjoxNzAwMDAwMDAwfQ.uIH_zmoVkn1PmxNPBRv_Ba-b0SbRbBsf3yBTI-JR0Mo";
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::{sign, verify, Alg};
    use crate::error::ErrorName;
    use crate::nodes::logic::jwt_decode::parse_token;
    use crate::testing::{compile_node, run_node};
    use serde_json::{json, Value};

    fn create(config: Value, payload: Value) -> Value {
        let (port, after) = run_node("JWTCreateNode", &config, payload).unwrap();
        assert_eq!(port, 0);
        after["working"]["jwt"].clone()
    }

    fn base() -> Value {
        json!({"secretTemplate": "{{globals.secret}}", "algorithmTemplate": "HS256",
            "dataTemplateType": "json", "dataTemplate": "{\"sub\":\"{{data.userId}}\"}",
            "expiresIn": 3600, "destinationPath": "working.jwt"})
    }

    fn payload() -> Value {
        json!({"globals": {"secret": "s3cret"}, "data": {"userId": "u1"}})
    }

    #[test]
    fn creates_an_hs256_token() {
        let token = create(base(), payload());
        let token = token.as_str().unwrap();
        let parsed = parse_token(token).unwrap();
        assert_eq!(parsed.header, json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(parsed.payload["sub"], "u1");
        let iat = parsed.payload["iat"].as_i64().unwrap();
        assert!((iat - chrono::Utc::now().timestamp()).abs() < 5);
        assert_eq!(parsed.payload["exp"].as_i64().unwrap(), iat + 3600);
        assert!(verify(
            Alg::parse("HS256").unwrap(),
            "s3cret",
            parsed.signing_input.as_bytes(),
            &parsed.signature
        )
        .unwrap());
        assert!(!verify(
            Alg::parse("HS256").unwrap(),
            "other",
            parsed.signing_input.as_bytes(),
            &parsed.signature
        )
        .unwrap());
    }

    #[test]
    fn claims_header_issuer_and_expiry() {
        let mut config = base();
        config["issuerTemplate"] = json!("flowd.test");
        config["headerTemplate"] = json!("{\"kid\": \"k1\", \"alg\": \"HS512\"}");
        config["dataTemplate"] = json!("{\"sub\": \"x\", \"exp\": 5, \"iat\": 1}");
        let token = create(config, payload());
        let parsed = parse_token(token.as_str().unwrap()).unwrap();
        assert_eq!(
            parsed.header,
            json!({"alg": "HS512", "typ": "JWT", "kid": "k1"})
        );
        assert_eq!(
            parsed.payload,
            json!({"sub": "x", "exp": 5, "iat": 1, "iss": "flowd.test"})
        );

        // Data and header from paths; no expiry when expiresIn is null.
        let config = json!({"secretTemplate": "s", "dataTemplateType": "path",
            "dataTemplate": "data.claims", "headerTemplateType": "path",
            "headerTemplate": "data.header", "expiresIn": null, "destinationPath": "working.jwt"});
        let token = create(
            config,
            json!({"data": {"claims": {"a": [1]}, "header": {"cty": "x"}}}),
        );
        let parsed = parse_token(token.as_str().unwrap()).unwrap();
        assert_eq!(
            parsed.header,
            json!({"alg": "HS256", "typ": "JWT", "cty": "x"})
        );
        assert!(parsed.payload.get("exp").is_none());
        assert_eq!(parsed.payload["a"], json!([1]));

        // The default expiry is a day; isExpRequired: false turns it off.
        let config = json!({"secretTemplate": "s", "dataTemplate": "{}",
            "destinationPath": "working.jwt"});
        let parsed = parse_token(create(config.clone(), json!({})).as_str().unwrap()).unwrap();
        assert_eq!(
            parsed.payload["exp"].as_i64().unwrap() - parsed.payload["iat"].as_i64().unwrap(),
            86_400
        );
        let meta = json!({"isExpRequired": false});
        let spec = crate::node::NodeSpec {
            id: "n",
            type_name: "JWTCreateNode",
            config: &config,
            meta: &meta,
            limits: &crate::services::RunLimits::default(),
        };
        let node = crate::nodes::compile(&spec).unwrap();
        let (_, after) = crate::testing::Harness::new()
            .run(&node, json!({}))
            .unwrap();
        let parsed = parse_token(after["working"]["jwt"].as_str().unwrap()).unwrap();
        assert!(parsed.payload.get("exp").is_none());
        // A templated expiry.
        let config = json!({"secretTemplate": "s", "dataTemplate": "{}",
            "expiresIn": "{{data.ttl}}", "destinationPath": "working.jwt"});
        let parsed = parse_token(
            create(config.clone(), json!({"data": {"ttl": "60"}}))
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            parsed.payload["exp"].as_i64().unwrap() - parsed.payload["iat"].as_i64().unwrap(),
            60
        );
        let failed = create(config, json!({"data": {"ttl": "soon"}}));
        assert_eq!(failed["error"]["type"], "JsonWebTokenError");
    }

    #[test]
    fn every_algorithm_signs_and_verifies() {
        let keys = [
            ("RS256", RSA_PRIVATE_PKCS8, RSA_PUBLIC),
            ("RS384", RSA_PRIVATE_PKCS1, RSA_PUBLIC),
            ("RS512", RSA_PRIVATE_PKCS8, RSA_PUBLIC),
            ("PS256", RSA_PRIVATE_PKCS8, RSA_PUBLIC),
            ("ES256", P256_PRIVATE_SEC1, P256_PUBLIC),
            ("ES256", P256_PRIVATE_PKCS8, P256_PUBLIC),
            ("ES384", P384_PRIVATE_PKCS8, P384_PUBLIC),
            ("ES512", P521_PRIVATE_SEC1, P521_PUBLIC),
            ("HS384", "secret", "secret"),
            ("HS512", "secret", "secret"),
        ];
        for (alg, private, public) in keys {
            let config = json!({"secretTemplate": "{{{globals.key}}}", "algorithmTemplate": alg,
                "dataTemplate": "{\"n\": 1}", "destinationPath": "working.jwt"});
            let token = create(config, json!({"globals": {"key": private}}));
            let parsed = parse_token(token.as_str().unwrap_or_else(|| panic!("{alg}: {token}")))
                .unwrap_or_else(|e| panic!("{alg}: {e}: {token}"));
            assert_eq!(parsed.header["alg"], alg);
            let alg = Alg::parse(alg).unwrap();
            let input = parsed.signing_input.as_bytes();
            assert!(
                verify(alg, public, input, &parsed.signature).unwrap(),
                "{alg:?}"
            );
            let mut forged = parsed.signing_input.clone();
            forged.push('x');
            assert!(!verify(alg, public, forged.as_bytes(), &parsed.signature).unwrap());
        }
        // Tokens signed by Node.js's crypto verify here.
        for line in NODE_TOKENS.lines() {
            let (alg, token) = line.split_once(' ').unwrap();
            let key = match alg {
                "RS256" => RSA_PUBLIC,
                "ES256" => P256_PUBLIC,
                "ES384" => P384_PUBLIC,
                "ES512" => P521_PUBLIC,
                _ => "s3cret",
            };
            let parsed = parse_token(token).unwrap();
            assert_eq!(parsed.payload, json!({"sub": "node", "iat": 1700000000}));
            let ok = verify(
                Alg::parse(alg).unwrap(),
                key,
                parsed.signing_input.as_bytes(),
                &parsed.signature,
            );
            assert_eq!(ok, Ok(true), "{alg}");
        }
    }

    #[test]
    fn failures_are_written_to_the_destination() {
        let cases = [
            (
                json!({"algorithmTemplate": "{{data.alg}}"}),
                json!({"alg": "XS256"}),
            ),
            (json!({"algorithmTemplate": "RS256"}), json!({})),
            (
                json!({"algorithmTemplate": "ES512", "secretTemplate": "{{{data.key}}}"}),
                json!({"key": RSA_PRIVATE_PKCS8}),
            ),
            (
                json!({"algorithmTemplate": "HS256", "secretTemplate": "{{{data.key}}}"}),
                json!({"key": P256_PRIVATE_SEC1}),
            ),
            (json!({"dataTemplate": "[1, 2]"}), json!({})),
            (
                json!({"dataTemplateType": "path", "dataTemplate": "data.none"}),
                json!({}),
            ),
            (json!({"headerTemplate": "{\"alg\": 5}"}), json!({})),
        ];
        for (changes, data) in cases {
            let mut config = json!({"secretTemplate": "s", "dataTemplate": "{}",
                "destinationPath": "working.jwt"});
            for (k, v) in changes.as_object().unwrap() {
                config[k] = v.clone();
            }
            let result = create(config.clone(), json!({ "data": data }));
            assert_eq!(
                result["error"]["type"], "JsonWebTokenError",
                "{config}: {result}"
            );
            assert!(result["error"]["message"].is_string());
        }
        // Template failures and empty required templates halt.
        let config = json!({"secretTemplate": "{{data.none}}", "dataTemplate": "{}",
            "destinationPath": "working.jwt"});
        let e = run_node("JWTCreateNode", &config, json!({})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        let config = json!({"secretTemplate": "s", "dataTemplate": "{{data.none}}",
            "destinationPath": "working.jwt"});
        let e = run_node("JWTCreateNode", &config, json!({})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
    }

    #[test]
    fn direct_signing_checks_the_key_kind() {
        assert!(sign(Alg::parse("HS256").unwrap(), RSA_PRIVATE_PKCS8, b"x").is_err());
        assert!(sign(Alg::parse("RS256").unwrap(), "secret", b"x").is_err());
        assert!(sign(Alg::parse("ES256").unwrap(), P384_PRIVATE_PKCS8, b"x").is_err());
        assert!(verify(Alg::parse("HS256").unwrap(), RSA_PUBLIC, b"x", "AAAA").is_err());
        assert_eq!(Alg::parse("none"), None);
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(compile_node("JWTCreateNode", &base()).unwrap().ports, 1);
        let error = compile_node(
            "JWTCreateNode",
            &json!({"credentialNameTemplate": "my-jwt", "dataTemplate": "{}",
                "destinationPath": "w"}),
        )
        .err()
        .unwrap();
        assert!(
            error.0.contains("credentials are not supported yet"),
            "{error}"
        );
        for bad in [
            json!({"dataTemplate": "{}", "destinationPath": "w"}),
            json!({"secretTemplate": "s", "destinationPath": "w"}),
            json!({"secretTemplate": "s", "dataTemplate": "{}"}),
            json!({"secretTemplate": "s", "dataTemplate": "{}", "destinationPath": "w",
                "algorithmTemplate": "none"}),
            json!({"secretTemplate": "s", "dataTemplate": "{}", "destinationPath": "w",
                "dataTemplateType": "xml"}),
            json!({"secretTemplate": "s", "dataTemplate": "{}", "destinationPath": "w",
                "expiresIn": "soon"}),
            json!({"secretTemplate": "s", "dataTemplate": "{}", "destinationPath": "w",
                "expiresIn": [1]}),
            json!({"secretTemplate": 5, "dataTemplate": "{}", "destinationPath": "w"}),
            json!({"secretTemplate": "s", "dataTemplate": "a..b", "dataTemplateType": "path",
                "destinationPath": "w"}),
            json!({"secretTemplate": "s", "dataTemplate": "{{#if}}", "destinationPath": "w"}),
        ] {
            let e = compile_node("JWTCreateNode", &bad).err().unwrap();
            assert!(e.0.contains("(JWTCreateNode)"), "{bad}: {e}");
        }
    }
}
