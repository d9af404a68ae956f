//! The admin API: Flagsmith's management paths and payloads (wire-protocol.md section 7), one module
//! per resource, documented in OpenAPI from the handlers themselves. Shared here: request reading
//! that reports every invalid field at once, pagination, conversions from domain models to payloads,
//! and the step every write ends with (rebuilding the changed environments' snapshots).

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::Uri;
use bullet_train_protocol::Value;
use bullet_train_protocol::admin as dto;
use bullet_train_store::StoreError;
use bullet_train_store::model::{self, Id, Micros, Page};
use bullet_train_store::time::{iso, iso_z, parse_iso};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::Params;
use crate::state::AppState;

pub(crate) mod audit;
pub(crate) mod environments;
pub(crate) mod features;
pub(crate) mod identities;
pub(crate) mod organisations;
pub(crate) mod projects;
pub(crate) mod segments;
pub(crate) mod states;

/// Every admin route.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(organisations::router())
        .merge(projects::router())
        .merge(environments::router())
        .merge(features::router())
        .merge(states::router())
        .merge(segments::router())
        .merge(identities::router())
        .merge(audit::router())
}

/// Longest name of an organisation, project, environment, feature or segment.
pub(crate) const MAX_NAME: usize = 2000;
/// Longest description.
pub(crate) const MAX_TEXT: usize = 20000;

/// Reads a JSON object field by field, collecting every problem.
pub(crate) struct Form<'a> {
    map: &'a serde_json::Map<String, serde_json::Value>,
    errors: FieldErrors,
}

impl<'a> Form<'a> {
    pub(crate) fn new(body: &'a serde_json::Value) -> ApiResult<Form<'a>> {
        match body.as_object() {
            Some(map) => Ok(Form {
                map,
                errors: FieldErrors::new(),
            }),
            None => Err(ApiError::field(
                "non_field_errors",
                crate::routes::identities::expected_object(body),
            )),
        }
    }

    pub(crate) fn error(&mut self, field: &str, message: impl Into<String>) {
        let entry = self
            .errors
            .entry(field.to_owned())
            .or_insert_with(|| json!([]));
        if let Some(messages) = entry.as_array_mut() {
            messages.push(json!(message.into()));
        }
    }

    pub(crate) fn raw(&self, field: &str) -> Option<&'a serde_json::Value> {
        self.map.get(field)
    }

    /// A required, non-blank string of at most `max` characters.
    pub(crate) fn text(&mut self, field: &str, max: usize) -> Option<String> {
        match self.map.get(field) {
            None | Some(serde_json::Value::Null) => {
                self.error(field, "This field is required.");
                None
            }
            Some(_) => self.optional_text(field, max).flatten().or_else(|| {
                if !self.errors.contains_key(field) {
                    self.error(field, "This field may not be blank.");
                }
                None
            }),
        }
    }

    /// A string that may be left out (a partial update) but, when given, may not be null or blank.
    pub(crate) fn changed_text(&mut self, field: &str, max: usize) -> Option<String> {
        if self.map.contains_key(field) {
            self.text(field, max)
        } else {
            None
        }
    }

