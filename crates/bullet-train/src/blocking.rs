//! The blocking facade: the same client and methods, for code without an async runtime.
//!
//! It owns a small Tokio runtime (one worker thread, which also runs the background refresh and
//! analytics tasks) and blocks on the async client for each call, so both share one
//! implementation.
//!
//! Do not call it from inside an async runtime (Tokio panics when blocking there): use
//! [`crate::BulletTrain`] in async code.

use std::time::Duration;

use bullet_train_protocol::Value;
use tokio::sync::watch;

use crate::{Builder, Error, Flag, IdentityFlags, Mode, Trait};

/// The blocking Bullet Train client. See [`crate::BulletTrain`] for what each method does.
///
/// # Examples
///
/// Every method of the async client, without `.await`:
///
/// ```no_run
/// use std::time::Duration;
/// use bullet_train::blocking::BulletTrain;
/// use bullet_train::Trait;
///
/// let bt = BulletTrain::builder("<YOUR_ENVIRONMENT_KEY>")
///     .api("http://localhost:8000/api/")
///     .build_blocking()?;
/// bt.wait_until_ready(Duration::from_secs(5))?;
/// if bt.has_feature("header")? && bt.feature_enabled("header")? == Some(true) {
///     println!("{:?}", bt.get_value("header")?);
/// }
/// println!("{:?}", bt.feature_enabled_for("header", "1234")?);
/// println!("{:?}", bt.get_value_for("font_size", "1234")?);
/// bt.set_trait("accept-cookies", true, "1234")?;
/// println!("{:?}", bt.get_trait("accept-cookies", "1234")?);
/// println!("{} flags", bt.get_flags()?.len());
/// println!("{} flags for 1234", bt.get_flags_for_user("1234")?.len());
/// let flags = bt.get_identity_flags("1234", &[Trait::new("plan", "pro")])?;
/// let flags = bt.get_transient_identity_flags("visitor", &[Trait::new("plan", "free")])?;
/// bt.refresh()?;
/// bt.flush_analytics()?;
/// bt.close()?;
/// # Ok::<(), bullet_train::Error>(())
/// ```
pub struct BulletTrain {
    client: crate::BulletTrain,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for BulletTrain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BulletTrain").field(&self.client).finish()
    }
}

