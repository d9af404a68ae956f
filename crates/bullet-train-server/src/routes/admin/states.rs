//! Feature states and segment overrides: an environment's states
//! (`/api/v1/environments/{api_key}/featurestates/`), the generic feature-state endpoint
//! (`/api/v1/features/featurestates/`), segment override links and their priorities
//! (`/api/v1/features/feature-segments/`), and the one-call
//! `/api/v1/environments/{api_key}/features/{feature}/create-segment-override/`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bullet_train_protocol::Value;
use bullet_train_protocol::admin as dto;
use bullet_train_store::StoreError;
use bullet_train_store::admin::{
    Allocation, NewFeatureSegment, NewState, StateKind, StateQuery, StateTarget, StateUpdate,
};
use bullet_train_store::model::{Environment, FeatureSegment, FeatureState, Id};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Form, after_write, environment_by_id, environment_for, invalid, must_exist, page_of, paginated,
    raw_value, state_dto, to_typed, typed_value,
};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::routes::identities::{MAX_IDENTIFIER_LEN, check_identifier};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(environment_states))
        .routes(routes!(
            environment_state,
            update_environment_state,
            patch_environment_state
        ))
        .routes(routes!(generic_states, create_generic_state))
        .routes(routes!(update_generic_state, patch_generic_state))
        .routes(routes!(list_feature_segments, create_feature_segment))
        .routes(routes!(
            update_feature_segment,
            patch_feature_segment,
            delete_feature_segment
        ))
        .routes(routes!(update_priorities))
        .routes(routes!(create_segment_override))
}

/// Identifiers of the identities some states override for.
async fn identifiers(
    state: &AppState,
    environment: Id,
    states: &[FeatureState],
) -> ApiResult<HashMap<Id, String>> {
    let mut out = HashMap::new();
    for id in states.iter().filter_map(|s| s.identity_id) {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            let record = state.store.identity_by_id(environment, id).await?;
            e.insert(record.identity.identifier);
        }
    }
    Ok(out)
}

async fn dto_of(state: &AppState, s: &FeatureState) -> ApiResult<dto::FeatureState> {
    let names = identifiers(state, s.environment_id, std::slice::from_ref(s)).await?;
    Ok(state_dto(s, &names))
}

/// Reads `multivariate_feature_state_values`.
pub(crate) fn allocations(form: &mut Form<'_>) -> Option<Vec<Allocation>> {
    let raw = form.raw("multivariate_feature_state_values")?;
    let Some(items) = raw.as_array() else {
        form.error(
            "multivariate_feature_state_values",
            "Expected a list of items.",
        );
        return None;
    };
    // Errors are reported per item, by position, as Flagsmith's list serializer does:
    // `[{}, {"percentage_allocation": ["..."]}]`.
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for item in items {
        let mut item_errors = serde_json::Map::new();
        let option = match item.get("multivariate_feature_option") {
            None | Some(serde_json::Value::Null) => {
                item_errors.insert(
                    "multivariate_feature_option".into(),
                    json!(["This field is required."]),
                );
                None
            }
            Some(raw) => raw.as_i64().or_else(|| {
                item_errors.insert(
                    "multivariate_feature_option".into(),
                    json!(["Incorrect type. Expected pk value."]),
                );
                None
            }),
        };
        let percentage = match item.get("percentage_allocation") {
            None | Some(serde_json::Value::Null) => {
                item_errors.insert(
                    "percentage_allocation".into(),
                    json!(["This field is required."]),
                );
                None
            }
            Some(raw) => match raw.as_f64() {
                Some(p) if (0.0..=100.0).contains(&p) => Some(p),
                Some(_) => {
                    item_errors.insert(
                        "percentage_allocation".into(),
                        json!(["Ensure this value is between 0 and 100."]),
                    );
                    None
                }
                None => {
                    item_errors.insert(
                        "percentage_allocation".into(),
                        json!(["A valid number is required."]),
                    );
                    None
                }
            },
        };
        if let (Some(option_id), Some(percentage)) = (option, percentage) {
            out.push(Allocation {
                option_id,
                percentage,
            });
        }
        errors.push(serde_json::Value::Object(item_errors));
    }
    if errors
        .iter()
        .any(|e| e.as_object().is_some_and(|m| !m.is_empty()))
    {
        form.nested(
            "multivariate_feature_state_values",
            serde_json::Value::Array(errors),
        );
        return None;
    }
    if out.iter().map(|a| a.percentage).sum::<f64>() > 100.0 + 1e-9 {
        form.error(
            "non_field_errors",
            "Multivariate percentage values exceed 100%.",
        );
        return None;
    }
    Some(out)
}

