//! `HttpNode` ("HTTP"): makes one HTTP request and puts the response at `responsePath` as
//! `{statusCode, headers, body, requestDuration, request: {uri, method, headers}}`.
//!
//! The request is a future on the runtime (reqwest over rustls); other paths keep moving while it
//! is in flight. Every run shares the engine's clients ([`HttpClients`] in `Services`), so
//! connections are pooled across runs.
//!
//! Config: `method` (`GET POST PUT PATCH DELETE HEAD`, default GET; a template is allowed, as in
//! Losant's editor), `uriTemplate` (required), `bodyType` (`string` default, `jsonTemplate`,
//! `urlencoded`, `multipart`, `url`, `none`) with `bodyTemplate` or `bodyFields`
//! (`[{keyTemplate, valueTemplate}]`), `requestEncodingTemplate`, `headerInfo`
//! (`[{key, valueTemplate}]`), `authType` (`none`, `basic` with
//! `authCredentials.usernameTemplate`/`passwordTemplate`), `timeoutTemplate`,
//! `disableSSLVerification`, `caCertTemplate`, `disableRedirects`, `responsePath`,
//! `encodingTemplate`, `errorBehavior` + `errorPath`.
//!
//! Decisions:
//! * **4xx and 5xx responses are data**, not errors: the path continues with `statusCode`.
//! * **Transport failures are `HttpError`**: a URL that does not parse or is not http(s), a
//!   header name or value HTTP cannot carry, DNS, a refused connection, TLS (including a
//!   `caCertTemplate` that is not a PEM certificate), the timeout, too many redirects, and a
//!   response over [`MAX_RESPONSE_BYTES`]. They halt the run, or with `errorBehavior:
//!   "payloadPath"` are written to `errorPath` as `{type: "HttpError", message}` and the path
//!   continues on port 0 (without `responsePath`). Everything else halts whatever
//!   `errorBehavior` says: a template that fails to render (`TemplateError`), `uriTemplate`
//!   rendering empty (`TemplateError`), and a rendered method, timeout or encoding that is not
//!   one, or a request body that does not decode in its encoding (`ValidationError`).
//! * **Timeout**: `timeoutTemplate` seconds (fractions allowed) bound the whole exchange, body
//!   included. The spec's sources disagree on the default (30 s in the 2019 docs, 10 s in the
//!   current node reference); flowd takes the newer, [`DEFAULT_TIMEOUT`] = 10 s, also used when
//!   the template is blank. Longer values are clamped to [`MAX_TIMEOUT`] (30 s) as Losant
//!   documents; zero, negative or non-numbers are refused (a compile error when the template is
//!   static).
//! * **Response size**: at most [`MAX_RESPONSE_BYTES`] (5 MiB). A larger `Content-Length` fails
//!   before reading; otherwise the body is streamed and the request aborted once it passes the
//!   limit.
//! * **Response body**: decoded by `encodingTemplate` (`utf8` default, `base64`, `hex`,
//!   `latin1`/`binary`, `ascii`, as Node's `Buffer#toString`). In `utf8` the text is JSON-parsed
//!   whenever it parses, whatever the content type (so `text/plain` holding JSON is parsed and
//!   `application/json` that does not parse stays a string); an empty body is `""`.
//! * **Response headers** have lowercase names; repeated headers are joined with `", "`, except
//!   `set-cookie`, which is an array (as in Node).
//! * **`request.headers`** are the headers the node set (lowercase names): `headerInfo` and the
//!   content type it added. The `Authorization` header made from `authCredentials` is left out,
//!   so credentials do not travel on into debug output and storage.
//! * **Bodies** are sent for every method but GET and HEAD. `string` sends the rendered text
//!   (encoded by `requestEncodingTemplate`) with no content type of its own; `jsonTemplate`
//!   sends the rendered JSON compactly with `Content-Type: application/json`; `urlencoded` and
//!   `url` (the latter a rendered template taken as already-encoded form text — the spec names
//!   the type without describing it) send `application/x-www-form-urlencoded`; `multipart` sends
//!   `multipart/form-data` text fields. A `Content-Type` in `headerInfo` wins over the added one,
//!   except for multipart, whose boundary must match. `bodyFields` and `headerInfo` rows whose
//!   key is blank (or renders empty) are skipped. A blank `jsonTemplate` body sends no body.
//! * **Redirects** are followed (up to 10) unless `disableRedirects`, in which case the 3xx is the
//!   response. **`caCertTemplate`** replaces the built-in roots for that request, as Node's `ca`
//!   option does; **`disableSSLVerification`** accepts any certificate and host name.
//! * The built-in roots are Mozilla's (`webpki-roots`, compiled in), not the host's store, so
//!   the binary trusts the same CAs everywhere; a private CA goes in `caCertTemplate`. HTTP/1.1
//!   only; no proxy from the environment; no automatic decompression.
//! * `authType` `clientCert` and `credential`, and `bodyType` `diskPath` (edge only), are compile
//!   errors: not supported yet. The edge-only response-to-file fields are ignored.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::template_text as text;
use crate::nodes::Setting;
use crate::nodes::{
    json_template, optional_path, render, render_json, render_required, template, ErrorBehavior,
};
use crate::path::PayloadPath;
use crate::template::{JsonTemplate, Template};
use crate::value::{number_to_string, string_to_number};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The timeout when `timeoutTemplate` is absent or blank.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer timeouts are clamped to this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read (5 MiB).
pub const MAX_RESPONSE_BYTES: usize = 5 * 1024 * 1024;
/// How many redirects are followed before the request fails.
const MAX_REDIRECTS: usize = 10;
/// How many clients with a custom CA are kept; the cache is emptied when it fills.
const CA_CLIENTS: usize = 16;

/// The engine's HTTP clients: one per (verify certificates × follow redirects), built on first
/// use, plus a small cache of clients trusting a custom CA. Cloning a `reqwest::Client` shares
/// its connection pool, so every run reuses connections.
pub struct HttpClients {
    /// Indexed by `verify as usize * 2 + follow_redirects as usize`.
    plain: [OnceLock<reqwest::Client>; 4],
    with_ca: Mutex<HashMap<(String, bool), reqwest::Client>>,
}

impl Default for HttpClients {
    fn default() -> Self {
        HttpClients::new()
    }
}

fn client_builder(follow_redirects: bool) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(if follow_redirects {
            reqwest::redirect::Policy::limited(MAX_REDIRECTS)
        } else {
            reqwest::redirect::Policy::none()
        })
        .pool_idle_timeout(Duration::from_secs(30))
}

impl HttpClients {
    pub fn new() -> HttpClients {
        HttpClients {
            plain: Default::default(),
            with_ca: Mutex::new(HashMap::new()),
        }
    }

