//! The Bullet Train era routes Flagsmith still mounts: `GET flags/{identifier}` (flags with the
//! identity's overrides, multivariate flags at their control value), `GET identities/{identifier}/`
//! (flags, traits and matched segments) and `POST identities/{identifier}/traits/{key}`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use bullet_train_engine::Identity;
use bullet_train_protocol::Value;
use bullet_train_store::model::TraitChange;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path, Sdk};
use crate::routes::identities::{
    EffectiveTrait, check_identifier, hash_key, override_inputs, stored_traits, trait_value,
    write_traits,
};
use crate::routes::json_bytes;
use crate::routes::traits::check_trait_writes;
use crate::state::AppState;

/// Bullet Train era: the flags of an identity (created when missing), multivariate flags at their
/// control value.
#[utoipa::path(get, path = "/api/v1/flags/{identifier}", tag = "sdk", security(("environment_key" = [])),
    params(("identifier" = String, Path), ("feature" = Option<String>, Query)),
    responses((status = 200, body = Vec<bullet_train_protocol::sdk::Flag>), (status = 404)))]
pub(crate) async fn identity_flags(
    State(state): State<AppState>,
    sdk: Sdk,
    Path(identifier): Path<String>,
    params: Params,
) -> ApiResult<Response> {
    check_identifier("identifier", &identifier)?;
    let record = state
        .store
        .ensure_identity(sdk.environment.id, &identifier)
        .await?;
    let snapshot = &sdk.snapshot;
    let traits = stored_traits(&record);
    let trait_refs: Vec<(&str, &Value)> =
        traits.iter().map(|t| (t.key.as_str(), &t.value)).collect();
    let (overrides, override_states) = override_inputs(snapshot, &record.overrides);
    let override_json = snapshot.identity_override_json(&override_states);
    let key = hash_key(snapshot, Some(&record));
    let mut identity = Identity::new(&identifier)
        .with_traits(&trait_refs)
        .with_overrides(&overrides);
    if let Some(key) = &key {
        identity = identity.with_key(key);
    }
    let evaluation = snapshot.engine.evaluate(Some(&identity));
    let visible =
        |f: &&bullet_train_engine::Flag<'_>| snapshot.visible(f.feature_position, sdk.kind);
    let mut out = String::new();
    match params.get("feature") {
        Some(name) => {
            let flag = evaluation
                .flags()
                .iter()
                .filter(visible)
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .ok_or(ApiError::NotFound("Given feature not found"))?;
            snapshot.write_flag(&mut out, flag, &override_json, false, true);
        }
        None => {
            out.push('[');
            for (i, flag) in evaluation.flags().iter().filter(visible).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                snapshot.write_flag(&mut out, flag, &override_json, false, true);
            }
            out.push(']');
        }
    }
    Ok(json_bytes(StatusCode::OK, out))
}

/// Bullet Train era: an identity's flags, traits and matched segments.
#[utoipa::path(get, path = "/api/v1/identities/{identifier}", tag = "sdk", security(("environment_key" = [])),
    params(("identifier" = String, Path)),
    responses((status = 200, description = "`{\"flags\", \"traits\", \"segments\"}`")))]
pub(crate) async fn identity(
    State(state): State<AppState>,
    sdk: Sdk,
    Path(identifier): Path<String>,
) -> ApiResult<Response> {
    check_identifier("identifier", &identifier)?;
    let record = state
        .store
        .ensure_identity(sdk.environment.id, &identifier)
        .await?;
    let snapshot = &sdk.snapshot;
    let traits = stored_traits(&record);
    let trait_refs: Vec<(&str, &Value)> =
        traits.iter().map(|t| (t.key.as_str(), &t.value)).collect();
    let (overrides, override_states) = override_inputs(snapshot, &record.overrides);
    let override_json = snapshot.identity_override_json(&override_states);
    let key = hash_key(snapshot, Some(&record));
    let mut identity = Identity::new(&identifier)
        .with_traits(&trait_refs)
        .with_overrides(&overrides);
    if let Some(key) = &key {
        identity = identity.with_key(key);
    }
    let evaluation = snapshot.engine.evaluate(Some(&identity));
    let mut out = String::from("{\"flags\":");
    snapshot.append_flags(&mut out, &evaluation, sdk.kind, Some(&override_json), false);
    out.push_str(",\"traits\":");
    write_traits(&mut out, snapshot, &traits);
    let segments: Vec<serde_json::Value> = evaluation
        .segment_positions()
        .filter_map(|p| snapshot.segments.get(p))
        .map(|s| json!({"id": s.id, "name": s.name, "description": s.description}))
        .collect();
    out.push_str(",\"segments\":");
    out.push_str(&serde_json::Value::Array(segments).to_string());
    out.push('}');
    Ok(json_bytes(StatusCode::OK, out))
}

/// Bullet Train era: sets one trait, `{"trait_value": v}`.
#[utoipa::path(post, path = "/api/v1/identities/{identifier}/traits/{key}", tag = "sdk",
    security(("environment_key" = [])), params(("identifier" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = bullet_train_protocol::sdk::TraitRecord), (status = 400)))]
pub(crate) async fn set_trait(
    State(state): State<AppState>,
    sdk: Sdk,
    Path((identifier, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<serde_json::Value>> {
    check_trait_writes(&sdk)?;
    check_identifier("identifier", &identifier)?;
    let raw = body
        .get("trait_value")
        .ok_or_else(|| ApiError::BadRequest("Trait value not provided".into()))?;
    let value = trait_value(raw).map_err(|m| ApiError::field("trait_value", m))?;
    let key = crate::routes::identities::trait_key(Some(&serde_json::Value::String(key)))
        .map_err(|m| ApiError::field("trait_key", m))?;
    let records = state
        .store
        .write_traits(
            sdk.environment.id,
            &[(
                identifier,
                vec![TraitChange {
                    key: key.clone(),
                    value: value.clone(),
                }],
            )],
        )
        .await?;
    let stored = records
        .first()
        .and_then(|r| r.traits.iter().find(|t| t.key == key));
    let echo = EffectiveTrait {
        id: stored.map(|t| t.id),
        key,
        value: value.unwrap_or(Value::Null),
        transient: false,
    };
    Ok(Json(json!({
        "id": echo.id,
        "trait_key": echo.key,
        "trait_value": echo.value,
        "transient": echo.transient,
    })))
}
