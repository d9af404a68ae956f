//! The management side of the store: organisations, API keys, projects, environments, features,
//! multivariate options, feature states, segments, segment overrides, identities, the audit log and
//! webhooks.
//!
//! Every write takes the [`Author`] it is recorded under and runs as one transaction holding the
//! change, its audit entry, the revision bump of each environment whose document changed, and the
//! webhook deliveries its flag changes queue. Inputs arrive validated (the server checks shapes and
//! lengths); the store checks what only it can: existence, uniqueness, references, allocation sums.

use std::collections::HashMap;

use async_trait::async_trait;
use bullet_train_protocol::Value;

use crate::Result;
use crate::model::*;

/// A new organisation.
#[derive(Debug, Clone, Default)]
pub struct NewOrganisation {
    pub name: String,
}

/// Changes to an organisation; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct OrganisationUpdate {
    pub name: Option<String>,
    pub persist_trait_data: Option<bool>,
    pub feature_analytics: Option<bool>,
    pub stop_serving_flags: Option<bool>,
}

/// A new organisation API key (the secret is generated and hashed by the caller).
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub is_admin: bool,
    pub expires_at: Option<Micros>,
}

/// Changes to an organisation API key.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyUpdate {
    pub name: Option<String>,
    pub revoked: Option<bool>,
    pub expires_at: Option<Option<Micros>>,
}

/// A new project.
#[derive(Debug, Clone, Default)]
pub struct NewProject {
    pub organisation_id: Id,
    pub name: String,
    pub hide_disabled_flags: bool,
    pub enable_realtime_updates: bool,
    pub settings: ProjectSettings,
}

/// A project's feature settings (Flagsmith's names).
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectSettings {
    pub prevent_flag_defaults: bool,
    pub only_allow_lower_case_feature_names: bool,
    pub feature_name_regex: Option<String>,
    pub stale_flags_limit_days: i64,
}

impl Default for ProjectSettings {
    fn default() -> Self {
        ProjectSettings {
            prevent_flag_defaults: false,
            only_allow_lower_case_feature_names: false,
            feature_name_regex: None,
            stale_flags_limit_days: 30,
        }
    }
}

/// Changes to a project.
#[derive(Debug, Clone, Default)]
pub struct ProjectUpdate {
    pub name: Option<String>,
    pub hide_disabled_flags: Option<bool>,
    pub enable_realtime_updates: Option<bool>,
    pub prevent_flag_defaults: Option<bool>,
    pub only_allow_lower_case_feature_names: Option<bool>,
    /// `Some(None)` clears the rule.
    pub feature_name_regex: Option<Option<String>>,
    pub stale_flags_limit_days: Option<i64>,
}

/// A new environment (its client key is generated).
#[derive(Debug, Clone, Default)]
pub struct NewEnvironment {
    pub project_id: Id,
    pub name: String,
    pub description: Option<String>,
    pub settings: EnvironmentUpdate,
}

/// Changes to an environment.
#[derive(Debug, Clone, Default)]
pub struct EnvironmentUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub allow_client_traits: Option<bool>,
    pub hide_sensitive_data: Option<bool>,
    pub hide_disabled_flags: Option<Option<bool>>,
    pub use_identity_composite_key_for_hashing: Option<bool>,
    pub use_identity_overrides_in_local_eval: Option<bool>,
}

/// A new multivariate option.
#[derive(Debug, Clone)]
pub struct NewOption {
    pub value: Value,
    pub default_percentage_allocation: f64,
    pub key: Option<String>,
}

/// A new feature, with its options.
#[derive(Debug, Clone, Default)]
pub struct NewFeature {
    pub name: String,
    pub description: Option<String>,
    pub initial_value: Option<String>,
    pub default_enabled: bool,
    pub is_server_key_only: bool,
    pub options: Vec<NewOption>,
}

/// Changes to a feature.
#[derive(Debug, Clone, Default)]
pub struct FeatureUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub initial_value: Option<Option<String>>,
    pub default_enabled: Option<bool>,
    pub is_server_key_only: Option<bool>,
}