    /// A client with the built-in roots; `verify: false` accepts any certificate.
    pub fn client(&self, verify: bool, follow_redirects: bool) -> Result<reqwest::Client, String> {
        let slot = &self.plain[verify as usize * 2 + follow_redirects as usize];
        if let Some(client) = slot.get() {
            return Ok(client.clone());
        }
        let client = client_builder(follow_redirects)
            .danger_accept_invalid_certs(!verify)
            .build()
            .map_err(|e| format!("the HTTP client could not be built: {}", chain(&e)))?;
        Ok(slot.get_or_init(|| client).clone())
    }

    /// A client that trusts only the CA certificates in `pem`.
    pub fn client_with_ca(
        &self,
        pem: &str,
        follow_redirects: bool,
    ) -> Result<reqwest::Client, String> {
        let key = (pem.to_owned(), follow_redirects);
        let cached = self
            .with_ca
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(client) = cached {
            return Ok(client);
        }
        let certificates = ca_certificates(pem)?;
        let mut builder = client_builder(follow_redirects).tls_built_in_root_certs(false);
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
        let client = builder
            .build()
            .map_err(|e| format!("caCertTemplate was not accepted: {}", chain(&e)))?;
        let mut cache = self.with_ca.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CA_CLIENTS {
            cache.clear();
        }
        cache.insert(key, client.clone());
        Ok(client)
    }
}

fn ca_certificates(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err("caCertTemplate holds no PEM certificate".into()),
        Err(e) => Err(format!(
            "caCertTemplate is not a PEM certificate: {}",
            chain(&e)
        )),
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

// ---- configuration -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    #[serde(default, deserialize_with = "text")]
    uri_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    method: Option<String>,
    body_type: Option<String>,
    #[serde(default, deserialize_with = "text")]
    body_template: Option<String>,
    #[serde(default)]
    body_fields: Option<Vec<Pair>>,
    #[serde(default, deserialize_with = "text")]
    request_encoding_template: Option<String>,
    #[serde(default)]
    header_info: Option<Vec<Pair>>,
    auth_type: Option<String>,
    auth_credentials: Option<Credentials>,
    response_path: Option<String>,
    #[serde(default, deserialize_with = "text")]
    encoding_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    timeout_template: Option<String>,
    #[serde(rename = "disableSSLVerification")]
    disable_ssl_verification: Option<Value>,
    disable_redirects: Option<Value>,
    #[serde(default, deserialize_with = "text")]
    ca_cert_template: Option<String>,
    error_behavior: Option<String>,
    error_path: Option<String>,
}

/// A `headerInfo` row (`key`) or a `bodyFields` row (`keyTemplate`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pair {
    #[serde(default, alias = "keyTemplate", deserialize_with = "text")]
    key: Option<String>,
    #[serde(default, deserialize_with = "text")]
    value_template: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    #[serde(default, deserialize_with = "text")]
    username_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    password_template: Option<String>,
}

fn parse_method(text: &str) -> Result<reqwest::Method, String> {
    let method = text.trim().to_ascii_uppercase();
    Ok(match method.as_str() {
        "" | "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        "PATCH" => reqwest::Method::PATCH,
        "DELETE" => reqwest::Method::DELETE,
        "HEAD" => reqwest::Method::HEAD,
        _ => {
            return Err(format!(
                "the method must be GET, POST, PUT, PATCH, DELETE or HEAD, not \"{text}\""
            ))
        }
    })
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    if text.trim().is_empty() {
        return Ok(DEFAULT_TIMEOUT);
    }
    let seconds = string_to_number(text);
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!(
            "the timeout must be a positive number of seconds, not \"{text}\""
        ));
    }
    Ok(Duration::from_secs_f64(
        seconds.min(MAX_TIMEOUT.as_secs_f64()),
    ))
}

/// A Node.js buffer encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Base64,
    Hex,
    Latin1,
    Ascii,
}

fn parse_encoding(text: &str) -> Result<Encoding, String> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "" | "utf8" | "utf-8" => Encoding::Utf8,
        "base64" => Encoding::Base64,
        "hex" => Encoding::Hex,
        "latin1" | "binary" => Encoding::Latin1,
        "ascii" => Encoding::Ascii,
        _ => {
            return Err(format!(
                "the encoding must be utf8, base64, hex, latin1, binary or ascii, not \"{text}\""
            ))
        }
    })
}

impl Encoding {
    /// Text to bytes, as Node's `Buffer.from(text, encoding)` (but refusing malformed input
    /// rather than silently truncating it).
    fn encode(self, text: String) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Utf8 => Ok(text.into_bytes()),
            Encoding::Latin1 | Encoding::Ascii => {
                Ok(text.chars().map(|c| c as u32 as u8).collect())
            }
            Encoding::Base64 => {
                let compact: String = text
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .map(|c| match c {
                        '-' => '+',
                        '_' => '/',
                        c => c,
                    })
                    .collect();
                let engine = base64::engine::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                );
                engine
                    .decode(compact)
                    .map_err(|e| format!("the body is not base64: {e}"))
            }
            Encoding::Hex => {
                let bytes = text.trim().as_bytes();
                if !bytes.len().is_multiple_of(2) {
                    return Err("the body is not hex: odd number of digits".into());
                }
                bytes
                    .chunks(2)
                    .map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|p| u8::from_str_radix(p, 16).ok())
                            .ok_or_else(|| "the body is not hex".to_owned())
                    })
                    .collect()
            }
        }
    }

    /// Bytes to text, as Node's `buffer.toString(encoding)`.
    fn decode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Encoding::Latin1 => bytes.iter().map(|&b| b as char).collect(),
            Encoding::Ascii => bytes.iter().map(|&b| (b & 0x7f) as char).collect(),
        }
    }
}

/// A boolean given as `true`/`false` (or their text; absent is false).
fn flag(spec: &NodeSpec<'_>, field: &str, value: &Option<Value>) -> Result<bool, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(other) => Err(spec.error(format!("{field} must be true or false, not {other}"))),
    }
}

