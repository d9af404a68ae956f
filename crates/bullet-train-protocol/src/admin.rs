//! Admin API payloads, in the shapes of Flagsmith's management API (same field names and order) so
//! that existing Flagsmith tooling can talk to Bullet Train. Responses carry Flagsmith's fields even
//! where Bullet Train has no such concept (tags, owners, versioning), with neutral values.
//!
//! Request types are what the CLI sends and what the OpenAPI document describes; the server reads
//! requests field by field to report every invalid field at once.

use serde::{Deserialize, Serialize};

use crate::Value;

macro_rules! schema {
    ($(#[$meta:meta])* $vis:vis struct $name:ident $($rest:tt)*) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        $vis struct $name $($rest)*
    };
}

/// A page of results (`?page=`, `?page_size=`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Paginated<T> {
    pub count: u64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

schema! {
    /// An organisation.
    pub struct Organisation {
        pub id: i64,
        pub uuid: String,
        pub name: String,
        pub created_date: String,
        pub webhook_notification_email: Option<String>,
        pub num_seats: u64,
        pub subscription: Option<serde_json::Value>,
        pub role: String,
        pub persist_trait_data: bool,
        pub block_access_to_admin: bool,
        pub restrict_project_create_to_admin: bool,
        pub force_2fa: bool,
        /// Bullet Train: whether flag analytics are collected.
        pub feature_analytics: bool,
        /// Bullet Train: when set, SDK requests are refused.
        pub stop_serving_flags: bool,
    }
}

schema! {
    /// Create or update an organisation.
    pub struct OrganisationRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub persist_trait_data: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_analytics: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stop_serving_flags: Option<bool>,
    }
}

schema! {
    /// An organisation API key (`Authorization: Api-Key <key>`). `key` is present only in the
    /// response that creates it.
    pub struct MasterApiKey {
        pub id: i64,
        pub prefix: String,
        pub created: String,
        pub name: String,
        pub revoked: bool,
        pub expiry_date: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key: Option<String>,
        pub is_admin: bool,
        pub has_expired: bool,
    }
}

schema! {
    /// Create or update an organisation API key.
    pub struct MasterApiKeyRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expiry_date: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub is_admin: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub revoked: Option<bool>,
    }
}

schema! {
    /// A project.
    pub struct Project {
        pub id: i64,
        pub uuid: Option<String>,
        pub name: String,
        pub organisation: i64,
        pub hide_disabled_flags: bool,
        pub enable_dynamo_db: bool,
        pub migration_status: String,
        pub use_edge_identities: bool,
        pub prevent_flag_defaults: bool,
        pub enable_realtime_updates: bool,
        pub only_allow_lower_case_feature_names: bool,
        pub feature_name_regex: Option<String>,
        pub show_edge_identity_overrides_for_feature: bool,
        pub stale_flags_limit_days: i64,
        pub edge_v2_migration_status: String,
        pub minimum_change_request_approvals: Option<i64>,
    }
}

schema! {
    /// Create or update a project.
    pub struct ProjectRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub organisation: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hide_disabled_flags: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enable_realtime_updates: Option<bool>,
        /// New features' states start disabled and without a value in every environment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prevent_flag_defaults: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub only_allow_lower_case_feature_names: Option<bool>,
        /// A regular expression feature names must match (from their start); null clears it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_name_regex: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stale_flags_limit_days: Option<i64>,
    }
}

schema! {
    /// An environment; `api_key` is its client key.
    pub struct Environment {
        pub id: i64,
        pub uuid: Option<String>,
        pub name: String,
        pub api_key: String,
        pub description: Option<String>,
        pub project: i64,
        pub minimum_change_request_approvals: Option<i64>,
        pub allow_client_traits: bool,
        pub banner_text: Option<String>,
        pub banner_colour: Option<String>,
        pub hide_disabled_flags: Option<bool>,
        pub use_mv_v2_evaluation: bool,
        pub use_identity_composite_key_for_hashing: bool,
        pub hide_sensitive_data: bool,
        pub use_v2_feature_versioning: bool,
        pub use_identity_overrides_in_local_eval: bool,
        pub is_creating: bool,
        pub metadata: Vec<serde_json::Value>,
    }
}

