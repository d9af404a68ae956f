//! An [OpenFeature](https://openfeature.dev) provider backed by a [`BulletTrain`] client (cargo
//! feature `openfeature`).
//!
//! # Mapping
//!
//! The mapping follows the feature landscape's provider table (section 3.4); where that table is
//! silent, it follows the Flagsmith providers and the OpenFeature specification.
//!
//! - **Context.** The evaluation context's targeting key is the identity; its custom fields are
//!   the identity's traits (booleans, integers, floats and strings as they are, date-times as
//!   RFC 3339 strings; structures are skipped). Remotely they are sent as the traits of a
//!   transient identity, so resolving a flag never stores anything (an existing identity's stored
//!   traits and overrides still apply). Without a targeting key the environment's flags answer.
//! - **Booleans** resolve to whether the flag is **enabled** (Flagsmith's convention). A disabled
//!   flag resolves to `false` with reason `DISABLED`, as the table says. With
//!   [`BulletTrainProvider::use_boolean_config_value`] booleans resolve to the flag's boolean
//!   value instead, and are treated like the other typed values below.
//! - **Integers, floats, strings and structures** resolve to the flag's **value**: integers from
//!   integer values or strings holding one, floats from any number or a string holding one,
//!   structures from a string holding a JSON object. A value of another type is
//!   `TYPE_MISMATCH`; a string that is not JSON at all is `PARSE_ERROR` for structures (valid JSON
//!   that is not an object, such as `[1, 2]`, is `TYPE_MISMATCH`).
//! - **Disabled flags, typed values.** The table only specifies booleans. The resolvers of the
//!   Rust SDK do not receive the caller's default value, so the provider cannot answer "the
//!   default, reason `DISABLED`" as the Go and Java Flagsmith providers do; like the JavaScript,
//!   Kotlin and Swift ones it fails with the error `FLAG_DISABLED` (a `GENERAL` code, so the
//!   caller's default applies), unless [`BulletTrainProvider::return_value_for_disabled_flags`]
//!   is set, in which case the flag's value is returned with reason `DISABLED`.
//! - **Reasons and variants.**
//!
//!   | what answered | reason | variant |
//!   |---|---|---|
//!   | no targeting key (environment flags) | `STATIC` | |
//!   | a segment override | `TARGETING_MATCH` | the segment's name |
//!   | an identity override | `TARGETING_MATCH` | `identity_override` |
//!   | a multivariate option chosen by percentage split | `SPLIT` | the option's key |
//!   | the environment default for an identity | `DEFAULT` | `control` for a multivariate flag |
//!   | the client's default flag handler | `DEFAULT` | |
//!   | a disabled flag | `DISABLED` | as above |
//!
//!   Local and offline evaluation know all of these (a multivariate segment override that splits
//!   reports `SPLIT`). The client's remote flags do not say which state won, so remote evaluation
//!   reports `SPLIT` with the option's key for a multivariate option and `UNKNOWN` otherwise.
//! - **Metadata** holds what the client knows of the flag, from the table's list: `featureId`
//!   (integer), `type` (the feature's type as the server reports it: `STANDARD`, `MULTIVARIATE`,
//!   or `FLAG`/`CONFIG` from Bullet Train servers), `environment` (the environment's id),
//!   `description` (when the server shares it) and, in local and offline modes, `version` (the
//!   loaded environment document's `updated_at`, RFC 3339). `segment` also names the segment of
//!   a segment override. `flagSetId` (the environment key) is left out: the client does not
//!   expose its key, and a server-side key must not end up in telemetry. Each key is present only
//!   when known (flags from the default flag handler have none).
//! - **Errors.** Missing flags are `FLAG_NOT_FOUND` (unless the client's default flag handler
//!   knows them). While the provider's status is `NOT_READY` (local evaluation before the first
//!   environment document is loaded) every resolver fails at once with `PROVIDER_NOT_READY`,
//!   without waiting for the document and without asking the default flag handler: this is the
//!   short-circuit the specification asks of OpenFeature clients, which the Rust SDK does not
//!   make itself. Other client failures are `GENERAL` (`PROVIDER_ERROR`).
//!
//! # Examples
//!
//! ```no_run
//! use bullet_train::BulletTrain;
//! use bullet_train::openfeature::BulletTrainProvider;
//! use open_feature::{EvaluationContext, OpenFeature};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = BulletTrain::builder("ser.<YOUR_SERVER_KEY>").local_evaluation(true).build()?;
//! let mut api = OpenFeature::singleton_mut().await;
//! api.set_provider(BulletTrainProvider::new(client)).await;
//! let flags = api.create_client();
//!
//! let context = EvaluationContext::default()
//!     .with_targeting_key("ben@bullet-train.io")
//!     .with_custom_field("plan", "pro");
//! let on = flags.get_bool_value("header", Some(&context), None).await.unwrap_or(false);
//! # Ok(()) }
//! ```