/// An environment's default states (`?anyIdentity` for its identity overrides instead), 10 per page.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/featurestates", tag = "feature states",
    params(("api_key" = String, Path), ("feature" = Option<i64>, Query), ("feature_name" = Option<String>, Query),
        ("anyIdentity" = Option<String>, Query), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::FeatureState>), (status = 404)))]
async fn environment_states(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::FeatureState>>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let page = page_of(&params, 10)?;
    let query = StateQuery {
        kind: if params.get("anyIdentity").is_some() {
            StateKind::IdentityOverrides
        } else {
            StateKind::Defaults
        },
        feature: params.get("feature").and_then(|f| f.parse().ok()),
        feature_name: params.get("feature_name").map(str::to_owned),
        feature_segment: None,
        page: Some(page),
    };
    let shown = state.store.feature_states(environment.id, &query).await?;
    let names = identifiers(&state, environment.id, &shown.items).await?;
    let items = shown.items.iter().map(|s| state_dto(s, &names)).collect();
    Ok(Json(paginated(items, shown.total, page, &uri, &headers)?))
}

/// A state of this environment, checked for the actor.
async fn environment_state_of(
    state: &AppState,
    actor: &Actor,
    api_key: &str,
    id: Id,
    write: bool,
) -> ApiResult<(Environment, FeatureState)> {
    let (environment, _) = environment_for(state, actor, api_key, write).await?;
    let found = state.store.feature_state(id).await?;
    if found.environment_id != environment.id {
        return Err(ApiError::NotFound("Not found."));
    }
    Ok((environment, found))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "feature states",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::FeatureState), (status = 404)))]
async fn environment_state(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<Json<dto::FeatureState>> {
    let (_, found) = environment_state_of(&state, &actor, &api_key, id, false).await?;
    Ok(Json(dto_of(&state, &found).await?))
}

/// Applies a state update read from `body`; `typed` selects the typed value form.
async fn apply_update(
    state: &AppState,
    actor: &Actor,
    id: Id,
    body: &serde_json::Value,
    typed: bool,
) -> ApiResult<dto::FeatureState> {
    let mut form = Form::new(body)?;
    let enabled = form.flag("enabled");
    let value = match form.raw("feature_state_value") {
        None => None,
        Some(raw) if typed => typed_value(raw)
            .map_err(|m| form.error("feature_state_value", m))
            .ok(),
        Some(_) => form.feature_value("feature_state_value"),
    };
    let multivariate = allocations(&mut form);
    form.finish()?;
    let change = state
        .store
        .update_feature_state(
            &actor.author(),
            id,
            &StateUpdate {
                enabled,
                value,
                multivariate,
            },
        )
        .await
        .map_err(invalid)?;
    after_write(state, &change.environments).await?;
    dto_of(state, &change.value).await
}

/// Changes a state: `enabled`, `feature_state_value` (a raw JSON scalar) and allocations.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "feature states",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::FeatureStateRequest,
    responses((status = 200, body = dto::FeatureState), (status = 400), (status = 404)))]
async fn update_environment_state(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    environment_state_of(&state, &actor, &api_key, id, true).await?;
    Ok(Json(apply_update(&state, &actor, id, &body, false).await?))
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/featurestates/{id}", tag = "feature states",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::FeatureStateRequest,
    responses((status = 200, body = dto::FeatureState), (status = 400), (status = 404)))]
async fn patch_environment_state(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    environment_state_of(&state, &actor, &api_key, id, true).await?;
    Ok(Json(apply_update(&state, &actor, id, &body, false).await?))
}

/// States of an environment (`?environment=` required; `?feature=`, `?feature_segment=`), 10 per page.
#[utoipa::path(get, path = "/api/v1/features/featurestates", tag = "feature states",
    params(("environment" = i64, Query), ("feature" = Option<i64>, Query), ("feature_segment" = Option<i64>, Query),
        ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::FeatureState>), (status = 400)))]
