//! Health routes: `/health` (ready once the server serves), Flagsmith's `/health/liveness/` and
//! `/health/readiness/`, `/healthcheck` and `/version/`.

use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use crate::state::AppState;

async fn ok() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn version() -> Json<Value> {
    Json(
        json!({ "ci_commit_sha": "unknown", "image_tag": env!("CARGO_PKG_VERSION"),
        "package_versions": { "bullet-train": env!("CARGO_PKG_VERSION") } }),
    )
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(ok))
        .route("/health/liveness", get(ok))
        .route("/health/readiness", get(ok))
        .route("/healthcheck", get(ok))
        .route("/sse/health", get(ok))
        .route("/version", get(version))
}
