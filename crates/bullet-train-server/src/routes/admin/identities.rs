//! Identities of an environment (`/api/v1/environments/{api_key}/identities/`): listing with search
//! and pages, creation, deletion, their traits, their overrides, and their evaluated flags.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bullet_train_engine::{Identity, IdentityOverride, Source};
use bullet_train_protocol::Value;
use bullet_train_protocol::admin as dto;
use bullet_train_store::StoreError;
use bullet_train_store::admin::{IdentityQuery, NewState, StateTarget, StateUpdate};
use bullet_train_store::model::{self, Id, IdentityRecord};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Form, after_write, environment_for, identity_dto, invalid, page_of, paginated, state_dto,
};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::routes::identities::{MAX_IDENTIFIER_LEN, MAX_TRAIT_KEY_LEN, MAX_TRAIT_VALUE_LEN};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, destroy))
        .routes(routes!(list_traits, create_trait))
        .routes(routes!(update_trait, partial_update_trait, destroy_trait))
        .routes(routes!(list_overrides, create_override))
        .routes(routes!(all_flags))
        .routes(routes!(
            retrieve_override,
            update_override,
            partial_update_override,
            destroy_override
        ))
}

async fn identity_of(
    state: &AppState,
    actor: &Actor,
    api_key: &str,
    id: Id,
    write: bool,
) -> ApiResult<(model::Environment, IdentityRecord)> {
    let (environment, _) = environment_for(state, actor, api_key, write).await?;
    let record = state.store.identity_by_id(environment.id, id).await?;
    Ok((environment, record))
}

/// The environment's identities: `?q=` finds identifiers starting with it (ignoring case), or exactly
/// it when quoted (`?q="ann"`).
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities", tag = "identities",
    params(("api_key" = String, Path), ("q" = Option<String>, Query), ("page" = Option<u64>, Query),
        ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Identity>), (status = 404)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Identity>>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let page = page_of(&params, 999)?;
    let (search, exact) = match params.get("q").filter(|q| !q.is_empty()) {
        Some(q) if q.len() >= 2 && q.starts_with('"') && q.ends_with('"') => {
            (Some(q.replace('"', "")), true)
        }
        Some(q) => (Some(q.to_owned()), false),
        None => (None, false),
    };
    let identities = state
        .store
        .identities(
            environment.id,
            &IdentityQuery {
                search,
                exact,
                page: Some(page),
            },
        )
        .await?;
    let items = identities.items.iter().map(identity_dto).collect();
    Ok(Json(paginated(
        items,
        identities.total,
        page,
        &uri,
        &headers,
    )?))
}

/// Creates an identity.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities", tag = "identities",
    params(("api_key" = String, Path)), request_body = dto::IdentityRequest,
    responses((status = 201, body = dto::Identity), (status = 400)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Identity>)> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let identifier = form.text("identifier", MAX_IDENTIFIER_LEN);
    form.finish()?;
    let identifier = identifier.unwrap_or_default();
    let identity = state
        .store
        .create_identity(&actor.author(), environment.id, &identifier)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                let mut errors = crate::error::FieldErrors::new();
                errors.insert(
                    "identifier".into(),
                    json!(format!(
                        "Identity with identifier '{identifier}' already exists in this environment"
                    )),
                );
                ApiError::Fields(errors)
            }
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, Json(identity_dto(&identity))))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::Identity), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<Json<dto::Identity>> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, false).await?;
    Ok(Json(identity_dto(&record.identity)))
}

/// Deletes an identity with its traits and overrides.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<StatusCode> {
    let (environment, _) = identity_of(&state, &actor, &api_key, id, true).await?;
    let change = state
        .store
        .delete_identity(&actor.author(), environment.id, id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn trait_dto(t: &model::Trait) -> dto::Trait {
    let mut out = dto::Trait {
        id: t.id,
        trait_key: t.key.clone(),
        value_type: "unicode".into(),
        integer_value: None,
        string_value: None,
        boolean_value: None,
        float_value: None,
        created_date: None,
    };
    match &t.value {
        Value::Int(i) => {
            out.value_type = "int".into();
            out.integer_value = Some(*i);
        }
        Value::Float(f) => {
            out.value_type = "float".into();
            out.float_value = Some(*f);
        }
        Value::Bool(b) => {
            out.value_type = "bool".into();
            out.boolean_value = Some(*b);
        }
        Value::String(s) => out.string_value = Some(s.clone()),
        Value::Null => {}
    }
    out
}

/// Reads a trait's value from `value_type` and the matching `*_value` field.
fn trait_value(form: &mut Form<'_>) -> Option<Value> {
    let kind = form
        .optional_text("value_type", 10)
        .flatten()
        .unwrap_or_else(|| "unicode".into());
    match kind.as_str() {
        "int" => form.integer("integer_value").map(Value::Int),
        "bool" => form.flag("boolean_value").map(Value::Bool),
        "float" => form
            .number("float_value", f64::MIN, f64::MAX)
            .map(Value::Float),
        "unicode" => form
            .optional_text("string_value", MAX_TRAIT_VALUE_LEN)
            .map(|s| Value::String(s.unwrap_or_default())),
        other => {
            form.error("value_type", format!("\"{other}\" is not a valid choice."));
            None
        }
    }
}

/// An identity's traits, 10 per page.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/traits", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Trait>), (status = 404)))]
async fn list_traits(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Trait>>> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, false).await?;
    let page = page_of(&params, 10)?;
    let items = record
        .traits
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(trait_dto)
        .collect();
    Ok(Json(paginated(
        items,
        record.traits.len() as u64,
        page,
        &uri,
        &headers,
    )?))
}