/// Which features to list.
#[derive(Debug, Clone, Default)]
pub struct FeatureQuery {
    /// Substring of the name, ignoring case.
    pub search: Option<String>,
    pub page: Option<Page>,
}

/// One multivariate allocation of a state: option and percentage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Allocation {
    pub option_id: Id,
    pub percentage: f64,
}

/// Changes to a feature state. `multivariate`, when given, replaces every allocation of the state.
#[derive(Debug, Clone, Default)]
pub struct StateUpdate {
    pub enabled: Option<bool>,
    pub value: Option<Value>,
    pub multivariate: Option<Vec<Allocation>>,
}

/// What a new (override) feature state overrides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StateTarget {
    /// A segment override, through its feature segment.
    FeatureSegment(Id),
    /// An identity override.
    Identity(Id),
}

/// A new override feature state.
#[derive(Debug, Clone)]
pub struct NewState {
    pub feature_id: Id,
    pub environment_id: Id,
    pub target: StateTarget,
    pub enabled: bool,
    pub value: Value,
    pub multivariate: Vec<Allocation>,
}

/// Which kind of feature states to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StateKind {
    /// Environment defaults and segment overrides: the states every identity shares.
    #[default]
    Shared,
    /// Environment defaults only.
    Defaults,
    /// Segment overrides only.
    SegmentOverrides,
    /// Identity overrides only.
    IdentityOverrides,
}

/// Which feature states to list: filters and the page are applied in the database, so a list
/// never loads more rows than it returns.
#[derive(Debug, Clone, Default)]
pub struct StateQuery {
    pub kind: StateKind,
    pub feature: Option<Id>,
    /// Exact feature name.
    pub feature_name: Option<String>,
    /// The segment override (`feature_segment`) a state belongs to.
    pub feature_segment: Option<Id>,
    /// A page, ordered by feature then state id; everything when `None`.
    pub page: Option<Page>,
}

/// How many overrides one feature has in an environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OverrideCounts {
    pub segments: u64,
    pub identities: u64,
}

/// A new segment (or a complete replacement of one).
#[derive(Debug, Clone, Default)]
pub struct NewSegment {
    pub name: String,
    pub description: Option<String>,
    pub feature_id: Option<Id>,
    pub rules: Vec<Rule>,
}

/// Which segments to list.
#[derive(Debug, Clone, Default)]
pub struct SegmentQuery {
    /// Substring of the name, ignoring case.
    pub search: Option<String>,
    pub page: Option<Page>,
}

/// A new segment override link.
#[derive(Debug, Clone)]
pub struct NewFeatureSegment {
    pub feature_id: Id,
    pub segment_id: Id,
    pub environment_id: Id,
    /// Where to insert (existing overrides at or below move down); `None` appends.
    pub priority: Option<i64>,
}

/// Which identities to list.
#[derive(Debug, Clone, Default)]
pub struct IdentityQuery {
    /// Identifier search: a prefix match, ignoring case, or an exact match when `exact`.
    pub search: Option<String>,
    pub exact: bool,
    pub page: Option<Page>,
}

/// A new webhook, or a complete replacement of one.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub enabled: bool,
    pub secret: Option<String>,
}

/// The result of one delivery attempt.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub delivered: bool,
    /// When to try again; `None` gives up (status `failed`) unless delivered.
    pub retry_at: Option<Micros>,
}

/// Management operations. See the module documentation for the transaction rule.
#[async_trait]
pub trait AdminStore: Send + Sync {
    async fn organisations(&self) -> Result<Vec<Organisation>>;
    async fn organisation(&self, id: Id) -> Result<Organisation>;
    async fn create_organisation(
        &self,
        author: &Author,
        new: &NewOrganisation,
    ) -> Result<Organisation>;
    async fn update_organisation(
        &self,
        author: &Author,
        id: Id,
        update: &OrganisationUpdate,
    ) -> Result<Change<Organisation>>;
    async fn delete_organisation(&self, author: &Author, id: Id) -> Result<Change<()>>;

