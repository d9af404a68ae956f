//! Request extractors: the SDK key, the admin token, JSON bodies and query parameters, each rejecting
//! with the same JSON error shapes as every other error.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use bullet_train_store::time::now_micros;

use crate::error::ApiError;
use crate::registry::Environment;
use crate::snapshot::{EnvSnapshot, KeyKind};
use crate::state::AppState;

/// The environment an SDK request is for, from its `X-Environment-Key`.
pub(crate) struct Sdk {
    pub(crate) environment: Arc<Environment>,
    pub(crate) snapshot: Arc<EnvSnapshot>,
    pub(crate) kind: KeyKind,
}

impl FromRequestParts<AppState> for Sdk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-environment-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::Forbidden("Invalid or missing Environment key"))?;
        let (environment, kind) = state
            .registry
            .lookup(key, now_micros)
            .ok_or(ApiError::Forbidden("Invalid or missing Environment Key"))?;
        let snapshot = environment.snapshot();
        if snapshot.stop_serving_flags {
            return Err(ApiError::Forbidden(
                "Organisation is disabled from serving flags.",
            ));
        }
        Ok(Sdk {
            environment,
            snapshot,
            kind,
        })
    }
}

/// Path parameters, rejecting with the JSON error shape: a parameter that is not valid UTF-8 is a
/// 400; one that does not parse (a non-numeric id) names no object, so 404, as Flagsmith's URL
/// patterns answer.
pub(crate) struct Path<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;

        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(e))
                if matches!(e.kind(), ErrorKind::InvalidUtf8InPathParam { .. }) =>
            {
                Err(ApiError::BadRequest(
                    "Path parameters must be valid UTF-8.".into(),
                ))
            }
            Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::NotFound("Not found."))
            }
            Err(e) => Err(ApiError::Internal(anyhow::anyhow!("path parameters: {e}"))),
        }
    }
}

/// The admin token hash the server accepts.
#[derive(Debug)]
pub(crate) struct AdminToken {
    pub(crate) sha256: [u8; 32],
}

/// A JSON body, parsed into a `serde_json::Value` for field-by-field validation.
pub(crate) struct JsonBody(pub(crate) serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawJson(bytes) = RawJson::from_request(req, state).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A JSON body as received (content type checked, size limited), not parsed yet: for handlers
/// whose answer may be known from the exact bytes.
pub(crate) struct RawJson(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
            let media = content_type.to_str().unwrap_or("");
            let essence = media.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") && !essence.ends_with("+json") {
                return Err(ApiError::UnsupportedMediaType(media.to_owned()));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("Could not read the request body: {rejection}"))
            }
        })?;
        Ok(RawJson(bytes))
    }
}

/// Parses a JSON body, with the error SDKs get for malformed JSON.
pub(crate) fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("JSON parse error - {e}")))
}

/// Query parameters (unknown ones, such as the 2018 JS client's `format=json`, are ignored).
pub(crate) struct Params(pub(crate) HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("Invalid query string: {e}")))?;
        Ok(Params(params))
    }
}

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}
