//! [`Builder`]: every option of the client, checked once in [`Builder::build`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bullet_train_protocol::EnvironmentDocument;
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::client::Handler;
use crate::{BulletTrain, DefaultFlag, Error};

/// Where the client looks for the server when no `api` is given: `bullet-train serve`'s default
/// address.
///
/// ```
/// assert_eq!(bullet_train::BulletTrain::new("key")?.api_url(), Some(bullet_train::DEFAULT_API_URL));
/// # Ok::<(), bullet_train::Error>(())
/// ```
pub const DEFAULT_API_URL: &str = "http://127.0.0.1:8000/api/v1/";

/// Configures a [`BulletTrain`] client.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use bullet_train::BulletTrain;
///
/// let bt = BulletTrain::builder("QuickStartEnvironment1")
///     // The seed's `api` option: with or without `/v1/`, with or without the trailing slash.
///     .api("https://flags.example.com/api")
///     .request_timeout(Duration::from_secs(5))
///     .retries(2)
///     .header("x-tenant", "acme")
///     .build()?;
/// assert_eq!(bt.api_url(), Some("https://flags.example.com/api/v1/"));
/// # Ok::<(), bullet_train::Error>(())
/// ```
#[must_use]
pub struct Builder {
    pub(crate) environment_key: String,
    pub(crate) api: String,
    pub(crate) request_timeout: Duration,
    pub(crate) retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) local_evaluation: bool,
    pub(crate) refresh_interval: Duration,
    pub(crate) realtime: bool,
    pub(crate) realtime_url: Option<String>,
    pub(crate) ready_timeout: Option<Duration>,
    pub(crate) offline_mode: bool,
    pub(crate) offline_document: Option<OfflineDocument>,
    pub(crate) default_flag_handler: Option<Handler>,
    pub(crate) analytics: bool,
    pub(crate) analytics_interval: Duration,
}

pub(crate) enum OfflineDocument {
    Document(Box<EnvironmentDocument>),
    File(PathBuf),
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment key and header values may be secrets: leave them out.
        f.debug_struct("Builder")
            .field("api", &self.api)
            .field("local_evaluation", &self.local_evaluation)
            .field("offline_mode", &self.offline_mode)
            .finish_non_exhaustive()
    }
}

impl Builder {
    pub(crate) fn new(environment_key: impl Into<String>) -> Builder {
        Builder {
            environment_key: environment_key.into(),
            api: DEFAULT_API_URL.to_owned(),
            request_timeout: Duration::from_secs(10),
            retries: 3,
            retry_backoff: Duration::from_millis(100),
            headers: Vec::new(),
            local_evaluation: false,
            refresh_interval: Duration::from_secs(60),
            realtime: true,
            realtime_url: None,
            ready_timeout: None,
            offline_mode: false,
            offline_document: None,
            default_flag_handler: None,
            analytics: false,
            analytics_interval: Duration::from_secs(10),
        }
    }

