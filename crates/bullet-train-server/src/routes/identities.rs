//! `GET identities/` (get-or-create, optionally transient, optionally one feature) and
//! `POST identities/` (identify with traits: persisted, transient per trait, transient identity, or no
//! identifier at all). Flags are evaluated against the in-memory snapshot; only the identity's own
//! traits and overrides come from the store.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::VARY;
use axum::response::{IntoResponse, Response};
use bullet_train_engine::{Identity, IdentityOverride};
use bullet_train_protocol::Value;
use bullet_train_store::model::{FeatureState, Id, IdentityRecord, Trait, TraitChange};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Params, RawJson, Sdk, parse_json};
use crate::routes::{UPDATED_AT, json_bytes};
use crate::snapshot::{EnvSnapshot, KeyKind, push_json};
use crate::state::AppState;

/// Longest identifier (as Flagsmith's identity model allows).
pub(crate) const MAX_IDENTIFIER_LEN: usize = 2000;
/// Longest trait key.
pub(crate) const MAX_TRAIT_KEY_LEN: usize = 200;
/// Longest string trait value (Flagsmith refuses 2000 characters and more).
pub(crate) const MAX_TRAIT_VALUE_LEN: usize = 1999;
/// Most traits in one request.
pub(crate) const MAX_TRAITS: usize = 1000;

/// A trait as it takes part in one evaluation and is reported back.
#[derive(Debug, Clone)]
pub(crate) struct EffectiveTrait {
    pub(crate) id: Option<Id>,
    pub(crate) key: String,
    pub(crate) value: Value,
    pub(crate) transient: bool,
}

/// The stored traits of an identity as effective traits.
pub(crate) fn stored_traits(record: &IdentityRecord) -> Vec<EffectiveTrait> {
    record
        .traits
        .iter()
        .map(|t| EffectiveTrait {
            id: Some(t.id),
            key: t.key.clone(),
            value: t.value.clone(),
            transient: false,
        })
        .collect()
}

/// Applies incoming traits over `traits`: a value replaces (or adds), null removes.
fn overlay(traits: &mut Vec<EffectiveTrait>, incoming: &[IncomingTrait], transient: bool) {
    for t in incoming {
        traits.retain(|e| e.key != t.key);
        if let Some(value) = &t.value {
            traits.push(EffectiveTrait {
                id: None,
                key: t.key.clone(),
                value: value.clone(),
                transient: transient || t.transient,
            });
        }
    }
}

/// Checks an identifier's length.
pub(crate) fn check_identifier(field: &str, identifier: &str) -> ApiResult<()> {
    if identifier.chars().count() > MAX_IDENTIFIER_LEN {
        return Err(ApiError::field(
            field,
            format!("Ensure this field has no more than {MAX_IDENTIFIER_LEN} characters."),
        ));
    }
    Ok(())
}

/// A trait value from JSON: scalars keep their type; objects and arrays become their JSON text.
pub(crate) fn trait_value(json: &serde_json::Value) -> Result<Option<Value>, String> {
    let value = match json {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    };
    if let Value::String(s) = &value
        && s.chars().count() > MAX_TRAIT_VALUE_LEN
    {
        return Err("Value string is too long. Must be less than 2000 character".to_owned());
    }
    Ok(Some(value))
}

/// Validates a trait key.
pub(crate) fn trait_key(json: Option<&serde_json::Value>) -> Result<String, String> {
    match json {
        None | Some(serde_json::Value::Null) => Err("This field is required.".to_owned()),
        Some(serde_json::Value::String(s)) if s.is_empty() => {
            Err("This field may not be blank.".to_owned())
        }
        Some(serde_json::Value::String(s)) if s.chars().count() > MAX_TRAIT_KEY_LEN => Err(
            format!("Ensure this field has no more than {MAX_TRAIT_KEY_LEN} characters."),
        ),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err("Not a valid string.".to_owned()),
    }
}