    async fn api_keys(&self, organisation: Id) -> Result<Vec<ApiKey>>;
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>>;
    async fn create_api_key(
        &self,
        author: &Author,
        organisation: Id,
        new: &NewApiKey,
    ) -> Result<ApiKey>;
    async fn update_api_key(
        &self,
        author: &Author,
        organisation: Id,
        prefix: &str,
        update: &ApiKeyUpdate,
    ) -> Result<ApiKey>;
    async fn delete_api_key(&self, author: &Author, organisation: Id, prefix: &str) -> Result<()>;

    async fn projects(&self, organisation: Option<Id>) -> Result<Vec<Project>>;
    async fn project(&self, id: Id) -> Result<Project>;
    async fn create_project(&self, author: &Author, new: &NewProject) -> Result<Project>;
    async fn update_project(
        &self,
        author: &Author,
        id: Id,
        update: &ProjectUpdate,
    ) -> Result<Change<Project>>;
    async fn delete_project(&self, author: &Author, id: Id) -> Result<Change<()>>;

    async fn environment(&self, id: Id) -> Result<Environment>;
    async fn project_environments(&self, project: Id) -> Result<Vec<Environment>>;
    async fn create_environment(
        &self,
        author: &Author,
        new: &NewEnvironment,
    ) -> Result<Environment>;
    async fn update_environment(
        &self,
        author: &Author,
        id: Id,
        update: &EnvironmentUpdate,
    ) -> Result<Environment>;
    async fn delete_environment(&self, author: &Author, id: Id) -> Result<()>;
    /// A new environment of the same project with copies of the states and segment overrides.
    async fn clone_environment(&self, author: &Author, id: Id, name: &str) -> Result<Environment>;

    async fn features(&self, project: Id, query: &FeatureQuery) -> Result<Paged<FeatureRecord>>;
    async fn feature(&self, project: Id, id: Id) -> Result<FeatureRecord>;
    async fn create_feature(
        &self,
        author: &Author,
        project: Id,
        new: &NewFeature,
    ) -> Result<Change<FeatureRecord>>;
    async fn update_feature(
        &self,
        author: &Author,
        project: Id,
        id: Id,
        update: &FeatureUpdate,
    ) -> Result<Change<FeatureRecord>>;
    async fn delete_feature(&self, author: &Author, project: Id, id: Id) -> Result<Change<()>>;

    async fn create_option(
        &self,
        author: &Author,
        feature: Id,
        new: &NewOption,
    ) -> Result<Change<MultivariateOption>>;
    async fn update_option(
        &self,
        author: &Author,
        feature: Id,
        id: Id,
        update: &NewOption,
    ) -> Result<Change<MultivariateOption>>;
    async fn delete_option(&self, author: &Author, feature: Id, id: Id) -> Result<Change<()>>;

    /// An environment's feature states matching the query, and how many match in all.
    async fn feature_states(
        &self,
        environment: Id,
        query: &StateQuery,
    ) -> Result<Paged<FeatureState>>;
    /// The number of segment and identity overrides of each feature that has any, in an
    /// environment (counted through indexes, without loading the overrides).
    async fn override_counts(&self, environment: Id) -> Result<HashMap<Id, OverrideCounts>>;
    async fn feature_state(&self, id: Id) -> Result<FeatureState>;
    async fn create_feature_state(
        &self,
        author: &Author,
        new: &NewState,
    ) -> Result<Change<FeatureState>>;
    async fn update_feature_state(
        &self,
        author: &Author,
        id: Id,
        update: &StateUpdate,
    ) -> Result<Change<FeatureState>>;
    /// Deletes a segment or identity override (an environment default cannot be deleted).
    async fn delete_feature_state(&self, author: &Author, id: Id) -> Result<Change<()>>;