async fn generic_states(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::FeatureState>>> {
    let Some(environment) = params.get("environment").and_then(|e| e.parse::<Id>().ok()) else {
        return Err(ApiError::BadRequest(
            "'environment' GET parameter is required.".into(),
        ));
    };
    let environment = environment_by_id(&state, &actor, environment, "environment", false)
        .await
        .map_err(|_| ApiError::NotFound("Not found."))?;
    let feature_segment = params
        .get("feature_segment")
        .and_then(|f| f.parse::<Id>().ok());
    let page = page_of(&params, 10)?;
    let query = StateQuery {
        kind: StateKind::Shared,
        feature: params.get("feature").and_then(|f| f.parse().ok()),
        feature_name: None,
        feature_segment,
        page: Some(page),
    };
    let shown = state.store.feature_states(environment.id, &query).await?;
    let items = shown
        .items
        .iter()
        .map(|s| state_dto(s, &HashMap::new()))
        .collect();
    Ok(Json(paginated(items, shown.total, page, &uri, &headers)?))
}

/// Creates a segment override (`feature_segment`) or an identity override (`identity`) state, with a
/// typed `feature_state_value`.
#[utoipa::path(post, path = "/api/v1/features/featurestates", tag = "feature states",
    request_body = dto::GenericFeatureStateRequest,
    responses((status = 201, body = dto::FeatureState), (status = 400)))]
async fn create_generic_state(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::FeatureState>)> {
    let mut form = Form::new(&body)?;
    let feature = form.required_integer("feature");
    let environment = form.required_integer("environment");
    let feature_segment = form.integer("feature_segment");
    let identity = form.integer("identity");
    // Flagsmith also names the identity by its identifier (created if it does not exist yet).
    let identifier = form
        .optional_text("identifier", MAX_IDENTIFIER_LEN)
        .flatten();
    let enabled = form.flag("enabled").unwrap_or(false);
    let value = match form.raw("feature_state_value") {
        None => Value::Null,
        Some(raw) => typed_value(raw)
            .map_err(|m| form.error("feature_state_value", m))
            .unwrap_or(Value::Null),
    };
    let multivariate = allocations(&mut form).unwrap_or_default();
    let target = match (feature_segment, identity, &identifier) {
        (Some(fs), None, None) => Some(Some(StateTarget::FeatureSegment(fs))),
        (None, Some(i), None) => Some(Some(StateTarget::Identity(i))),
        // Resolved once the environment is known.
        (None, None, Some(_)) => Some(None),
        _ => {
            form.error(
                "non_field_errors",
                "Give exactly one of feature_segment, identity and identifier (environment defaults exist already).",
            );
            None
        }
    };
    form.finish()?;
    let (Some(feature), Some(environment), Some(target)) = (feature, environment, target) else {
        return Err(ApiError::BadRequest("Invalid feature state.".into()));
    };
    let environment_record =
        environment_by_id(&state, &actor, environment, "environment", true).await?;
    let target = match (target, identifier) {
        (Some(target), _) => target,
        (None, Some(identifier)) => {
            // The feature is checked first, so that a refused request creates no identity.
            state
                .store
                .feature(environment_record.project_id, feature)
                .await
                .map_err(|e| must_exist("feature", e))?;
            check_identifier("identifier", &identifier)?;
            let record = state
                .store
                .ensure_identity(environment, &identifier)
                .await?;
            StateTarget::Identity(record.identity.id)
        }
        (None, None) => return Err(ApiError::BadRequest("Invalid feature state.".into())),
    };
    let change = state
        .store
        .create_feature_state(
            &actor.author(),
            &NewState {
                feature_id: feature,
                environment_id: environment,
                target,
                enabled,
                value,
                multivariate,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::field(
                "non_field_errors",
                "A feature state already exists for this feature segment or identity.",
            ),
            StoreError::NotFound => {
                ApiError::field("identity", "Identity does not exist in environment.")
            }
            other => must_exist("feature", other),
        })?;
    after_write(&state, &change.environments).await?;
    Ok((
        StatusCode::CREATED,
        Json(dto_of(&state, &change.value).await?),
    ))
}