/// Sets a trait of the identity.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities/{id}/traits", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::TraitRequest,
    responses((status = 201, body = dto::Trait), (status = 400)))]
async fn create_trait(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Trait>)> {
    let (environment, _) = identity_of(&state, &actor, &api_key, id, true).await?;
    let mut form = Form::new(&body)?;
    let key = form.text("trait_key", MAX_TRAIT_KEY_LEN);
    let value = trait_value(&mut form);
    form.finish()?;
    let (Some(key), Some(value)) = (key, value) else {
        return Err(ApiError::field(
            "non_field_errors",
            "A trait needs a key and a value.",
        ));
    };
    let stored = state
        .store
        .set_identity_trait(&actor.author(), environment.id, id, &key, Some(&value))
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("trait not stored")))?;
    Ok((StatusCode::CREATED, Json(trait_dto(&stored))))
}

async fn change_trait(
    actor: Actor,
    state: AppState,
    api_key: String,
    id: Id,
    trait_id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::Trait>> {
    let (environment, record) = identity_of(&state, &actor, &api_key, id, true).await?;
    let current = record
        .traits
        .iter()
        .find(|t| t.id == trait_id)
        .ok_or(ApiError::NotFound("Not found."))?;
    let mut form = Form::new(&body)?;
    let value = trait_value(&mut form);
    form.finish()?;
    let value =
        value.ok_or_else(|| ApiError::field("non_field_errors", "A trait needs a value."))?;
    let stored = state
        .store
        .set_identity_trait(
            &actor.author(),
            environment.id,
            id,
            &current.key,
            Some(&value),
        )
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("trait not stored")))?;
    Ok(Json(trait_dto(&stored)))
}

#[utoipa::path(put, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_id" = i64, Path)),
    request_body = dto::TraitRequest, responses((status = 200, body = dto::Trait), (status = 404)))]
async fn update_trait(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, trait_id)): Path<(String, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Trait>> {
    change_trait(actor, state, api_key, id, trait_id, body).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_id" = i64, Path)),
    request_body = dto::TraitRequest, responses((status = 200, body = dto::Trait), (status = 404)))]
async fn partial_update_trait(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, trait_id)): Path<(String, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Trait>> {
    change_trait(actor, state, api_key, id, trait_id, body).await
}

/// Deletes a trait; with `?deleteAllMatchingTraits=true`, every trait with its key in the environment.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}/traits/{trait_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("trait_id" = i64, Path),
        ("deleteAllMatchingTraits" = Option<bool>, Query)),
    responses((status = 204), (status = 404)))]
async fn destroy_trait(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, trait_id)): Path<(String, Id, Id)>,
    params: Params,
) -> ApiResult<StatusCode> {
    let (environment, record) = identity_of(&state, &actor, &api_key, id, true).await?;
    let current = record
        .traits
        .iter()
        .find(|t| t.id == trait_id)
        .ok_or(ApiError::NotFound("Not found."))?;
    if matches!(params.get("deleteAllMatchingTraits"), Some("true" | "True")) {
        state
            .store
            .delete_traits_matching(&actor.author(), environment.id, &current.key)
            .await?;
    } else {
        state
            .store
            .set_identity_trait(&actor.author(), environment.id, id, &current.key, None)
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The identity's overrides, 10 per page.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::FeatureState>), (status = 404)))]
async fn list_overrides(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::FeatureState>>> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, false).await?;
    let names = [(id, record.identity.identifier.clone())]
        .into_iter()
        .collect();
    let page = page_of(&params, 10)?;
    let items = record
        .overrides
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(|s| state_dto(s, &names))
        .collect();
    Ok(Json(paginated(
        items,
        record.overrides.len() as u64,
        page,
        &uri,
        &headers,
    )?))
}

/// Overrides a feature for the identity: `feature`, `enabled`, `feature_state_value` (raw scalar).
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::IdentityOverrideRequest,
    responses((status = 201, body = dto::FeatureState), (status = 400)))]
async fn create_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::FeatureState>)> {
    let (environment, record) = identity_of(&state, &actor, &api_key, id, true).await?;
    let mut form = Form::new(&body)?;
    let feature = form.required_integer("feature");
    let enabled = form.flag("enabled").unwrap_or(false);
    let value = form
        .feature_value("feature_state_value")
        .unwrap_or(Value::Null);
    form.finish()?;
    let feature = feature.unwrap_or_default();
    let change = state
        .store
        .create_feature_state(
            &actor.author(),
            &NewState {
                feature_id: feature,
                environment_id: environment.id,
                target: StateTarget::Identity(id),
                enabled,
                value,
                multivariate: Vec::new(),
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                ApiError::field("feature", "Feature state already exists for this identity.")
            }
            other => super::must_exist("feature", other),
        })?;
    after_write(&state, &change.environments).await?;
    let names = [(id, record.identity.identifier)].into_iter().collect();
    Ok((StatusCode::CREATED, Json(state_dto(&change.value, &names))))
}

