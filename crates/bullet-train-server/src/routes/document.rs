//! `GET environment-document/`: the pre-serialized environment document, server-side keys only, with
//! `Last-Modified` and `If-Modified-Since` → 304.

use axum::http::header::{IF_MODIFIED_SINCE, LAST_MODIFIED};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiResult};
use crate::extract::Sdk;
use crate::routes::{UPDATED_AT, json_bytes};
use crate::snapshot::KeyKind;

/// The environment document for local evaluation (server-side keys only); `If-Modified-Since`
/// answers 304 when unchanged.
#[utoipa::path(get, path = "/api/v1/environment-document", tag = "sdk", security(("environment_key" = [])),
    responses((status = 200, description = "A Flagsmith environment document"), (status = 304),
        (status = 403, body = bullet_train_protocol::sdk::ErrorDetail)))]
pub(crate) async fn get(sdk: Sdk, headers: HeaderMap) -> ApiResult<Response> {
    if sdk.kind != KeyKind::Server {
        return Err(ApiError::Forbidden("Invalid or missing Environment key"));
    }
    let snapshot = &sdk.snapshot;
    // HTTP dates have whole seconds. While the second of the last change is not over, another
    // change may still come within it, with the same date: a client holding the first would then
    // be told "not modified" about the second. So until that second ends, no 304 is given and
    // `Last-Modified` says the second before (a conservative date the next poll moves past).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let settled = now > snapshot.last_modified_secs;
    let unchanged = settled
        && headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .is_some_and(|since| snapshot.last_modified_secs <= since.as_secs());
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_bytes(StatusCode::OK, snapshot.document.clone())
    };
    let headers = response.headers_mut();
    let last_modified = if settled {
        &snapshot.last_modified
    } else {
        &snapshot.last_modified_early
    };
    headers.insert(LAST_MODIFIED, last_modified.clone());
    headers.insert(UPDATED_AT, snapshot.updated_at_header.clone());
    Ok(response)
}