async fn generic_state_for_write(state: &AppState, actor: &Actor, id: Id) -> ApiResult<()> {
    let found = state.store.feature_state(id).await?;
    environment_by_id(state, actor, found.environment_id, "environment", true)
        .await
        .map(|_| ())
}

/// Changes a state with a typed `feature_state_value`.
#[utoipa::path(put, path = "/api/v1/features/featurestates/{id}", tag = "feature states",
    params(("id" = i64, Path)), request_body = dto::GenericFeatureStateRequest,
    responses((status = 200, body = dto::FeatureState), (status = 400), (status = 404)))]
async fn update_generic_state(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    generic_state_for_write(&state, &actor, id).await?;
    Ok(Json(apply_update(&state, &actor, id, &body, true).await?))
}

#[utoipa::path(patch, path = "/api/v1/features/featurestates/{id}", tag = "feature states",
    params(("id" = i64, Path)), request_body = dto::GenericFeatureStateRequest,
    responses((status = 200, body = dto::FeatureState), (status = 400), (status = 404)))]
async fn patch_generic_state(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureState>> {
    generic_state_for_write(&state, &actor, id).await?;
    Ok(Json(apply_update(&state, &actor, id, &body, true).await?))
}

async fn feature_segment_dto(
    state: &AppState,
    fs: &FeatureSegment,
) -> ApiResult<dto::FeatureSegment> {
    let environment = state.store.environment(fs.environment_id).await?;
    let segment = state
        .store
        .segment(environment.project_id, fs.segment_id)
        .await?;
    Ok(dto::FeatureSegment {
        id: fs.id,
        uuid: None,
        feature: fs.feature_id,
        segment: fs.segment_id,
        environment: fs.environment_id,
        priority: fs.priority,
        segment_name: segment.name,
        is_feature_specific: segment.feature_id.is_some(),
    })
}

/// The segment overrides of a feature in an environment, by priority (both query parameters are
/// required), 10 per page.
#[utoipa::path(get, path = "/api/v1/features/feature-segments", tag = "segment overrides",
    params(("environment" = i64, Query), ("feature" = i64, Query), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::FeatureSegment>), (status = 400)))]
async fn list_feature_segments(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::FeatureSegment>>> {
    let environment = params.get("environment").and_then(|e| e.parse::<Id>().ok());
    let feature = params.get("feature").and_then(|f| f.parse::<Id>().ok());
    let (Some(environment), Some(feature)) = (environment, feature) else {
        let mut errors = crate::error::FieldErrors::new();
        if environment.is_none() {
            errors.insert("environment".into(), json!(["This field is required."]));
        }
        if feature.is_none() {
            errors.insert("feature".into(), json!(["This field is required."]));
        }
        return Err(ApiError::Fields(errors));
    };
    environment_by_id(&state, &actor, environment, "environment", false).await?;
    let links = state
        .store
        .feature_segments(environment, Some(feature))
        .await?;
    let page = page_of(&params, 10)?;
    let mut items = Vec::new();
    for fs in links
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
    {
        items.push(feature_segment_dto(&state, fs).await?);
    }
    Ok(Json(paginated(
        items,
        links.len() as u64,
        page,
        &uri,
        &headers,
    )?))
}

/// Links a segment to a feature in an environment (then create its state through
/// `/api/v1/features/featurestates/`); without `priority` it goes last.
#[utoipa::path(post, path = "/api/v1/features/feature-segments", tag = "segment overrides",
    request_body = dto::FeatureSegmentRequest,
    responses((status = 201, body = dto::FeatureSegment), (status = 400)))]
async fn create_feature_segment(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::FeatureSegment>)> {
    let mut form = Form::new(&body)?;
    let feature = form.required_integer("feature");
    let segment = form.required_integer("segment");
    let environment = form.required_integer("environment");
    let priority = form.integer("priority");
    if priority.is_some_and(|p| p < 0) {
        form.error(
            "priority",
            "Ensure this value is greater than or equal to 0.",
        );
    }
    form.finish()?;
    let (Some(feature), Some(segment), Some(environment)) = (feature, segment, environment) else {
        return Err(ApiError::BadRequest("Invalid feature segment.".into()));
    };
    environment_by_id(&state, &actor, environment, "environment", true).await?;
    let link = link(&state, &actor, feature, segment, environment, priority).await?;
    Ok((
        StatusCode::CREATED,
        Json(feature_segment_dto(&state, &link).await?),
    ))
}

