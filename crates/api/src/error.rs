//! The one error type of the HTTP layer and its mapping to Losant's error bodies
//! (`{"type": …, "message": …}`), status codes per `spec/README.md` decision 1.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use flowd_store::StoreError;
use serde_json::json;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, malformed, unknown, inactive or expired token.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token without the scope, or for another application.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (or its id is malformed).
    #[error("{0}")]
    NotFound(String),
    /// A body or query that fails validation; the message names the field.
    #[error("{0}")]
    Validation(String),
    /// A body over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Over a rate limit, or the run queue is full.
    #[error("{0}")]
    RateLimit(String),
    /// A webhook request that waited for a reply got none in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// A service flowd depends on (the shared run queue) cannot be reached; retrying later may
    /// succeed.
    #[error("{0}")]
    Unavailable(String),
    /// Something broke inside flowd; logged with its cause, never shown to the client.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(format!("{what} was not found"))
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::Validation(_) => (StatusCode::BAD_REQUEST, "Validation"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
            ApiError::RateLimit(_) => (StatusCode::TOO_MANY_REQUESTS, "RateLimit"),
            ApiError::GatewayTimeout(_) => (StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(message) | StoreError::LimitExceeded(message) => {
                ApiError::Validation(message)
            }
            StoreError::Backend(message) => ApiError::Internal(message),
        }
    }
}

impl From<flowd_engine::engine::PressError> for ApiError {
    fn from(e: flowd_engine::engine::PressError) -> Self {
        use flowd_engine::engine::PressError;
        match e {
            PressError::Invalid(message) => ApiError::Validation(message),
            PressError::NotFound => ApiError::not_found("Flow"),
            PressError::Busy | PressError::RateLimited(_) => ApiError::RateLimit(e.to_string()),
            PressError::Unavailable(message) => ApiError::Unavailable(message),
            PressError::Internal(message) => ApiError::Internal(message),
        }
    }
}

impl From<flowd_engine::error::CompileError> for ApiError {
    fn from(e: flowd_engine::error::CompileError) -> Self {
        ApiError::Validation(e.0)
    }
}

impl From<flowd_engine::storage::StorageError> for ApiError {
    fn from(e: flowd_engine::storage::StorageError) -> Self {
        use flowd_engine::storage::StorageError;
        match e {
            StorageError::Store(message) => ApiError::Internal(message),
            unexpected @ StorageError::NotCached => ApiError::Internal(unexpected.to_string()),
            other => ApiError::Validation(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.parts();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed inside flowd");
                "flowd could not complete the request; the server log has the cause".to_owned()
            }
            other => other.to_string(),
        };
        (status, Json(json!({ "type": kind, "message": message }))).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
