//! Conversion between stored data and the Flagsmith environment document: export
//! ([`to_document`]), and the checks and normalisations an import applies before it writes.
//!
//! Seeds travel unchanged in both directions: a segment's `id` in the document is its PERCENTAGE_SPLIT
//! seed, a feature state's `django_id`/`featurestate_uuid` its multivariate seed, a multivariate value's
//! `id` its position in the allocation walk.

use std::collections::{HashMap, HashSet};

use bullet_train_protocol::Value;
use bullet_train_protocol::document::{
    self as doc, EnvironmentDocument, FeatureRef, FeatureSegment, IdentityOverride,
    MultivariateFeatureOption, MultivariateFeatureStateValue,
};

use crate::model::{self, EnvironmentData, FeatureState, Id};
use crate::time::iso;
use crate::{Result, StoreError};

/// Longest accepted client key.
pub const MAX_API_KEY_LEN: usize = 100;
/// Longest accepted feature, segment, project, organisation or environment name.
pub const MAX_NAME_LEN: usize = 2000;

/// The environment document of stored data, as SDKs get it: identity overrides are listed only when
/// the environment's `use_identity_overrides_in_local_eval` is on.
pub fn to_document(data: &EnvironmentData) -> EnvironmentDocument {
    document_of(data, data.environment.use_identity_overrides_in_local_eval)
}

/// The environment document of stored data as an export: every identity override listed whatever
/// `use_identity_overrides_in_local_eval` says, so importing it elsewhere (or back) loses nothing.
pub fn to_export(data: &EnvironmentData) -> EnvironmentDocument {
    document_of(data, true)
}

fn document_of(data: &EnvironmentData, with_identity_overrides: bool) -> EnvironmentDocument {
    let features: HashMap<Id, &model::Feature> = data.features.iter().map(|f| (f.id, f)).collect();
    let options: HashMap<Id, &model::MultivariateOption> =
        data.options.iter().map(|o| (o.id, o)).collect();
    let feature_segments: HashMap<Id, &model::FeatureSegment> =
        data.feature_segments.iter().map(|fs| (fs.id, fs)).collect();

    let state = |s: &FeatureState| -> Option<doc::FeatureState> {
        let feature = features.get(&s.feature_id)?;
        let mut multivariate: Vec<&model::MultivariateValue> = s.multivariate.iter().collect();
        multivariate.sort_by_key(|v| v.sort_key);
        Some(doc::FeatureState {
            feature: FeatureRef {
                id: feature.id as u64,
                name: feature.name.clone(),
                feature_type: feature.feature_type.clone(),
            },
            enabled: s.enabled,
            django_id: s.seed.map(|seed| seed as u64),
            featurestate_uuid: Some(s.uuid.clone()),
            feature_state_value: s.value.clone(),
            feature_segment: s
                .feature_segment_id
                .and_then(|id| feature_segments.get(&id))
                .map(|fs| FeatureSegment {
                    priority: Some(fs.priority),
                }),
            multivariate_feature_state_values: multivariate
                .into_iter()
                .filter_map(|v| {
                    let option = options.get(&v.option_id)?;
                    Some(MultivariateFeatureStateValue {
                        multivariate_feature_option: MultivariateFeatureOption {
                            value: option.value.clone(),
                            id: Some(option.id as u64),
                            key: option.key.clone(),
                        },
                        percentage_allocation: v.percentage_allocation,
                        id: Some(v.sort_key as u64),
                        mv_fs_value_uuid: Some(v.uuid.clone()),
                    })
                })
                .collect(),
        })
    };

    let mut defaults: Vec<&FeatureState> = data
        .states
        .iter()
        .filter(|s| s.feature_segment_id.is_none() && s.identity_id.is_none())
        .collect();
    defaults.sort_by_key(|s| s.feature_id);

    let mut overrides_by_segment: HashMap<Id, Vec<&FeatureState>> = HashMap::new();
    for s in &data.states {
        if let Some(fs) = s
            .feature_segment_id
            .and_then(|id| feature_segments.get(&id))
        {
            overrides_by_segment
                .entry(fs.segment_id)
                .or_default()
                .push(s);
        }
    }

    let overridden: HashSet<Id> = overrides_by_segment.keys().copied().collect();
    let segments = data
        .segments
        .iter()
        // A segment limited to one feature appears only where it overrides that feature.
        .filter(|segment| segment.feature_id.is_none() || overridden.contains(&segment.id))
        .map(|segment| {
            let mut overrides = overrides_by_segment.remove(&segment.id).unwrap_or_default();
            overrides.sort_by_key(|s| s.feature_id);
            doc::Segment {
                id: segment.seed as u64,
                name: segment.name.clone(),
                rules: segment.rules.iter().map(document_rule).collect(),
                feature_states: overrides.into_iter().filter_map(state).collect(),
            }
        })
        .collect();

    let environment = &data.environment;
    let identity_overrides = if with_identity_overrides {
        data.identity_overrides
            .iter()
            .map(|(identity, states)| IdentityOverride {
                identifier: identity.identifier.clone(),
                environment_api_key: environment.api_key.clone(),
                created_date: iso(identity.created_at),
                identity_uuid: Some(identity.uuid.clone()),
                django_id: Some(identity.id as u64),
                composite_key: Some(format!("{}_{}", environment.api_key, identity.identifier)),
                dashboard_alias: None,
                identity_traits: Vec::new(),
                identity_features: states.iter().filter_map(state).collect(),
            })
            .collect()
    } else {
        Vec::new()
    };

    EnvironmentDocument {
        id: environment.id as u64,
        api_key: environment.api_key.clone(),
        name: environment.name.clone(),
        updated_at: Some(iso(environment.updated_at)),
        allow_client_traits: environment.allow_client_traits,
        hide_sensitive_data: environment.hide_sensitive_data,
        hide_disabled_flags: environment.hide_disabled_flags,
        use_identity_composite_key_for_hashing: environment.use_identity_composite_key_for_hashing,
        use_identity_overrides_in_local_eval: environment.use_identity_overrides_in_local_eval,
        project: doc::Project {
            id: data.project.id as u64,
            name: data.project.name.clone(),
            hide_disabled_flags: data.project.hide_disabled_flags,
            enable_realtime_updates: data.project.enable_realtime_updates,
            server_key_only_feature_ids: data
                .features
                .iter()
                .filter(|f| f.is_server_key_only)
                .map(|f| f.id as u64)
                .collect(),
            organisation: doc::Organisation {
                id: data.organisation.id as u64,
                name: data.organisation.name.clone(),
                feature_analytics: data.organisation.feature_analytics,
                stop_serving_flags: data.organisation.stop_serving_flags,
                persist_trait_data: data.organisation.persist_trait_data,
            },
            segments,
        },
        feature_states: defaults.into_iter().filter_map(state).collect(),
        identity_overrides,
    }
}