async fn link(
    state: &AppState,
    actor: &Actor,
    feature: Id,
    segment: Id,
    environment: Id,
    priority: Option<i64>,
) -> ApiResult<FeatureSegment> {
    let change = state
        .store
        .create_feature_segment(
            &actor.author(),
            &NewFeatureSegment {
                feature_id: feature,
                segment_id: segment,
                environment_id: environment,
                priority,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::field(
                "non_field_errors",
                "The flag is already overridden for this segment.",
            ),
            StoreError::NotFound => {
                ApiError::field("segment", "Invalid pk - object does not exist.")
            }
            other => invalid(other),
        })?;
    after_write(state, &change.environments).await?;
    Ok(change.value)
}

async fn feature_segment_for_write(
    state: &AppState,
    actor: &Actor,
    id: Id,
) -> ApiResult<FeatureSegment> {
    let fs = state.store.feature_segment(id).await?;
    environment_by_id(state, actor, fs.environment_id, "environment", true).await?;
    Ok(fs)
}

async fn reprioritise(
    state: &AppState,
    actor: &Actor,
    id: Id,
    body: &serde_json::Value,
) -> ApiResult<dto::FeatureSegment> {
    feature_segment_for_write(state, actor, id).await?;
    let mut form = Form::new(body)?;
    let priority = form.required_integer("priority");
    form.finish()?;
    let change = state
        .store
        .update_priorities(&actor.author(), &[(id, priority.unwrap_or(0).max(0))])
        .await?;
    after_write(state, &change.environments).await?;
    feature_segment_dto(state, &state.store.feature_segment(id).await?).await
}

/// Moves a segment override to `priority` (others move down to make room).
#[utoipa::path(put, path = "/api/v1/features/feature-segments/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), request_body = dto::PriorityRequest,
    responses((status = 200, body = dto::FeatureSegment), (status = 404)))]
async fn update_feature_segment(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureSegment>> {
    Ok(Json(reprioritise(&state, &actor, id, &body).await?))
}

#[utoipa::path(patch, path = "/api/v1/features/feature-segments/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), request_body = dto::PriorityRequest,
    responses((status = 200, body = dto::FeatureSegment), (status = 404)))]
async fn patch_feature_segment(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::FeatureSegment>> {
    Ok(Json(reprioritise(&state, &actor, id, &body).await?))
}

/// Removes a segment override (link and state).
#[utoipa::path(delete, path = "/api/v1/features/feature-segments/{id}", tag = "segment overrides",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn delete_feature_segment(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
) -> ApiResult<StatusCode> {
    feature_segment_for_write(&state, &actor, id).await?;
    let change = state
        .store
        .delete_feature_segment(&actor.author(), id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Re-orders the segment overrides of one feature in one environment: `[{"id", "priority"}]`.
#[utoipa::path(post, path = "/api/v1/features/feature-segments/update-priorities", tag = "segment overrides",
    request_body = Vec<dto::PriorityRequest>,
    responses((status = 200, body = Vec<dto::FeatureSegment>), (status = 400)))]
