//! Domain models: what the store reads and writes, independent of any SQL dialect and of HTTP.
//!
//! Ids are row ids. Hashing seeds (`Segment::seed`, `FeatureState::seed`/`uuid`,
//! `MultivariateValue::sort_key`) are data: created once, kept by imports, emitted by exports, so that
//! identities keep their buckets and variants across installations.

use bullet_train_protocol::Value;
use serde::{Deserialize, Serialize};

/// A row id.
pub type Id = i64;

/// Microseconds since the Unix epoch (UTC).
pub type Micros = i64;

/// An organisation: owns projects and holds the trait-persistence and kill-switch settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Organisation {
    pub id: Id,
    pub uuid: String,
    pub name: String,
    /// Whether traits sent by SDKs are stored.
    pub persist_trait_data: bool,
    pub feature_analytics: bool,
    /// When set, SDK requests are refused with 403.
    pub stop_serving_flags: bool,
    pub created_at: Micros,
}

/// A project: owns features, segments and environments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    pub id: Id,
    pub uuid: Option<String>,
    pub organisation_id: Id,
    pub name: String,
    pub hide_disabled_flags: bool,
    pub enable_realtime_updates: bool,
    /// New features' states start disabled and without a value, not with the feature's defaults.
    pub prevent_flag_defaults: bool,
    /// Feature names may not contain upper-case letters.
    pub only_allow_lower_case_feature_names: bool,
    /// Feature names must match this regular expression (anchored at the start) when set.
    pub feature_name_regex: Option<String>,
    pub stale_flags_limit_days: i64,
    pub created_at: Micros,
}

/// An environment of a project, addressed by its client key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    pub id: Id,
    pub uuid: Option<String>,
    pub project_id: Id,
    /// The client key (22 characters).
    pub api_key: String,
    pub name: String,
    pub description: Option<String>,
    pub allow_client_traits: bool,
    pub hide_sensitive_data: bool,
    /// Overrides the project's setting when set.
    pub hide_disabled_flags: Option<bool>,
    pub use_identity_composite_key_for_hashing: bool,
    pub use_identity_overrides_in_local_eval: bool,
    /// Last change to anything the environment document holds.
    pub updated_at: Micros,
    /// Incremented by every such change.
    pub revision: i64,
    pub created_at: Micros,
}

/// A server-side SDK key (`ser.`); only its SHA-256 is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerKey {
    pub id: Id,
    pub environment_id: Id,
    /// Hex SHA-256 of the key.
    pub key_hash: String,
    /// The first characters of the key, for display.
    pub prefix: String,
    pub name: String,
    pub active: bool,
    pub expires_at: Option<Micros>,
    pub created_at: Micros,
}

/// A feature (flag or remote-config value) of a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feature {
    pub id: Id,
    pub uuid: Option<String>,
    pub project_id: Id,
    pub name: String,
    /// `STANDARD` or `MULTIVARIATE`.
    pub feature_type: String,
    pub description: Option<String>,
    pub initial_value: Option<String>,
    pub default_enabled: bool,
    /// Hidden from client keys.
    pub is_server_key_only: bool,
    pub created_at: Micros,
}

/// A multivariate option of a feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultivariateOption {
    pub id: Id,
    pub feature_id: Id,
    pub value: Value,
    pub default_percentage_allocation: f64,
    /// Stable variant key reported as `variant`.
    pub key: Option<String>,
}

/// A segment of a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub id: Id,
    pub project_id: Id,
    pub name: String,
    pub description: Option<String>,
    /// PERCENTAGE_SPLIT hashing seed; the segment `id` of the environment document.
    pub seed: i64,
    pub rules: Vec<Rule>,
    /// A segment limited to one feature (it appears in documents only where that feature has an
    /// override of it).
    pub feature_id: Option<Id>,
    pub uuid: Option<String>,
    pub created_at: Micros,
}

/// A segment rule (stored as JSON with its segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(rename = "type")]
    pub rule_type: String,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A segment condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub operator: String,
    #[serde(default)]
    pub property: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The link between a feature, a segment and an environment: a segment override, with its priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureSegment {
    pub id: Id,
    pub feature_id: Id,
    pub segment_id: Id,
    pub environment_id: Id,
    /// Lower wins.
    pub priority: i64,
}

/// A feature state: an environment default, a segment override or an identity override.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureState {
    pub id: Id,
    pub feature_id: Id,
    pub environment_id: Id,
    pub feature_segment_id: Option<Id>,
    pub identity_id: Option<Id>,
    pub enabled: bool,
    pub value: Value,
    /// Multivariate hashing seed (the document's `django_id`); `uuid` is used when it is null.
    pub seed: Option<i64>,
    pub uuid: String,
    pub multivariate: Vec<MultivariateValue>,
    pub updated_at: Micros,
}

