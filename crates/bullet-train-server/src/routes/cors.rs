//! CORS for the SDK routes: any origin (keys travel in a header, never in cookies), the headers SDKs
//! send, and the updated-at header exposed to browser SDKs. The policy is fixed, so every header it
//! adds is a constant: a preflight (`OPTIONS`) is answered here, and every other response gets two
//! static headers. tower-http's general `CorsLayer` gives the same headers but rebuilds its header
//! set (and clones its configuration) on every request, about a seventh of the server's own work on
//! a `flags/` request (`docs/benchmarks/request-path.md`).

use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use futures_util::TryFutureExt as _;
use futures_util::future::{Either, MapOk, Ready, ready};
use tower::{Layer, Service};

/// Origins allowed: all.
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
/// Response headers browser SDKs may read.
const EXPOSED: HeaderValue =
    HeaderValue::from_static("x-flagsmith-document-updated-at,retry-after");
/// Methods the SDK routes take.
const METHODS: HeaderValue = HeaderValue::from_static("GET,POST,PUT,OPTIONS");
/// Request headers SDKs send, and the defaults Flagsmith's Core allows besides (`accept`,
/// `authorization`, `user-agent`, `x-requested-with`), so a browser client that adds one of those
/// passes the preflight here as it does against Core.
const HEADERS: HeaderValue = HeaderValue::from_static(
    "x-environment-key,content-type,flagsmith-sdk-user-agent,flagsmith-application-name,\
     flagsmith-application-version,if-modified-since,accept,authorization,user-agent,\
     x-requested-with",
);
/// How long a browser may cache a preflight's answer: a day.
const MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

/// Adds the SDK routes' CORS policy to a service.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SdkCorsLayer;

impl<S> Layer<S> for SdkCorsLayer {
    type Service = SdkCors<S>;

    fn layer(&self, inner: S) -> SdkCors<S> {
        SdkCors { inner }
    }
}

/// A service under the SDK routes' CORS policy.
#[derive(Clone, Debug)]
pub(crate) struct SdkCors<S> {
    inner: S,
}

impl<S> Service<Request> for SdkCors<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        Either<Ready<Result<Response, S::Error>>, MapOk<S::Future, fn(Response) -> Response>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.method() == Method::OPTIONS {
            return Either::Left(ready(Ok(preflight())));
        }
        Either::Right(
            self.inner
                .call(request)
                .map_ok(exposed as fn(Response) -> Response),
        )
    }
}

/// The answer to a preflight request.
fn preflight() -> Response {
    let mut response = Response::default();
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    headers.insert(ACCESS_CONTROL_ALLOW_METHODS, METHODS);
    headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, HEADERS);
    headers.insert(ACCESS_CONTROL_MAX_AGE, MAX_AGE);
    response
}

/// A response open to every origin, with the headers browser SDKs read exposed.
fn exposed(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, ANY_ORIGIN);
    headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
    response
}
