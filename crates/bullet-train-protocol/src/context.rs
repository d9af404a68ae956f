//! The v2 evaluation context (evaluation.md section 4.2): the engine-neutral input format of the
//! reference engine and of the shared conformance corpus.
//!
//! Maps keep the key order of the JSON object, because segment order decides ties.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::Value;
use crate::document::null_default;

/// Free-form metadata echoed back in results.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// Everything an evaluation needs: environment, optional identity, segments and features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationContext {
    /// The environment.
    pub environment: EnvironmentContext,
    /// The identity, if flags are evaluated for one.
    #[serde(default)]
    pub identity: Option<IdentityContext>,
    /// Segments in evaluation order, keyed by an arbitrary key.
    #[serde(default, deserialize_with = "null_default")]
    pub segments: IndexMap<String, SegmentContext>,
    /// Features in output order, keyed (by convention) by feature name.
    #[serde(default, deserialize_with = "null_default")]
    pub features: IndexMap<String, FeatureContext>,
}

/// The environment part of a context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentContext {
    /// Client key; the prefix of the implicit identity key.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Environment name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
}

/// The identity part of a context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityContext {
    /// The identifier.
    #[serde(default, deserialize_with = "null_default")]
    pub identifier: String,
    /// Explicit hashing key; when missing or empty, `<environment key>_<identifier>` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Traits by name.
    #[serde(default, deserialize_with = "null_default")]
    pub traits: IndexMap<String, Value>,
}

/// A segment with its rules and overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentContext {
    /// Hashing seed for PERCENTAGE_SPLIT.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Name, reported in results and reasons.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Top-level rules.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<SegmentRule>,
    /// Feature overrides applied when the segment matches.
    #[serde(default, deserialize_with = "null_default")]
    pub overrides: Vec<FeatureContext>,
    /// Echoed in the result when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A rule of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRule {
    /// `ALL`, `ANY` or `NONE`.
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub rule_type: String,
    /// Conditions.
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: Vec<ConditionContext>,
    /// Nested rules.
    #[serde(default, deserialize_with = "null_default")]
    pub rules: Vec<SegmentRule>,
}

/// A condition of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionContext {
    /// Trait name or JSONPath (`$.`); empty for PERCENTAGE_SPLIT on the identity key.
    #[serde(default, deserialize_with = "null_default")]
    pub property: String,
    /// Operator name.
    #[serde(default, deserialize_with = "null_default")]
    pub operator: String,
    /// Operand.
    #[serde(default)]
    pub value: Option<ConditionValue>,
}

/// A condition operand: text, or (IN only) a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConditionValue {
    /// The usual form.
    Text(String),
    /// A JSON list (IN).
    List(Vec<Value>),
    /// Any other scalar, read tolerantly.
    Scalar(Value),
}

/// A feature (environment default) or an override of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContext {
    /// Multivariate hashing seed.
    #[serde(default, deserialize_with = "null_default")]
    pub key: String,
    /// Feature name; overrides apply by name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Whether the flag is on.
    #[serde(default, deserialize_with = "null_default")]
    pub enabled: bool,
    /// Control value.
    #[serde(default)]
    pub value: Value,
    /// Weighted variants.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub variants: Vec<VariantContext>,
    /// Override priority; lower wins, missing is the weakest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<f64>,
    /// Echoed in the result when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A multivariate variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantContext {
    /// Value served when the identity lands in this variant.
    #[serde(default)]
    pub value: Value,
    /// Percentage of identities (0-100). Kept as a JSON number: `30` and `30.0` print differently in
    /// the `SPLIT; weight=` reason.
    pub weight: serde_json::Number,
    /// Walk order; lower first.
    #[serde(default)]
    pub priority: Option<f64>,
    /// Variant key reported as `variant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}
