//! `GET flags/`: the environment's default flags (pre-serialized), or one flag by name, ignoring case;
//! and `GET flags/{feature_id}/multivariate-options/`.

use axum::http::header::VARY;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path, Sdk};
use crate::routes::{UPDATED_AT, json_bytes};

/// The environment's default flags, or with `?feature=` one flag by name (ignoring case).
#[utoipa::path(get, path = "/api/v1/flags", tag = "sdk", security(("environment_key" = [])),
    params(("feature" = Option<String>, Query)),
    responses((status = 200, body = Vec<bullet_train_protocol::sdk::Flag>),
        (status = 403, body = bullet_train_protocol::sdk::ErrorDetail),
        (status = 404, body = bullet_train_protocol::sdk::ErrorDetail)))]
pub(crate) async fn list(sdk: Sdk, params: Params) -> ApiResult<Response> {
    let snapshot = &sdk.snapshot;
    let Some(name) = params.get("feature") else {
        let mut response = json_bytes(StatusCode::OK, snapshot.flags_body(sdk.kind));
        let headers = response.headers_mut();
        headers.insert(UPDATED_AT, snapshot.updated_at_header.clone());
        headers.insert(VARY, HeaderValue::from_static("X_ENVIRONMENT_KEY"));
        return Ok(response);
    };
    snapshot
        .position_ignoring_case(name)
        .filter(|p| snapshot.visible(*p, sdk.kind))
        .and_then(|p| snapshot.single_flag(p))
        .map(|body| json_bytes(StatusCode::OK, body))
        .ok_or(ApiError::NotFound("Given feature not found"))
}

/// The control value and option values of a multivariate feature.
#[utoipa::path(get, path = "/api/v1/flags/{identifier}/multivariate-options", tag = "sdk",
    security(("environment_key" = [])), params(("identifier" = i64, Path, description = "Feature id")),
    responses((status = 200, description = "`{\"control_value\", \"options\": [{\"value\"}]}`"), (status = 404)))]
pub(crate) async fn multivariate_options(
    sdk: Sdk,
    Path(feature_id): Path<String>,
) -> ApiResult<axum::Json<serde_json::Value>> {
    let snapshot = &sdk.snapshot;
    let feature = feature_id
        .parse()
        .ok()
        .and_then(|id| snapshot.position_of_id(id))
        .filter(|p| snapshot.visible(*p, sdk.kind))
        .map(|p| &snapshot.features[p])
        .ok_or(ApiError::NotFound("Not found."))?;
    let options: Vec<_> = feature
        .option_values
        .iter()
        .map(|value| json!({ "value": value }))
        .collect();
    Ok(axum::Json(json!({
        "control_value": feature.control_value,
        "options": options,
    })))
}
