//! The public webhook URLs: `ANY /webhooks/{token}` and `ANY /webhooks/{token}/{*path}`.
//! No API token: the webhook's secret token (and its basic authentication, when set) is the
//! credential. Losant serves these on `triggers.losant.com`; flowd on its one listener.
//!
//! A request becomes the `data` of a run of every flow listening to the webhook:
//! `{path, method, headers, query, body, replyId?}` — `path` is what follows the token (`/`
//! when nothing does), `method` lower case, `headers` with lower-case names and without
//! `Cookie`, `query` an object (repeated names give arrays), `body` parsed by content type
//! (JSON; urlencoded forms and multipart as objects; other text as a string; other bytes cast as
//! the webhook's `castBuffersAs` says; `null` when empty). The header `X-Flow-Version` runs that
//! version of each flow instead of the live one.
//!
//! Answers: without `waitForReply`, `{"success":true}` with the webhook's `responseCode` once the
//! runs are queued. With it, the first Webhook Reply node's answer, or `504 GatewayTimeout` when
//! none comes within the reply timeout (60 s by default) — at once when no flow listens.
//! Errors: unknown token → 404; disabled webhook → 403; wrong or missing basic credentials →
//! 401 with `WWW-Authenticate`; a body over 256 KB → 413; over the trigger rate limit or a full
//! run queue → 429. Bodies are Losant's `{type, message}`.

use crate::error::{ApiError, ApiResult};
use crate::hal::Success;
use crate::request::read_body;
use crate::state::{AppState, WEBHOOK_MAX_BODY_BYTES};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use base64::Engine as _;
use flowd_engine::replies::WebhookReply;
use flowd_engine::triggers::webhook::WebhookSettings;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/{token}", any(receive_root))
        .route("/webhooks/{token}/{*path}", any(receive))
}

async fn receive_root(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    handle(state, token, String::new(), request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn receive(
    State(state): State<AppState>,
    Path((token, path)): Path<(String, String)>,
    request: Request,
) -> Response {
    handle(state, token, path, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    state: AppState,
    token: String,
    path: String,
    request: Request,
) -> ApiResult<Response> {
    let webhook = state
        .engine
        .webhooks()
        .by_token(&token)
        .ok_or_else(|| ApiError::not_found("Webhook"))?;
    if !webhook.enabled {
        return Err(ApiError::Forbidden("The webhook is disabled".into()));
    }
    let (parts, body) = request.into_parts();
    if let Some(expected) = &webhook.basic_auth {
        if !basic_auth_matches(&parts.headers, expected) {
            return Ok(unauthorized());
        }
    }
    let bytes = read_body(body, WEBHOOK_MAX_BODY_BYTES).await?;
    let flow_version = parts
        .headers
        .get("x-flow-version")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    // Built field by field: `json!` would serialize the header and body values into copies.
    let mut data = Map::with_capacity(6);
    data.insert("path".into(), Value::String(format!("/{path}")));
    data.insert(
        "method".into(),
        Value::String(parts.method.as_str().to_ascii_lowercase()),
    );
    data.insert("headers".into(), headers_of(&parts.headers));
    data.insert("query".into(), query_of(parts.uri.query().unwrap_or("")));
    data.insert(
        "body".into(),
        body_of(&parts.headers, bytes, &webhook).await?,
    );

    if !webhook.wait_for_reply {
        state
            .engine
            .fire_webhook(&webhook, Value::Object(data), flow_version.as_deref())
            .await?;
        let status = StatusCode::from_u16(webhook.response_code).unwrap_or(StatusCode::OK);
        return Ok((status, Success).into_response());
    }

    let reply_id = format!("{}.{}", webhook.webhook_id, flowd_model::id::new_id());
    data.insert("replyId".into(), Value::String(reply_id.clone()));
    let replies = state.engine.replies();
    let wait = state.limits.webhook_reply_timeout;
    // Parked before the runs start, so that even the quickest reply finds it; the guard
    // removes it however this request ends (reply, timeout, or the client going away).
    let (answer, _parked) = replies.open(&webhook.application_id, &reply_id, wait);
    let runs = state
        .engine
        .fire_webhook(&webhook, Value::Object(data), flow_version.as_deref())
        .await?;
    if runs == 0 {
        return Err(ApiError::GatewayTimeout(
            "No workflow is listening to this webhook, so nothing will reply".into(),
        ));
    }
    // No reply by the deadline: the replies' sweep drops the sender and the wait ends.
    match answer.await {
        Ok(reply) => Ok(reply_response(reply)),
        Err(_) => Err(ApiError::GatewayTimeout(format!(
            "No workflow replied within {} s",
            wait.as_secs_f64()
        ))),
    }
}

fn unauthorized() -> Response {
    let mut response = ApiError::Unauthorized(
        "This webhook requires HTTP Basic authentication with its username and password".into(),
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"webhook\""),
    );
    response
}

/// Whether the request's Basic credentials are the webhook's (compared in constant time).
fn basic_auth_matches(headers: &HeaderMap, (user, password): &(String, String)) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
    else {
        return false;
    };
    let expected = format!("{user}:{password}");
    given.ct_eq(expected.as_bytes()).into()
}

fn headers_of(headers: &HeaderMap) -> Value {
    let mut out = Map::with_capacity(headers.keys_len());
    for (name, value) in headers {
        if name == header::COOKIE {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        // Repeated headers are joined as Node.js joins them.
        match out.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(out)
}

/// Name/value pairs as an object; a repeated name gives an array of its values.
fn pairs_to_object(pairs: impl Iterator<Item = (String, Value)>) -> Value {
    let mut out = Map::new();
    for (name, value) in pairs {
        match out.get_mut(&name) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                out.insert(name, value);
            }
        }
    }
    Value::Object(out)
}

fn query_of(query: &str) -> Value {
    pairs_to_object(
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))),
    )
}