    /// An optional string: `None` when absent, `Some(None)` when null or blank.
    pub(crate) fn optional_text(&mut self, field: &str, max: usize) -> Option<Option<String>> {
        match self.map.get(field)? {
            serde_json::Value::Null => Some(None),
            serde_json::Value::String(s) if s.trim().is_empty() => Some(None),
            serde_json::Value::String(s) if s.chars().count() > max => {
                self.error(
                    field,
                    format!("Ensure this field has no more than {max} characters."),
                );
                None
            }
            serde_json::Value::String(s) => Some(Some(s.clone())),
            _ => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    /// An optional boolean (absent or null: `None`).
    pub(crate) fn flag(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field)? {
            serde_json::Value::Null => None,
            serde_json::Value::Bool(b) => Some(*b),
            _ => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// An optional boolean that may be null (`Some(None)`).
    pub(crate) fn nullable_flag(&mut self, field: &str) -> Option<Option<bool>> {
        match self.map.get(field)? {
            serde_json::Value::Null => Some(None),
            serde_json::Value::Bool(b) => Some(Some(*b)),
            _ => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// An optional integer.
    pub(crate) fn integer(&mut self, field: &str) -> Option<i64> {
        match self.map.get(field)? {
            serde_json::Value::Null => None,
            serde_json::Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            serde_json::Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                s.trim().parse().ok()
            }
            _ => {
                self.error(field, "A valid integer is required.");
                None
            }
        }
    }

    /// A required integer.
    pub(crate) fn required_integer(&mut self, field: &str) -> Option<i64> {
        if matches!(self.map.get(field), None | Some(serde_json::Value::Null)) {
            self.error(field, "This field is required.");
            return None;
        }
        self.integer(field)
    }

    /// An optional number within `min..=max`.
    pub(crate) fn number(&mut self, field: &str, min: f64, max: f64) -> Option<f64> {
        let n = match self.map.get(field)? {
            serde_json::Value::Null => return None,
            serde_json::Value::Number(n) => n.as_f64()?,
            _ => {
                self.error(field, "A valid number is required.");
                return None;
            }
        };
        if !(min..=max).contains(&n) {
            self.error(
                field,
                format!("Ensure this value is between {min} and {max}."),
            );
            return None;
        }
        Some(n)
    }

    /// An optional ISO 8601 datetime; `Some(None)` when null.
    pub(crate) fn datetime(&mut self, field: &str) -> Option<Option<Micros>> {
        match self.map.get(field)? {
            serde_json::Value::Null => Some(None),
            serde_json::Value::String(s) => match parse_iso(s) {
                Some(t) => Some(Some(t)),
                None => {
                    self.error(
                        field,
                        "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
                    );
                    None
                }
            },
            _ => {
                self.error(field, "Datetime has wrong format.");
                None
            }
        }
    }

    /// A raw feature value: string, integer, boolean or null (floats are kept as their text, as
    /// Flagsmith stores them).
    pub(crate) fn feature_value(&mut self, field: &str) -> Option<Value> {
        let raw = self.map.get(field)?;
        match raw_value(raw) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(field, message);
                None
            }
        }
    }

    /// Ends reading: the field errors, if any.
    pub(crate) fn finish(self) -> ApiResult<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Fields(self.errors))
        }
    }

    /// Merges nested errors under `field` (for example per-item errors of a list).
    pub(crate) fn nested(&mut self, field: &str, errors: serde_json::Value) {
        self.errors.insert(field.to_owned(), errors);
    }
}

/// A raw feature value, typed as Flagsmith types one: str, int and bool keep their type; floats
/// become their text; objects and arrays are refused.
pub(crate) fn raw_value(raw: &serde_json::Value) -> Result<Value, &'static str> {
    match raw {
        serde_json::Value::Null => Ok(Value::Null),
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => Ok(match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::String(n.to_string()),
        }),
        serde_json::Value::String(s) if s.chars().count() > MAX_TEXT => {
            Err("Ensure this field has no more than 20000 characters.")
        }
        serde_json::Value::String(s) => Ok(Value::String(s.clone())),
        _ => Err("Not a valid string."),
    }
}

/// A typed value (`{"type", "string_value", "integer_value", "boolean_value"}`) as a value.
pub(crate) fn typed_value(raw: &serde_json::Value) -> Result<Value, String> {
    let Some(map) = raw.as_object() else {
        // Tolerate a raw scalar as well.
        return raw_value(raw).map_err(str::to_owned);
    };
    let kind = map
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("unicode");
    match kind {
        "int" => match map.get("integer_value") {
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => {
                Ok(Value::Int(n.as_i64().unwrap_or(0)))
            }
            None | Some(serde_json::Value::Null) => Ok(Value::Null),
            _ => Err("integer_value: A valid integer is required.".into()),
        },
        "bool" => match map.get("boolean_value") {
            Some(serde_json::Value::Bool(b)) => Ok(Value::Bool(*b)),
            None | Some(serde_json::Value::Null) => Ok(Value::Null),
            _ => Err("boolean_value: Must be a valid boolean.".into()),
        },
        "unicode" | "float" => match map.get("string_value") {
            Some(serde_json::Value::String(s)) if s.chars().count() <= MAX_TEXT => {
                Ok(Value::String(s.clone()))
            }
            None | Some(serde_json::Value::Null) => Ok(Value::Null),
            _ => Err("string_value: Not a valid string.".into()),
        },
        other => Err(format!("type: \"{other}\" is not a valid choice.")),
    }
}

