//! [`BulletTrain`], the async client: the seed's functions, each answered remotely (one request) or
//! locally (from the compiled environment document, no request), with the offline document and the
//! default flag handler as fallbacks.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bullet_train_engine::Identity;
use bullet_train_protocol::{EnvironmentDocument, Value, sdk};
use reqwest::{Method, Url};
use serde::Deserialize;
use tokio::sync::watch;

use crate::Error;
use crate::analytics::{self, Analytics};
use crate::builder::{self, Builder, OfflineDocument};
use crate::http::{DocumentFetch, Http};
use crate::local::{self, LocalState};
use crate::types::{DefaultFlag, Flag, IdentityFlags, Trait};

/// The default flag handler.
pub(crate) type Handler = Arc<dyn Fn(&str) -> Option<DefaultFlag> + Send + Sync>;

/// Where a client's answers come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
///
/// ```
/// use bullet_train::{BulletTrain, Mode};
/// assert_eq!(BulletTrain::new("key")?.mode(), Mode::Remote);
/// # Ok::<(), bullet_train::Error>(())
/// ```
pub enum Mode {
    /// One request to the server per call.
    Remote,
    /// In-process evaluation of the environment document, kept current in the background.
    Local,
    /// In-process evaluation of a fixed document; never talks to the server.
    Offline,
}

/// The state shared by the client's clones and its background tasks.
pub(crate) struct Shared {
    pub(crate) mode: Mode,
    pub(crate) http: Option<Http>,
    /// The environment used for local evaluation (local and offline modes).
    pub(crate) local: ArcSwapOption<LocalState>,
    /// The offline document, as the fallback of remote evaluation.
    fallback: Option<Arc<LocalState>>,
    /// Environments replaced since the last analytics flush, whose counts are still to be sent.
    retired: Mutex<Vec<Arc<LocalState>>>,
    /// `If-Modified-Since` for the next poll, when it is safe to send.
    validator: Mutex<Option<String>>,
    /// Serialises refreshes.
    refreshing: tokio::sync::Mutex<()>,
    /// Serialises analytics flushes.
    pub(crate) flushing: tokio::sync::Mutex<()>,
    /// Documents installed so far.
    revision: watch::Sender<u64>,
    /// Whether the first fetch has been tried (calls stop waiting for a document then).
    attempted: watch::Sender<bool>,
    pub(crate) analytics: Option<Arc<Analytics>>,
    handler: Option<Handler>,
    pub(crate) refresh_interval: Duration,
    pub(crate) realtime_url: Option<Url>,
    ready_timeout: Duration,
}

impl Shared {
    /// Fetches the document (conditionally when safe) and installs it if it changed. Returns
    /// whether a new document was installed.
    pub(crate) async fn refresh(&self) -> Result<bool, Error> {
        let Some(http) = &self.http else {
            return Ok(false);
        };
        let _guard = self.refreshing.lock().await;
        let since = self
            .validator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let since = since.filter(|_| self.local.load().is_some());
        let (document, last_modified, conditional) = match http.document(since.as_deref()).await? {
            DocumentFetch::NotModified => return Ok(false),
            DocumentFetch::Fetched {
                document,
                last_modified,
                conditional,
            } => (document, last_modified, conditional),
        };
        *self
            .validator
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = last_modified.filter(|_| conditional);
        let current = self.local.load_full();
        let updated_at = document
            .updated_at
            .as_deref()
            .and_then(local::parse_updated_at);
        if let Some(current) = &current
            && updated_at.is_some()
            && current.updated_at == updated_at
            && current.client_key == document.api_key
        {
            return Ok(false);
        }
        self.install(LocalState::new(&document));
        Ok(true)
    }

    fn install(&self, state: LocalState) {
        if let Some(old) = self.local.swap(Some(Arc::new(state)))
            && self.analytics.is_some()
        {
            self.retired
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(old);
        }
        self.revision.send_modify(|r| *r += 1);
    }

    pub(crate) fn first_attempt_done(&self) {
        self.attempted
            .send_if_modified(|a| !std::mem::replace(a, true));
    }

    /// Moves the counts of local evaluation into `analytics`.
    pub(crate) fn drain_local_counts(&self, analytics: &Analytics) {
        let retired =
            std::mem::take(&mut *self.retired.lock().unwrap_or_else(PoisonError::into_inner));
        for state in retired {
            state.drain_counts(analytics);
        }
        if let Some(state) = &*self.local.load() {
            state.drain_counts(analytics);
        }
        // What a remote client answered from its offline document while the server was away.
        if let Some(state) = &self.fallback {
            state.drain_counts(analytics);
        }
    }

