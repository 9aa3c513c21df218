//! Reading requests the Losant way: JSON bodies checked against the official schema (malformed
//! JSON and oversize bodies answered with Losant error bodies, not axum's plain text), query
//! strings as flat string maps, and path ids checked for their 24-hex shape.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use flowd_model::schema::{validate, SchemaName};
use serde_json::Value;
use std::collections::HashMap;

/// The raw JSON body of a request, size-checked and parsed, not yet validated.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> ApiResult<Self> {
        let limit = state.limits.max_body_bytes;
        let bytes = read_body(req.into_body(), limit).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::validation(
                "The request body is empty; a JSON object is required",
            ));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::validation(format!("The request body is not valid JSON: {e}"))
        })?;
        Ok(JsonBody(value))
    }
}

/// How much of an oversize body is read and thrown away before the 413 is sent. Answering
/// while the client is still sending makes the connection close with unread data, and the
/// client then sees a broken pipe or a reset instead of the 413; past this much, it does.
const OVERSIZE_DRAIN_BYTES: usize = 16 * 1024 * 1024;

/// Reads a body of at most `limit` bytes; a longer one is drained (up to
/// [`OVERSIZE_DRAIN_BYTES`]) and answered with 413.
pub(crate) async fn read_body(mut body: axum::body::Body, limit: usize) -> ApiResult<Vec<u8>> {
    use axum::body::HttpBody;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| {
            ApiError::validation(format!("The request body could not be read: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen - limit > OVERSIZE_DRAIN_BYTES {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "The request body is over the limit of {limit} bytes"
        )));
    }
    Ok(kept)
}

impl JsonBody {
    /// Checks the body against an official schema; the error names the field.
    pub fn validated(self, schema: SchemaName) -> ApiResult<Value> {
        validate(schema, &self.0).map_err(|e| ApiError::Validation(e.0))?;
        Ok(self.0)
    }
}

/// A request's query string as a map of strings. Losant's global parameters (`_actions`,
/// `_links`, `_embedded`) are accepted by every action.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl FromRequestParts<AppState> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> ApiResult<Self> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Params(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A boolean parameter (`true`/`false`, also `1`/`0`).
    pub fn bool(&self, name: &str, default: bool) -> ApiResult<bool> {
        match self.get(name) {
            None => Ok(default),
            // Python's client sends its booleans as `True`/`False`.
            Some("true" | "True" | "1") => Ok(true),
            Some("false" | "False" | "0") => Ok(false),
            Some(other) => Err(ApiError::validation(format!(
                "{name} must be true or false, not \"{other}\""
            ))),
        }
    }

    /// A non-negative integer parameter, at most `max`.
    pub fn uint(&self, name: &str, default: u64, max: u64) -> ApiResult<u64> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "{name} must be a whole number from 0 to {max}, not \"{text}\""
                    ))
                }),
        }
    }

    /// A parameter restricted to a set of values.
    pub fn one_of<'a>(
        &self,
        name: &str,
        allowed: &[&'a str],
        default: &'a str,
    ) -> ApiResult<&'a str> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => allowed
                .iter()
                .copied()
                .find(|a| *a == value)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "{name} must be one of {}, not \"{value}\"",
                        allowed.join(", ")
                    ))
                }),
        }
    }

    /// A JSON parameter (Losant's advanced `query`), validated against a schema.
    pub fn json(&self, name: &str, schema: SchemaName) -> ApiResult<Option<Value>> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::validation(format!("{name} is not valid JSON: {e}")))?;
        validate(schema, &value).map_err(|e| ApiError::validation(format!("{name}: {}", e.0)))?;
        Ok(Some(value))
    }

    /// Whether responses should carry `_links` (decision 2: unless `_links=false`).
    pub fn links(&self) -> bool {
        self.get("_links") != Some("false")
    }
}

/// Checks the shape of an id taken from the path; a malformed one is a 404 (decision 1).
pub fn path_id<'a>(id: &'a str, what: &str) -> ApiResult<&'a str> {
    if flowd_model::id::is_id(id) {
        Ok(id)
    } else {
        Err(ApiError::not_found(what))
    }
}

/// Axum's path extractor, with its rejection answered in Losant's error shape.
pub struct PathParams<T>(pub T);

impl<T> FromRequestParts<AppState> for PathParams<T>
where
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::NotFound(e.body_text()))
    }
}
