//! The HTTP side: one reqwest client with the SDK headers, retries with backoff for idempotent
//! requests, status-to-error mapping, and the environment-document fetch (conditional, paginated).

use std::time::Duration;

use bullet_train_protocol::EnvironmentDocument;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

/// Longest wait between two attempts, whatever `Retry-After` says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);
/// How much of an error body is kept in [`Error::Status`].
const MAX_MESSAGE: usize = 300;
/// Most `Link: rel="next"` pages followed for one document.
const MAX_PAGES: usize = 1000;

#[derive(Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    base: Url,
    retries: u32,
    backoff: Duration,
}

/// The answer to a document fetch.
#[derive(Debug)]
pub(crate) enum DocumentFetch {
    /// 304: the document has not changed since `If-Modified-Since`.
    NotModified,
    /// A document, with the headers that drive the next conditional request.
    Fetched {
        document: Box<EnvironmentDocument>,
        last_modified: Option<String>,
        /// Whether `Date` is a later second than `Last-Modified`: only then can a later
        /// `If-Modified-Since` with that value not hide a change made in the same second.
        conditional: bool,
    },
}

impl Http {
    pub(crate) fn new(
        base: Url,
        environment_key: &str,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
        custom: &HeaderMap,
    ) -> Result<Http, Error> {
        let mut headers = HeaderMap::new();
        let key = HeaderValue::from_str(environment_key)
            .map_err(|_| Error::Config("the environment key is not a valid header value".into()))?;
        headers.insert("x-environment-key", key);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        for (name, value) in custom {
            headers.insert(name, value.clone());
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(crate::USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            base,
            retries,
            backoff,
        })
    }

    /// The API URL every path is relative to (ends with `/`).
    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Url {
        // `base` ends with '/', and paths are relative, so this appends.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// Sends a request, retrying connection failures (any method) and, for idempotent methods,
    /// timeouts and 429/502/503/504 answers, with exponential backoff and jitter. Returns the
    /// response whatever its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Response, Error> {
        self.send_to(method, self.url(path), path, query, body, headers)
            .await
    }