    /// The API URL (the seed's `api` option). `https://host/api`, `https://host/api/`,
    /// `https://host/api/v1` and `https://host/api/v1/` all mean the same; a bare `https://host`
    /// means `https://host/api/v1/`. Default: [`DEFAULT_API_URL`].
    ///
    /// ```
    /// let bt = bullet_train::BulletTrain::builder("key").api("http://localhost:8000/api").build()?;
    /// assert_eq!(bt.api_url(), Some("http://localhost:8000/api/v1/"));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn api(mut self, url: impl Into<String>) -> Builder {
        self.api = url.into();
        self
    }

    /// Time limit of each HTTP request, connection included. Default 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = bullet_train::BulletTrain::builder("key").request_timeout(Duration::from_secs(2));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Builder {
        self.request_timeout = timeout;
        self
    }

    /// How many times an idempotent request (GET) is retried after a connection failure, a
    /// timeout, or a 429/502/503/504 answer (honouring `Retry-After`); other requests are retried
    /// only when the connection could not be made. Default 3.
    ///
    /// ```
    /// // Fail fast: no retries at all.
    /// let builder = bullet_train::BulletTrain::builder("key").retries(0);
    /// ```
    pub fn retries(mut self, retries: u32) -> Builder {
        self.retries = retries;
        self
    }

    /// The first retry's delay; each further retry doubles it (plus up to 50% jitter, at most
    /// 10 s). Default 100 ms.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = bullet_train::BulletTrain::builder("key").retry_backoff(Duration::from_millis(250));
    /// ```
    pub fn retry_backoff(mut self, backoff: Duration) -> Builder {
        self.retry_backoff = backoff;
        self
    }

    /// A header sent with every API request (for example a proxy's credentials).
    ///
    /// ```
    /// let builder = bullet_train::BulletTrain::builder("key").header("x-proxy-key", "secret");
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Builder {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Evaluates flags in-process from the environment document instead of asking the server per
    /// call. Needs a server-side key (`ser.…`). The document is fetched in the background when the
    /// client is built and kept current (see [`Builder::realtime`] and
    /// [`Builder::refresh_interval`]). Default off.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), bullet_train::Error> {
    /// let bt = bullet_train::BulletTrain::builder("ser.YOUR_SERVER_KEY").local_evaluation(true).build()?;
    /// assert_eq!(bt.mode(), bullet_train::Mode::Local);
    /// # Ok(()) }
    /// ```
    pub fn local_evaluation(mut self, enabled: bool) -> Builder {
        self.local_evaluation = enabled;
        self
    }

    /// How often local evaluation polls the document (`If-Modified-Since`, so an unchanged
    /// document costs a 304). Default 60 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = bullet_train::BulletTrain::builder("ser.key")
    ///     .local_evaluation(true)
    ///     .refresh_interval(Duration::from_secs(15));
    /// ```
    pub fn refresh_interval(mut self, interval: Duration) -> Builder {
        self.refresh_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Whether local evaluation also listens to the real-time stream and fetches the document as
    /// soon as it changes. Default on; polling continues as the fallback.
    ///
    /// ```
    /// // Polling only, for servers without the stream.
    /// let builder = bullet_train::BulletTrain::builder("ser.key").local_evaluation(true).realtime(false);
    /// ```
    pub fn realtime(mut self, enabled: bool) -> Builder {
        self.realtime = enabled;
        self
    }

    /// Where the real-time stream is served. Default: the API URL's origin (what
    /// `bullet-train serve` serves), or `https://realtime.flagsmith.com/` for Flagsmith's hosted
    /// API.
    ///
    /// ```
    /// let builder = bullet_train::BulletTrain::builder("ser.key")
    ///     .local_evaluation(true)
    ///     .realtime_url("https://realtime.example.com/");
    /// ```
    pub fn realtime_url(mut self, url: impl Into<String>) -> Builder {
        self.realtime_url = Some(url.into());
        self
    }

    /// How long a local-evaluation call made before the first document arrived waits for it.
    /// Default: the request timeout. Calls never wait once the first fetch has been tried.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = bullet_train::BulletTrain::builder("ser.key")
    ///     .local_evaluation(true)
    ///     .ready_timeout(Duration::from_secs(1));
    /// ```
    pub fn ready_timeout(mut self, timeout: Duration) -> Builder {
        self.ready_timeout = Some(timeout);
        self
    }

    /// Never talks to the server: flags come from the offline document (required), analytics are
    /// off, and trait calls fail with [`Error::Offline`].
    ///
    /// ```no_run
    /// let bt = bullet_train::BulletTrain::builder("key")
    ///     .offline_mode(true)
    ///     .offline_document_file("environment.json")
    ///     .build()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn offline_mode(mut self, enabled: bool) -> Builder {
        self.offline_mode = enabled;
        self
    }

    /// An environment document to evaluate from: always in offline mode; otherwise until the
    /// first fetch succeeds (local evaluation) or whenever the server fails (remote evaluation).
    ///
    /// ```
    /// # fn load() -> bullet_train::EnvironmentDocument { serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap() }
    /// let document: bullet_train::EnvironmentDocument = load();
    /// // A remote client that answers from the document while the server is unreachable.
    /// let bt = bullet_train::BulletTrain::builder("key").offline_document(document).build()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn offline_document(mut self, document: EnvironmentDocument) -> Builder {
        self.offline_document = Some(OfflineDocument::Document(Box::new(document)));
        self
    }

    /// [`Builder::offline_document`] read from a JSON file (an exported environment document),
    /// read when the client is built.
    ///
    /// ```no_run
    /// let bt = bullet_train::BulletTrain::builder("key")
    ///     .offline_document_file("/etc/flags/environment.json")
    ///     .build()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn offline_document_file(mut self, path: impl AsRef<Path>) -> Builder {
        self.offline_document = Some(OfflineDocument::File(path.as_ref().to_owned()));
        self
    }

    /// What to answer for a feature the client cannot get: one the environment does not have, or
    /// any feature when the server fails. Returning `None` keeps the plain answer (`Ok(None)` or
    /// the error).
    ///
    /// ```
    /// use bullet_train::DefaultFlag;
    /// let builder = bullet_train::BulletTrain::builder("key")
    ///     .default_flag_handler(|_name| Some(DefaultFlag::new(false, bullet_train::Value::Null)));
    /// ```
    pub fn default_flag_handler(
        mut self,
        handler: impl Fn(&str) -> Option<DefaultFlag> + Send + Sync + 'static,
    ) -> Builder {
        self.default_flag_handler = Some(Arc::new(handler));
        self
    }

    /// Counts flag evaluations per feature and sends them to `analytics/flags/` in the
    /// background. Default off.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), bullet_train::Error> {
    /// let bt = bullet_train::BulletTrain::builder("key").analytics(true).build()?;
    /// # Ok(()) }
    /// ```
    pub fn analytics(mut self, enabled: bool) -> Builder {
        self.analytics = enabled;
        self
    }

    /// How often analytics are sent. Default 10 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let builder = bullet_train::BulletTrain::builder("key")
    ///     .analytics(true)
    ///     .analytics_interval(Duration::from_secs(60));
    /// ```
    pub fn analytics_interval(mut self, interval: Duration) -> Builder {
        self.analytics_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Builds the client. Local evaluation and analytics start background tasks, so they must be
    /// built inside a Tokio runtime ([`Error::NoRuntime`] otherwise); the blocking client brings its
    /// own.
    ///
    /// ```
    /// let bt = bullet_train::BulletTrain::builder("key").build()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn build(self) -> Result<BulletTrain, Error> {
        BulletTrain::from_builder(self)
    }

    /// Builds a [`crate::blocking::BulletTrain`], which owns a runtime for its background tasks.
    ///
    /// ```
    /// let bt = bullet_train::BulletTrain::builder("key").build_blocking()?;
    /// assert!(bt.is_ready());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn build_blocking(self) -> Result<crate::blocking::BulletTrain, Error> {
        crate::blocking::BulletTrain::from_builder(self)
    }

    pub(crate) fn header_map(&self) -> Result<HeaderMap, Error> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| Error::Config(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::try_from(value.as_str())
                .map_err(|_| Error::Config(format!("invalid value for header {name}")))?;
            map.insert(name, value);
        }
        Ok(map)
    }
}