    /// The environment to evaluate locally, waiting for the first fetch if it has not been tried.
    async fn state(&self) -> Result<Arc<LocalState>, Error> {
        if let Some(state) = self.local.load_full() {
            return Ok(state);
        }
        let mut attempted = self.attempted.subscribe();
        let _ = tokio::time::timeout(self.ready_timeout, attempted.wait_for(|a| *a)).await;
        self.local.load_full().ok_or(Error::NotReady)
    }

    fn http(&self) -> Result<&Http, Error> {
        self.http.as_ref().ok_or(Error::Offline)
    }

    fn default_flag(&self, name: &str) -> Option<DefaultFlag> {
        self.handler.as_ref().and_then(|handler| handler(name))
    }
}

/// Owned by the client handles: when the last one goes, background tasks are told to stop.
struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// A Bullet Train client: flags, remote config and traits of one environment.
///
/// Cheap to clone (clones share the connection pool, the local environment and the background
/// tasks, which stop when the last clone is dropped). All methods take `&self`.
///
/// In **remote** mode (the default) each call is one request to the server. With
/// [`Builder::local_evaluation`] the client evaluates flags in-process from the environment document
/// and only trait calls reach the server. With [`Builder::offline_mode`] it never talks to a
/// server.
///
/// Flag names are matched exactly (case-sensitively), in every mode.
///
/// # Examples
///
/// The seed's usage, in Rust:
///
/// ```no_run
/// use bullet_train::BulletTrain;
///
/// # async fn run() -> Result<(), bullet_train::Error> {
/// let bt = BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
///
/// if bt.has_feature("header").await? {
///     if bt.feature_enabled("header").await? == Some(true) {
///         // Show my awesome cool new feature to the world
///     }
/// }
///
/// let value = bt.get_value_for("header", "<My User Id>").await?;
/// let value = bt.get_value("header").await?;
///
/// bt.set_trait("accept-cookies", "true", "ben@bullet-train.io").await?;
/// let accepted = bt.get_trait("accept-cookies", "ben@bullet-train.io").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BulletTrain {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BulletTrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulletTrain")
            .field("mode", &self.inner.shared.mode)
            .field("api", &self.api_url())
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// A flags list that is either a JSON array or a `{"flags": [...]}` object (Bullet Train 2019).
#[derive(Deserialize)]
#[serde(untagged)]
enum FlagList {
    List(Vec<sdk::Flag>),
    Wrapped { flags: Vec<sdk::Flag> },
}

/// One flag, or a flags list (servers that ignore `?feature=`).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneFlag {
    One(Box<sdk::Flag>),
    Many(FlagList),
}

impl OneFlag {
    fn named(self, name: &str) -> Option<sdk::Flag> {
        match self {
            OneFlag::One(flag) => (flag.feature.name == name).then_some(*flag),
            OneFlag::Many(FlagList::List(flags) | FlagList::Wrapped { flags }) => {
                flags.into_iter().find(|f| f.feature.name == name)
            }
        }
    }
}

/// `identities/` answers; `traits` are optional in the oldest servers.
#[derive(Deserialize)]
struct IdentityAnswer {
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default)]
    flags: Vec<sdk::Flag>,
    #[serde(default)]
    traits: Vec<sdk::TraitRecord>,
}

