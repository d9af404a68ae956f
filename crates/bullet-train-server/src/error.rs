//! `ApiError`: the one error type at the HTTP boundary. Every variant becomes a JSON body with a 4xx or
//! 5xx status in the shapes Flagsmith (Django REST framework) uses: `{"detail": "..."}`, or a map from
//! field name to messages. Internal errors are logged once here and never described to the client.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bullet_train_store::StoreError;
use serde_json::json;

/// Field-level validation messages, `{"field": ["message", ...]}`.
pub(crate) type FieldErrors = BTreeMap<String, serde_json::Value>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400 with `{"detail": ...}`.
    #[error("{0}")]
    BadRequest(String),
    /// 400 with field errors.
    #[error("invalid fields")]
    Fields(FieldErrors),
    /// 401 (admin authentication).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403 (SDK key problems, refused settings).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 with a message.
    #[error("{0}")]
    NotFound(&'static str),
    /// 405 for the given method.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// 409: the object already exists.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body exceeds the documented limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// 408: the request took longer than the documented limit.
    #[error("request timed out")]
    Timeout,
    /// 503: the database cannot be reached; logged.
    #[error("database unavailable")]
    Unavailable(anyhow::Error),
    /// 500, logged, never detailed to the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A single field error: `{"<field>": ["<message>"]}`.
    pub(crate) fn field(field: &str, message: impl Into<String>) -> ApiError {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), json!([message.into()]));
        ApiError::Fields(errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("Not found."),
            StoreError::Conflict(what) => ApiError::Conflict(format!("Conflict: {what}")),
            StoreError::Invalid(message) => ApiError::BadRequest(message),
            StoreError::Unavailable(e) => ApiError::Unavailable(e),
            StoreError::Other(e) => ApiError::Internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::BadRequest(detail) => (StatusCode::BAD_REQUEST, json!({ "detail": detail })),
            ApiError::Fields(errors) => (StatusCode::BAD_REQUEST, json!(errors)),
            ApiError::Unauthorized(detail) => {
                (StatusCode::UNAUTHORIZED, json!({ "detail": detail }))
            }
            ApiError::Forbidden(detail) => (StatusCode::FORBIDDEN, json!({ "detail": detail })),
            ApiError::NotFound(detail) => (StatusCode::NOT_FOUND, json!({ "detail": detail })),
            ApiError::MethodNotAllowed(method) => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({ "detail": format!("Method \"{method}\" not allowed.") }),
            ),
            ApiError::Conflict(detail) => (StatusCode::CONFLICT, json!({ "detail": detail })),
            ApiError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "detail": "Request body too large." }),
            ),
            ApiError::UnsupportedMediaType(media) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({ "detail": format!("Unsupported media type \"{media}\" in request.") }),
            ),
            ApiError::Timeout => (
                StatusCode::REQUEST_TIMEOUT,
                json!({ "detail": "Request timed out." }),
            ),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({ "detail": "Database unavailable; try again shortly." }),
                )
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "detail": "Internal server error." }),
                )
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

/// Shorthand for handler results.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