enum Body {
    None,
    /// Rendered text with an optional content type of its own.
    Text(Template, Option<&'static str>),
    Json(JsonTemplate),
    UrlEncoded(Vec<(Template, Template)>),
    Multipart(Vec<(Template, Template)>),
}

pub struct HttpNode {
    method: Setting<reqwest::Method>,
    uri: Template,
    body: Body,
    request_encoding: Setting<Encoding>,
    headers: Vec<(Template, Template)>,
    basic_auth: Option<(Template, Template)>,
    timeout: Setting<Duration>,
    verify: bool,
    follow_redirects: bool,
    ca: Option<Template>,
    response: Option<PayloadPath>,
    response_encoding: Setting<Encoding>,
    errors: ErrorBehavior,
}

fn pairs(
    spec: &NodeSpec<'_>,
    field: &str,
    rows: Option<Vec<Pair>>,
) -> Result<Vec<(Template, Template)>, CompileError> {
    rows.unwrap_or_default()
        .into_iter()
        .filter(|row| row.key.as_deref().is_some_and(|k| !k.trim().is_empty()))
        .map(|row| {
            Ok((
                template(spec, field, row.key.as_deref().unwrap_or_default())?,
                template(
                    spec,
                    field,
                    row.value_template.as_deref().unwrap_or_default(),
                )?,
            ))
        })
        .collect()
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let uri = match config.uri_template.as_deref().map(str::trim) {
        None | Some("") => return Err(spec.error("uriTemplate is required")),
        Some(text) => template(spec, "uriTemplate", text)?,
    };
    let method = Setting::compile(spec, "method", config.method.as_deref(), parse_method)?;
    let body_text = config.body_template.as_deref().unwrap_or_default();
    let body = match config.body_type.as_deref().unwrap_or("string") {
        "string" | "" => Body::Text(template(spec, "bodyTemplate", body_text)?, None),
        "url" => Body::Text(
            template(spec, "bodyTemplate", body_text)?,
            Some("application/x-www-form-urlencoded"),
        ),
        "jsonTemplate" if body_text.trim().is_empty() => Body::None,
        "jsonTemplate" => Body::Json(json_template(spec, "bodyTemplate", body_text)?),
        "urlencoded" => Body::UrlEncoded(pairs(spec, "bodyFields", config.body_fields)?),
        "multipart" => Body::Multipart(pairs(spec, "bodyFields", config.body_fields)?),
        "none" => Body::None,
        "diskPath" => {
            return Err(spec.error("bodyType diskPath (edge workflows) is not supported yet"))
        }
        other => {
            return Err(spec.error(format!(
                "bodyType must be string, jsonTemplate, urlencoded, multipart, url or none, not \"{other}\""
            )))
        }
    };
    let basic_auth = match config.auth_type.as_deref().unwrap_or("none") {
        "none" | "" => None,
        "basic" => {
            let credentials = config.auth_credentials.unwrap_or(Credentials {
                username_template: None,
                password_template: None,
            });
            Some((
                template(
                    spec,
                    "authCredentials.usernameTemplate",
                    credentials.username_template.as_deref().unwrap_or_default(),
                )?,
                template(
                    spec,
                    "authCredentials.passwordTemplate",
                    credentials.password_template.as_deref().unwrap_or_default(),
                )?,
            ))
        }
        kind @ ("clientCert" | "credential") => {
            return Err(spec.error(format!("authType {kind} is not supported yet")))
        }
        other => {
            return Err(spec.error(format!(
                "authType must be none, basic, clientCert or credential, not \"{other}\""
            )))
        }
    };
    let verify = !flag(
        spec,
        "disableSSLVerification",
        &config.disable_ssl_verification,
    )?;
    let ca = match config.ca_cert_template.as_deref() {
        Some(text) if !text.trim().is_empty() => {
            let compiled = template(spec, "caCertTemplate", text)?;
            if let Some(pem) = compiled.static_text() {
                ca_certificates(pem).map_err(|e| spec.error(e))?;
            }
            Some(compiled)
        }
        _ => None,
    };
    Ok(CompiledNodeType::new(
        HttpNode {
            method,
            uri,
            body,
            request_encoding: Setting::compile(
                spec,
                "requestEncodingTemplate",
                config.request_encoding_template.as_deref(),
                parse_encoding,
            )?,
            headers: pairs(spec, "headerInfo", config.header_info)?,
            basic_auth,
            timeout: Setting::compile(
                spec,
                "timeoutTemplate",
                config.timeout_template.as_deref(),
                parse_timeout,
            )?,
            verify,
            follow_redirects: !flag(spec, "disableRedirects", &config.disable_redirects)?,
            ca,
            response: optional_path(spec, "responsePath", config.response_path.as_deref())?,
            response_encoding: Setting::compile(
                spec,
                "encodingTemplate",
                config.encoding_template.as_deref(),
                parse_encoding,
            )?,
            errors: ErrorBehavior::compile(
                spec,
                config.error_behavior.as_deref(),
                config.error_path.as_deref(),
            )?,
        },
        1,
    ))
}

// ---- running -------------------------------------------------------------------------------

/// A request with every template rendered.
struct Request {
    method: reqwest::Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: RequestBody,
    basic_auth: Option<(String, String)>,
    timeout: Duration,
    verify: bool,
    follow_redirects: bool,
    ca: Option<String>,
    encoding: Encoding,
}

enum RequestBody {
    None,
    Bytes(Vec<u8>, Option<&'static str>),
    Form(Vec<(String, String)>),
    Multipart(Vec<(String, String)>),
}

fn render_pairs(
    pairs: &[(Template, Template)],
    payload: &Value,
) -> Result<Vec<(String, String)>, NodeError> {
    let mut out = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key = render(key, payload)?;
        if !key.trim().is_empty() {
            out.push((key, render(value, payload)?));
        }
    }
    Ok(out)
}

impl HttpNode {
    fn prepare(&self, payload: &Value) -> Result<Request, NodeError> {
        let method = self.method.get("method", payload)?;
        let uri = render_required(&self.uri, "uriTemplate", payload)?;
        let with_body = method != reqwest::Method::GET && method != reqwest::Method::HEAD;
        let body = match &self.body {
            _ if !with_body => RequestBody::None,
            Body::None => RequestBody::None,
            Body::Text(template, content_type) => {
                let encoding = self
                    .request_encoding
                    .get("requestEncodingTemplate", payload)?;
                let bytes = encoding
                    .encode(render(template, payload)?)
                    .map_err(|e| NodeError::new(ErrorName::ValidationError, e))?;
                RequestBody::Bytes(bytes, *content_type)
            }
            Body::Json(template) => {
                let value = render_json(template, payload)?;
                RequestBody::Bytes(value.to_string().into_bytes(), Some("application/json"))
            }
            Body::UrlEncoded(fields) => RequestBody::Form(render_pairs(fields, payload)?),
            Body::Multipart(fields) => RequestBody::Multipart(render_pairs(fields, payload)?),
        };
        let basic_auth = match &self.basic_auth {
            None => None,
            Some((user, password)) => Some((render(user, payload)?, render(password, payload)?)),
        };
        let ca = match &self.ca {
            Some(template) if self.verify => {
                Some(render(template, payload)?).filter(|pem| !pem.trim().is_empty())
            }
            _ => None,
        };
        Ok(Request {
            method,
            uri,
            headers: render_pairs(&self.headers, payload)?,
            body,
            basic_auth,
            timeout: self.timeout.get("timeoutTemplate", payload)?,
            verify: self.verify,
            follow_redirects: self.follow_redirects,
            ca,
            encoding: self.response_encoding.get("encodingTemplate", payload)?,
        })
    }
}

fn http_error(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorName::HttpError, message)
}

fn seconds(duration: Duration) -> String {
    number_to_string(duration.as_secs_f64())
}

/// reqwest's message without its `for url (…)` (the node's message names the URL already).
fn without_url(mut text: String) -> String {
    if let Some(at) = text.find(" for url (") {
        if let Some(end) = text[at..].find(')') {
            text.replace_range(at..at + end + 1, "");
        }
    }
    text
}