fn document_rule(rule: &model::Rule) -> doc::Rule {
    doc::Rule {
        rule_type: rule.rule_type.clone(),
        rules: rule.rules.iter().map(document_rule).collect(),
        conditions: rule
            .conditions
            .iter()
            .map(|c| doc::Condition {
                operator: c.operator.clone(),
                property: Some(c.property.clone()),
                value: c.value.clone(),
            })
            .collect(),
    }
}

/// Stored rules of document rules.
pub(crate) fn model_rule(rule: &doc::Rule) -> model::Rule {
    model::Rule {
        rule_type: rule.rule_type.clone(),
        rules: rule.rules.iter().map(model_rule).collect(),
        conditions: rule
            .conditions
            .iter()
            .map(|c| model::Condition {
                operator: c.operator.clone(),
                property: c.property.clone().unwrap_or_default(),
                value: c.value.clone(),
                description: None,
            })
            .collect(),
    }
}

/// The case-insensitive key under which feature names are unique.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// The value a feature's `initial_value` text gives a new feature state, as Flagsmith types it: a
/// 32-bit integer, a boolean (`true`/`True`/`false`/`False`), or the text.
pub fn typed_initial_value(initial: Option<&str>) -> Value {
    match initial {
        None => Value::Null,
        Some("true" | "True") => Value::Bool(true),
        Some("false" | "False") => Value::Bool(false),
        Some(s) => match s.parse::<i32>() {
            Ok(i) => Value::Int(i64::from(i)),
            Err(_) => Value::String(s.to_owned()),
        },
    }
}

/// Checks an import: a usable client key, named and uniquely named features, overrides of known
/// features only, allocations within 0-100.
pub(crate) fn validate(document: &EnvironmentDocument) -> Result<()> {
    let invalid = |m: String| Err(StoreError::Invalid(m));
    if document.api_key.is_empty()
        || document.api_key.len() > MAX_API_KEY_LEN
        || document
            .api_key
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return invalid("api_key must be 1-100 characters without whitespace or '/'".into());
    }
    if document.api_key.starts_with("ser.") {
        return invalid("api_key must be a client key, not a server-side key".into());
    }
    let mut names = HashSet::new();
    for state in &document.feature_states {
        let name = &state.feature.name;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return invalid(format!(
                "feature name {name:?} must be 1-{MAX_NAME_LEN} characters"
            ));
        }
        if !names.insert(name_key(name)) {
            return invalid(format!("feature {name:?} appears twice"));
        }
        check_allocations(state)?;
    }
    for segment in &document.project.segments {
        let mut overridden = HashSet::new();
        for state in &segment.feature_states {
            let key = name_key(&state.feature.name);
            if !names.contains(&key) {
                return invalid(format!(
                    "segment {:?} overrides feature {:?}, which has no environment state",
                    segment.name, state.feature.name
                ));
            }
            if !overridden.insert(key) {
                return invalid(format!(
                    "segment {:?} overrides feature {:?} twice",
                    segment.name, state.feature.name
                ));
            }
            check_allocations(state)?;
        }
    }
    let mut identifiers = HashSet::new();
    for identity in &document.identity_overrides {
        if identity.identifier.is_empty() || !identifiers.insert(identity.identifier.as_str()) {
            return invalid(format!(
                "identity override {:?} is empty or appears twice",
                identity.identifier
            ));
        }
    }
    Ok(())
}