/// The allocation of one multivariate option within a feature state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MultivariateValue {
    pub id: Id,
    pub option_id: Id,
    pub percentage_allocation: f64,
    /// Ordering key of the allocation walk (the document's value `id`).
    pub sort_key: i64,
    pub uuid: String,
}

/// An identity of an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    pub id: Id,
    pub environment_id: Id,
    pub identifier: String,
    pub uuid: String,
    pub created_at: Micros,
}

/// A stored trait.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trait {
    pub id: Id,
    pub key: String,
    pub value: Value,
}

/// An identity with its traits and its identity overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityRecord {
    pub identity: Identity,
    pub traits: Vec<Trait>,
    pub overrides: Vec<FeatureState>,
}

/// A change to one trait: a new value, or deletion (`None`).
#[derive(Debug, Clone, PartialEq)]
pub struct TraitChange {
    pub key: String,
    pub value: Option<Value>,
}

/// Outcome of incrementing a trait.
#[derive(Debug, Clone, PartialEq)]
pub enum Increment {
    /// The new value.
    Value(i64),
    /// The stored trait is not an integer.
    NotInteger,
}

/// Everything the environment document and the SDK responses of one environment are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentData {
    pub organisation: Organisation,
    pub project: Project,
    pub environment: Environment,
    /// The project's features, by id.
    pub features: Vec<Feature>,
    /// Multivariate options of those features, by id.
    pub options: Vec<MultivariateOption>,
    /// The project's segments, by id.
    pub segments: Vec<Segment>,
    /// This environment's segment overrides, by priority.
    pub feature_segments: Vec<FeatureSegment>,
    /// Environment defaults and segment overrides of this environment.
    pub states: Vec<FeatureState>,
    /// Identities with identity overrides (when the environment ships them for local evaluation).
    pub identity_overrides: Vec<(Identity, Vec<FeatureState>)>,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportOutcome {
    pub environment_id: Id,
    pub project_id: Id,
    /// Whether the environment was created (rather than replaced).
    pub created: bool,
}

/// Who made a change, as the audit log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    /// For example `admin token` or `api key AbCd1234 (ci)`.
    pub label: String,
}

/// One page of a list, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: u64,
    pub size: u64,
}

impl Page {
    pub fn offset(&self) -> i64 {
        (self.number.saturating_sub(1).saturating_mul(self.size)) as i64
    }
}

/// A page of results and the total count.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// A result, and the environments whose snapshots it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T> {
    pub value: T,
    pub environments: Vec<Id>,
}

/// An organisation API key (`Authorization: Api-Key <prefix>.<secret>`); only the secret's hash is
/// stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    pub id: Id,
    pub organisation_id: Id,
    pub prefix: String,
    #[serde(skip)]
    pub key_hash: String,
    pub name: String,
    /// Admin keys may change everything in their organisation; others may only read.
    pub is_admin: bool,
    pub revoked: bool,
    pub expires_at: Option<Micros>,
    pub created_at: Micros,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: Id,
    pub created_at: Micros,
    pub author: String,
    pub organisation_id: Option<Id>,
    pub project_id: Option<Id>,
    pub environment_id: Option<Id>,
    pub related_object_type: String,
    pub related_object_id: Option<Id>,
    pub related_object_uuid: Option<String>,
    pub log: String,
    pub previous_state: Option<serde_json::Value>,
    pub new_state: Option<serde_json::Value>,
    pub is_system_event: bool,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub organisation: Option<Id>,
    pub project: Option<Id>,
    pub environments: Vec<Id>,
    /// Substring of the log text, ignoring case.
    pub search: Option<String>,
    pub object_type: Option<String>,
    pub since: Option<Micros>,
    pub until: Option<Micros>,
}

/// A webhook of an environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: Id,
    pub environment_id: Id,
    pub url: String,
    pub enabled: bool,
    /// Key of the HMAC-SHA256 signature; kept in clear because signing needs it.
    #[serde(skip)]
    pub secret: Option<String>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// A webhook delivery: queued in the transaction of the change, then sent and retried.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    pub id: Id,
    pub webhook_id: Id,
    pub event_type: String,
    /// The exact JSON body sent (and signed).
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Micros,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: Micros,
    pub delivered_at: Option<Micros>,
}

/// A feature with its multivariate options.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRecord {
    pub feature: Feature,
    pub options: Vec<MultivariateOption>,
}