/// Names a transport failure.
fn transport(error: &reqwest::Error, request: &Request) -> NodeError {
    if error.is_timeout() {
        return http_error(format!(
            "{} {} timed out after {} s",
            request.method,
            request.uri,
            seconds(request.timeout)
        ));
    }
    let what = if error.is_redirect() {
        "redirect failed"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    http_error(format!(
        "{} {} {what}: {}",
        request.method,
        request.uri,
        causes(error)
    ))
}

/// What went wrong, without reqwest's and hyper's generic layers ("error sending request",
/// "client error (Connect)"): e.g. `tcp connect error: Connection refused (os error 111)`,
/// `dns error: …`, `invalid peer certificate: UnknownIssuer`.
fn causes(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        let text = without_url(cause.to_string());
        let generic = text == "error sending request" || text.starts_with("client error (");
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    if parts.is_empty() {
        "error sending request".into()
    } else {
        parts.join(": ")
    }
}

fn too_large(request: &Request) -> NodeError {
    http_error(format!(
        "{} {}: the response is larger than {} bytes (5 MB)",
        request.method, request.uri, MAX_RESPONSE_BYTES
    ))
}

/// Header names and values as JSON (lowercase names; `set-cookie` as an array).
fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        let value = if name == reqwest::header::SET_COOKIE {
            json!(values)
        } else {
            json!(values.join(", "))
        };
        out.insert(name.as_str().to_owned(), value);
    }
    out
}

/// Sends the request and reads the response into the value `responsePath` receives.
async fn send(clients: &HttpClients, mut request: Request) -> Result<Value, NodeError> {
    let url = reqwest::Url::parse(request.uri.trim())
        .map_err(|e| http_error(format!("\"{}\" is not a valid URL: {e}", request.uri)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(http_error(format!(
            "\"{}\" is not an http or https URL",
            request.uri
        )));
    }
    let client = match &request.ca {
        Some(pem) => clients.client_with_ca(pem, request.follow_redirects),
        None => clients.client(request.verify, request.follow_redirects),
    }
    .map_err(http_error)?;

    let mut headers = HeaderMap::new();
    for (key, value) in &request.headers {
        let name = HeaderName::from_bytes(key.trim().as_bytes())
            .map_err(|_| http_error(format!("\"{key}\" is not a valid HTTP header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            http_error(format!(
                "the value of header \"{key}\" is not valid in HTTP"
            ))
        })?;
        headers.append(name, value);
    }
    let mut builder = client
        .request(request.method.clone(), url)
        .timeout(request.timeout);
    let mut recorded;
    match std::mem::replace(&mut request.body, RequestBody::None) {
        RequestBody::None => recorded = headers_json(&headers),
        RequestBody::Bytes(bytes, content_type) => {
            if let Some(content_type) = content_type {
                if !headers.contains_key(CONTENT_TYPE) {
                    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                }
            }
            recorded = headers_json(&headers);
            builder = builder.body(bytes);
        }
        RequestBody::Form(fields) => {
            if !headers.contains_key(CONTENT_TYPE) {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
            }
            recorded = headers_json(&headers);
            // `headers` (set below, after this) replaces the content type `form` adds.
            builder = builder.form(&fields);
        }
        RequestBody::Multipart(fields) => {
            // The boundary in the content type must be the form's own.
            headers.remove(CONTENT_TYPE);
            let mut form = reqwest::multipart::Form::new();
            for (key, value) in fields {
                form = form.text(key, value);
            }
            recorded = headers_json(&headers);
            recorded.insert(
                "content-type".into(),
                json!(format!("multipart/form-data; boundary={}", form.boundary())),
            );
            builder = builder.multipart(form);
        }
    }
    if let Some((user, password)) = &request.basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| http_error("the basic auth credentials are not valid in HTTP"))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    let builder = builder.headers(headers);

    let started = Instant::now();
    let mut response = builder.send().await.map_err(|e| transport(&e, &request))?;
    let status = response.status().as_u16();
    let response_headers = headers_json(response.headers());
    if request.method != reqwest::Method::HEAD
        && response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large(&request));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport(&e, &request))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large(&request));
        }
        bytes.extend_from_slice(&chunk);
    }
    let duration = started.elapsed().as_millis() as u64;
    let text = request.encoding.decode(&bytes);
    let body = match request.encoding {
        Encoding::Utf8 if !text.trim().is_empty() => {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
        _ => Value::String(text),
    };
    // Built field by field: `json!` would serialize the body and headers into copies.
    let mut response = Map::with_capacity(5);
    response.insert("statusCode".into(), json!(status));
    response.insert("headers".into(), Value::Object(response_headers));
    response.insert("body".into(), body);
    response.insert("requestDuration".into(), json!(duration));
    response.insert(
        "request".into(),
        json!({
            "uri": request.uri,
            "method": request.method.as_str(),
            "headers": recorded,
        }),
    );
    Ok(Value::Object(response))
}