/// DRF's message for a non-object where an object belongs.
pub(crate) fn expected_object(json: &serde_json::Value) -> String {
    let kind = match json {
        serde_json::Value::Array(_) => "list",
        serde_json::Value::String(_) => "str",
        serde_json::Value::Number(n) if n.is_f64() => "float",
        serde_json::Value::Number(_) => "int",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Null => "NoneType",
        serde_json::Value::Object(_) => "dict",
    };
    format!("Invalid data. Expected a dictionary, but got {kind}.")
}

fn optional_bool(json: Option<&serde_json::Value>) -> Result<bool, String> {
    match json {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(_) => Err("Must be a valid boolean.".to_owned()),
    }
}

#[derive(Debug)]
struct IncomingTrait {
    key: String,
    value: Option<Value>,
    transient: bool,
}

#[derive(Debug)]
struct IdentifyRequest {
    identifier: Option<String>,
    transient: bool,
    traits: Vec<IncomingTrait>,
}

fn parse_identify(body: &serde_json::Value) -> ApiResult<IdentifyRequest> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::field("non_field_errors", expected_object(body)));
    };
    let mut errors = FieldErrors::new();
    let identifier = match object.get("identifier") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => None,
        Some(serde_json::Value::String(s)) => {
            if let Err(ApiError::Fields(e)) = check_identifier("identifier", s) {
                errors.extend(e);
            }
            Some(s.clone())
        }
        Some(_) => {
            errors.insert("identifier".into(), json!(["Not a valid string."]));
            None
        }
    };
    let transient = optional_bool(object.get("transient")).unwrap_or_else(|m| {
        errors.insert("transient".into(), json!([m]));
        false
    });
    let mut traits = Vec::new();
    match object.get("traits") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(items)) if items.len() > MAX_TRAITS => {
            errors.insert(
                "traits".into(),
                json!([format!(
                    "Ensure this field has no more than {MAX_TRAITS} elements."
                )]),
            );
        }
        Some(serde_json::Value::Array(items)) => {
            let mut item_errors = Vec::new();
            let mut any = false;
            for item in items {
                let mut e = serde_json::Map::new();
                match item.as_object() {
                    None => {
                        e.insert("non_field_errors".into(), json!([expected_object(item)]));
                    }
                    Some(t) => {
                        let key = trait_key(t.get("trait_key"))
                            .map_err(|m| e.insert("trait_key".into(), json!([m])))
                            .ok();
                        let value = match t.get("trait_value") {
                            None => {
                                e.insert("trait_value".into(), json!(["This field is required."]));
                                None
                            }
                            Some(v) => trait_value(v)
                                .map_err(|m| e.insert("trait_value".into(), json!([m])))
                                .ok(),
                        };
                        let transient = optional_bool(t.get("transient"))
                            .map_err(|m| e.insert("transient".into(), json!([m])))
                            .unwrap_or(false);
                        if let (Some(key), Some(value)) = (key, value) {
                            traits.push(IncomingTrait {
                                key,
                                value,
                                transient,
                            });
                        }
                    }
                }
                any |= !e.is_empty();
                item_errors.push(serde_json::Value::Object(e));
            }
            if any {
                errors.insert("traits".into(), serde_json::Value::Array(item_errors));
            }
        }
        Some(other) => {
            let kind = if other.is_object() { "dict" } else { "str" };
            errors.insert(
                "traits".into(),
                json!([format!("Expected a list of items but got type \"{kind}\".")]),
            );
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    Ok(IdentifyRequest {
        identifier,
        transient,
        traits,
    })
}

