//! An [OpenFeature](https://openfeature.dev) provider backed by a [`BulletTrain`] client (cargo
//! feature `openfeature`).
//!
//! - The evaluation context's targeting key is the identity; its custom fields are the identity's
//!   traits (booleans, integers, floats and strings as they are, date-times as RFC 3339 strings;
//!   structures are skipped). Remotely they are sent as the traits of a transient identity, so
//!   resolving a flag never stores anything (an existing identity's stored traits and overrides
//!   still apply). Without a targeting key the environment's flags answer.
//! - Booleans resolve to whether the flag is **enabled** (Flagsmith's convention), or to its
//!   boolean value with [`BulletTrainProvider::use_boolean_config_value`].
//! - Integers, floats, strings and structures resolve to the flag's **value**: integers from
//!   integer values or strings holding one, floats from any number or a string holding one,
//!   structures from a string holding a JSON object; anything else is `TYPE_MISMATCH`. A disabled
//!   flag yields the error `FLAG_DISABLED` (so the caller's default applies) unless
//!   [`BulletTrainProvider::return_value_for_disabled_flags`] is set.
//! - Reasons: `STATIC` for environment flags, `TARGETING_MATCH` for segment and identity overrides,
//!   `SPLIT` for a multivariate variant, `DEFAULT` for an identity's default state (local
//!   evaluation knows these; remote evaluation reports `SPLIT` for variants and `UNKNOWN`
//!   otherwise), `DISABLED` for a disabled flag's value. The variant is the multivariate option's
//!   key (or `control`). Missing flags are `FLAG_NOT_FOUND`, an unloaded local environment
//!   `PROVIDER_NOT_READY`.
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

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue,
};

use crate::{BulletTrain, Error, Flag, Mode, Reason, Trait, Value};

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

    async fn flag(&self, key: &str, context: &EvaluationContext) -> EvaluationResult<Flag> {
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
            Ok(Some(flag)) => Ok(flag),
            Ok(None) => Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("no feature named {key:?}"),
            )),
            Err(Error::NotReady) => Err(error(
                EvaluationErrorCode::ProviderNotReady,
                "the environment has not been loaded yet",
            )),
            Err(e) => Err(error(
                EvaluationErrorCode::General("PROVIDER_ERROR".into()),
                e.to_string(),
            )),
        }
    }

    /// Resolves a non-boolean value with `convert`.
    async fn value<T>(
        &self,
        key: &str,
        context: &EvaluationContext,
        expected: &str,
        convert: impl Fn(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let flag = self.flag(key, context).await?;
        if !flag.enabled && !self.value_for_disabled {
            return Err(error(
                EvaluationErrorCode::General("FLAG_DISABLED".into()),
                format!("feature {key:?} is disabled"),
            ));
        }
        let Some(value) = convert(&flag.feature_state_value) else {
            return Err(error(
                EvaluationErrorCode::TypeMismatch,
                format!(
                    "feature {key:?} has a {} value, not {expected}",
                    flag.feature_state_value.type_name()
                ),
            ));
        };
        let reason = if flag.enabled {
            reason(&flag, context, self.client.mode())
        } else {
            EvaluationReason::Disabled
        };
        Ok(details(value, &flag, reason))
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
                .value(flag_key, context, "a boolean", Value::as_bool)
                .await;
        }
        let flag = self.flag(flag_key, context).await?;
        let reason = reason(&flag, context, self.client.mode());
        Ok(details(flag.enabled, &flag, reason))
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.value(flag_key, context, "an integer", |v| match v {
            Value::Int(i) => Some(*i),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .await
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.value(flag_key, context, "a number", |v| match v {
            Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            other => other.as_f64(),
        })
        .await
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.value(flag_key, context, "a string", |v| {
            v.as_str().map(str::to_owned)
        })
        .await
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.value(flag_key, context, "a JSON object", |v| {
            let json: serde_json::Value = serde_json::from_str(v.as_str()?).ok()?;
            match open_feature::Value::try_from(json).ok()? {
                open_feature::Value::Struct(s) => Some(s),
                _ => None,
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

fn reason(flag: &Flag, context: &EvaluationContext, mode: Mode) -> EvaluationReason {
    if flag.is_default {
        return EvaluationReason::Default;
    }
    let identified = context
        .targeting_key
        .as_deref()
        .is_some_and(|k| !k.is_empty());
    match &flag.reason {
        _ if !identified => EvaluationReason::Static,
        Some(Reason::Default) => EvaluationReason::Default,
        Some(Reason::TargetingMatch { .. }) => EvaluationReason::TargetingMatch,
        Some(Reason::Split) => EvaluationReason::Split,
        None if flag.variant.as_deref().is_some_and(|v| v != "control") => EvaluationReason::Split,
        _ if mode == Mode::Remote => EvaluationReason::Unknown,
        _ => EvaluationReason::Default,
    }
}

fn details<T>(value: T, flag: &Flag, reason: EvaluationReason) -> ResolutionDetails<T> {
    let mut metadata = FlagMetadata::default();
    if flag.feature.id != 0
        && let Ok(id) = i64::try_from(flag.feature.id)
    {
        metadata.add_value("feature_id", id);
    }
    if let Some(Reason::TargetingMatch { segment }) = &flag.reason {
        metadata.add_value("segment", segment.clone());
    }
    ResolutionDetails {
        value,
        variant: flag.variant.clone(),
        reason: Some(reason),
        flag_metadata: Some(metadata),
    }
}