schema! {
    /// Create or update an environment.
    pub struct EnvironmentRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub project: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub allow_client_traits: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hide_sensitive_data: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub hide_disabled_flags: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub use_identity_composite_key_for_hashing: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub use_identity_overrides_in_local_eval: Option<bool>,
    }
}

schema! {
    /// A server-side SDK key; `key` is present only in the response that creates it.
    pub struct ServerKey {
        pub id: i64,
        pub key: Option<String>,
        pub prefix: String,
        pub name: String,
        pub active: bool,
        pub created_at: String,
        pub expires_at: Option<String>,
    }
}

schema! {
    /// Create or update a server-side key.
    pub struct ServerKeyRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub active: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expires_at: Option<String>,
    }
}

schema! {
    /// A multivariate option of a feature.
    pub struct MultivariateOption {
        pub id: i64,
        pub uuid: Option<String>,
        #[serde(rename = "type")]
        pub option_type: String,
        pub integer_value: Option<i64>,
        pub string_value: Option<String>,
        pub boolean_value: Option<bool>,
        pub default_percentage_allocation: f64,
        pub key: Option<String>,
        pub feature: i64,
    }
}

schema! {
    /// Create or update a multivariate option: `type` is `unicode`, `int` or `bool`.
    pub struct MultivariateOptionRequest {
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        pub option_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub string_value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub integer_value: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub boolean_value: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub default_percentage_allocation: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key: Option<String>,
    }
}

schema! {
    /// The environment's default state of a feature, as feature lists embed it.
    pub struct EnvironmentFeatureState {
        pub id: i64,
        pub feature_state_value: Value,
        pub environment: i64,
        pub identity: Option<i64>,
        pub feature_segment: Option<i64>,
        pub enabled: bool,
    }
}

schema! {
    /// A feature (flag or remote-config value).
    pub struct Feature {
        pub id: i64,
        pub name: String,
        #[serde(rename = "type")]
        pub feature_type: String,
        pub default_enabled: bool,
        pub initial_value: Option<String>,
        pub created_date: String,
        pub description: Option<String>,
        pub tags: Vec<i64>,
        pub multivariate_options: Vec<MultivariateOption>,
        pub is_archived: bool,
        pub owners: Vec<serde_json::Value>,
        pub group_owners: Vec<serde_json::Value>,
        pub uuid: Option<String>,
        pub project: i64,
        pub environment_feature_state: Option<EnvironmentFeatureState>,
        pub num_segment_overrides: Option<u64>,
        pub num_identity_overrides: Option<u64>,
        pub is_num_identity_overrides_complete: Option<bool>,
        pub is_server_key_only: bool,
        pub last_modified_in_any_environment: Option<String>,
        pub last_modified_in_current_environment: Option<String>,
        pub metadata: Vec<serde_json::Value>,
    }
}

schema! {
    /// Create or update a feature. On create, `initial_value` and `default_enabled` give every
    /// environment its first state.
    pub struct FeatureRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub initial_value: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub default_enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub is_server_key_only: Option<bool>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub multivariate_options: Vec<MultivariateOptionRequest>,
    }
}

schema! {
    /// One multivariate allocation within a feature state.
    pub struct MultivariateStateValue {
        #[serde(default)]
        pub id: Option<i64>,
        pub multivariate_feature_option: i64,
        pub percentage_allocation: f64,
    }
}

schema! {
    /// The identity of an identity override.
    pub struct IdentityRef {
        pub id: i64,
        pub identifier: String,
    }
}

schema! {
    /// A feature state: environment default, segment override or identity override.
    pub struct FeatureState {
        pub id: i64,
        pub feature_state_value: Value,
        pub multivariate_feature_state_values: Vec<MultivariateStateValue>,
        pub identity: Option<IdentityRef>,
        pub uuid: String,
        pub deleted_at: Option<String>,
        pub enabled: bool,
        pub created_at: String,
        pub updated_at: String,
        pub live_from: Option<String>,
        pub version: Option<i64>,
        pub feature: i64,
        pub environment: i64,
        pub feature_segment: Option<i64>,
        pub change_request: Option<i64>,
        pub environment_feature_version: Option<String>,
    }
}

schema! {
    /// Change a feature state: `feature_state_value` is a raw JSON scalar.
    pub struct FeatureStateRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_state_value: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub multivariate_feature_state_values: Option<Vec<MultivariateStateValue>>,
    }
}