/// A value as a typed value.
pub(crate) fn to_typed(value: &Value) -> dto::TypedValue {
    let mut typed = dto::TypedValue {
        value_type: "unicode".into(),
        string_value: None,
        integer_value: None,
        boolean_value: None,
    };
    match value {
        Value::Int(i) => {
            typed.value_type = "int".into();
            typed.integer_value = Some(*i);
        }
        Value::Bool(b) => {
            typed.value_type = "bool".into();
            typed.boolean_value = Some(*b);
        }
        Value::String(s) => typed.string_value = Some(s.clone()),
        Value::Float(f) => typed.string_value = Some(f.to_string()),
        Value::Null => {}
    }
    typed
}

/// The page asked for: `?page=` (from 1) and `?page_size=` (1-999, default `default_size`).
pub(crate) fn page_of(params: &Params, default_size: u64) -> ApiResult<Page> {
    let number = match params.get("page") {
        None => 1,
        Some(p) => p
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(ApiError::NotFound("Invalid page."))?,
    };
    let size = params
        .get("page_size")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s >= 1)
        .map_or(default_size, |s| s.min(999));
    Ok(Page { number, size })
}

/// A page of results with Flagsmith's `next`/`previous` links (absolute URLs).
pub(crate) fn paginated<T>(
    results: Vec<T>,
    total: u64,
    page: Page,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<dto::Paginated<T>> {
    if page.number > 1 && page.offset() as u64 >= total {
        return Err(ApiError::NotFound("Invalid page."));
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let link = |number: u64| -> String {
        let mut query: Vec<String> = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("page="))
            .map(str::to_owned)
            .collect();
        if number > 1 {
            query.push(format!("page={number}"));
        }
        let query = if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        };
        format!("http://{host}{}{query}", uri.path())
    };
    let pages = total.div_ceil(page.size.max(1));
    Ok(dto::Paginated {
        count: total,
        next: (page.number < pages).then(|| link(page.number + 1)),
        previous: (page.number > 1).then(|| link(page.number - 1)),
        results,
    })
}

/// The store's refusals as Flagsmith-shaped validation errors.
pub(crate) fn invalid(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(message) => ApiError::field("non_field_errors", message),
        other => other.into(),
    }
}

/// A reference to something that must exist: its absence is a field error, not a 404.
pub(crate) fn must_exist(field: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::field(field, "Invalid pk - object does not exist."),
        other => invalid(other),
    }
}

/// After a committed write: rebuild the snapshots of the environments it changed (dropping deleted
/// ones) and let the webhook deliverer look for new deliveries.
pub(crate) async fn after_write(state: &AppState, environments: &[Id]) -> ApiResult<()> {
    for id in environments {
        match state.registry.refresh(*id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => state.registry.remove(*id),
            Err(e) => return Err(e.into()),
        }
    }
    state.registry.refresh_keys().await?;
    state.webhooks.wake();
    Ok(())
}

/// The environment with this client key, and its project, checked for the actor.
pub(crate) async fn environment_for(
    state: &AppState,
    actor: &Actor,
    api_key: &str,
    write: bool,
) -> ApiResult<(model::Environment, model::Project)> {
    let environment = state
        .store
        .environment_by_key(api_key)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("Not found."),
            other => other.into(),
        })?;
    let project = state.store.project(environment.project_id).await?;
    if write {
        actor.write(project.organisation_id)?;
    } else {
        actor.read(project.organisation_id)?;
    }
    Ok((environment, project))
}