/// The identifier Flagsmith derives for an identity sent without one: the SHA-256 of its traits as
/// `key` + `value` in key order (null values skipped), or a random one when there are no traits.
fn derived_identifier(traits: &[IncomingTrait]) -> String {
    let mut sorted: BTreeMap<&str, &Value> = BTreeMap::new();
    for t in traits {
        if let Some(v) = &t.value {
            sorted.insert(&t.key, v);
        }
    }
    if sorted.is_empty() {
        return bullet_train_store::random::uuid_v4().replace('-', "");
    }
    let mut text = String::new();
    for (key, value) in sorted {
        text.push_str(key);
        match value {
            Value::String(s) => text.push_str(s),
            Value::Bool(true) => text.push_str("True"),
            Value::Bool(false) => text.push_str("False"),
            other => push_json(&mut text, other),
        }
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Get-or-create an identity and evaluate its flags (`?transient=` builds it in memory only;
/// `?feature=` returns one flag, matched exactly).
#[utoipa::path(get, path = "/api/v1/identities", tag = "sdk", security(("environment_key" = [])),
    params(("identifier" = String, Query), ("feature" = Option<String>, Query), ("transient" = Option<String>, Query)),
    responses((status = 200, body = bullet_train_protocol::sdk::IdentityResponse),
        (status = 403, body = bullet_train_protocol::sdk::ErrorDetail),
        (status = 404, body = bullet_train_protocol::sdk::ErrorDetail)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    sdk: Sdk,
    params: Params,
) -> ApiResult<Response> {
    let Some(identifier) = params.get("identifier").filter(|i| !i.is_empty()) else {
        return Ok(axum::Json(json!({ "detail": "Missing identifier" })).into_response());
    };
    check_identifier("identifier", identifier)?;
    let transient = params.get("transient").is_some_and(|t| !t.is_empty());
    let record = if transient {
        None
    } else {
        Some(
            state
                .store
                .ensure_identity(sdk.environment.id, identifier)
                .await?,
        )
    };
    let traits = record.as_ref().map(stored_traits).unwrap_or_default();
    respond(
        &sdk,
        identifier,
        record.as_ref(),
        &traits,
        params.get("feature"),
    )
}

/// Identify with traits (persisted, transient per trait, transient identity, or no identifier) and
/// get the evaluated flags.
#[utoipa::path(post, path = "/api/v1/identities", tag = "sdk", security(("environment_key" = [])),
    request_body = bullet_train_protocol::sdk::IdentifyRequest,
    responses((status = 200, body = bullet_train_protocol::sdk::IdentityResponse), (status = 400),
        (status = 403, body = bullet_train_protocol::sdk::ErrorDetail)))]
pub(crate) async fn post(
    State(state): State<AppState>,
    sdk: Sdk,
    RawJson(raw): RawJson,
) -> ApiResult<Response> {
    // The same request as before, with nothing changed since: the same answer. When other
    // replicas may write the store too (PostgreSQL without the sole-writer lease), a request that
    // stores traits is answered so only once the database is seen to hold them already (below):
    // memory may not know another replica's write. `shared` is read once, here, and before the
    // generation: a request that saw the lease held began before any other replica could write,
    // and a lease taken in between empties the cache before it counts as held.
    let shared = state.store.shared();
    let generation = state.store.identity_generation();
    let revision = sdk.snapshot.revision;
    let environment_id = sdk.environment.id;
    let cached = || {
        generation.and_then(|generation| {
            state
                .responses
                .get(environment_id, sdk.kind, &raw, revision, generation)
        })
    };
    if !shared && let Some(body) = cached() {
        return Ok(identity_response(&sdk, body));
    }
    let body = parse_json(&raw)?;
    let mut request = parse_identify(&body)?;
    // A made-up identifier may be random: such answers are not kept.
    let keep = request.identifier.is_some();
    if sdk.kind == KeyKind::Client && !sdk.snapshot.allow_client_traits {
        request.traits.clear();
    }
    let persist = sdk.snapshot.persist_trait_data;
    let stores_traits = request.identifier.is_some()
        && !request.transient
        && persist
        && request.traits.iter().any(|t| !t.transient);
    if shared
        && !stores_traits
        && let Some(body) = cached()
    {
        return Ok(identity_response(&sdk, body));
    }
    let (identifier, record, traits) = match request.identifier {
        None => {
            // Never stored: every trait is transient.
            let identifier = derived_identifier(&request.traits);
            let mut traits = Vec::new();
            overlay(&mut traits, &request.traits, true);
            (identifier, None, traits)
        }
        Some(identifier) if request.transient => {
            let record = state.store.identity(environment_id, &identifier).await?;
            let mut traits = record.as_ref().map(stored_traits).unwrap_or_default();
            overlay(&mut traits, &request.traits, true);
            (identifier, record, traits)
        }
        Some(identifier) => {
            let changes: Vec<TraitChange> = request
                .traits
                .iter()
                .filter(|t| persist && !t.transient)
                .map(|t| TraitChange {
                    key: t.key.clone(),
                    value: t.value.clone(),
                })
                .collect();
            // Most requests repeat what is stored: then a read answers, with no write at all.
            // Whether they do is decided on the database's values when other replicas write it
            // too, so that a value another replica has just replaced is written again.
            let held = changes.is_empty()
                || !shared
                || state
                    .store
                    .traits_for_write(environment_id, &identifier)
                    .await?
                    .is_some_and(|traits| unchanged(&traits, &changes));
            if shared
                && held
                && !changes.is_empty()
                && let Some(body) = cached()
            {
                return Ok(identity_response(&sdk, body));
            }
            // The identity as remembered, if it holds these traits (otherwise the write below
            // stores them, again if memory was only behind the database, which changes nothing).
            let stored = if changes.is_empty() || !held {
                None
            } else {
                state
                    .store
                    .identity(environment_id, &identifier)
                    .await?
                    .filter(|record| unchanged(&record.traits, &changes))
            };
            let record = if let Some(record) = stored {
                record
            } else if changes.is_empty() {
                state
                    .store
                    .ensure_identity(environment_id, &identifier)
                    .await?
            } else {
                state
                    .store
                    .write_traits(environment_id, &[(identifier.clone(), changes)])
                    .await?
                    .pop()
                    .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no identity written")))?
            };
            let mut traits = stored_traits(&record);
            let unsaved: Vec<IncomingTrait> = request
                .traits
                .into_iter()
                .filter(|t| !persist || t.transient)
                .collect();
            for t in &unsaved {
                traits.retain(|e| e.key != t.key);
                if let Some(value) = &t.value {
                    traits.push(EffectiveTrait {
                        id: None,
                        key: t.key.clone(),
                        value: value.clone(),
                        transient: t.transient,
                    });
                }
            }
            (identifier, Some(record), traits)
        }
    };
    let response = respond(&sdk, &identifier, record.as_ref(), &traits, None)?;
    // Kept only if nothing was written while it was computed (this request's own trait writes
    // included: the next identical request, which changes nothing, is kept).
    if let Some(generation) = generation
        && keep
        && state.store.identity_generation() == Some(generation)
    {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("buffered response: {e}")))?;
        state.responses.put(
            environment_id,
            sdk.kind,
            raw,
            revision,
            generation,
            bytes.clone(),
        );
        return Ok(Response::from_parts(parts, axum::body::Body::from(bytes)));
    }
    Ok(response)
}

