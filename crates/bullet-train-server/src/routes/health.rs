//! Health routes: `/health` (ready once the server serves), Flagsmith's `/health/liveness/` and
//! `/health/readiness/`, `/healthcheck` and `/version/`; `/health/database` reports whether the
//! database answers (flags keep being served from memory when it does not, so load balancers
//! should check `/health`, and monitoring `/health/database`) and whether this server is the
//! database's sole writer.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

use crate::state::AppState;

/// 200 when the database answers, 503 otherwise; `sole_writer` says whether this server decides
/// trait writes from memory (SQLite, or the only replica on PostgreSQL) or reads the database first
/// (PostgreSQL with other replicas).
async fn database(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.revisions().await {
        Ok(environments) => (
            StatusCode::OK,
            Json(json!({
                "status": "ok",
                "environments": environments.len(),
                "sole_writer": !state.store.shared(),
            })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "database health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}

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
        .route("/health/database", get(database))
        .route("/healthcheck", get(ok))
        .route("/sse/health", get(ok))
        .route("/version", get(version))
}