schema! {
    /// A value typed as Flagsmith's generic feature-state endpoints write it.
    pub struct TypedValue {
        #[serde(rename = "type")]
        pub value_type: String,
        #[serde(default)]
        pub string_value: Option<String>,
        #[serde(default)]
        pub integer_value: Option<i64>,
        #[serde(default)]
        pub boolean_value: Option<bool>,
    }
}

schema! {
    /// Create a segment or identity override through the generic feature-state endpoint.
    pub struct GenericFeatureStateRequest {
        pub feature: i64,
        pub environment: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_segment: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub identity: Option<i64>,
        /// The identity by identifier instead of `identity` (created if it does not exist).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub identifier: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_state_value: Option<TypedValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub multivariate_feature_state_values: Option<Vec<MultivariateStateValue>>,
    }
}

schema! {
    /// A condition of a segment rule.
    pub struct SegmentCondition {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<i64>,
        pub operator: String,
        #[serde(default)]
        pub property: Option<String>,
        #[serde(default)]
        pub value: Option<String>,
        #[serde(default)]
        pub description: Option<String>,
    }
}

schema! {
    /// A segment rule: `ALL`, `ANY` or `NONE` over its conditions and over its sub-rules.
    pub struct SegmentRule {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<i64>,
        #[serde(rename = "type")]
        pub rule_type: String,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(no_recursion))]
        pub rules: Vec<SegmentRule>,
        #[serde(default)]
        pub conditions: Vec<SegmentCondition>,
    }
}

schema! {
    /// A segment.
    pub struct Segment {
        pub id: i64,
        pub uuid: Option<String>,
        pub name: String,
        pub description: Option<String>,
        pub project: i64,
        pub feature: Option<i64>,
        pub rules: Vec<SegmentRule>,
        pub metadata: Vec<serde_json::Value>,
        pub created_at: String,
    }
}

schema! {
    /// Create or replace a segment.
    pub struct SegmentRequest {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature: Option<i64>,
        pub rules: Vec<SegmentRule>,
    }
}

schema! {
    /// A segment override link (feature, segment, environment) with its priority (lower wins).
    pub struct FeatureSegment {
        pub id: i64,
        pub uuid: Option<String>,
        pub feature: i64,
        pub segment: i64,
        pub environment: i64,
        pub priority: i64,
        pub segment_name: String,
        pub is_feature_specific: bool,
    }
}

schema! {
    /// Create a segment override link; without `priority` it goes last.
    pub struct FeatureSegmentRequest {
        pub feature: i64,
        pub segment: i64,
        pub environment: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<i64>,
    }
}

schema! {
    /// One entry of `update-priorities/`.
    pub struct PriorityRequest {
        pub id: i64,
        pub priority: i64,
    }
}

schema! {
    /// The link part of a one-call segment override.
    pub struct SegmentOverrideLink {
        pub segment: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub priority: Option<i64>,
    }
}

schema! {
    /// Create a segment override in one call.
    pub struct SegmentOverrideRequest {
        pub feature_segment: SegmentOverrideLink,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_state_value: Option<TypedValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub multivariate_feature_state_values: Option<Vec<MultivariateStateValue>>,
    }
}

schema! {
    /// A segment override created in one call.
    pub struct SegmentOverride {
        pub id: i64,
        pub feature: i64,
        pub enabled: bool,
        pub feature_state_value: TypedValue,
        pub feature_segment: FeatureSegmentSummary,
        pub uuid: String,
        pub environment: i64,
        pub identity: Option<i64>,
        pub multivariate_feature_state_values: Vec<MultivariateStateValue>,
    }
}

schema! {
    /// The link of a one-call segment override.
    pub struct FeatureSegmentSummary {
        pub id: i64,
        pub segment: i64,
        pub priority: i64,
        pub uuid: Option<String>,
    }
}

schema! {
    /// An identity.
    pub struct Identity {
        pub id: i64,
        pub identifier: String,
        pub environment: i64,
        pub created_date: String,
    }
}

schema! {
    /// Create an identity.
    pub struct IdentityRequest {
        pub identifier: String,
    }
}

