//! Flag analytics: `POST analytics/flags/` (v1, `{feature name: count}`) and `POST /api/v2/analytics/flags/`
//! (`{"evaluations": [...]}`). Counts are stored per feature per UTC day. Unknown features and
//! non-integer counts are dropped silently, as Flagsmith does; digit keys naming a feature id (the
//! 2021 Python SDKs' form) are counted for that feature. Counts saturate at `i64::MAX` (in a request
//! and in the stored daily total) rather than overflow.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bullet_train_store::model::Id;
use bullet_train_store::time::{day, now_micros};

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Sdk};
use crate::snapshot::EnvSnapshot;
use crate::state::AppState;

/// The feature a key names: a feature name, or (legacy) a feature id.
fn feature_of(snapshot: &EnvSnapshot, key: &str) -> Option<Id> {
    if let Some(position) = snapshot.engine.feature_position(key) {
        return Some(snapshot.features[position].id);
    }
    let id: Id = key.parse().ok()?;
    snapshot.position_of_id(id).map(|_| id)
}

/// Adds `n` to a feature's count, saturating.
fn add(counts: &mut HashMap<Id, i64>, feature: Id, n: i64) {
    let count = counts.entry(feature).or_default();
    *count = count.saturating_add(n);
}

async fn record(state: &AppState, sdk: &Sdk, counts: HashMap<Id, i64>) -> ApiResult<()> {
    let counts: Vec<(Id, i64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    state
        .store
        .record_evaluations(sdk.environment.id, &day(now_micros()), &counts)
        .await?;
    Ok(())
}

/// Flag evaluation counts, `{feature name: count}`.
#[utoipa::path(post, path = "/api/v1/analytics/flags", tag = "sdk", security(("environment_key" = [])),
    request_body(description = "`{feature name: count}`", content_type = "application/json"),
    responses((status = 200), (status = 400)))]
pub(crate) async fn v1(
    State(state): State<AppState>,
    sdk: Sdk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::field(
            "non_field_errors",
            "Expected a JSON object.",
        ));
    };
    let mut counts: HashMap<Id, i64> = HashMap::new();
    for (key, count) in object {
        if let (Some(feature), Some(n)) = (feature_of(&sdk.snapshot, key), count.as_i64()) {
            add(&mut counts, feature, n);
        }
    }
    record(&state, &sdk, counts).await?;
    Ok(StatusCode::OK.into_response())
}

/// Flag evaluation counts, `{"evaluations": [{"feature_name", "count", ...}]}`.
#[utoipa::path(post, path = "/api/v2/analytics/flags", tag = "sdk", security(("environment_key" = [])),
    request_body(description = "`{\"evaluations\": [...]}`", content_type = "application/json"),
    responses((status = 204), (status = 400)))]
pub(crate) async fn v2(
    State(state): State<AppState>,
    sdk: Sdk,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let Some(evaluations) = body.get("evaluations").and_then(|e| e.as_array()) else {
        return Err(ApiError::field("evaluations", "This field is required."));
    };
    let mut counts: HashMap<Id, i64> = HashMap::new();
    for evaluation in evaluations {
        let name = evaluation.get("feature_name").and_then(|n| n.as_str());
        let count = evaluation.get("count").and_then(|c| c.as_i64());
        if let (Some(feature), Some(n)) = (name.and_then(|n| feature_of(&sdk.snapshot, n)), count) {
            add(&mut counts, feature, n);
        }
    }
    record(&state, &sdk, counts).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
