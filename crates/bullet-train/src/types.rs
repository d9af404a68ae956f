//! What the SDK returns: [`Flag`] and [`Feature`] with the seed's fields, [`Trait`], the default
//! flag handler's [`DefaultFlag`], and [`IdentityFlags`].

use std::fmt;
use std::sync::Arc;

use bullet_train_protocol::{Value, sdk};
use serde::Serialize;

use crate::analytics::Analytics;

/// A feature as the Bullet Train SDK documents it.
///
/// The seed spells one field `inital_value`; the wire and this struct say `initial_value`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
///
/// ```no_run
/// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
/// for flag in bt.get_flags().await? {
///     let feature = &flag.feature;
///     println!("#{} {} ({:?}): {:?}", feature.id, feature.name, feature.feature_type, feature.description);
/// }
/// # Ok(()) }
/// ```
pub struct Feature {
    /// Internal id of the feature (0 when unknown, as for a default flag).
    pub id: u64,
    /// Name of the feature: the key flags are looked up by.
    pub name: String,
    /// Description, when the server shares it.
    pub description: Option<String>,
    /// Feature type: `STANDARD` or `MULTIVARIATE` (Bullet Train servers: `FLAG` or `CONFIG`).
    #[serde(rename = "type")]
    pub feature_type: Option<String>,
    /// When the feature was created (ISO 8601), when the server shares it.
    pub created_date: Option<String>,
    /// The initial value set for all feature states on creation.
    pub initial_value: Option<String>,
    /// Internal id of the project.
    pub project: Option<u64>,
}

/// Why a flag has its state, as local evaluation knows it. Remote evaluation does not report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
///
/// ```
/// use bullet_train::Reason;
/// let reason = Reason::TargetingMatch { segment: "power_users".into() };
/// assert_eq!(reason.to_string(), "TARGETING_MATCH; segment=power_users");
/// ```
pub enum Reason {
    /// The environment's default state.
    Default,
    /// A segment override; `segment` names it (`identity_overrides` for an identity override).
    TargetingMatch {
        /// The segment.
        segment: String,
    },
    /// A multivariate variant chosen by percentage split.
    Split,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Default => f.write_str("DEFAULT"),
            Reason::TargetingMatch { segment } => write!(f, "TARGETING_MATCH; segment={segment}"),
            Reason::Split => f.write_str("SPLIT"),
        }
    }
}

/// The state of one feature for the environment or for a user: the seed's flag object.
///
/// # Examples
///
/// ```
/// # async fn example(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
/// for flag in bt.get_flags().await? {
///     println!("{} enabled={} value={}", flag.feature.name, flag.enabled, flag.feature_state_value);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Flag {
    /// Internal id of the feature state, when known.
    pub id: Option<i64>,
    /// Whether the feature is enabled.
    pub enabled: bool,
    /// Internal id of the environment, when known.
    pub environment: Option<i64>,
    /// The feature's value: string, integer, float, boolean or null.
    pub feature_state_value: Value,
    /// The feature.
    pub feature: Feature,
    /// For identity flags of multivariate features: the variant's key, or `"control"`.
    pub variant: Option<String>,
    /// Why the flag has this state (local evaluation only).
    pub reason: Option<Reason>,
    /// Whether the flag came from the default flag handler rather than the server's data.
    pub is_default: bool,
}

impl Flag {
    /// The feature's name.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let names: Vec<String> = bt.get_flags().await?.iter().map(|f| f.name().to_owned()).collect();
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        &self.feature.name
    }

    /// The flag's value (the seed's `feature_state_value`).
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
    /// let flags = bt.get_flags_for_user("1234").await?;
    /// let size = flags.iter().find(|f| f.name() == "font_size").and_then(|f| f.value().as_i64());
    /// # Ok(()) }
    /// ```
    pub fn value(&self) -> &Value {
        &self.feature_state_value
    }

    pub(crate) fn from_wire(flag: sdk::Flag) -> Flag {
        Flag {
            id: flag.id,
            enabled: flag.enabled,
            environment: flag.environment,
            feature_state_value: flag.feature_state_value,
            feature: Feature {
                id: flag.feature.id,
                name: flag.feature.name,
                description: flag.feature.description,
                feature_type: flag.feature.feature_type,
                created_date: flag.feature.created_date,
                initial_value: flag.feature.initial_value,
                project: flag.feature.project,
            },
            variant: flag.variant,
            reason: None,
            is_default: false,
        }
    }

    pub(crate) fn from_default(name: &str, default: DefaultFlag) -> Flag {
        Flag {
            id: None,
            enabled: default.enabled,
            environment: None,
            feature_state_value: default.value,
            feature: Feature {
                id: 0,
                name: name.to_owned(),
                description: None,
                feature_type: None,
                created_date: None,
                initial_value: None,
                project: None,
            },
            variant: None,
            reason: None,
            is_default: true,
        }
    }
}

/// What the default flag handler answers for a feature the client cannot get from the server: it
/// does not exist there, or the server cannot be reached.
///
/// # Examples
///
/// ```
/// use bullet_train::{BulletTrain, DefaultFlag};
///
/// let bt = BulletTrain::builder("QuickStartEnvironment1")
///     .default_flag_handler(|name| match name {
///         "header" => Some(DefaultFlag::new(true, "Welcome")),
///         _ => None,
///     })
///     .build()?;
/// # Ok::<(), bullet_train::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DefaultFlag {
    /// Whether the feature counts as enabled.
    pub enabled: bool,
    /// Its value.
    pub value: Value,
}

