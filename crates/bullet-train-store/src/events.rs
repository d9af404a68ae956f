//! Flag-change events in Flagsmith's webhook format, also used as the before/after states of the audit
//! log: `{"event_type": "FLAG_UPDATED" | "FLAG_DELETED", "data": {"changed_by", "timestamp",
//! "new_state", "previous_state"}}`, each state describing the feature, environment, segment or
//! identity, and the value.

use serde_json::{Value, json};

use crate::model::{
    Environment, Feature, FeatureSegment, FeatureState, Identity, Project, Segment,
};
use crate::time::iso_z;

/// Everything a feature state's description refers to.
pub(crate) struct StateContext<'a> {
    pub(crate) feature: &'a Feature,
    pub(crate) project: &'a Project,
    pub(crate) environment: &'a Environment,
    pub(crate) segment: Option<(&'a Segment, &'a FeatureSegment)>,
    pub(crate) identity: Option<&'a Identity>,
}

/// A feature state as webhook payloads and audit entries describe it.
pub(crate) fn state_json(state: &FeatureState, ctx: &StateContext<'_>) -> Value {
    let feature = ctx.feature;
    json!({
        "feature": {
            "id": feature.id,
            "created_date": iso_z(feature.created_at),
            "default_enabled": feature.default_enabled,
            "description": feature.description,
            "initial_value": feature.initial_value,
            "name": feature.name,
            "project": {"id": ctx.project.id, "name": ctx.project.name},
            "type": feature.feature_type,
        },
        "environment": {"id": ctx.environment.id, "name": ctx.environment.name},
        "identity": ctx.identity.map(|i| i.id),
        "identity_identifier": ctx.identity.map(|i| i.identifier.clone()),
        "feature_segment": ctx.segment.map(|(segment, fs)| json!({
            "segment": {"id": segment.id, "name": segment.name, "description": segment.description},
            "priority": fs.priority,
        })),
        "enabled": state.enabled,
        "feature_state_value": state.value,
        "multivariate_feature_state_values": state.multivariate.iter().map(|v| json!({
            "id": v.id,
            "multivariate_feature_option": v.option_id,
            "percentage_allocation": v.percentage_allocation,
        })).collect::<Vec<_>>(),
    })
}

/// The webhook body of a flag change, keys sorted as Flagsmith sorts them. `previous_state` is present
/// only when there was a previous state; `new_state` is null for FLAG_DELETED.
pub(crate) fn flag_event(
    event_type: &str,
    changed_by: &str,
    timestamp: i64,
    previous: Option<&Value>,
    new: Option<&Value>,
) -> String {
    let mut data = serde_json::Map::new();
    data.insert("changed_by".into(), changed_by.into());
    data.insert("new_state".into(), new.cloned().unwrap_or(Value::Null));
    if let Some(previous) = previous {
        data.insert("previous_state".into(), previous.clone());
    }
    data.insert("timestamp".into(), iso_z(timestamp).into());
    let mut body = serde_json::Map::new();
    body.insert("data".into(), Value::Object(data));
    body.insert("event_type".into(), event_type.into());
    sort_keys(Value::Object(body)).to_string()
}

/// The value with every object's keys in order (whatever map order serde_json was built with).
fn sort_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}
