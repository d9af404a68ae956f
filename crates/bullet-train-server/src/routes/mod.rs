//! The HTTP surface: SDK routes (wire-protocol.md sections 1-2), the real-time stream, health, and
//! the admin routes, assembled into one service. Paths are normalised before routing, so `flags`,
//! `flags/` and `//flags/` reach the same handler.

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::Limits;
use crate::error::ApiError;
use crate::snapshot::frozen;
use crate::state::AppState;

mod admin;
mod analytics;
mod cors;
mod document;
mod flags;
mod health;
mod identities;
mod legacy;
mod sse;
mod traits;

pub(crate) const UPDATED_AT: HeaderName =
    HeaderName::from_static("x-flagsmith-document-updated-at");

/// The OpenAPI document's frame: title, security schemes; paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Bullet Train", description = "Feature flags and remote config: the Flagsmith SDK \
        API and the admin API. Paths are accepted with and without a trailing slash."),
    modifiers(&SecuritySchemes),
    security(("admin_token" = []))
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "environment_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Environment-Key",
                "An environment's client key, or a server-side key (ser.)",
            ))),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Token <admin token>` or `Api-Key <organisation API key>`",
            ))),
        );
    }
}

/// A layer stack for a router: tracing (when debug logging is on) and panic recovery outermost,
/// then `$layer`s; `guarded!(sdk; ...)` puts the SDK routes' CORS policy around all of it, so that
/// even a panic's 500 is readable from a browser. The layers are part of each router's one stack
/// rather than layers of the merged router, which would box and clone a second service for every
/// request.
macro_rules! guarded {
    (sdk; $($layer:expr),* $(,)?) => {
        ServiceBuilder::new()
            .layer(cors::SdkCorsLayer)
            .layer(guarded!($($layer),*))
    };
    ($($layer:expr),* $(,)?) => {
        ServiceBuilder::new()
            .option_layer(tracing_requests().then(|| {
                ServiceBuilder::new()
                    .map_response(IntoResponse::into_response)
                    .layer(TraceLayer::new_for_http().make_span_with(request_span))
                    .into_inner()
            }))
            .map_response(IntoResponse::into_response)
            .layer(CatchPanicLayer::custom(panicked))
            $(.layer($layer))*
    };
}

/// Whether requests get a span and debug events: only when debug logging is on. Off, the tracing
/// layer would record nothing, yet read the clock six times per request, so it is left out; errors
/// are logged where they are answered (`ApiError`), so nothing at info level or above comes from
/// it.
fn tracing_requests() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
}

/// The router with every route, layered with limits, CORS for the SDK routes, panic recovery and
/// tracing, and the OpenAPI document built from the same routes.
pub(crate) fn router(state: AppState) -> Router {
    let limits = state.limits;
    let (api_routes, _) = documented_routes(limits);
    // The document is built again, and serialised, on its first request: most servers never serve
    // it, and kept as a tree it would be the largest part of an idle server's heap (about 2.5 MB
    // of small allocations, against about 100 KB of JSON).
    let document = std::sync::Arc::new(std::sync::OnceLock::<axum::body::Bytes>::new());
    let openapi = Router::new().route(
        "/api/v1/openapi.json",
        get(move || {
            let body = document
                .get_or_init(|| frozen(documented_routes(limits).1.to_json().unwrap_or_default()))
                .clone();
            async move { json_bytes(StatusCode::OK, body) }
        }),
    );
    Router::new()
        .merge(api_routes)
        .merge(openapi.layer(guarded!()))
        .merge(health::router().layer(guarded!()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The span of one request: only the route pattern, since paths and queries may carry identifiers
/// (personal data).
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    tracing::debug_span!("request", method = %request.method(), route)
}

/// The answer to a handler's panic.
fn panicked(_: Box<dyn std::any::Any + Send>) -> Response {
    ApiError::Internal(anyhow::anyhow!("a handler panicked")).into_response()
}

/// The SDK and admin routes with their limits and CORS, and the OpenAPI document of the same
/// routes (utoipa collects it as the routes are added).
fn documented_routes(limits: Limits) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;

    // The timeout's 408 gets the JSON error body every other error has.
    let timeout = || {
        ServiceBuilder::new()
            .map_response(|response: Response| {
                if response.status() == StatusCode::REQUEST_TIMEOUT {
                    ApiError::Timeout.into_response()
                } else {
                    response
                }
            })
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                limits.request_timeout,
            ))
    };
    // Routes answered from memory alone cannot hang, so they skip the timeout (a timer per request
    // is a measurable share of a `flags/` request); routes that reach the store keep it.
    let (memory, memory_api) = OpenApiRouter::new()
        .routes(routes!(flags::list))
        .routes(routes!(flags::multivariate_options))
        .routes(routes!(document::get))
        .split_for_parts();
    let (stored, stored_api) = OpenApiRouter::new()
        .routes(routes!(legacy::identity_flags))
        .routes(routes!(identities::get, identities::post))
        .routes(routes!(legacy::identity))
        .routes(routes!(legacy::set_trait))
        .routes(routes!(traits::set))
        .routes(routes!(traits::bulk))
        .routes(routes!(traits::increment))
        .routes(routes!(analytics::v1))
        .routes(routes!(analytics::v2))
        .split_for_parts();
    let (stream, stream_api) = OpenApiRouter::new()
        .routes(routes!(sse::stream))
        .split_for_parts();
    // The 405 fallbacks are set before the layers so that they pass through them (CORS
    // preflights). Each router gets its layers as one stack: one boxed service per request. The
    // routes answered from memory read no request body, so they need no body limit.
    let memory = memory
        .method_not_allowed_fallback(method_not_allowed)
        .layer(guarded!(sdk;));
    let stored = stored
        .method_not_allowed_fallback(method_not_allowed)
        .layer(guarded!(sdk;
            DefaultBodyLimit::max(limits.sdk_body_bytes),
            timeout()
        ));
    let stream = stream
        .method_not_allowed_fallback(method_not_allowed)
        .layer(guarded!(sdk;));
    let sdk = memory.merge(stored).merge(stream);
    let (admin, admin_api) = admin::router().split_for_parts();
    let admin = admin
        .method_not_allowed_fallback(method_not_allowed)
        .layer(guarded!(
            DefaultBodyLimit::max(limits.admin_body_bytes),
            timeout()
        ));
    let mut api = ApiDoc::openapi();
    api.merge(memory_api);
    api.merge(stored_api);
    api.merge(stream_api);
    api.merge(admin_api);
    (sdk.merge(admin), api)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not found.")
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// Collapses repeated slashes and drops a trailing one: `/api/v1//flags/` becomes `/api/v1/flags`.
pub(crate) fn normalise_path(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() <= 1 || (!path.ends_with('/') && !path.contains("//")) {
        return request;
    }
    let mut normal = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    if let Some(query) = request.uri().query() {
        normal.push('?');
        normal.push_str(query);
    }
    let Ok(path_and_query) = PathAndQuery::from_maybe_shared(axum::body::Bytes::from(normal))
    else {
        return request;
    };
    if request.uri().scheme().is_none() && request.uri().authority().is_none() {
        // The usual origin-form target (`GET /path HTTP/1.1`): the path is the whole URI.
        *request.uri_mut() = Uri::from(path_and_query);
    } else {
        let mut parts = request.uri().clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

/// A JSON response with a pre-serialized body, with room for the headers SDK responses carry
/// (content type and length, updated-at, vary, CORS) without growing.
pub(crate) fn json_bytes(status: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    *response.headers_mut() = HeaderMap::with_capacity(8);
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    async fn panicking() -> &'static str {
        panic!("a handler bug")
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500_readable_from_any_origin_on_sdk_routes() {
        let app: Router = Router::new()
            .route("/api/v1/flags", get(panicking))
            .layer(guarded!(sdk;));
        let request = Request::get("/api/v1/flags")
            .header("Origin", "https://app.example.com")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["detail"].is_string(), "{body}");
    }
}