use std::time::Duration;

use bullet_train_engine::IDENTITY_OVERRIDES;
use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};

use crate::{BulletTrain, Error, Flag, Mode, Reason, Trait, Value};

/// The variant reported for an identity override (the landscape table's name for it).
const IDENTITY_OVERRIDE_VARIANT: &str = "identity_override";

/// The OpenFeature provider. Build it from a configured client.
///
/// ```
/// use bullet_train::openfeature::BulletTrainProvider;
/// use open_feature::provider::FeatureProvider;
///
/// let provider = BulletTrainProvider::new(bullet_train::BulletTrain::new("key")?);
/// assert_eq!(provider.metadata().name, "bullet-train");
/// # Ok::<(), bullet_train::Error>(())
/// ```
#[derive(Debug)]
pub struct BulletTrainProvider {
    client: BulletTrain,
    metadata: ProviderMetadata,
    boolean_config_value: bool,
    value_for_disabled: bool,
}

/// Why a flag's value does not fit the resolver's type.
enum Unfit {
    /// The value has another type.
    Type,
    /// The value is a string that is not valid JSON.
    Parse(serde_json::Error),
}

impl BulletTrainProvider {
    /// A provider answering from `client`.
    ///
    /// ```
    /// let provider = bullet_train::openfeature::BulletTrainProvider::new(bullet_train::BulletTrain::new("key")?);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn new(client: BulletTrain) -> BulletTrainProvider {
        BulletTrainProvider {
            client,
            metadata: ProviderMetadata::new("bullet-train"),
            boolean_config_value: false,
            value_for_disabled: false,
        }
    }

    /// Resolve booleans to the flag's boolean value instead of whether it is enabled.
    ///
    /// ```
    /// # use bullet_train::{BulletTrain, openfeature::BulletTrainProvider};
    /// let provider = BulletTrainProvider::new(BulletTrain::new("key")?).use_boolean_config_value(true);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    #[must_use]
    pub fn use_boolean_config_value(mut self, enabled: bool) -> BulletTrainProvider {
        self.boolean_config_value = enabled;
        self
    }

    /// Resolve non-boolean values of disabled flags to their value (reason `DISABLED`) instead of
    /// the `FLAG_DISABLED` error.
    ///
    /// ```
    /// # use bullet_train::{BulletTrain, openfeature::BulletTrainProvider};
    /// let provider = BulletTrainProvider::new(BulletTrain::new("key")?).return_value_for_disabled_flags(true);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    #[must_use]
    pub fn return_value_for_disabled_flags(mut self, enabled: bool) -> BulletTrainProvider {
        self.value_for_disabled = enabled;
        self
    }

    /// The client behind the provider.
    ///
    /// ```
    /// # use bullet_train::{BulletTrain, openfeature::BulletTrainProvider};
    /// let provider = BulletTrainProvider::new(BulletTrain::new("key")?);
    /// assert_eq!(provider.client().mode(), bullet_train::Mode::Remote);
    /// # Ok::<(), bullet_train::Error>(())
    /// ```
    pub fn client(&self) -> &BulletTrain {
        &self.client
    }

    /// The flag of `key` for the context, and the version of the environment it came from.
    async fn flag(
        &self,
        key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<(Flag, Option<f64>)> {
        if !self.client.is_ready() {
            return Err(not_ready());
        }
        // Read before resolving: a document installed meanwhile is at least this recent.
        let version = self.client.environment_updated_at();
        let identifier = context.targeting_key.as_deref().filter(|k| !k.is_empty());
        let traits: Vec<Trait> = match identifier {
            Some(_) => context
                .custom_fields
                .iter()
                .filter_map(|(name, value)| Some(Trait::new(name.clone(), trait_value(value)?)))
                .collect(),
            None => Vec::new(),
        };
        match self.client.resolve_flag(key, identifier, &traits).await {
            Ok(Some(flag)) => Ok((flag, version)),
            Ok(None) => Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("no feature named {key:?}"),
            )),
            Err(Error::NotReady) => Err(not_ready()),
            Err(e) => Err(error(
                EvaluationErrorCode::General("PROVIDER_ERROR".into()),
                e.to_string(),
            )),
        }
    }

    /// Resolves a non-boolean value (or a boolean config value) with `convert`.
    async fn value<T>(
        &self,
        key: &str,
        context: &EvaluationContext,
        expected: &str,
        convert: impl Fn(&Value) -> Result<T, Unfit>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let (flag, version) = self.flag(key, context).await?;
        if !flag.enabled && !self.value_for_disabled {
            return Err(error(
                EvaluationErrorCode::General("FLAG_DISABLED".into()),
                format!("feature {key:?} is disabled"),
            ));
        }
        let value = match convert(&flag.feature_state_value) {
            Ok(value) => value,
            Err(Unfit::Type) => {
                return Err(error(
                    EvaluationErrorCode::TypeMismatch,
                    format!(
                        "feature {key:?} has a {} value, not {expected}",
                        flag.feature_state_value.type_name()
                    ),
                ));
            }
            Err(Unfit::Parse(e)) => {
                return Err(error(
                    EvaluationErrorCode::ParseError,
                    format!("feature {key:?} does not hold valid JSON: {e}"),
                ));
            }
        };
        Ok(details(value, &flag, context, self.client.mode(), version))
    }
}