impl BulletTrain {
    /// A remote-evaluation client of the environment `environment_key`.
    ///
    /// ```
    /// let bt = bullet_train::blocking::BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
    /// assert_eq!(bt.mode(), bullet_train::Mode::Remote);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn new(environment_key: impl Into<String>) -> Result<BulletTrain, Error> {
        crate::BulletTrain::builder(environment_key).build_blocking()
    }

    /// A builder; finish it with [`Builder::build_blocking`].
    ///
    /// ```no_run
    /// let bt = bullet_train::blocking::BulletTrain::builder("ser.YOUR_SERVER_KEY")
    ///     .local_evaluation(true)
    ///     .build_blocking()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn builder(environment_key: impl Into<String>) -> Builder {
        crate::BulletTrain::builder(environment_key)
    }

    pub(crate) fn from_builder(builder: Builder) -> Result<BulletTrain, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bullet-train")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the client's runtime: {e}")))?;
        let client = {
            let _entered = runtime.enter();
            builder.build()?
        };
        Ok(BulletTrain {
            client,
            runtime: Some(runtime),
        })
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        match &self.runtime {
            Some(runtime) => runtime.block_on(future),
            None => unreachable!("the runtime lives until drop"),
        }
    }

    /// The async client inside, for code that has both worlds.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let async_client: &bullet_train::BulletTrain = bt.client();
    /// assert_eq!(async_client.mode(), bt.mode());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn client(&self) -> &crate::BulletTrain {
        &self.client
    }

    /// See [`crate::BulletTrain::mode`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert_eq!(bt.mode(), bullet_train::Mode::Offline);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn mode(&self) -> Mode {
        self.client.mode()
    }

    /// See [`crate::BulletTrain::api_url`].
    ///
    /// ```
    /// let bt = bullet_train::blocking::BulletTrain::builder("key").api("https://flags.example.com").build_blocking()?;
    /// assert_eq!(bt.api_url(), Some("https://flags.example.com/api/v1/"));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn api_url(&self) -> Option<&str> {
        self.client.api_url()
    }

    /// See [`crate::BulletTrain::environment_updated_at`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert_eq!(bt.environment_updated_at(), Some(1_767_225_600.0)); // 2026-01-01T00:00:00Z
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn environment_updated_at(&self) -> Option<f64> {
        self.client.environment_updated_at()
    }

    /// See [`crate::BulletTrain::is_ready`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert!(bt.is_ready());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    /// See [`crate::BulletTrain::wait_until_ready`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// bt.wait_until_ready(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn wait_until_ready(&self, timeout: Duration) -> Result<(), Error> {
        self.block_on(self.client.wait_until_ready(timeout))
    }

    /// See [`crate::BulletTrain::updates`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let updates = bt.updates();
    /// println!("document changes seen: {}", *updates.borrow());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.client.updates()
    }

    /// See [`crate::BulletTrain::refresh`].
    ///
    /// ```no_run
    /// # let bt = bullet_train::blocking::BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
    /// // Fetches the environment document now (local mode); true when it changed.
    /// let changed = bt.refresh()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn refresh(&self) -> Result<bool, Error> {
        self.block_on(self.client.refresh())
    }

    /// See [`crate::BulletTrain::flush_analytics`].
    ///
    /// ```no_run
    /// # let bt = bullet_train::blocking::BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
    /// bt.flush_analytics()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn flush_analytics(&self) -> Result<(), Error> {
        self.block_on(self.client.flush_analytics())
    }

    /// See [`crate::BulletTrain::has_feature`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert!(bt.has_feature("header")?);
    /// assert!(!bt.has_feature("no_such_feature")?);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn has_feature(&self, key: &str) -> Result<bool, Error> {
        self.block_on(self.client.has_feature(key))
    }

    /// See [`crate::BulletTrain::has_feature_for`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert!(bt.has_feature_for("header", "ben@bullet-train.io")?);
    /// assert!(!bt.has_feature_for("no_such_feature", "ben@bullet-train.io")?);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn has_feature_for(&self, key: &str, user_id: &str) -> Result<bool, Error> {
        self.block_on(self.client.has_feature_for(key, user_id))
    }

    /// See [`crate::BulletTrain::feature_enabled`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert_eq!(bt.feature_enabled("header")?, Some(true));
    /// assert_eq!(bt.feature_enabled("no_such_feature")?, None);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn feature_enabled(&self, key: &str) -> Result<Option<bool>, Error> {
        self.block_on(self.client.feature_enabled(key))
    }

    /// See [`crate::BulletTrain::feature_enabled_for`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// // An identity override turns dark mode on for Ben only.
    /// assert_eq!(bt.feature_enabled_for("dark_mode", "ben@bullet-train.io")?, Some(true));
    /// assert_eq!(bt.feature_enabled_for("dark_mode", "1234")?, Some(false));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn feature_enabled_for(&self, key: &str, user_id: &str) -> Result<Option<bool>, Error> {
        self.block_on(self.client.feature_enabled_for(key, user_id))
    }

    /// See [`crate::BulletTrain::get_value`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert_eq!(bt.get_value("font_size")?, Some(bullet_train::Value::Int(12)));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_value(&self, key: &str) -> Result<Option<Value>, Error> {
        self.block_on(self.client.get_value(key))
    }

    /// See [`crate::BulletTrain::get_value_for`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// assert_eq!(bt.get_value_for("dark_mode", "ben@bullet-train.io")?, Some("midnight".into()));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_value_for(&self, key: &str, user_id: &str) -> Result<Option<Value>, Error> {
        self.block_on(self.client.get_value_for(key, user_id))
    }

    /// See [`crate::BulletTrain::set_trait`].
    ///
    /// ```no_run
    /// # let bt = bullet_train::blocking::BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
    /// bt.set_trait("accept-cookies", true, "ben@bullet-train.io")?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn set_trait(
        &self,
        key: &str,
        value: impl Into<Value>,
        user_id: &str,
    ) -> Result<(), Error> {
        self.block_on(self.client.set_trait(key, value, user_id))
    }

    /// See [`crate::BulletTrain::get_trait`].
    ///
    /// ```no_run
    /// # let bt = bullet_train::blocking::BulletTrain::new("<YOUR_ENVIRONMENT_KEY>")?;
    /// let accepted = bt.get_trait("accept-cookies", "ben@bullet-train.io")?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_trait(&self, key: &str, user_id: &str) -> Result<Option<Value>, Error> {
        self.block_on(self.client.get_trait(key, user_id))
    }

    /// See [`crate::BulletTrain::get_flags`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_flags()?;
    /// assert!(flags.iter().any(|f| f.name() == "header" && f.enabled));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_flags(&self) -> Result<Vec<Flag>, Error> {
        self.block_on(self.client.get_flags())
    }

    /// See [`crate::BulletTrain::get_flags_for_user`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_flags_for_user("ben@bullet-train.io")?;
    /// assert!(flags.iter().any(|f| f.name() == "dark_mode" && f.enabled));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_flags_for_user(&self, user_id: &str) -> Result<Vec<Flag>, Error> {
        self.block_on(self.client.get_flags_for_user(user_id))
    }

    /// See [`crate::BulletTrain::get_identity_flags`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// use bullet_train::Trait;
    /// let flags = bt.get_identity_flags("1234", &[Trait::new("plan", "pro")])?;
    /// println!("{:?}", flags.get_feature_value("font_size"));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_identity_flags(
        &self,
        identifier: &str,
        traits: &[Trait],
    ) -> Result<IdentityFlags, Error> {
        self.block_on(self.client.get_identity_flags(identifier, traits))
    }

    /// See [`crate::BulletTrain::get_transient_identity_flags`].
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// use bullet_train::Trait;
    /// let flags = bt.get_transient_identity_flags("visitor", &[Trait::new("plan", "free")])?;
    /// assert_eq!(flags.is_feature_enabled("header"), Some(true));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_transient_identity_flags(
        &self,
        identifier: &str,
        traits: &[Trait],
    ) -> Result<IdentityFlags, Error> {
        self.block_on(self.client.get_transient_identity_flags(identifier, traits))
    }

    /// Sends pending analytics and stops the background tasks; also done on drop.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// bt.close()?;
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn close(&self) -> Result<(), Error> {
        self.block_on(self.client.close())
    }
}

impl Drop for BulletTrain {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // Blocking inside an async runtime would panic: then only signal the tasks to stop.
        if tokio::runtime::Handle::try_current().is_err()
            && let Err(error) = runtime.block_on(self.client.close())
        {
            tracing::warn!(%error, "last flag analytics not sent");
        }
        runtime.shutdown_background();
    }
}