    /// [`Http::send`] to a full URL (a `Link` to a next page); `path` names it in errors.
    async fn send_to(
        &self,
        method: Method,
        url: Url,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(header::HeaderName, String)],
    ) -> Result<Response, Error> {
        let body = match body {
            Some(body) => Some(serde_json::to_vec(body).map_err(|source| Error::Decode {
                path: path.to_owned(),
                source,
            })?),
            None => None,
        };
        let idempotent = method != Method::POST && method != Method::PATCH;
        let mut attempt = 0;
        loop {
            let mut request = self.client.request(method.clone(), url.clone());
            if !query.is_empty() {
                request = request.query(query);
            }
            for (name, value) in headers {
                request = request.header(name, value);
            }
            if let Some(body) = &body {
                request = request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let retry = attempt < self.retries;
            match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let retryable = matches!(
                        status,
                        StatusCode::TOO_MANY_REQUESTS
                            | StatusCode::BAD_GATEWAY
                            | StatusCode::SERVICE_UNAVAILABLE
                            | StatusCode::GATEWAY_TIMEOUT
                    );
                    if !(retry && idempotent && retryable) {
                        return Ok(response);
                    }
                    let delay = retry_after(&response).unwrap_or_else(|| self.delay(attempt));
                    tracing::debug!(%status, path, attempt, "retrying");
                    tokio::time::sleep(delay.min(MAX_RETRY_DELAY)).await;
                }
                Err(source) => {
                    let transient = source.is_connect() || (idempotent && source.is_timeout());
                    if !(retry && transient) {
                        return Err(Error::Transport {
                            path: path.to_owned(),
                            source,
                        });
                    }
                    tracing::debug!(path, attempt, error = %source, "retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                }
            }
            attempt += 1;
        }
    }

    /// Exponential backoff from `backoff`, with up to 50% random jitter so clients restarting
    /// together do not retry together.
    fn delay(&self, attempt: u32) -> Duration {
        let base = self.backoff.saturating_mul(1 << attempt.min(16));
        let jitter = (random_u32() % 1000) as f64 / 2000.0;
        base.mul_f64(1.0 + jitter).min(MAX_RETRY_DELAY)
    }

    /// GET returning the JSON body; `Ok(None)` on 404.
    pub(crate) async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<T>, Error> {
        let response = self
            .send(Method::GET, path, query, None::<&()>, &[])
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(path, response).await.map(Some)
    }

    /// A request returning the JSON body.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        let response = self.send(method, path, query, body, &[]).await?;
        decode(path, response).await
    }

    /// A request whose answer body does not matter, only its success.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<(), Error> {
        let response = self.send(method, path, &[], Some(body), &[]).await?;
        check(path, response).await.map(drop)
    }

    /// Fetches the environment document, with `If-Modified-Since` when given, following
    /// `Link: rel="next"` pages (whose identity overrides are appended to the first page's).
    pub(crate) async fn document(
        &self,
        if_modified_since: Option<&str>,
    ) -> Result<DocumentFetch, Error> {
        const PATH: &str = "environment-document/";
        let headers: Vec<_> = if_modified_since
            .map(|value| (header::IF_MODIFIED_SINCE, value.to_owned()))
            .into_iter()
            .collect();
        let response = self
            .send(Method::GET, PATH, &[], None::<&()>, &headers)
            .await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(DocumentFetch::NotModified);
        }
        let text = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let last_modified = text(header::LAST_MODIFIED);
        let date = text(header::DATE);
        let conditional = match (&last_modified, &date) {
            (Some(modified), Some(date)) => {
                match (
                    httpdate::parse_http_date(modified),
                    httpdate::parse_http_date(date),
                ) {
                    (Ok(modified), Ok(date)) => date > modified,
                    _ => false,
                }
            }
            _ => false,
        };
        let mut next = next_link(&response);
        let mut document: EnvironmentDocument = decode(PATH, response).await?;
        let mut pages = 1;
        while let Some(url) = next.take() {
            if pages >= MAX_PAGES {
                break;
            }
            pages += 1;
            // Retried like the first page: a failed page would discard the whole fetch.
            let response = self
                .send_to(Method::GET, url, PATH, &[], None::<&()>, &[])
                .await?;
            next = next_link(&response);
            let page: EnvironmentDocument = decode(PATH, response).await?;
            document.identity_overrides.extend(page.identity_overrides);
        }
        Ok(DocumentFetch::Fetched {
            document: Box::new(document),
            last_modified,
            conditional,
        })
    }
}

/// The `rel="next"` target of a `Link` header, resolved against the response's URL.
fn next_link(response: &Response) -> Option<Url> {
    for value in response.headers().get_all(header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let target = target.strip_prefix('<')?.strip_suffix('>')?;
                return response.url().join(target).ok();
            }
        }
    }
    None
}

/// `Retry-After` in seconds.
fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The response if its status is a success, else [`Error::Status`] with the server's message.
async fn check(path: &str, response: Response) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.map_err(|source| Error::Transport {
        path: path.to_owned(),
        source,
    })?;
    Err(Error::Status {
        status: status.as_u16(),
        message: message(&body),
    })
}

/// The JSON body of a successful response.
pub(crate) async fn decode<T: DeserializeOwned>(
    path: &str,
    response: Response,
) -> Result<T, Error> {
    let response = check(path, response).await?;
    let body = response.bytes().await.map_err(|source| Error::Transport {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&body).map_err(|source| Error::Decode {
        path: path.to_owned(),
        source,
    })
}

/// The `detail` (or other message field) of a JSON error body, or the start of the body.
fn message(body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        for key in ["detail", "message", "error"] {
            if let Some(serde_json::Value::String(text)) = map.get(key) {
                return text.clone();
            }
        }
        return serde_json::Value::Object(map)
            .to_string()
            .chars()
            .take(MAX_MESSAGE)
            .collect();
    }
    String::from_utf8_lossy(body)
        .chars()
        .take(MAX_MESSAGE)
        .collect()
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // Jitter only: a failure to get randomness just means no jitter.
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_prefer_the_detail() {
        assert_eq!(message(br#"{"detail": "Invalid key"}"#), "Invalid key");
        assert_eq!(
            message(br#"{"status":"not_found","message":"feature 'x' not found"}"#),
            "feature 'x' not found"
        );
        assert_eq!(
            message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
        assert_eq!(message(&[b'x'; 1000]).len(), MAX_MESSAGE);
    }
}