#[open_feature::async_trait]
impl FeatureProvider for BulletTrainProvider {
    async fn initialize(&mut self, _context: &EvaluationContext) {
        if let Err(error) = self.client.wait_until_ready(Duration::from_secs(30)).await {
            tracing::warn!(%error, "Bullet Train provider not ready");
        }
    }

    fn status(&self) -> ProviderStatus {
        if self.client.is_ready() {
            ProviderStatus::Ready
        } else {
            ProviderStatus::NotReady
        }
    }

    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        if self.boolean_config_value {
            return self
                .value(flag_key, context, "a boolean", |v| {
                    v.as_bool().ok_or(Unfit::Type)
                })
                .await;
        }
        let (flag, version) = self.flag(flag_key, context).await?;
        Ok(details(
            flag.enabled,
            &flag,
            context,
            self.client.mode(),
            version,
        ))
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.value(flag_key, context, "an integer", |v| match v {
            Value::Int(i) => Ok(*i),
            Value::String(s) => s.trim().parse().map_err(|_| Unfit::Type),
            _ => Err(Unfit::Type),
        })
        .await
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.value(flag_key, context, "a number", |v| {
            match v {
                Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
                other => other.as_f64(),
            }
            .ok_or(Unfit::Type)
        })
        .await
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.value(flag_key, context, "a string", |v| {
            v.as_str().map(str::to_owned).ok_or(Unfit::Type)
        })
        .await
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.value(flag_key, context, "a JSON object", |v| {
            let text = v.as_str().ok_or(Unfit::Type)?;
            let json: serde_json::Value = serde_json::from_str(text).map_err(Unfit::Parse)?;
            match open_feature::Value::try_from(json) {
                Ok(open_feature::Value::Struct(s)) => Ok(s),
                _ => Err(Unfit::Type),
            }
        })
        .await
    }
}