/// The API URL in its canonical form, ending with `/v1/`.
pub(crate) fn api_url(text: &str) -> Result<Url, Error> {
    let mut url = Url::parse(text.trim())
        .map_err(|e| Error::Config(format!("invalid api URL {text:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Config(format!(
            "invalid api URL {text:?}: expected http:// or https://"
        )));
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if path.is_empty() {
        "/api/v1/".to_owned()
    } else if path.ends_with("/v1") {
        format!("{path}/")
    } else {
        format!("{path}/v1/")
    };
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The default real-time URL for an API URL.
pub(crate) fn realtime_url(api: &Url) -> Url {
    let mut url = api.clone();
    if url
        .host_str()
        .is_some_and(|h| h.ends_with("api.flagsmith.com"))
    {
        return Url::parse("https://realtime.flagsmith.com/").unwrap_or(url);
    }
    let path = api.path();
    let root = path
        .strip_suffix("api/v1/")
        .or_else(|| path.strip_suffix("v1/"))
        .unwrap_or("/");
    url.set_path(root);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_normalised_to_v1() {
        for (given, expected) in [
            ("http://h:1/api", "http://h:1/api/v1/"),
            ("http://h:1/api/", "http://h:1/api/v1/"),
            ("http://h:1/api/v1", "http://h:1/api/v1/"),
            ("http://h:1/api/v1/", "http://h:1/api/v1/"),
            ("http://h:1/api/v1//", "http://h:1/api/v1/"),
            ("http://h:1", "http://h:1/api/v1/"),
            ("https://h/flags/api/v1?x=1", "https://h/flags/api/v1/"),
        ] {
            assert_eq!(api_url(given).unwrap().as_str(), expected, "{given}");
        }
        assert!(matches!(api_url("ftp://h/api"), Err(Error::Config(_))));
        assert!(matches!(api_url("not a url"), Err(Error::Config(_))));
    }

    #[test]
    fn realtime_defaults_to_the_api_origin() {
        let rt = |api: &str| realtime_url(&api_url(api).unwrap()).to_string();
        assert_eq!(rt("http://h:1/api/v1/"), "http://h:1/");
        assert_eq!(rt("http://h:1/flags/api/v1/"), "http://h:1/flags/");
        assert_eq!(
            rt("https://edge.api.flagsmith.com/api/v1/"),
            "https://realtime.flagsmith.com/"
        );
    }
}