schema! {
    /// A trait of an identity (admin form: typed value fields).
    pub struct Trait {
        pub id: i64,
        pub trait_key: String,
        pub value_type: String,
        pub integer_value: Option<i64>,
        pub string_value: Option<String>,
        pub boolean_value: Option<bool>,
        pub float_value: Option<f64>,
        pub created_date: Option<String>,
    }
}

schema! {
    /// Set a trait: `value_type` is `unicode`, `int`, `bool` or `float`.
    pub struct TraitRequest {
        pub trait_key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub value_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub string_value: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub integer_value: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub boolean_value: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub float_value: Option<f64>,
    }
}

schema! {
    /// Create or change an identity override: `feature_state_value` is a raw JSON scalar.
    pub struct IdentityOverrideRequest {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feature_state_value: Option<Value>,
    }
}

schema! {
    /// A feature as `featurestates/all/` names it.
    pub struct FeatureSummary {
        pub id: i64,
        pub name: String,
        #[serde(rename = "type")]
        pub feature_type: String,
    }
}

schema! {
    /// A segment as evaluated flags name it.
    pub struct SegmentSummary {
        pub id: i64,
        pub name: String,
    }
}

schema! {
    /// One evaluated flag of an identity (`featurestates/all/`).
    pub struct IdentityFlag {
        pub feature: FeatureSummary,
        pub enabled: bool,
        pub feature_state_value: Value,
        /// `IDENTITY`, `SEGMENT` or null.
        pub overridden_by: Option<String>,
        pub segment: Option<SegmentSummary>,
        pub multivariate_feature_state_values: Vec<MultivariateStateValue>,
    }
}

schema! {
    /// Evaluate an identity with the given traits (nothing is stored).
    pub struct EvaluationRequest {
        pub identifier: String,
        #[serde(default)]
        pub traits: std::collections::BTreeMap<String, Value>,
    }
}

schema! {
    /// One flag of an evaluation, with the reason for its value.
    pub struct EvaluatedFlag {
        pub feature: String,
        pub enabled: bool,
        pub value: Value,
        pub variant: Option<String>,
        pub reason: String,
    }
}

schema! {
    /// The flags of an identity with stored and given traits, and the segments it is in.
    pub struct EvaluationResponse {
        pub identifier: String,
        pub flags: Vec<EvaluatedFlag>,
        pub segments: Vec<String>,
    }
}

schema! {
    /// Who made an audited change.
    pub struct AuditAuthor {
        pub id: Option<i64>,
        pub email: String,
        pub first_name: String,
        pub last_name: String,
    }
}

schema! {
    /// The environment of an audit entry.
    pub struct AuditEnvironment {
        pub id: i64,
        pub name: String,
        pub api_key: String,
    }
}

schema! {
    /// The project of an audit entry.
    pub struct AuditProject {
        pub id: i64,
        pub name: String,
        pub organisation: i64,
    }
}

schema! {
    /// An audit log entry, with the state before and after the change.
    pub struct AuditLogEntry {
        pub id: i64,
        pub created_date: String,
        pub log: String,
        pub author: Option<AuditAuthor>,
        pub environment: Option<AuditEnvironment>,
        pub project: Option<AuditProject>,
        pub related_object_id: Option<i64>,
        pub related_object_uuid: Option<String>,
        pub related_object_type: String,
        pub is_system_event: bool,
        pub previous_state: Option<serde_json::Value>,
        pub new_state: Option<serde_json::Value>,
    }
}

schema! {
    /// A webhook of an environment.
    pub struct Webhook {
        pub id: i64,
        pub url: String,
        pub enabled: bool,
        pub created_at: String,
        pub updated_at: String,
        pub secret: Option<String>,
    }
}

schema! {
    /// Create or replace a webhook.
    pub struct WebhookRequest {
        pub url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub secret: Option<String>,
    }
}

schema! {
    /// A delivery of a webhook event.
    pub struct WebhookDelivery {
        pub id: i64,
        pub event_type: String,
        /// `pending`, `delivered` or `failed`.
        pub status: String,
        pub attempts: i64,
        pub next_attempt_at: Option<String>,
        pub last_status_code: Option<i64>,
        pub last_error: Option<String>,
        pub created_at: String,
        pub delivered_at: Option<String>,
        pub payload: serde_json::Value,
    }
}

schema! {
    /// Daily evaluation count of a feature.
    pub struct EvaluationCount {
        pub day: String,
        pub count: i64,
    }
}