/// An identity answer from its body, with the headers `respond` sets.
fn identity_response(sdk: &Sdk, body: bytes::Bytes) -> Response {
    let mut response = json_bytes(StatusCode::OK, body);
    let headers = response.headers_mut();
    headers.insert(UPDATED_AT, sdk.snapshot.updated_at_header.clone());
    headers.insert(VARY, HeaderValue::from_static("X_ENVIRONMENT_KEY"));
    response
}

/// The identity's hashing key when the environment does not hash by the composite key: its stored
/// id (`None`: the engine builds the composite key).
pub(crate) fn hash_key(snapshot: &EnvSnapshot, record: Option<&IdentityRecord>) -> Option<String> {
    record
        .filter(|_| !snapshot.use_composite_key)
        .map(|r| r.identity.id.to_string())
}

/// The engine's view of stored identity overrides, with their response fragments, in one order.
pub(crate) fn override_inputs<'a>(
    snapshot: &'a EnvSnapshot,
    overrides: &'a [FeatureState],
) -> (Vec<IdentityOverride<'a>>, Vec<&'a FeatureState>) {
    overrides
        .iter()
        .filter_map(|state| {
            let position = snapshot.position_of_id(state.feature_id)?;
            Some((
                IdentityOverride {
                    feature: &snapshot.features[position].name,
                    enabled: state.enabled,
                    value: &state.value,
                },
                state,
            ))
        })
        .unzip()
}