fn override_of(record: &IdentityRecord, state_id: Id) -> ApiResult<&model::FeatureState> {
    record
        .overrides
        .iter()
        .find(|s| s.id == state_id)
        .ok_or(ApiError::NotFound("Not found."))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{state_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("state_id" = i64, Path)),
    responses((status = 200, body = dto::FeatureState), (status = 404)))]
async fn retrieve_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, state_id)): Path<(String, Id, Id)>,
) -> ApiResult<Json<dto::FeatureState>> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, false).await?;
    let names = [(id, record.identity.identifier.clone())]
        .into_iter()
        .collect();
    Ok(Json(state_dto(override_of(&record, state_id)?, &names)))
}

async fn change_override(
    actor: Actor,
    state: AppState,
    api_key: String,
    id: Id,
    state_id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::FeatureState>> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, true).await?;
    override_of(&record, state_id)?;
    let mut form = Form::new(&body)?;
    let update = StateUpdate {
        enabled: form.flag("enabled"),
        value: form.feature_value("feature_state_value"),
        multivariate: None,
    };
    form.finish()?;
    let change = state
        .store
        .update_feature_state(&actor.author(), state_id, &update)
        .await
        .map_err(invalid)?;
    after_write(&state, &change.environments).await?;
    let names = [(id, record.identity.identifier)].into_iter().collect();
    Ok(Json(state_dto(&change.value, &names)))
}

#[utoipa::path(put, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{state_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("state_id" = i64, Path)),
    request_body = dto::IdentityOverrideRequest, responses((status = 200, body = dto::FeatureState), (status = 404)))]
async fn update_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, state_id)): Path<(String, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    change_override(actor, state, api_key, id, state_id, body).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{state_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("state_id" = i64, Path)),
    request_body = dto::IdentityOverrideRequest, responses((status = 200, body = dto::FeatureState), (status = 404)))]
async fn partial_update_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, state_id)): Path<(String, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    change_override(actor, state, api_key, id, state_id, body).await
}

/// Removes an identity override.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/{state_id}", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path), ("state_id" = i64, Path)),
    responses((status = 204), (status = 404)))]
async fn destroy_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id, state_id)): Path<(String, Id, Id)>,
) -> ApiResult<StatusCode> {
    let (_, record) = identity_of(&state, &actor, &api_key, id, true).await?;
    override_of(&record, state_id)?;
    let change = state
        .store
        .delete_feature_state(&actor.author(), state_id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every flag of the identity as it evaluates now (stored traits and overrides), with what overrides
/// it.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/identities/{id}/featurestates/all", tag = "identities",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = Vec<dto::IdentityFlag>), (status = 404)))]
async fn all_flags(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<Json<Vec<dto::IdentityFlag>>> {
    let (environment, record) = identity_of(&state, &actor, &api_key, id, false).await?;
    let loaded = match state.registry.environment(environment.id) {
        Some(loaded) => loaded,
        None => state.registry.refresh(environment.id).await?,
    };
    let snapshot = loaded.snapshot();
    let traits: Vec<(&str, &Value)> = record
        .traits
        .iter()
        .map(|t| (t.key.as_str(), &t.value))
        .collect();
    let overrides: Vec<IdentityOverride<'_>> = record
        .overrides
        .iter()
        .filter_map(|o| {
            let position = snapshot.position_of_id(o.feature_id)?;
            Some(IdentityOverride {
                feature: &snapshot.features[position].name,
                enabled: o.enabled,
                value: &o.value,
            })
        })
        .collect();
    let identity = Identity::new(&record.identity.identifier)
        .with_traits(&traits)
        .with_overrides(&overrides);
    let evaluation = snapshot.engine.evaluate(Some(&identity));
    let flags = evaluation
        .flags()
        .iter()
        .map(|f| {
            let info = &snapshot.features[f.feature_position];
            let (overridden_by, segment) = match f.source {
                Source::Default => (None, None),
                Source::Identity { .. } => (Some("IDENTITY".to_owned()), None),
                Source::Segment { segment, .. } => (
                    Some("SEGMENT".to_owned()),
                    snapshot.segments.get(segment).map(|s| dto::SegmentSummary {
                        id: s.id,
                        name: s.name.clone(),
                    }),
                ),
            };
            dto::IdentityFlag {
                feature: dto::FeatureSummary {
                    id: info.id,
                    name: info.name.clone(),
                    feature_type: if info.option_values.is_empty() {
                        "STANDARD".into()
                    } else {
                        "MULTIVARIATE".into()
                    },
                },
                enabled: f.enabled,
                feature_state_value: f.value.clone(),
                overridden_by,
                segment,
                multivariate_feature_state_values: Vec::new(),
            }
        })
        .collect();
    Ok(Json(flags))
}
