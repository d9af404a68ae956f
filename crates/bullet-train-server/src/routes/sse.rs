//! `GET /sse/environments/{client_key}/stream`: `environment_updated` events carrying the environment's
//! `updated_at` in float seconds, the current one on connect and then one per change, with keep-alive
//! comments in between. Every stream of an environment shares one pre-formatted event.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;

use crate::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bullet_train_store::time::now_micros;
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use crate::error::{ApiError, ApiResult};
use crate::snapshot::KeyKind;
use crate::state::AppState;

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

struct StreamState {
    events: watch::Receiver<Bytes>,
    shutdown: watch::Receiver<bool>,
    keep_alive: Interval,
    first: bool,
}

/// Real-time stream: `environment_updated` events with `{"updated_at": <float seconds>}`, on connect
/// and after every change, with keep-alive comments.
#[utoipa::path(get, path = "/sse/environments/{key}/stream", tag = "sdk",
    params(("key" = String, Path, description = "The environment's client key")),
    responses((status = 200, description = "text/event-stream"), (status = 404)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let environment = match state.registry.lookup(&key, now_micros) {
        Some((environment, KeyKind::Client)) => environment,
        _ => return Err(ApiError::NotFound("Not found.")),
    };
    let period = state.limits.sse_keep_alive.max(Duration::from_millis(10));
    let mut keep_alive = interval_at(Instant::now() + period, period);
    keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let initial = StreamState {
        events: environment.subscribe(),
        shutdown: state.shutdown.clone(),
        keep_alive,
        first: true,
    };
    let body = stream::unfold(initial, |mut s| async move {
        if s.first {
            s.first = false;
            let event = s.events.borrow_and_update().clone();
            return Some((Ok::<_, std::convert::Infallible>(event), s));
        }
        tokio::select! {
            changed = s.events.changed() => match changed {
                Ok(()) => {
                    let event = s.events.borrow_and_update().clone();
                    Some((Ok(event), s))
                }
                Err(_) => None,
            },
            _ = s.shutdown.changed() => None,
            _ = s.keep_alive.tick() => Some((Ok(Bytes::from_static(KEEP_ALIVE)), s)),
        }
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
