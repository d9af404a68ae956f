//! The Flagsmith environment document (wire-protocol.md section 4): what `environment-document/` serves
//! and what SDKs in local-evaluation mode, offline handlers and the import endpoint consume.
//!
//! Reading is tolerant (missing keys and `null`s take their defaults, `property` is accepted for
//! `property_`); writing emits every key the strictest SDK parser (Rust, flagsmith-flag-engine) requires,
//! with arrays never omitted and no `null` where a bool or string is expected.

use serde::{Deserialize, Deserializer, Serialize};

use crate::Value;

/// A whole environment: its flags, the project's segments and identity overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDocument {
    /// Numeric environment id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: u64,
    /// The environment's client key; also the hashing prefix and the SSE channel name.
    pub api_key: String,
    /// Environment name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// When the environment last changed, ISO 8601 with offset.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Whether client keys may write traits.
    #[serde(default = "yes", deserialize_with = "null_true")]
    pub allow_client_traits: bool,
    /// Whether SDK responses blank ids, dates and traits.
    #[serde(default, deserialize_with = "null_default")]
    pub hide_sensitive_data: bool,
    /// Environment-level override of the project's `hide_disabled_flags`.
    #[serde(default)]
    pub hide_disabled_flags: Option<bool>,
    /// Whether identities hash as `<api_key>_<identifier>` (true) or by numeric id (false).
    #[serde(default = "yes", deserialize_with = "null_true")]
    pub use_identity_composite_key_for_hashing: bool,
    /// Whether `identity_overrides` is filled for local evaluation.
    #[serde(default, deserialize_with = "null_default")]
    pub use_identity_overrides_in_local_eval: bool,
    /// The project the environment belongs to, with its segments.
    pub project: Project,
    /// Environment defaults, one per feature.
    #[serde(default, deserialize_with = "null_default")]
    pub feature_states: Vec<FeatureState>,
    /// Identities that have at least one identity override.
    #[serde(default, deserialize_with = "null_default")]
    pub identity_overrides: Vec<IdentityOverride>,
}

impl EnvironmentDocument {
    /// The effective `hide_disabled_flags`: the environment's value when set, else the project's.
    pub fn hides_disabled_flags(&self) -> bool {
        self.hide_disabled_flags
            .unwrap_or(self.project.hide_disabled_flags)
    }
}

/// The project of an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Numeric project id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: u64,
    /// Project name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Whether disabled flags are left out of SDK responses.
    #[serde(default, deserialize_with = "null_default")]
    pub hide_disabled_flags: bool,
    /// Whether realtime (SSE) updates are on for the project.
    #[serde(default, deserialize_with = "null_default")]
    pub enable_realtime_updates: bool,
    /// Features that client keys never see.
    #[serde(default, deserialize_with = "null_default")]
    pub server_key_only_feature_ids: Vec<u64>,
    /// The organisation owning the project.
    #[serde(default)]
    pub organisation: Organisation,
    /// Every segment of the project, with this environment's overrides.
    #[serde(default, deserialize_with = "null_default")]
    pub segments: Vec<Segment>,
}

/// The organisation of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    /// Numeric organisation id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: u64,
    /// Organisation name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Whether flag analytics are collected.
    #[serde(default, deserialize_with = "null_default")]
    pub feature_analytics: bool,
    /// Whether SDK requests are refused.
    #[serde(default, deserialize_with = "null_default")]
    pub stop_serving_flags: bool,
    /// Whether traits sent by SDKs are stored.
    #[serde(default = "yes", deserialize_with = "null_true")]
    pub persist_trait_data: bool,
}

impl Default for Organisation {
    fn default() -> Self {
        Organisation {
            id: 0,
            name: String::new(),
            feature_analytics: false,
            stop_serving_flags: false,
            persist_trait_data: true,
        }
    }
}

/// A segment: rules, plus the feature states it overrides in this environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Numeric id; also the segment's hashing seed for PERCENTAGE_SPLIT.
    #[serde(default, deserialize_with = "null_default")]
    pub id: u64,
    /// Segment name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Top-level rules; all must match (and there must be at least one).
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
    /// Segment overrides, each with `feature_segment.priority`.
    #[serde(default, deserialize_with = "null_default")]
    pub feature_states: Vec<FeatureState>,
}

/// A rule: a quantifier over conditions and over sub-rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// `ALL`, `ANY` or `NONE`. Kept as text so that an unknown type degrades in the engine instead of
    /// failing the whole document.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub rule_type: String,
    /// Nested rules.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<Rule>,
    /// Conditions.
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: Vec<Condition>,
}

/// A condition on a trait (or, with a `$.` property, on a JSONPath of the context).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Operator name, for example `EQUAL` or `PERCENTAGE_SPLIT`.
    #[serde(default, deserialize_with = "null_default")]
    pub operator: String,
    /// Trait name or JSONPath; empty or null for PERCENTAGE_SPLIT on the identity.
    #[serde(rename = "property_", alias = "property", default)]
    pub property: Option<String>,
    /// Operand, always text (null for IS_SET / IS_NOT_SET).
    #[serde(default, deserialize_with = "de_opt_text")]
    pub value: Option<String>,
}

/// A feature state: an environment default, a segment override or an identity override.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureState {
    /// The feature.
    pub feature: FeatureRef,
    /// Whether the flag is on.
    #[serde(default, deserialize_with = "null_default")]
    pub enabled: bool,
    /// Stable multivariate hashing seed (Core's `django_id`).
    #[serde(default)]
    pub django_id: Option<u64>,
    /// UUID of the state; the hashing seed when `django_id` is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub featurestate_uuid: Option<String>,
    /// The control value.
    #[serde(default)]
    pub feature_state_value: Value,
    /// Present (with a priority) on segment overrides only.
    #[serde(default)]
    pub feature_segment: Option<FeatureSegment>,
    /// Multivariate allocations.
    #[serde(default, deserialize_with = "null_default")]
    pub multivariate_feature_state_values: Vec<MultivariateFeatureStateValue>,
}