impl BulletTrain {
    /// A remote-evaluation client of the environment with key `environment_key`, talking to
    /// [`builder::DEFAULT_API_URL`]. Use [`BulletTrain::builder`] for every other option.
    ///
    /// ```
    /// let bt = bullet_train::BulletTrain::new("QuickStartEnvironment1")?;
    /// assert_eq!(bt.mode(), bullet_train::Mode::Remote);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn new(environment_key: impl Into<String>) -> Result<BulletTrain, Error> {
        Builder::new(environment_key).build()
    }

    /// A builder for a client of the environment with key `environment_key` (a client key, or a
    /// server-side `ser.` key, which local evaluation needs).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let bt = bullet_train::BulletTrain::builder("key")
    ///     .api("https://flags.example.com/api/v1/")
    ///     .request_timeout(Duration::from_secs(2))
    ///     .build()?;
    /// assert_eq!(bt.api_url(), Some("https://flags.example.com/api/v1/"));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn builder(environment_key: impl Into<String>) -> Builder {
        Builder::new(environment_key)
    }

    pub(crate) fn from_builder(builder: Builder) -> Result<BulletTrain, Error> {
        let mode = if builder.offline_mode {
            Mode::Offline
        } else if builder.local_evaluation {
            Mode::Local
        } else {
            Mode::Remote
        };
        if builder.environment_key.trim().is_empty() && mode != Mode::Offline {
            return Err(Error::Config("the environment key is empty".into()));
        }
        if mode == Mode::Local && !builder.environment_key.starts_with("ser.") {
            return Err(Error::Config(
                "local evaluation needs a server-side environment key (ser.…)".into(),
            ));
        }
        let offline = match &builder.offline_document {
            Some(OfflineDocument::Document(document)) => Some(LocalState::new(document)),
            Some(OfflineDocument::File(path)) => Some(LocalState::new(&read_document(path)?)),
            None => None,
        };
        if mode == Mode::Offline && offline.is_none() {
            return Err(Error::Config(
                "offline mode needs an offline document".into(),
            ));
        }
        let api = builder::api_url(&builder.api)?;
        let http = match mode {
            Mode::Offline => None,
            _ => Some(Http::new(
                api.clone(),
                &builder.environment_key,
                builder.request_timeout,
                builder.retries,
                builder.retry_backoff,
                &builder.header_map()?,
            )?),
        };
        let realtime_url = match (&builder.realtime_url, builder.realtime) {
            (_, false) => None,
            (Some(url), true) => Some(
                Url::parse(url).map_err(|e| Error::Config(format!("invalid realtime URL: {e}")))?,
            ),
            (None, true) => Some(builder::realtime_url(&api)),
        };
        let analytics = (builder.analytics && mode != Mode::Offline).then(Arc::default);
        let needs_tasks = mode == Mode::Local || analytics.is_some();
        let runtime = if needs_tasks {
            Some(tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?)
        } else {
            None
        };
        let (local, fallback) = match (mode, offline) {
            (Mode::Remote, offline) => (None, offline.map(Arc::new)),
            (_, offline) => (offline.map(Arc::new), None),
        };
        let revision = u64::from(local.is_some());
        let shared = Arc::new(Shared {
            mode,
            http,
            local: ArcSwapOption::new(local),
            fallback,
            retired: Mutex::default(),
            validator: Mutex::default(),
            refreshing: tokio::sync::Mutex::new(()),
            flushing: tokio::sync::Mutex::new(()),
            revision: watch::Sender::new(revision),
            attempted: watch::Sender::new(mode != Mode::Local),
            analytics,
            handler: builder.default_flag_handler,
            refresh_interval: builder.refresh_interval,
            realtime_url,
            ready_timeout: builder.ready_timeout.unwrap_or(builder.request_timeout),
        });
        let (shutdown, _) = watch::channel(false);
        if let Some(runtime) = runtime {
            if mode == Mode::Local {
                runtime.spawn(local::refresher(shared.clone(), shutdown.subscribe()));
            }
            if shared.analytics.is_some() {
                runtime.spawn(analytics::run(
                    shared.clone(),
                    builder.analytics_interval,
                    shutdown.subscribe(),
                ));
            }
        }
        Ok(BulletTrain {
            inner: Arc::new(Inner { shared, shutdown }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Where answers come from.
    ///
    /// ```
    /// use bullet_train::{BulletTrain, Mode};
    ///
    /// assert_eq!(BulletTrain::new("key")?.mode(), Mode::Remote);
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// let offline = BulletTrain::builder("key").offline_mode(true).offline_document(document).build()?;
    /// assert_eq!(offline.mode(), Mode::Offline);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn mode(&self) -> Mode {
        self.shared().mode
    }

    /// The API URL in use, normalised to end with `/v1/` (`None` offline).
    ///
    /// ```
    /// let bt = bullet_train::BulletTrain::builder("key").api("https://flags.example.com").build()?;
    /// assert_eq!(bt.api_url(), Some("https://flags.example.com/api/v1/"));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn api_url(&self) -> Option<&str> {
        self.shared().http.as_ref().map(|h| h.base().as_str())
    }

    /// Whether flags can be answered without waiting: always in remote mode; in local and offline
    /// modes once an environment document is loaded.
    ///
    /// ```
    /// assert!(bullet_train::BulletTrain::new("key")?.is_ready());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.mode() == Mode::Remote || self.shared().local.load().is_some()
    }

    /// Waits until [`BulletTrain::is_ready`], at most `timeout`; [`Error::NotReady`] if it is not.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), bullet_train::Error> {
    /// use std::time::Duration;
    /// let bt = bullet_train::BulletTrain::builder("ser.YOUR_SERVER_KEY")
    ///     .local_evaluation(true)
    ///     .build()?;
    /// bt.wait_until_ready(Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), Error> {
        if self.is_ready() {
            return Ok(());
        }
        let mut revision = self.shared().revision.subscribe();
        match tokio::time::timeout(timeout, revision.wait_for(|r| *r > 0)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::NotReady),
        }
    }

    /// A receiver of the number of environment documents loaded so far (local and offline
    /// modes): it changes each time a new document is installed, for example after a change
    /// arrived through the real-time stream.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) {
    /// let mut updates = bt.updates();
    /// while updates.changed().await.is_ok() {
    ///     println!("environment updated ({} documents so far)", *updates.borrow());
    /// }
    /// # }
    /// ```
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.shared().revision.subscribe()
    }

    /// The loaded environment's `updated_at`, in Unix seconds (local and offline modes).
    ///
    /// ```
    /// # fn load() -> bullet_train::EnvironmentDocument { serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap() }
    /// let bt = bullet_train::BulletTrain::builder("key").offline_mode(true).offline_document(load()).build()?;
    /// assert_eq!(bt.environment_updated_at(), Some(1_767_225_600.0)); // 2026-01-01T00:00:00Z
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn environment_updated_at(&self) -> Option<f64> {
        self.shared()
            .local
            .load()
            .as_ref()
            .and_then(|s| s.updated_at)
    }

    /// Fetches the environment document now (local mode), whatever the schedule; returns whether
    /// a new document was installed. On failure the current document stays in use.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// if bt.refresh().await? {
    ///     println!("a newer environment was loaded");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self) -> Result<bool, Error> {
        match self.mode() {
            Mode::Local => {
                let result = self.shared().refresh().await;
                self.shared().first_attempt_done();
                result
            }
            _ => Ok(false),
        }
    }

    /// Sends the pending analytics counts now (they are otherwise sent in the background).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// bt.flush_analytics().await?;
    /// # Ok(()) }
    /// ```
    pub async fn flush_analytics(&self) -> Result<(), Error> {
        analytics::flush(self.shared()).await
    }

    /// Sends the pending analytics and stops the background tasks of every clone. Calls made
    /// afterwards still work (local evaluation keeps its last document).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// // At shutdown: send the last evaluation counts.
    /// bt.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(&self) -> Result<(), Error> {
        let flushed = self.flush_analytics().await;
        self.inner.shutdown.send_replace(true);
        flushed
    }

    /// Determines whether the environment has the feature `key`.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// if bt.has_feature("powerUserFeature").await? {
    ///     println!("the feature exists");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn has_feature(&self, key: &str) -> Result<bool, Error> {
        let found = self.lookup(key, None, |_, _| (), true).await?;
        Ok(found.is_some())
    }

    /// Determines whether the user `user_id` has the feature `key` (the seed's `has_feature` with
    /// its optional user identifier): it differs from [`BulletTrain::has_feature`] only where
    /// disabled flags are hidden and an override enables the flag for this user.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// if bt.has_feature_for("powerUserFeature", "1234").await? {
    ///     println!("1234 has the feature");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn has_feature_for(&self, key: &str, user_id: &str) -> Result<bool, Error> {
        let found = self.lookup(key, Some(user_id), |_, _| (), true).await?;
        Ok(found.is_some())
    }

    /// Whether the feature `key` is enabled for the environment; `Ok(None)` when there is no such
    /// feature.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// if bt.feature_enabled("powerUserFeature").await? == Some(true) {
    ///     println!("on");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn feature_enabled(&self, key: &str) -> Result<Option<bool>, Error> {
        self.lookup(key, None, |enabled, _| enabled, false).await
    }

    /// Whether the feature `key` is enabled for the user `user_id` (identity and segment
    /// overrides applied); `Ok(None)` when there is no such feature.
    ///
    /// In local mode this is evaluated in-process without allocating; the user's stored traits
    /// are not known locally (pass traits with [`BulletTrain::get_identity_flags`]).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let on = bt.feature_enabled_for("powerUserFeature", "1234").await?.unwrap_or(false);
    /// # Ok(()) }
    /// ```
    pub async fn feature_enabled_for(
        &self,
        key: &str,
        user_id: &str,
    ) -> Result<Option<bool>, Error> {
        self.lookup(key, Some(user_id), |enabled, _| enabled, false)
            .await
    }

    /// The value of the feature `key` for the environment (remote config); `Ok(None)` when there
    /// is no such feature, `Ok(Some(Value::Null))` when it has no value.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let font_size = bt.get_value("font_size").await?.and_then(|v| v.as_i64()).unwrap_or(10);
    /// # Ok(()) }
    /// ```
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, Error> {
        self.lookup(key, None, |_, value| value.clone(), false)
            .await
    }

    /// The value of the feature `key` for the user `user_id`; `Ok(None)` when there is no such
    /// feature.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let font_size = bt.get_value_for("font_size", "1234").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_value_for(&self, key: &str, user_id: &str) -> Result<Option<Value>, Error> {
        self.lookup(key, Some(user_id), |_, value| value.clone(), false)
            .await
    }

    /// Sets the trait `key` of the user `user_id` on the server (creating the user if needed). A
    /// `Value::Null` (or `None`) deletes the trait. Needs the server, in every mode but offline.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// bt.set_trait("accept-cookies", "true", "ben@bullet-train.io").await?;
    /// bt.set_trait("font_size", 12, "1234").await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_trait(
        &self,
        key: &str,
        value: impl Into<Value>,
        user_id: &str,
    ) -> Result<(), Error> {
        let body = sdk::SetTraitRequest {
            identity: sdk::IdentityKey {
                identifier: user_id.to_owned(),
            },
            trait_key: key.to_owned(),
            trait_value: value.into(),
        };
        self.shared()
            .http()?
            .call(Method::POST, "traits/", &body)
            .await
    }

    /// The value of the trait `key` of the user `user_id`, as stored on the server; `Ok(None)`
    /// when the user has no such trait.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let accepted = bt.get_trait("accept-cookies", "ben@bullet-train.io").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_trait(&self, key: &str, user_id: &str) -> Result<Option<Value>, Error> {
        let answer = self.stored_identity(user_id).await?;
        Ok(answer
            .traits
            .into_iter()
            .find(|t| t.trait_key == key)
            .map(|t| t.trait_value))
    }

    /// Every flag of the environment (defaults, no identity).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// for flag in bt.get_flags().await? {
    ///     println!("{}: {}", flag.feature.name, flag.enabled);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_flags(&self) -> Result<Vec<Flag>, Error> {
        if self.mode() != Mode::Remote {
            return Ok(self.shared().state().await?.environment_flags());
        }
        let result: Result<FlagList, Error> = self
            .shared()
            .http()?
            .json(Method::GET, "flags/", &[], None::<&()>)
            .await;
        match result {
            Ok(FlagList::List(flags) | FlagList::Wrapped { flags }) => {
                Ok(flags.into_iter().map(Flag::from_wire).collect())
            }
            Err(error) => match &self.shared().fallback {
                Some(state) => Ok(state.environment_flags()),
                None => Err(error),
            },
        }
    }

    /// Every flag of the user `user_id`, with identity and segment overrides applied (remotely,
    /// with the user's stored traits).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let flags = bt.get_flags_for_user("1234").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_flags_for_user(&self, user_id: &str) -> Result<Vec<Flag>, Error> {
        if self.mode() != Mode::Remote {
            return Ok(self.shared().state().await?.identity_flags(user_id, &[]));
        }
        match self.stored_identity(user_id).await {
            Ok(answer) => Ok(answer.flags.into_iter().map(Flag::from_wire).collect()),
            Err(error) => match &self.shared().fallback {
                Some(state) => Ok(state.identity_flags(user_id, &[])),
                None => Err(error),
            },
        }
    }

    /// Identifies the user `identifier` with `traits` and returns their flags, in one call.
    /// Remotely the server stores the traits (except [`Trait::transient`] ones, and unless the
    /// organisation does not persist traits) and evaluates with all the user's traits; locally
    /// the flags are evaluated with exactly these traits.
    ///
    /// ```no_run
    /// use bullet_train::Trait;
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let flags = bt
    ///     .get_identity_flags("1234", &[Trait::new("plan", "pro"), Trait::transient("device", "ios")])
    ///     .await?;
    /// if flags.is_feature_enabled("header") == Some(true) {
    ///     println!("{:?}", flags.get_feature_value("header"));
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_identity_flags(
        &self,
        identifier: &str,
        traits: &[Trait],
    ) -> Result<IdentityFlags, Error> {
        self.identify(identifier, traits, false).await
    }

    /// [`BulletTrain::get_identity_flags`] for a transient identity: the server stores nothing
    /// about it (neither the identity nor its traits).
    ///
    /// ```no_run
    /// use bullet_train::Trait;
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let flags = bt.get_transient_identity_flags("visitor-7f3a", &[Trait::new("country", "fr")]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_transient_identity_flags(
        &self,
        identifier: &str,
        traits: &[Trait],
    ) -> Result<IdentityFlags, Error> {
        self.identify(identifier, traits, true).await
    }

    async fn identify(
        &self,
        identifier: &str,
        traits: &[Trait],
        transient: bool,
    ) -> Result<IdentityFlags, Error> {
        let shared = self.shared();
        let local = |state: &LocalState| {
            let pairs: Vec<(&str, &Value)> =
                traits.iter().map(|t| (t.key.as_str(), &t.value)).collect();
            IdentityFlags {
                identifier: identifier.to_owned(),
                flags: state.identity_flags(identifier, &pairs),
                traits: traits
                    .iter()
                    .filter(|t| !t.value.is_null())
                    .cloned()
                    .collect(),
                analytics: shared.analytics.clone(),
                default: shared.handler.clone(),
            }
        };
        if self.mode() != Mode::Remote {
            return Ok(local(&*shared.state().await?));
        }
        let body = sdk::IdentifyRequest {
            identifier: Some(identifier.to_owned()),
            traits: traits
                .iter()
                .map(|t| sdk::TraitInput {
                    trait_key: t.key.clone(),
                    trait_value: t.value.clone(),
                    transient: t.transient,
                })
                .collect(),
            transient,
        };
        let result: Result<IdentityAnswer, Error> = shared
            .http()?
            .json(Method::POST, "identities/", &[], Some(&body))
            .await;
        match result {
            Ok(answer) => Ok(IdentityFlags {
                identifier: answer.identifier.unwrap_or_else(|| identifier.to_owned()),
                flags: answer.flags.into_iter().map(Flag::from_wire).collect(),
                traits: answer
                    .traits
                    .into_iter()
                    .map(|t| Trait {
                        key: t.trait_key,
                        value: t.trait_value,
                        transient: t.transient,
                    })
                    .collect(),
                analytics: shared.analytics.clone(),
                default: shared.handler.clone(),
            }),
            Err(error) => match &shared.fallback {
                Some(state) => Ok(local(state)),
                None => Err(error),
            },
        }
    }

    /// The flag of `key` (for `user`), mapped by `pick`; the heart of the single-flag functions.
    /// Locally this is allocation-free unless `pick` allocates. A `probe` (`has_feature`) neither
    /// counts for analytics nor falls back to the default flag handler.
    async fn lookup<T>(
        &self,
        key: &str,
        user: Option<&str>,
        pick: impl Fn(bool, &Value) -> T,
        probe: bool,
    ) -> Result<Option<T>, Error> {
        let count = !probe;
        let shared = self.shared();
        let evaluate_locally = |state: &LocalState| {
            // Without a user these are environment flags: defaults, no segments (as `flags/`).
            let flag = match user {
                Some(user) => state
                    .snapshot
                    .evaluate_feature(key, Some(&Identity::new(user)))?,
                None => state.snapshot.environment_flag(key)?,
            };
            if count && shared.analytics.is_some() {
                state.count(flag.feature_position);
            }
            Some(pick(flag.enabled, flag.value))
        };
        let found = if shared.mode != Mode::Remote {
            let guard = shared.local.load();
            match &*guard {
                Some(state) => evaluate_locally(state),
                None => match shared.state().await {
                    Ok(state) => evaluate_locally(&state),
                    Err(error) if probe => return Err(error),
                    Err(error) => return self.default_or(key, &pick, error),
                },
            }
        } else {
            match self.fetch_flag(key, user).await {
                Ok(Some(flag)) => {
                    if count && let Some(analytics) = &shared.analytics {
                        analytics.count(key);
                    }
                    Some(pick(flag.enabled, &flag.feature_state_value))
                }
                Ok(None) => None,
                Err(error) => match &shared.fallback {
                    Some(state) => evaluate_locally(state),
                    None if probe => return Err(error),
                    None => return self.default_or(key, &pick, error),
                },
            }
        };
        Ok(match found {
            Some(found) => Some(found),
            None if probe => None,
            None => shared.default_flag(key).map(|d| pick(d.enabled, &d.value)),
        })
    }

    fn default_or<T>(
        &self,
        key: &str,
        pick: &impl Fn(bool, &Value) -> T,
        error: Error,
    ) -> Result<Option<T>, Error> {
        match self.shared().default_flag(key) {
            Some(d) => {
                tracing::debug!(%error, key, "serving the default flag");
                Ok(Some(pick(d.enabled, &d.value)))
            }
            None => Err(error),
        }
    }

    /// The whole flag of `key`, for an identity with `traits` (sent as transient traits remotely,
    /// so nothing is stored) or for the environment: what the OpenFeature provider resolves.
    #[cfg_attr(not(feature = "openfeature"), allow(dead_code))]
    pub(crate) async fn resolve_flag(
        &self,
        key: &str,
        identifier: Option<&str>,
        traits: &[Trait],
    ) -> Result<Option<Flag>, Error> {
        let shared = self.shared();
        let local = |state: &LocalState| {
            let pairs: Vec<(&str, &Value)> =
                traits.iter().map(|t| (t.key.as_str(), &t.value)).collect();
            let flag = match identifier {
                Some(identifier) => state
                    .snapshot
                    .evaluate_feature(key, Some(&Identity::new(identifier).with_traits(&pairs)))?,
                None => state.snapshot.environment_flag(key)?,
            };
            if shared.analytics.is_some() {
                state.count(flag.feature_position);
            }
            Some(state.flag(&flag))
        };
        let result = if self.mode() != Mode::Remote {
            shared.state().await.map(|state| local(&state))
        } else {
            let remote = match identifier {
                Some(identifier) => {
                    let transient: Vec<Trait> = traits
                        .iter()
                        .map(|t| Trait::transient(t.key.clone(), t.value.clone()))
                        .collect();
                    self.identify(identifier, &transient, true)
                        .await
                        .map(|flags| flags.flags.into_iter().find(|f| f.feature.name == key))
                }
                None => self
                    .fetch_flag(key, None)
                    .await
                    .map(|flag| flag.map(Flag::from_wire)),
            };
            match remote {
                Ok(Some(flag)) => {
                    if let Some(analytics) = &shared.analytics {
                        analytics.count(key);
                    }
                    Ok(Some(flag))
                }
                Ok(None) => Ok(None),
                Err(error) => match &shared.fallback {
                    Some(state) => Ok(local(state)),
                    None => Err(error),
                },
            }
        };
        match result {
            Ok(Some(flag)) => Ok(Some(flag)),
            Ok(None) => Ok(shared.default_flag(key).map(|d| Flag::from_default(key, d))),
            Err(error) => match shared.default_flag(key) {
                Some(d) => Ok(Some(Flag::from_default(key, d))),
                None => Err(error),
            },
        }
    }

    /// The identity as the server has it (`GET identities/?identifier=`, which creates it).
    async fn stored_identity(&self, user_id: &str) -> Result<IdentityAnswer, Error> {
        self.shared()
            .http()?
            .json(
                Method::GET,
                "identities/",
                &[("identifier", user_id)],
                None::<&()>,
            )
            .await
    }

    /// One flag from the server: `flags/?feature=` or `identities/?identifier=&feature=`.
    async fn fetch_flag(&self, key: &str, user: Option<&str>) -> Result<Option<sdk::Flag>, Error> {
        let http = self.shared().http()?;
        let answer: Option<OneFlag> = match user {
            None => http.get_optional("flags/", &[("feature", key)]).await?,
            Some(user) => {
                http.get_optional("identities/", &[("identifier", user), ("feature", key)])
                    .await?
            }
        };
        Ok(answer.and_then(|a| a.named(key)))
    }
}

fn read_document(path: &std::path::Path) -> Result<EnvironmentDocument, Error> {
    let text = std::fs::read(path).map_err(|source| Error::DocumentFile {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| Error::DocumentParse {
        path: path.to_owned(),
        source,
    })
}