/// Evaluates the identity and answers with the identity response, or one flag when `feature` is set.
fn respond(
    sdk: &Sdk,
    identifier: &str,
    record: Option<&IdentityRecord>,
    traits: &[EffectiveTrait],
    feature: Option<&str>,
) -> ApiResult<Response> {
    let snapshot = &sdk.snapshot;
    let trait_refs: Vec<(&str, &Value)> =
        traits.iter().map(|t| (t.key.as_str(), &t.value)).collect();
    let stored_overrides = record.map_or(&[][..], |r| &r.overrides[..]);
    let (overrides, override_states) = override_inputs(snapshot, stored_overrides);
    let override_json = snapshot.identity_override_json(&override_states);
    let key_text = hash_key(snapshot, record);
    let mut identity = Identity::new(identifier)
        .with_traits(&trait_refs)
        .with_overrides(&overrides);
    if let Some(key) = &key_text {
        identity = identity.with_key(key);
    }
    let evaluation = snapshot.engine.evaluate(Some(&identity));
    let mut response = match feature {
        Some(name) => {
            let flag = evaluation
                .flag(name)
                .filter(|f| snapshot.visible(f.feature_position, sdk.kind));
            match flag {
                Some(flag) => {
                    let mut out = String::new();
                    snapshot.write_flag(&mut out, flag, &override_json, true, false);
                    json_bytes(StatusCode::OK, out)
                }
                None => ApiError::NotFound("Given feature not found").into_response(),
            }
        }
        None => {
            // Sized from the environment's flags body, which identity flags resemble, so the
            // response is written once without growing.
            let capacity = snapshot.flags_body(sdk.kind).len()
                + 48 * evaluation.flags().len()
                + 96 * traits.len()
                + identifier.len()
                + 64;
            let mut out = String::with_capacity(capacity);
            out.push_str("{\"identifier\":");
            push_json(&mut out, identifier);
            out.push_str(",\"flags\":");
            snapshot.append_flags(&mut out, &evaluation, sdk.kind, Some(&override_json), true);
            out.push_str(",\"traits\":");
            write_traits(&mut out, snapshot, traits);
            out.push('}');
            json_bytes(StatusCode::OK, out)
        }
    };
    let headers = response.headers_mut();
    headers.insert(UPDATED_AT, snapshot.updated_at_header.clone());
    headers.insert(VARY, HeaderValue::from_static("X_ENVIRONMENT_KEY"));
    Ok(response)
}

/// Appends the traits array (empty when the environment hides sensitive data).
pub(crate) fn write_traits(out: &mut String, snapshot: &EnvSnapshot, traits: &[EffectiveTrait]) {
    out.push('[');
    if !snapshot.hide_sensitive_data {
        for (i, t) in traits.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"id\":");
            push_json(out, &t.id);
            out.push_str(",\"trait_key\":");
            push_json(out, &t.key);
            out.push_str(",\"trait_value\":");
            push_json(out, &t.value);
            out.push_str(",\"transient\":");
            out.push_str(if t.transient { "true" } else { "false" });
            out.push('}');
        }
    }
    out.push(']');
}

/// Whether applying `changes` to stored `traits` would change nothing.
fn unchanged(traits: &[Trait], changes: &[TraitChange]) -> bool {
    changes.iter().all(|change| {
        let stored = traits
            .iter()
            .find(|t| t.key == change.key)
            .map(|t| &t.value);
        stored == change.value.as_ref()
    })
}