fn check_allocations(state: &doc::FeatureState) -> Result<()> {
    let values = &state.multivariate_feature_state_values;
    let total: f64 = values.iter().map(|v| v.percentage_allocation).sum();
    if values
        .iter()
        .any(|v| !(0.0..=100.0).contains(&v.percentage_allocation))
        || total > 100.0 + 1e-9
    {
        return Err(StoreError::Invalid(format!(
            "multivariate allocations of {:?} must each be 0-100 and sum to at most 100",
            state.feature.name
        )));
    }
    Ok(())
}

/// Walk-order keys for a state's multivariate values: the document's `id` where present; values with
/// only a UUID come after every id, in the order of their UUIDs read as 128-bit integers, exactly as
/// the reference engine orders them.
pub(crate) fn multivariate_sort_keys(values: &[MultivariateFeatureStateValue]) -> Vec<i64> {
    let max_id = values.iter().filter_map(|v| v.id).max().unwrap_or(0) as i64;
    let mut by_uuid: Vec<(usize, u128)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.id.is_none())
        .map(|(i, v)| {
            let hex: String = v
                .mv_fs_value_uuid
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| *c != '-')
                .collect();
            (i, u128::from_str_radix(&hex, 16).unwrap_or(u128::MAX))
        })
        .collect();
    by_uuid.sort_by_key(|(_, n)| *n);
    let mut keys: Vec<i64> = values
        .iter()
        .map(|v| v.id.map_or(0, |id| id as i64))
        .collect();
    for (rank, (i, _)) in by_uuid.into_iter().enumerate() {
        keys[i] = max_id + 1 + rank as i64;
    }
    keys
}

/// Priorities of the segment overrides, renumbered per feature to 0..n so that the stored order gives
/// the same winner as the document under v2 rules: lower priority first, a missing priority last, and
/// document segment order on ties. Keyed by (segment index, feature name key).
pub(crate) fn normalised_priorities(
    document: &EnvironmentDocument,
) -> HashMap<(usize, String), i64> {
    let mut by_feature: HashMap<String, Vec<(i64, usize)>> = HashMap::new();
    for (si, segment) in document.project.segments.iter().enumerate() {
        for state in &segment.feature_states {
            let priority = state
                .feature_segment
                .as_ref()
                .and_then(|fs| fs.priority)
                .unwrap_or(i64::MAX);
            by_feature
                .entry(name_key(&state.feature.name))
                .or_default()
                .push((priority, si));
        }
    }
    let mut out = HashMap::new();
    for (feature, mut entries) in by_feature {
        entries.sort();
        for (rank, (_, si)) in entries.into_iter().enumerate() {
            out.insert((si, feature.clone()), rank as i64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_values_are_typed_like_flagsmith() {
        assert_eq!(typed_initial_value(Some("12")), Value::Int(12));
        assert_eq!(typed_initial_value(Some("True")), Value::Bool(true));
        assert_eq!(
            typed_initial_value(Some("99999999999")),
            Value::from("99999999999")
        );
        assert_eq!(typed_initial_value(Some("1.5")), Value::from("1.5"));
        assert_eq!(typed_initial_value(None), Value::Null);
    }

    #[test]
    fn uuid_only_values_sort_after_ids_by_uuid() {
        let value = |id: Option<u64>, uuid: &str| MultivariateFeatureStateValue {
            multivariate_feature_option: MultivariateFeatureOption {
                value: Value::Null,
                id: None,
                key: None,
            },
            percentage_allocation: 10.0,
            id,
            mv_fs_value_uuid: Some(uuid.into()),
        };
        let keys = multivariate_sort_keys(&[
            value(None, "ffffffff-0000-4000-8000-000000000000"),
            value(Some(7), "x"),
            value(None, "00000000-0000-4000-8000-000000000001"),
            value(Some(3), "y"),
        ]);
        assert_eq!(keys, vec![9, 7, 8, 3]);
    }
}