fn error(code: EvaluationErrorCode, message: impl Into<String>) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message.into()),
    }
}

fn not_ready() -> EvaluationError {
    error(
        EvaluationErrorCode::ProviderNotReady,
        "the environment has not been loaded yet",
    )
}

/// A context field as a trait value; `None` for structures.
fn trait_value(value: &EvaluationContextFieldValue) -> Option<Value> {
    Some(match value {
        EvaluationContextFieldValue::Bool(b) => Value::Bool(*b),
        EvaluationContextFieldValue::Int(i) => Value::Int(*i),
        EvaluationContextFieldValue::Float(f) => Value::Float(*f),
        EvaluationContextFieldValue::String(s) => Value::String(s.clone()),
        EvaluationContextFieldValue::DateTime(t) => Value::String(
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()?,
        ),
        EvaluationContextFieldValue::Struct(_) => return None,
    })
}

/// The reason and variant of an enabled flag (see the table in the module docs).
fn reason_and_variant(
    flag: &Flag,
    context: &EvaluationContext,
    mode: Mode,
) -> (EvaluationReason, Option<String>) {
    if flag.is_default {
        return (EvaluationReason::Default, None);
    }
    let identified = context
        .targeting_key
        .as_deref()
        .is_some_and(|k| !k.is_empty());
    let variant = flag.variant.clone();
    match &flag.reason {
        _ if !identified => (EvaluationReason::Static, variant),
        Some(Reason::TargetingMatch { segment }) => {
            let variant = if segment == IDENTITY_OVERRIDES {
                IDENTITY_OVERRIDE_VARIANT
            } else {
                segment
            };
            (EvaluationReason::TargetingMatch, Some(variant.to_owned()))
        }
        Some(Reason::Split) => (EvaluationReason::Split, variant),
        Some(Reason::Default) => (EvaluationReason::Default, variant),
        // Remote answers say no more than the variant.
        None if variant.as_deref().is_some_and(|v| v != "control") => {
            (EvaluationReason::Split, variant)
        }
        _ if mode == Mode::Remote => (EvaluationReason::Unknown, variant),
        _ => (EvaluationReason::Default, variant),
    }
}

fn details<T>(
    value: T,
    flag: &Flag,
    context: &EvaluationContext,
    mode: Mode,
    version: Option<f64>,
) -> ResolutionDetails<T> {
    let (reason, variant) = reason_and_variant(flag, context, mode);
    let reason = if flag.enabled {
        reason
    } else {
        EvaluationReason::Disabled
    };
    let mut metadata = FlagMetadata::default();
    if !flag.is_default {
        if flag.feature.id != 0
            && let Ok(id) = i64::try_from(flag.feature.id)
        {
            metadata.add_value("featureId", id);
        }
        if let Some(feature_type) = &flag.feature.feature_type {
            metadata.add_value("type", feature_type.clone());
        }
        if let Some(environment) = flag.environment {
            metadata.add_value("environment", environment);
        }
        if let Some(description) = flag.feature.description.as_ref().filter(|d| !d.is_empty()) {
            metadata.add_value("description", description.clone());
        }
        if let Some(version) = version.and_then(rfc3339) {
            metadata.add_value("version", version);
        }
    }
    if let Some(Reason::TargetingMatch { segment }) = &flag.reason
        && segment != IDENTITY_OVERRIDES
    {
        metadata.add_value("segment", segment.clone());
    }
    ResolutionDetails {
        value,
        variant,
        reason: Some(reason),
        flag_metadata: Some(metadata),
    }
}

/// Unix seconds (with microseconds, as documents carry them) as an RFC 3339 UTC timestamp.
fn rfc3339(seconds: f64) -> Option<String> {
    let micros = (seconds * 1e6).round();
    if !micros.is_finite() {
        return None;
    }
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).ok()?;
    time.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