impl Node for HttpNode {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let request = self.prepare(payload)?;
        let services = cx.services.clone();
        let response_path = self.response.clone();
        let errors = self.errors.clone();
        Ok(Outcome::Wait(Box::pin(async move {
            crate::nodes::resume_after(send(&services.http, request).await, response_path, errors)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::MAX_RESPONSE_BYTES;
    use crate::error::{ErrorName, NodeError};
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Map, Value};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// A test CA and a certificate for 127.0.0.1 and localhost it signed (valid 2020–2120).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBdjCCARygAwIBAgIUCKvIzEdYqQWD/+QhpXsW370Lvc8wCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZmxvd2QgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8yMTIw
MDEwMTAwMDAwMFowGDEWMBQGA1UEAwwNZmxvd2QgdGVzdCBDQTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABIKLD9UyFeuyni4SbTKdWmAR4C643yYVx2j87V2LCpvd
R6+/sE0ffUXTh/QKzs7wfa/qYTQ9GhTlFZT3xkuk2QWjQjBAMA8GA1UdEwEB/wQF
MAMBAf8wDgYDVR0PAQH/BAQDAgEGMB0GA1UdDgQWBBSEgjyRkJ3u4NohHOXaDvu+
h+FmfjAKBggqhkjOPQQDAgNIADBFAiEA6OOr/ZLc14gp1KkmiwG9VNQ0nCLFDD3e
EVt1r3Zuy8ICIFufopTU/6KtHcCdS1Azv4V8sk5M3U51xNeoxLxA9/RX
-----END CERTIFICATE-----
";
    const TEST_SERVER_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATigAwIBAgIUQJFXWSZaHzYBYipyj64uUvLbefYwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNZmxvd2QgdGVzdCBDQTAgFw0yMDAxMDEwMDAwMDBaGA8yMTIw
MDEwMTAwMDAwMFowFDESMBAGA1UEAwwJbG9jYWxob3N0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEvgLGcItaIo1Z9jELcucp2+lNTVJ6zfeYfREhkKvgLdmr9x0W
sUpcIzqRGMEMh3R0FrAtJ7c+JgY9q3oV2APES6NiMGAwGgYDVR0RBBMwEYIJbG9j
YWxob3N0hwR/AAABMAwGA1UdEwEB/wQCMAAwEwYDVR0lBAwwCgYIKwYBBQUHAwEw
HwYDVR0jBBgwFoAUhII8kZCd7uDaIRzl2g77vofhZn4wCgYIKoZIzj0EAwIDSAAw
RQIgYzKl6B8su6LXGeGXbbS6lcrRxzh9rSzWri8V7qwA5jYCIQDsi1ExwQpkQ991
t4ug+uTrKnecZXA0YqSRwnOjdmmxgw==
-----END CERTIFICATE-----
";
    const TEST_SERVER_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwbYeKmzSCb+YHEFx
KO8P7I3e+XHZw29hJT3IGn6zxNGhRANCAAS+AsZwi1oijVn2MQty5ynb6U1NUnrN
95h9ESGQq+At2av3HRaxSlwjOpEYwQyHdHQWsC0ntz4mBj2rehXYA8RL
-----END PRIVATE KEY-----
";

    /// Runs `serve` on its own thread and runtime (the harness's runtime is the node's), and
    /// returns the address it listens on.
    fn spawn_server<F, Fut>(serve: F) -> std::net::SocketAddr
    where
        F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("address")).unwrap();
                serve(listener).await;
            });
        });
        rx.recv().expect("server started")
    }

    /// The plain HTTP test server, shared by the tests.
    fn base() -> &'static str {
        static BASE: OnceLock<String> = OnceLock::new();
        BASE.get_or_init(|| {
            let address = spawn_server(|listener| async move {
                axum::serve(listener, app()).await.expect("serve");
            });
            format!("http://{address}")
        })
    }

    fn app() -> axum::Router {
        use axum::body::{Body, Bytes};
        use axum::extract::Path;
        use axum::http::{HeaderMap, Method, StatusCode};
        use axum::response::IntoResponse;
        use axum::routing::{any, get};

        async fn echo(method: Method, headers: HeaderMap, body: Bytes) -> axum::Json<Value> {
            let mut seen = Map::new();
            for (name, value) in &headers {
                seen.insert(
                    name.as_str().to_owned(),
                    json!(String::from_utf8_lossy(value.as_bytes())),
                );
            }
            axum::Json(json!({
                "method": method.as_str(),
                "headers": seen,
                "body": String::from_utf8_lossy(&body),
            }))
        }
        let redirect = |to: &'static str| {
            move || async move { (StatusCode::FOUND, [("location", to)], "moved") }
        };
        axum::Router::new()
            .route("/echo", any(echo))
            .route(
                "/json",
                get(|| async { axum::Json(json!({"ok": true, "n": [1, 2]})) }),
            )
            .route("/text", get(|| async { "plain words" }))
            .route("/jsonish", get(|| async { r#"{"a": 1}"# }))
            .route(
                "/broken-json",
                get(|| async { ([("content-type", "application/json")], "{nope") }),
            )
            .route(
                "/status/{code}",
                get(|Path(code): Path<u16>| async move {
                    (StatusCode::from_u16(code).unwrap(), "status body")
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/big", get(|| async { vec![b'x'; MAX_RESPONSE_BYTES + 1] }))
            .route("/exact", get(|| async { vec![b'z'; MAX_RESPONSE_BYTES] }))
            .route(
                "/big-chunked",
                get(|| async {
                    // No Content-Length: the limit is found while streaming.
                    Body::from_stream(futures::stream::iter(
                        (0..6).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1 << 20])),
                    ))
                }),
            )
            .route("/redirect", get(redirect("/json")))
            .route("/loop", get(redirect("/loop")))
            .route(
                "/cookies",
                get(|| async {
                    let mut headers = HeaderMap::new();
                    headers.append("set-cookie", "a=1".parse().unwrap());
                    headers.append("set-cookie", "b=2".parse().unwrap());
                    headers.append("X-Custom", "yes".parse().unwrap());
                    (headers, "hi").into_response()
                }),
            )
            .route("/binary", get(|| async { vec![0u8, 255, 1, 2, b'A'] }))
    }

    /// A TLS server whose certificate is signed by [`TEST_CA`]; answers every request `secure`.
    fn tls_base() -> &'static str {
        static BASE: OnceLock<String> = OnceLock::new();
        BASE.get_or_init(|| {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            use tokio_rustls::rustls;
            use tokio_rustls::rustls::pki_types::pem::PemObject;
            use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
            let address = spawn_server(|listener| async move {
                let certs = CertificateDer::pem_slice_iter(TEST_SERVER_CERT.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                let key = PrivateKeyDer::from_pem_slice(TEST_SERVER_KEY.as_bytes()).unwrap();
                let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
                let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
                loop {
                    let (tcp, _) = listener.accept().await.expect("accept");
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // A client that refuses the certificate ends the handshake here.
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut request = Vec::new();
                        let mut buffer = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&buffer[..n]),
                            }
                        }
                        let _ = tls
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\
                                  content-length: 6\r\nconnection: close\r\n\r\nsecure",
                            )
                            .await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
            format!("https://{address}")
        })
    }

    fn run(h: &Harness, config: Value, payload: Value) -> Result<Value, NodeError> {
        let node = compile_node("HttpNode", &config).expect("compiles");
        h.run(&node, payload).map(|(port, payload)| {
            assert_eq!(port, 0);
            payload
        })
    }

    /// GETs (or whatever `extra` says) a path of the test server; returns `working.res`.
    fn fetch(h: &Harness, path: &str, extra: Value) -> Result<Value, NodeError> {
        let mut config =
            json!({"uriTemplate": format!("{}{path}", base()), "responsePath": "working.res"});
        for (k, v) in extra.as_object().into_iter().flatten() {
            config[k] = v.clone();
        }
        run(h, config, json!({"data": {}})).map(|p| p["working"]["res"].clone())
    }

    #[test]
    fn config_is_checked() {
        let minimal = compile_node("HttpNode", &json!({"uriTemplate": "http://x"})).unwrap();
        assert_eq!(minimal.ports, 1);
        assert!(!minimal.uses_storage);
        let full = json!({
            "method": "post", "uriTemplate": "https://api.example.net/{{data.id}}",
            "bodyType": "jsonTemplate", "bodyTemplate": "{\"a\": {{data.a}}}",
            "headerInfo": [{"key": "Accept", "valueTemplate": "application/json"}, {"key": "", "valueTemplate": "skipped"}],
            "authType": "basic", "authCredentials": {"usernameTemplate": "u", "passwordTemplate": "{{data.p}}"},
            "timeoutTemplate": 15, "disableSSLVerification": "true", "disableRedirects": false,
            "caCertTemplate": TEST_CA, "responsePath": "working.resp", "encodingTemplate": "base64",
            "requestEncodingTemplate": "utf8", "errorBehavior": "payloadPath", "errorPath": "working.err",
            "unknownField": 1
        });
        compile_node("HttpNode", &full).unwrap();
        for ok in [
            json!({"uriTemplate": "http://x", "method": "{{data.m}}", "timeoutTemplate": "{{data.t}}"}),
            json!({"uriTemplate": "http://x", "bodyType": "urlencoded", "bodyFields": [{"keyTemplate": "a", "valueTemplate": "1"}]}),
            json!({"uriTemplate": "http://x", "bodyType": "multipart", "bodyFields": null}),
            json!({"uriTemplate": "http://x", "bodyType": "none", "headerInfo": null, "authType": "none"}),
            json!({"uriTemplate": "http://x", "timeoutTemplate": "120", "method": "HEAD"}),
            json!({"uriTemplate": "http://x", "bodyType": "url", "bodyTemplate": "a=1"}),
        ] {
            compile_node("HttpNode", &ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, says) in [
            (json!({}), "uriTemplate is required"),
            (json!({"uriTemplate": "  "}), "uriTemplate is required"),
            (json!({"uriTemplate": "{{#if}}"}), "uriTemplate"),
            (
                json!({"uriTemplate": "http://x", "method": "OPTIONS"}),
                "method",
            ),
            (
                json!({"uriTemplate": "http://x", "method": "FETCH"}),
                "GET, POST",
            ),
            (
                json!({"uriTemplate": "http://x", "bodyType": "xml"}),
                "bodyType",
            ),
            (
                json!({"uriTemplate": "http://x", "bodyType": "diskPath"}),
                "not supported yet",
            ),
            (
                json!({"uriTemplate": "http://x", "bodyType": "jsonTemplate", "bodyTemplate": "{{#each}}"}),
                "bodyTemplate",
            ),
            (
                json!({"uriTemplate": "http://x", "authType": "clientCert"}),
                "clientCert is not supported yet",
            ),
            (
                json!({"uriTemplate": "http://x", "authType": "credential"}),
                "credential is not supported yet",
            ),
            (
                json!({"uriTemplate": "http://x", "authType": "digest"}),
                "authType",
            ),
            (
                json!({"uriTemplate": "http://x", "timeoutTemplate": "soon"}),
                "timeoutTemplate",
            ),
            (
                json!({"uriTemplate": "http://x", "timeoutTemplate": "-1"}),
                "positive",
            ),
            (
                json!({"uriTemplate": "http://x", "timeoutTemplate": "0"}),
                "positive",
            ),
            (
                json!({"uriTemplate": "http://x", "encodingTemplate": "ebcdic"}),
                "encodingTemplate",
            ),
            (
                json!({"uriTemplate": "http://x", "requestEncodingTemplate": "utf16"}),
                "requestEncodingTemplate",
            ),
            (
                json!({"uriTemplate": "http://x", "disableRedirects": "maybe"}),
                "disableRedirects",
            ),
            (
                json!({"uriTemplate": "http://x", "disableSSLVerification": 1}),
                "disableSSLVerification",
            ),
            (
                json!({"uriTemplate": "http://x", "caCertTemplate": "not a certificate"}),
                "caCertTemplate",
            ),
            (
                json!({"uriTemplate": "http://x", "responsePath": "a..b"}),
                "responsePath",
            ),
            (
                json!({"uriTemplate": "http://x", "errorBehavior": "payloadPath"}),
                "errorPath is required",
            ),
            (
                json!({"uriTemplate": "http://x", "errorBehavior": "ignore"}),
                "errorBehavior",
            ),
            (
                json!({"uriTemplate": "http://x", "headerInfo": [{"key": "A", "valueTemplate": "{{#if}}"}]}),
                "headerInfo",
            ),
            (
                json!({"uriTemplate": "http://x", "headerInfo": {"key": "A"}}),
                "config",
            ),
        ] {
            let error = compile_node("HttpNode", &bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} compiled"));
            assert!(
                error.0.contains("(HttpNode)") && error.0.contains(says),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn every_method() {
        let h = Harness::new();
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] {
            let res = fetch(&h, "/echo", json!({"method": method})).unwrap();
            assert_eq!(res["statusCode"], 200, "{method}");
            assert_eq!(res["request"]["method"], method);
            if method == "HEAD" {
                assert_eq!(res["body"], "", "HEAD has no body");
                assert_eq!(res["headers"]["content-type"], "application/json");
            } else {
                assert_eq!(res["body"]["method"], method);
            }
        }
        // The method may be a template.
        let res = run(
            &h,
            json!({"method": "{{data.m}}", "uriTemplate": format!("{}/echo", base()), "responsePath": "r"}),
            json!({"data": {"m": "put"}}),
        )
        .unwrap();
        assert_eq!(res["r"]["body"]["method"], "PUT");
        let e = run(
            &h,
            json!({"method": "{{data.m}}", "uriTemplate": format!("{}/echo", base())}),
            json!({"data": {"m": "TRACE"}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
    }

    #[test]
    fn every_body_type() {
        let h = Harness::new();
        let post = |extra: Value| {
            let mut extra = extra;
            extra["method"] = json!("POST");
            let res = fetch(&h, "/echo", extra).unwrap();
            (
                res["body"]["headers"].clone(),
                res["body"]["body"].clone(),
                res,
            )
        };
        // string: the rendered text, no content type of its own.
        let (headers, body, _) = post(json!({"bodyTemplate": "hello {{data.who}}world"}));
        assert_eq!(body, "hello world");
        assert_eq!(headers.get("content-type"), None);
        let (headers, body, _) = post(json!({"bodyType": "string", "bodyTemplate": "<a/>",
            "headerInfo": [{"key": "Content-Type", "valueTemplate": "text/xml"}]}));
        assert_eq!(
            (headers["content-type"].clone(), body),
            (json!("text/xml"), json!("<a/>"))
        );
        // jsonTemplate: compact JSON with application/json.
        let (headers, body, res) = post(
            json!({"bodyType": "jsonTemplate", "bodyTemplate": "{ \"a\": [1, 2], \"b\": \"{{data.none}}\" }"}),
        );
        assert_eq!(body, r#"{"a":[1,2],"b":""}"#);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            res["request"]["headers"]["content-type"],
            "application/json"
        );
        // A user Content-Type wins.
        let (headers, _, _) = post(json!({"bodyType": "jsonTemplate", "bodyTemplate": "{}",
            "headerInfo": [{"key": "content-type", "valueTemplate": "application/vnd.api+json"}]}));
        assert_eq!(headers["content-type"], "application/vnd.api+json");
        // urlencoded.
        let (headers, body, _) = post(json!({"bodyType": "urlencoded", "bodyFields": [
            {"keyTemplate": "a", "valueTemplate": "1"},
            {"keyTemplate": "b c", "valueTemplate": "x&y=z"},
            {"keyTemplate": "", "valueTemplate": "skipped"},
            {"keyTemplate": "{{data.none}}", "valueTemplate": "skipped too"}]}));
        assert_eq!(body, "a=1&b+c=x%26y%3Dz");
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        // url: already-encoded text.
        let (headers, body, _) = post(json!({"bodyType": "url", "bodyTemplate": "q=1&r=2"}));
        assert_eq!(body, "q=1&r=2");
        assert_eq!(headers["content-type"], "application/x-www-form-urlencoded");
        // multipart: text fields, the boundary in the content type (a user one is replaced).
        let (headers, body, res) = post(json!({"bodyType": "multipart", "bodyFields": [
            {"keyTemplate": "name", "valueTemplate": "flowd"}, {"keyTemplate": "n", "valueTemplate": "{{data.n}}"}],
            "headerInfo": [{"key": "Content-Type", "valueTemplate": "text/plain"}]}));
        let content_type = headers["content-type"].as_str().unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let body = body.as_str().unwrap();
        assert!(body.contains(boundary));
        assert!(
            body.contains("Content-Disposition: form-data; name=\"name\"\r\n\r\nflowd\r\n"),
            "{body}"
        );
        assert!(body.contains("name=\"n\"\r\n\r\n\r\n"), "{body}");
        assert_eq!(res["request"]["headers"]["content-type"], content_type);
        // none, and GET/HEAD ignore the body.
        let (headers, body, _) = post(json!({"bodyType": "none", "bodyTemplate": "ignored"}));
        assert_eq!(body, "");
        assert_eq!(
            headers.get("content-length").cloned().unwrap_or(json!("0")),
            "0"
        );
        let res = fetch(
            &h,
            "/echo",
            json!({"method": "GET", "bodyType": "jsonTemplate", "bodyTemplate": "{\"a\":1}"}),
        )
        .unwrap();
        assert_eq!(res["body"]["body"], "");
        assert_eq!(res["body"]["headers"].get("content-type"), None);
        // A JSON body that does not render to JSON halts.
        let e = fetch(
            &h,
            "/echo",
            json!({"method": "POST", "bodyType": "jsonTemplate", "bodyTemplate": "{nope"}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
    }

    #[test]
    fn request_and_response_encodings() {
        let h = Harness::new();
        let res = fetch(&h, "/echo", json!({"method": "POST", "bodyTemplate": "aGVsbG8=", "requestEncodingTemplate": "base64"})).unwrap();
        assert_eq!(res["body"]["body"], "hello");
        let res = fetch(
            &h,
            "/echo",
            json!({"method": "POST", "bodyTemplate": "6869", "requestEncodingTemplate": "{{data.e}}"}),
        );
        // `data.e` renders empty: utf8.
        assert_eq!(res.unwrap()["body"]["body"], "6869");
        let res = fetch(
            &h,
            "/echo",
            json!({"method": "POST", "bodyTemplate": "6869", "requestEncodingTemplate": "hex"}),
        )
        .unwrap();
        assert_eq!(res["body"]["body"], "hi");
        let e = fetch(
            &h,
            "/echo",
            json!({"method": "POST", "bodyTemplate": "zz", "requestEncodingTemplate": "hex"}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
        assert_eq!(
            fetch(&h, "/binary", json!({"encodingTemplate": "base64"})).unwrap()["body"],
            "AP8BAkE="
        );
        assert_eq!(
            fetch(&h, "/binary", json!({"encodingTemplate": "hex"})).unwrap()["body"],
            "00ff010241"
        );
        assert_eq!(
            fetch(&h, "/binary", json!({"encodingTemplate": "latin1"})).unwrap()["body"],
            "\u{0}\u{ff}\u{1}\u{2}A"
        );
        assert_eq!(
            fetch(&h, "/binary", json!({})).unwrap()["body"],
            "\u{0}\u{fffd}\u{1}\u{2}A"
        );
        // Not JSON-parsed in another encoding.
        assert_eq!(
            fetch(&h, "/json", json!({"encodingTemplate": "latin1"})).unwrap()["body"],
            r#"{"ok":true,"n":[1,2]}"#
        );
    }

    #[test]
    fn headers_and_basic_auth() {
        let h = Harness::new();
        let res = run(
            &h,
            json!({"uriTemplate": format!("{}/echo", base()), "responsePath": "res",
                "headerInfo": [{"key": "X-Flow", "valueTemplate": "id-{{data.id}}"}, {"key": "Accept", "valueTemplate": "application/json"}],
                "authType": "basic", "authCredentials": {"usernameTemplate": "{{data.user}}", "passwordTemplate": "pa:ss"}}),
            json!({"data": {"id": 7, "user": "alice"}}),
        )
        .unwrap()["res"]
            .clone();
        let seen = &res["body"]["headers"];
        assert_eq!(seen["x-flow"], "id-7");
        assert_eq!(seen["accept"], "application/json");
        // base64("alice:pa:ss")
        assert_eq!(seen["authorization"], "Basic YWxpY2U6cGE6c3M=");
        // The node's record of the request has the headers, not the credentials.
        assert_eq!(
            res["request"]["headers"],
            json!({"x-flow": "id-7", "accept": "application/json"})
        );
        // Basic auth replaces an Authorization header.
        let res = fetch(
            &h,
            "/echo",
            json!({"authType": "basic", "authCredentials": {"usernameTemplate": "u"},
            "headerInfo": [{"key": "Authorization", "valueTemplate": "Bearer x"}]}),
        )
        .unwrap();
        assert_eq!(res["body"]["headers"]["authorization"], "Basic dTo=");
        // A header HTTP cannot carry is a transport-level failure.
        let e = fetch(
            &h,
            "/echo",
            json!({"headerInfo": [{"key": "Bad Name", "valueTemplate": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(e.message.contains("header name"), "{e}");
        let e = fetch(
            &h,
            "/echo",
            json!({"headerInfo": [{"key": "X-A", "valueTemplate": "a\nb"}]}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
    }

    #[test]
    fn responses_become_data() {
        let h = Harness::new();
        let res = fetch(&h, "/json", json!({})).unwrap();
        assert_eq!(res["statusCode"], 200);
        assert_eq!(res["body"], json!({"ok": true, "n": [1, 2]}));
        assert_eq!(res["headers"]["content-type"], "application/json");
        assert!(res["requestDuration"].is_u64());
        assert_eq!(
            res["request"],
            json!({"uri": format!("{}/json", base()), "method": "GET", "headers": {}})
        );
        assert_eq!(
            fetch(&h, "/text", json!({})).unwrap()["body"],
            "plain words"
        );
        // JSON is parsed whatever the content type says, and kept as text when it does not parse.
        assert_eq!(
            fetch(&h, "/jsonish", json!({})).unwrap()["body"],
            json!({"a": 1})
        );
        assert_eq!(
            fetch(&h, "/broken-json", json!({})).unwrap()["body"],
            "{nope"
        );
        let res = fetch(&h, "/cookies", json!({})).unwrap();
        assert_eq!(res["headers"]["set-cookie"], json!(["a=1", "b=2"]));
        assert_eq!(res["headers"]["x-custom"], "yes");
        // 4xx and 5xx are data.
        for code in [404, 500, 503] {
            let res = fetch(
                &h,
                &format!("/status/{code}"),
                json!({"errorBehavior": "payloadPath", "errorPath": "working.err"}),
            )
            .unwrap();
            assert_eq!(res["statusCode"], code);
            assert_eq!(res["body"], "status body");
        }
        // Without responsePath the payload is unchanged.
        let out = run(
            &h,
            json!({"uriTemplate": format!("{}/json", base())}),
            json!({"data": {"a": 1}}),
        )
        .unwrap();
        assert_eq!(out, json!({"data": {"a": 1}}));
    }

    #[test]
    fn timeouts_are_http_errors() {
        let h = Harness::new();
        let began = Instant::now();
        let e = fetch(&h, "/slow", json!({"timeoutTemplate": "0.3"})).unwrap_err();
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(e.message.contains("timed out after 0.3 s"), "{e}");
        // With errorPath the error is written and the path continues.
        let out = run(
            &h,
            json!({"uriTemplate": format!("{}/slow", base()), "timeoutTemplate": "{{data.t}}",
                "responsePath": "working.res", "errorBehavior": "payloadPath", "errorPath": "working.err"}),
            json!({"data": {"t": 0.2}}),
        )
        .unwrap();
        assert_eq!(out["working"]["err"]["type"], "HttpError");
        assert!(out["working"]["err"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"));
        assert_eq!(out["working"].get("res"), None);
        // A rendered timeout that is not a number halts, errorPath or not.
        let e = run(
            &h,
            json!({"uriTemplate": format!("{}/json", base()), "timeoutTemplate": "{{data.t}}",
                "errorBehavior": "payloadPath", "errorPath": "working.err"}),
            json!({"data": {"t": "soon"}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::ValidationError);
    }

    #[test]
    fn timeout_values() {
        use super::{parse_timeout, DEFAULT_TIMEOUT, MAX_TIMEOUT};
        assert_eq!(parse_timeout(""), Ok(DEFAULT_TIMEOUT));
        assert_eq!(parse_timeout("  "), Ok(DEFAULT_TIMEOUT));
        assert_eq!(parse_timeout("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("120"), Ok(MAX_TIMEOUT));
        assert_eq!(parse_timeout("Infinity"), Ok(MAX_TIMEOUT));
        assert!(parse_timeout("NaN").is_err());
        assert!(parse_timeout("0").is_err());
    }

    #[test]
    fn large_responses_are_http_errors() {
        let h = Harness::new();
        for path in ["/big", "/big-chunked"] {
            let e = fetch(&h, path, json!({})).unwrap_err();
            assert_eq!(e.name, ErrorName::HttpError, "{path}");
            assert!(
                e.message.contains("larger than 5242880 bytes"),
                "{path}: {e}"
            );
            let out = fetch(
                &h,
                path,
                json!({"errorBehavior": "payloadPath", "errorPath": "working.err"}),
            );
            assert_eq!(out.unwrap(), Value::Null, "{path}: no response");
        }
        let res = fetch(&h, "/exact", json!({})).unwrap();
        assert_eq!(res["body"].as_str().unwrap().len(), MAX_RESPONSE_BYTES);
    }

    #[test]
    fn redirects() {
        let h = Harness::new();
        let res = fetch(&h, "/redirect", json!({})).unwrap();
        assert_eq!(res["statusCode"], 200);
        assert_eq!(res["body"]["ok"], true);
        let res = fetch(&h, "/redirect", json!({"disableRedirects": true})).unwrap();
        assert_eq!(res["statusCode"], 302);
        assert_eq!(res["headers"]["location"], "/json");
        assert_eq!(res["body"], "moved");
        let e = fetch(&h, "/loop", json!({})).unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(e.message.contains("redirect"), "{e}");
    }

    #[test]
    fn bad_urls_and_refused_connections() {
        let h = Harness::new();
        let node = |uri: &str| json!({"uriTemplate": uri, "responsePath": "working.res"});
        for uri in ["not a url", "/relative", "ftp://127.0.0.1/file", "http://"] {
            let e = run(&h, node(uri), json!({})).unwrap_err();
            assert_eq!(e.name, ErrorName::HttpError, "{uri}");
            assert!(e.message.contains(uri), "{uri}: {e}");
        }
        let e = run(&h, node("http://127.0.0.1:1/"), json!({})).unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(
            e.message.contains("GET http://127.0.0.1:1/ request failed"),
            "{e}"
        );
        assert!(!e.message.contains("for url"), "{e}");
        assert!(e.message.contains("connect"), "{e}");
        // With errorPath.
        let mut config = node("{{data.uri}}");
        config["errorBehavior"] = json!("payloadPath");
        config["errorPath"] = json!("working.err");
        let out = run(&h, config.clone(), json!({"data": {"uri": "nope"}})).unwrap();
        assert_eq!(out["working"]["err"]["type"], "HttpError");
        assert!(out["working"]["err"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid URL"));
        // An empty URI is a template failure and halts regardless.
        let e = run(&h, config, json!({"data": {}})).unwrap_err();
        assert_eq!(e.name, ErrorName::TemplateError);
        assert!(e.message.contains("uriTemplate"), "{e}");
    }

    #[test]
    fn tls_verification() {
        let h = Harness::new();
        let uri = format!("{}/", tls_base());
        let get = |extra: Value| {
            let mut config =
                json!({"uriTemplate": uri, "responsePath": "res", "timeoutTemplate": "5"});
            for (k, v) in extra.as_object().into_iter().flatten() {
                config[k] = v.clone();
            }
            run(&h, config, json!({"data": {"ca": TEST_CA}})).map(|p| p["res"]["body"].clone())
        };
        // The test CA is not trusted by default.
        let e = get(json!({})).unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(e.message.to_lowercase().contains("certificate"), "{e}");
        assert_eq!(get(json!({"caCertTemplate": TEST_CA})).unwrap(), "secure");
        assert_eq!(
            get(json!({"caCertTemplate": "{{data.ca}}"})).unwrap(),
            "secure"
        );
        assert_eq!(
            get(json!({"disableSSLVerification": true})).unwrap(),
            "secure"
        );
        // A custom CA replaces the built-in roots; a server it did not sign fails.
        let other = get(json!({"caCertTemplate": TEST_SERVER_CERT}));
        assert_eq!(other.unwrap_err().name, ErrorName::HttpError);
        let e = run(
            &h,
            json!({"uriTemplate": uri, "caCertTemplate": "{{data.ca}}"}),
            json!({"data": {"ca": "garbage"}}),
        )
        .unwrap_err();
        assert_eq!(e.name, ErrorName::HttpError);
        assert!(e.message.contains("caCertTemplate"), "{e}");
    }
}