/// The environment with this id, checked for the actor (a missing one is a field error).
pub(crate) async fn environment_by_id(
    state: &AppState,
    actor: &Actor,
    id: Id,
    field: &str,
    write: bool,
) -> ApiResult<model::Environment> {
    let environment = state
        .store
        .environment(id)
        .await
        .map_err(|e| must_exist(field, e))?;
    let project = state.store.project(environment.project_id).await?;
    if write {
        actor.write(project.organisation_id)?;
    } else {
        actor.read(project.organisation_id)?;
    }
    Ok(environment)
}

/// The project, checked for the actor.
pub(crate) async fn project_for(
    state: &AppState,
    actor: &Actor,
    id: Id,
    write: bool,
) -> ApiResult<model::Project> {
    let project = state.store.project(id).await?;
    if write {
        actor.write(project.organisation_id)?;
    } else {
        actor.read(project.organisation_id)?;
    }
    Ok(project)
}

pub(crate) fn organisation_dto(o: &model::Organisation) -> dto::Organisation {
    dto::Organisation {
        id: o.id,
        uuid: o.uuid.clone(),
        name: o.name.clone(),
        created_date: iso_z(o.created_at),
        webhook_notification_email: None,
        num_seats: 0,
        subscription: None,
        role: "ADMIN".into(),
        persist_trait_data: o.persist_trait_data,
        block_access_to_admin: false,
        restrict_project_create_to_admin: false,
        force_2fa: false,
        feature_analytics: o.feature_analytics,
        stop_serving_flags: o.stop_serving_flags,
    }
}

pub(crate) fn project_dto(p: &model::Project) -> dto::Project {
    dto::Project {
        id: p.id,
        uuid: p.uuid.clone(),
        name: p.name.clone(),
        organisation: p.organisation_id,
        hide_disabled_flags: p.hide_disabled_flags,
        enable_dynamo_db: false,
        migration_status: "NOT_APPLICABLE".into(),
        use_edge_identities: false,
        prevent_flag_defaults: p.prevent_flag_defaults,
        enable_realtime_updates: p.enable_realtime_updates,
        only_allow_lower_case_feature_names: p.only_allow_lower_case_feature_names,
        feature_name_regex: p.feature_name_regex.clone(),
        show_edge_identity_overrides_for_feature: false,
        stale_flags_limit_days: p.stale_flags_limit_days,
        edge_v2_migration_status: "NOT_APPLICABLE".into(),
        minimum_change_request_approvals: None,
    }
}

pub(crate) fn environment_dto(e: &model::Environment) -> dto::Environment {
    dto::Environment {
        id: e.id,
        uuid: e.uuid.clone(),
        name: e.name.clone(),
        api_key: e.api_key.clone(),
        description: e.description.clone(),
        project: e.project_id,
        minimum_change_request_approvals: None,
        allow_client_traits: e.allow_client_traits,
        banner_text: None,
        banner_colour: None,
        hide_disabled_flags: e.hide_disabled_flags,
        use_mv_v2_evaluation: e.use_identity_composite_key_for_hashing,
        use_identity_composite_key_for_hashing: e.use_identity_composite_key_for_hashing,
        hide_sensitive_data: e.hide_sensitive_data,
        use_v2_feature_versioning: false,
        use_identity_overrides_in_local_eval: e.use_identity_overrides_in_local_eval,
        is_creating: false,
        metadata: Vec::new(),
    }
}

pub(crate) fn option_dto(o: &model::MultivariateOption) -> dto::MultivariateOption {
    let (option_type, string_value, integer_value, boolean_value) = match &o.value {
        Value::Int(i) => ("int", None, Some(*i), None),
        Value::Bool(b) => ("bool", None, None, Some(*b)),
        Value::String(s) => ("unicode", Some(s.clone()), None, None),
        Value::Float(f) => ("unicode", Some(f.to_string()), None, None),
        Value::Null => ("unicode", None, None, None),
    };
    dto::MultivariateOption {
        id: o.id,
        uuid: None,
        option_type: option_type.into(),
        integer_value,
        string_value,
        boolean_value,
        default_percentage_allocation: o.default_percentage_allocation,
        key: o.key.clone(),
        feature: o.feature_id,
    }
}