/// Bytes as the webhook's `castBuffersAs` asks.
fn cast(bytes: &[u8], webhook: &WebhookSettings) -> Value {
    match webhook.cast_buffers_as.as_str() {
        "base64" => json!(base64::engine::general_purpose::STANDARD.encode(bytes)),
        "hex" => json!(flowd_model::id::hex_lower(bytes)),
        "binary" => json!(bytes.iter().map(|&b| b as char).collect::<String>()),
        "array" => json!(bytes),
        _ => json!(String::from_utf8_lossy(bytes)),
    }
}

async fn body_of(
    headers: &HeaderMap,
    bytes: Vec<u8>,
    webhook: &WebhookSettings,
) -> ApiResult<Value> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let is_json = essence == "application/json" || essence.ends_with("+json");
    Ok(match essence.as_str() {
        // Text that is not valid JSON stays text rather than failing the request.
        _ if is_json => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        "application/x-www-form-urlencoded" => pairs_to_object(
            form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))),
        ),
        "multipart/form-data" => multipart_of(&content_type, bytes, webhook).await?,
        _ if essence.starts_with("text/") || essence == "application/xml" || essence.is_empty() => {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => cast(&bytes, webhook),
    })
}

/// A multipart form as an object: text fields as strings, files cast per `castBuffersAs` (with
/// `annotateMultipart`, as `{filename, contentType, data}`).
async fn multipart_of(
    content_type: &str,
    bytes: Vec<u8>,
    webhook: &WebhookSettings,
) -> ApiResult<Value> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::validation(format!("The multipart body cannot be read: {e}")))?;
    let stream = futures::stream::once(async move {
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(bytes))
    });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut fields = Vec::new();
    loop {
        let field = form
            .next_field()
            .await
            .map_err(|e| ApiError::validation(format!("The multipart body cannot be read: {e}")))?;
        let Some(field) = field else { break };
        let name = field.name().unwrap_or("").to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let part_type = field.content_type().map(|m| m.to_string());
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::validation(format!("The multipart body cannot be read: {e}")))?;
        let value = match file_name {
            None => Value::String(String::from_utf8_lossy(&data).into_owned()),
            Some(file_name) if webhook.annotate_multipart => json!({
                "filename": file_name,
                "contentType": part_type.unwrap_or_else(|| "application/octet-stream".into()),
                "data": cast(&data, webhook),
            }),
            Some(_) => cast(&data, webhook),
        };
        fields.push((name, value));
    }
    Ok(pairs_to_object(fields.into_iter()))
}

fn reply_response(reply: WebhookReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Body::from(reply.body)).into_response();
    let headers = response.headers_mut();
    // A handful of headers: a list scans faster than a map hashes.
    let mut seen: Vec<HeaderName> = Vec::with_capacity(reply.headers.len());
    for (name, value) in reply.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        // The node's headers replace defaults; repeated names are all sent.
        if !seen.contains(&name) {
            seen.push(name.clone());
            headers.insert(name, value);
        } else {
            headers.append(name, value);
        }
    }
    response
}