/// The feature a state belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRef {
    /// Numeric feature id.
    #[serde(default, deserialize_with = "null_default")]
    pub id: u64,
    /// Feature name (the SDK key).
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// `STANDARD` or `MULTIVARIATE`.
    #[serde(
        rename = "type",
        default = "standard",
        deserialize_with = "null_standard"
    )]
    pub feature_type: String,
}

/// The priority of a segment override; lower wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSegment {
    /// Priority; null only in old documents (then it is the weakest).
    #[serde(default)]
    pub priority: Option<i64>,
}

/// One weighted multivariate option within a feature state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateFeatureStateValue {
    /// The option and its value.
    pub multivariate_feature_option: MultivariateFeatureOption,
    /// Percentage (0-100) of identities that get this option.
    #[serde(default, deserialize_with = "null_default")]
    pub percentage_allocation: f64,
    /// Ordering key: options are walked in ascending id order.
    #[serde(default)]
    pub id: Option<u64>,
    /// Ordering key when `id` is null (read as a 128-bit integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mv_fs_value_uuid: Option<String>,
}

/// A multivariate option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultivariateFeatureOption {
    /// The value served to identities bucketed into this option.
    #[serde(default)]
    pub value: Value,
    /// Option id.
    #[serde(default)]
    pub id: Option<u64>,
    /// Stable variant key, reported as the flag's `variant`.
    #[serde(default)]
    pub key: Option<String>,
}

/// An identity that has identity overrides (one entry per such identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityOverride {
    /// The identity's identifier.
    #[serde(default, deserialize_with = "null_default")]
    pub identifier: String,
    /// Client key of its environment.
    #[serde(default, deserialize_with = "null_default")]
    pub environment_api_key: String,
    /// Creation time, RFC 3339.
    #[serde(default, deserialize_with = "null_default")]
    pub created_date: String,
    /// Identity UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_uuid: Option<String>,
    /// Numeric identity id.
    #[serde(default)]
    pub django_id: Option<u64>,
    /// `<environment_api_key>_<identifier>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_key: Option<String>,
    /// Optional display alias.
    #[serde(default)]
    pub dashboard_alias: Option<String>,
    /// Traits (Core never ships them here).
    #[serde(default, deserialize_with = "null_default")]
    pub identity_traits: Vec<DocumentTrait>,
    /// The identity's overrides (`feature_segment` null).
    #[serde(default, deserialize_with = "null_default")]
    pub identity_features: Vec<FeatureState>,
}

/// A trait as the document and the v1 fixture write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentTrait {
    /// Trait key.
    pub trait_key: String,
    /// Trait value.
    #[serde(default)]
    pub trait_value: Value,
}

fn yes() -> bool {
    true
}

fn standard() -> String {
    "STANDARD".to_owned()
}

/// Reads `null` as the type's default.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn null_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

fn null_standard<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_else(standard))
}

/// Reads a condition operand: strings as they are, other scalars in their text form, null as `None`.
fn de_opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(s),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        Value::Int(i) => Some(i.to_string()),
        // Python's `str()` of a whole float keeps its `.0` (`1.0`, where Rust writes `1`).
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 => {
            Some(format!("{f:.1}"))
        }
        Value::Float(f) => Some(f.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_operands_read_as_python_writes_them() {
        let operand = |value: &str| -> Option<String> {
            let condition: Condition = serde_json::from_str(&format!(
                r#"{{"operator": "EQUAL", "property_": "p", "value": {value}}}"#
            ))
            .unwrap();
            condition.value
        };
        assert_eq!(operand("1.0").as_deref(), Some("1.0"));
        assert_eq!(operand("-2.0").as_deref(), Some("-2.0"));
        assert_eq!(operand("2.5").as_deref(), Some("2.5"));
        assert_eq!(operand("3").as_deref(), Some("3"));
        assert_eq!(operand("true").as_deref(), Some("True"));
        assert_eq!(operand("\"x\"").as_deref(), Some("x"));
        assert_eq!(operand("null"), None);
    }

    #[test]
    fn minimal_document_reads_with_defaults_and_writes_every_key() {
        let doc: EnvironmentDocument = serde_json::from_str(
            r#"{"api_key": "k", "name": null, "project": {"segments": [{"id": 1, "name": "s",
                "rules": [{"type": "ALL", "conditions": [{"operator": "IS_SET", "property": "a"}]}]}]},
                "feature_states": [{"feature": {"id": 1, "name": "f"}, "enabled": true}]}"#,
        )
        .unwrap();
        assert_eq!(doc.name, "");
        assert!(doc.allow_client_traits);
        assert!(doc.project.organisation.persist_trait_data);
        let cond = &doc.project.segments[0].rules[0].conditions[0];
        assert_eq!(cond.property.as_deref(), Some("a"));
        assert_eq!(cond.value, None);

        let written = serde_json::to_value(&doc).unwrap();
        let fs = &written["feature_states"][0];
        assert_eq!(fs["feature"]["type"], "STANDARD");
        assert!(fs.get("feature_state_value").is_some());
        assert!(fs["multivariate_feature_state_values"].is_array());
        let rule = &written["project"]["segments"][0]["rules"][0];
        assert!(rule["rules"].is_array());
        assert_eq!(rule["conditions"][0]["property_"], "a");
        assert!(written["identity_overrides"].is_array());
        assert_eq!(
            written["project"]["organisation"]["persist_trait_data"],
            true
        );
    }
}