pub(crate) fn feature_dto(record: &model::FeatureRecord) -> dto::Feature {
    let f = &record.feature;
    dto::Feature {
        id: f.id,
        name: f.name.clone(),
        feature_type: f.feature_type.clone(),
        default_enabled: f.default_enabled,
        initial_value: f.initial_value.clone(),
        created_date: iso_z(f.created_at),
        description: f.description.clone(),
        tags: Vec::new(),
        multivariate_options: record.options.iter().map(option_dto).collect(),
        is_archived: false,
        owners: Vec::new(),
        group_owners: Vec::new(),
        uuid: f.uuid.clone(),
        project: f.project_id,
        environment_feature_state: None,
        num_segment_overrides: Some(0),
        num_identity_overrides: None,
        is_num_identity_overrides_complete: None,
        is_server_key_only: f.is_server_key_only,
        last_modified_in_any_environment: None,
        last_modified_in_current_environment: None,
        metadata: Vec::new(),
    }
}

pub(crate) fn state_dto(
    s: &model::FeatureState,
    identities: &HashMap<Id, String>,
) -> dto::FeatureState {
    dto::FeatureState {
        id: s.id,
        feature_state_value: s.value.clone(),
        multivariate_feature_state_values: s
            .multivariate
            .iter()
            .map(|v| dto::MultivariateStateValue {
                id: Some(v.id),
                multivariate_feature_option: v.option_id,
                percentage_allocation: v.percentage_allocation,
            })
            .collect(),
        identity: s.identity_id.map(|id| dto::IdentityRef {
            id,
            identifier: identities.get(&id).cloned().unwrap_or_default(),
        }),
        uuid: s.uuid.clone(),
        deleted_at: None,
        enabled: s.enabled,
        created_at: iso(s.updated_at),
        updated_at: iso(s.updated_at),
        live_from: None,
        version: None,
        feature: s.feature_id,
        environment: s.environment_id,
        feature_segment: s.feature_segment_id,
        change_request: None,
        environment_feature_version: None,
    }
}

pub(crate) fn segment_rule_dto(rule: &model::Rule, next_id: &mut i64) -> dto::SegmentRule {
    *next_id += 1;
    let id = *next_id;
    dto::SegmentRule {
        id: Some(id),
        rule_type: rule.rule_type.clone(),
        rules: rule
            .rules
            .iter()
            .map(|r| segment_rule_dto(r, next_id))
            .collect(),
        conditions: rule
            .conditions
            .iter()
            .map(|c| {
                *next_id += 1;
                dto::SegmentCondition {
                    id: Some(*next_id),
                    operator: c.operator.clone(),
                    property: Some(c.property.clone()),
                    value: c.value.clone(),
                    description: c.description.clone(),
                }
            })
            .collect(),
    }
}

pub(crate) fn segment_dto(s: &model::Segment) -> dto::Segment {
    // Rules are stored whole; their ids are positions, stable while the segment is unchanged.
    let mut next_id = 0;
    dto::Segment {
        id: s.id,
        uuid: s.uuid.clone(),
        name: s.name.clone(),
        description: s.description.clone(),
        project: s.project_id,
        feature: s.feature_id,
        rules: s
            .rules
            .iter()
            .map(|r| segment_rule_dto(r, &mut next_id))
            .collect(),
        metadata: Vec::new(),
        created_at: iso(s.created_at),
    }
}

pub(crate) fn identity_dto(i: &model::Identity) -> dto::Identity {
    dto::Identity {
        id: i.id,
        identifier: i.identifier.clone(),
        environment: i.environment_id,
        created_date: iso_z(i.created_at),
    }
}