    async fn segments(&self, project: Id, query: &SegmentQuery) -> Result<Paged<Segment>>;
    async fn segment(&self, project: Id, id: Id) -> Result<Segment>;
    async fn create_segment(
        &self,
        author: &Author,
        project: Id,
        new: &NewSegment,
    ) -> Result<Change<Segment>>;
    async fn update_segment(
        &self,
        author: &Author,
        project: Id,
        id: Id,
        update: &NewSegment,
    ) -> Result<Change<Segment>>;
    async fn delete_segment(&self, author: &Author, project: Id, id: Id) -> Result<Change<()>>;

    async fn feature_segments(
        &self,
        environment: Id,
        feature: Option<Id>,
    ) -> Result<Vec<FeatureSegment>>;
    async fn feature_segment(&self, id: Id) -> Result<FeatureSegment>;
    async fn create_feature_segment(
        &self,
        author: &Author,
        new: &NewFeatureSegment,
    ) -> Result<Change<FeatureSegment>>;
    /// Creates a segment override (link and state) in one transaction.
    async fn create_segment_override(
        &self,
        author: &Author,
        link: &NewFeatureSegment,
        enabled: bool,
        value: &Value,
        multivariate: &[Allocation],
    ) -> Result<Change<(FeatureSegment, FeatureState)>>;
    async fn delete_feature_segment(&self, author: &Author, id: Id) -> Result<Change<()>>;
    /// Sets priorities (each pair is `(feature segment, priority)`), then renumbers each affected
    /// feature's overrides 0..n in the new order.
    async fn update_priorities(
        &self,
        author: &Author,
        priorities: &[(Id, i64)],
    ) -> Result<Change<Vec<FeatureSegment>>>;

    async fn identities(&self, environment: Id, query: &IdentityQuery) -> Result<Paged<Identity>>;
    async fn identity_by_id(&self, environment: Id, id: Id) -> Result<IdentityRecord>;
    async fn create_identity(
        &self,
        author: &Author,
        environment: Id,
        identifier: &str,
    ) -> Result<Identity>;
    async fn delete_identity(&self, author: &Author, environment: Id, id: Id)
    -> Result<Change<()>>;
    /// Sets (or with `None` deletes) a trait of an identity, recording it in the audit log.
    async fn set_identity_trait(
        &self,
        author: &Author,
        environment: Id,
        identity: Id,
        key: &str,
        value: Option<&Value>,
    ) -> Result<Option<Trait>>;
    /// Deletes every trait with this key in the environment; returns how many.
    async fn delete_traits_matching(
        &self,
        author: &Author,
        environment: Id,
        key: &str,
    ) -> Result<u64>;

    async fn audit_log(&self, filter: &AuditFilter, page: Page) -> Result<Paged<AuditEntry>>;

    async fn webhooks(&self, environment: Id) -> Result<Vec<Webhook>>;
    async fn create_webhook(
        &self,
        author: &Author,
        environment: Id,
        new: &NewWebhook,
    ) -> Result<Webhook>;
    async fn update_webhook(
        &self,
        author: &Author,
        environment: Id,
        id: Id,
        update: &NewWebhook,
    ) -> Result<Webhook>;
    async fn delete_webhook(&self, author: &Author, environment: Id, id: Id) -> Result<()>;
    async fn webhook_deliveries(&self, webhook: Id, page: Page) -> Result<Paged<WebhookDelivery>>;
    /// Claims pending deliveries due at `now` until `lease_until` (no other caller gets them
    /// before then, so replicas sharing a database never send one twice), with their webhooks.
    async fn due_deliveries(
        &self,
        now: Micros,
        lease_until: Micros,
        limit: i64,
    ) -> Result<Vec<(WebhookDelivery, Webhook)>>;
    /// The earliest `next_attempt_at` of a pending delivery.
    async fn next_delivery_at(&self) -> Result<Option<Micros>>;
    async fn record_attempt(&self, id: Id, attempt: &DeliveryAttempt) -> Result<()>;
}