impl DefaultFlag {
    /// A default flag.
    ///
    /// ```
    /// let off = bullet_train::DefaultFlag::new(false, 0);
    /// assert_eq!(off.value, bullet_train::Value::Int(0));
    /// ```
    pub fn new(enabled: bool, value: impl Into<Value>) -> DefaultFlag {
        DefaultFlag {
            enabled,
            value: value.into(),
        }
    }
}

/// A trait of an identity, sent with [`crate::BulletTrain::get_identity_flags`] or reported back.
///
/// # Examples
///
/// ```
/// use bullet_train::Trait;
///
/// let traits = [
///     Trait::new("plan", "pro"),
///     Trait::new("logins", 12),
///     // Used for this evaluation only, never stored by the server.
///     Trait::transient("device", "phone"),
/// ];
/// assert!(traits[2].transient);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Trait {
    /// Trait key.
    pub key: String,
    /// Trait value; sending null deletes a stored trait.
    pub value: Value,
    /// Whether the trait is for this evaluation only.
    pub transient: bool,
}

impl Trait {
    /// A trait the server stores (when the organisation persists traits).
    ///
    /// ```
    /// let plan = bullet_train::Trait::new("plan", "pro");
    /// assert!(!plan.transient);
    /// ```
    pub fn new(key: impl Into<String>, value: impl Into<Value>) -> Trait {
        Trait {
            key: key.into(),
            value: value.into(),
            transient: false,
        }
    }

    /// A trait used for this evaluation only.
    ///
    /// ```
    /// let device = bullet_train::Trait::transient("device", "ios");
    /// assert!(device.transient);
    /// ```
    pub fn transient(key: impl Into<String>, value: impl Into<Value>) -> Trait {
        Trait {
            transient: true,
            ..Trait::new(key, value)
        }
    }
}

/// The flags of one identity, with its traits, from one call.
///
/// The lookup methods count an evaluation for analytics (when analytics is on), as reading a flag
/// through [`crate::BulletTrain::feature_enabled_for`] does.
#[derive(Clone)]
///
/// ```no_run
/// # async fn run(bt: bullet_train::BulletTrain) -> Result<(), bullet_train::Error> {
/// let flags = bt.get_identity_flags("1234", &[bullet_train::Trait::new("plan", "pro")]).await?;
/// if let Some(flag) = flags.get_flag("header") {
///     println!("{} = {}", flag.name(), flag.value());
/// }
/// println!("enabled: {:?}", flags.is_feature_enabled("header"));
/// println!("value: {:?}", flags.get_feature_value("font_size"));
/// println!("plan: {:?}", flags.get_trait("plan"));
/// # Ok(()) }
/// ```
pub struct IdentityFlags {
    /// The identifier (made up by the server when none was sent).
    pub identifier: String,
    /// Every flag of the identity.
    pub flags: Vec<Flag>,
    /// The identity's traits: stored ones and those of the request (remote evaluation), or those of
    /// the request (local evaluation).
    pub traits: Vec<Trait>,
    pub(crate) analytics: Option<Arc<Analytics>>,
    pub(crate) default: Option<crate::client::Handler>,
}

impl fmt::Debug for IdentityFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityFlags")
            .field("identifier", &self.identifier)
            .field("flags", &self.flags)
            .field("traits", &self.traits)
            .finish_non_exhaustive()
    }
}

impl IdentityFlags {
    /// The flag of feature `name` (exact name), or the default flag handler's, or `None`.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_identity_flags("ben@bullet-train.io", &[bullet_train::Trait::new("plan", "pro")])?;
    /// let flag = flags.get_flag("dark_mode").unwrap();
    /// assert!(flag.enabled);
    /// assert!(flags.get_flag("no_such_feature").is_none());
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_flag(&self, name: &str) -> Option<Flag> {
        match self.flags.iter().find(|f| f.feature.name == name) {
            Some(flag) => {
                if let Some(analytics) = &self.analytics {
                    analytics.count(name);
                }
                Some(flag.clone())
            }
            None => self
                .default
                .as_ref()
                .and_then(|handler| handler(name))
                .map(|d| Flag::from_default(name, d)),
        }
    }

    /// Whether feature `name` is enabled for the identity; `None` when there is no such feature.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_identity_flags("ben@bullet-train.io", &[bullet_train::Trait::new("plan", "pro")])?;
    /// assert_eq!(flags.is_feature_enabled("dark_mode"), Some(true));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn is_feature_enabled(&self, name: &str) -> Option<bool> {
        self.get_flag(name).map(|f| f.enabled)
    }

    /// The value of feature `name` for the identity; `None` when there is no such feature.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_identity_flags("ben@bullet-train.io", &[bullet_train::Trait::new("plan", "pro")])?;
    /// assert_eq!(flags.get_feature_value("dark_mode"), Some("midnight".into()));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_feature_value(&self, name: &str) -> Option<Value> {
        self.get_flag(name).map(|f| f.feature_state_value)
    }

    /// The value of trait `key`, if the identity has it.
    ///
    /// ```
    /// # let document = serde_json::from_str(include_str!("../../../examples/environment.json")).unwrap();
    /// # let bt = bullet_train::blocking::BulletTrain::builder("key").offline_mode(true).offline_document(document).build_blocking()?;
    /// let flags = bt.get_identity_flags("ben@bullet-train.io", &[bullet_train::Trait::new("plan", "pro")])?;
    /// assert_eq!(flags.get_trait("plan"), Some(&"pro".into()));
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn get_trait(&self, key: &str) -> Option<&Value> {
        self.traits.iter().find(|t| t.key == key).map(|t| &t.value)
    }
}