async fn update_priorities(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Vec<dto::FeatureSegment>>> {
    let items = body
        .as_array()
        .ok_or_else(|| ApiError::field("non_field_errors", "Expected a list of items."))?;
    let mut pairs = Vec::new();
    for item in items {
        let id = item.get("id").and_then(serde_json::Value::as_i64);
        let priority = item.get("priority").and_then(serde_json::Value::as_i64);
        match (id, priority) {
            (Some(id), Some(priority)) if priority >= 0 => pairs.push((id, priority)),
            _ => {
                return Err(ApiError::field(
                    "non_field_errors",
                    "Each item needs an id and a priority of at least 0.",
                ));
            }
        }
    }
    let mut group = None;
    for (id, _) in &pairs {
        let fs = match state.store.feature_segment(*id).await {
            Ok(fs) => fs,
            Err(StoreError::NotFound) => {
                return Err(ApiError::field(
                    "non_field_errors",
                    "Some of the provided ids were not found.",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let key = (fs.feature_id, fs.environment_id);
        if group.is_some_and(|g| g != key) {
            return Err(ApiError::field(
                "non_field_errors",
                "All feature segments must belong to the same feature & environment.",
            ));
        }
        group = Some(key);
    }
    if let Some((_, environment)) = group {
        environment_by_id(&state, &actor, environment, "environment", true).await?;
    }
    let change = state
        .store
        .update_priorities(&actor.author(), &pairs)
        .await?;
    after_write(&state, &change.environments).await?;
    let mut out = Vec::new();
    for fs in &change.value {
        out.push(feature_segment_dto(&state, fs).await?);
    }
    Ok(Json(out))
}

/// Creates a segment override in one call: the link (a `priority` already in use pushes the
/// existing override down) and its state.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/features/{feature}/create-segment-override",
    tag = "segment overrides", params(("api_key" = String, Path), ("feature" = i64, Path)),
    request_body = dto::SegmentOverrideRequest,
    responses((status = 201, body = dto::SegmentOverride), (status = 400)))]
async fn create_segment_override(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, feature)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::SegmentOverride>)> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let (segment, priority) = match form.raw("feature_segment") {
        Some(serde_json::Value::Object(link)) => {
            let mut errors = serde_json::Map::new();
            let segment = match link.get("segment") {
                None | Some(serde_json::Value::Null) => {
                    errors.insert("segment".into(), json!(["This field is required."]));
                    None
                }
                Some(raw) => raw.as_i64().or_else(|| {
                    errors.insert(
                        "segment".into(),
                        json!(["Incorrect type. Expected pk value."]),
                    );
                    None
                }),
            };
            let priority = match link.get("priority") {
                None | Some(serde_json::Value::Null) => None,
                Some(raw) => raw.as_i64().filter(|p| *p >= 0).or_else(|| {
                    errors.insert(
                        "priority".into(),
                        json!(["A valid non-negative integer is required."]),
                    );
                    None
                }),
            };
            if !errors.is_empty() {
                form.nested("feature_segment", serde_json::Value::Object(errors));
            }
            (segment, priority)
        }
        _ => {
            form.error("feature_segment", "This field is required.");
            (None, None)
        }
    };
    let enabled = form.flag("enabled").unwrap_or(false);
    let value = match form.raw("feature_state_value") {
        None => Value::Null,
        Some(raw) if raw.is_object() => typed_value(raw)
            .map_err(|m| form.error("feature_state_value", m))
            .unwrap_or(Value::Null),
        Some(raw) => raw_value(raw)
            .map_err(|m| form.error("feature_state_value", m))
            .unwrap_or(Value::Null),
    };
    let multivariate = allocations(&mut form).unwrap_or_default();
    form.finish()?;
    let change = state
        .store
        .create_segment_override(
            &actor.author(),
            &NewFeatureSegment {
                feature_id: feature,
                segment_id: segment.unwrap_or_default(),
                environment_id: environment.id,
                priority,
            },
            enabled,
            &value,
            &multivariate,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::field(
                "non_field_errors",
                "The flag is already overridden for this segment.",
            ),
            StoreError::NotFound => {
                ApiError::field("feature_segment", "Invalid pk - object does not exist.")
            }
            other => invalid(other),
        })?;
    after_write(&state, &change.environments).await?;
    let (fs, s) = &change.value;
    Ok((
        StatusCode::CREATED,
        Json(dto::SegmentOverride {
            id: s.id,
            feature: s.feature_id,
            enabled: s.enabled,
            feature_state_value: to_typed(&s.value),
            feature_segment: dto::FeatureSegmentSummary {
                id: fs.id,
                segment: fs.segment_id,
                priority: fs.priority,
                uuid: None,
            },
            uuid: s.uuid.clone(),
            environment: s.environment_id,
            identity: None,
            multivariate_feature_state_values: s
                .multivariate
                .iter()
                .map(|v| dto::MultivariateStateValue {
                    id: Some(v.id),
                    multivariate_feature_option: v.option_id,
                    percentage_allocation: v.percentage_allocation,
                })
                .collect(),
        }),
    ))
}
