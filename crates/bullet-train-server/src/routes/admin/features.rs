//! Features (`/api/v1/projects/{project}/features/`), their multivariate options (`mv-options/`) and
//! their daily evaluation counts (`evaluation-data/`).
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bullet_train_protocol::Value;
use bullet_train_protocol::admin as dto;
use bullet_train_store::StoreError;
use bullet_train_store::admin::{
    FeatureQuery, FeatureUpdate, NewFeature, NewOption, StateKind, StateQuery,
};
use bullet_train_store::model::{self, FeatureRecord, Id};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Form, MAX_NAME, MAX_TEXT, after_write, environment_by_id, environment_for, feature_dto,
    invalid, option_dto, page_of, paginated, project_for,
};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, update, partial_update, destroy))
        .routes(routes!(list_options, create_option))
        .routes(routes!(
            retrieve_option,
            update_option,
            partial_update_option,
            destroy_option
        ))
        .routes(routes!(evaluation_data))
}

const NAME_TAKEN: &str = "Feature with that name already exists for this project. Note that feature names are case insensitive.";

fn name_conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ApiError::field("name", NAME_TAKEN),
        StoreError::Invalid(message) => ApiError::field("multivariate_options", message),
        other => other.into(),
    }
}

/// The text Flagsmith keeps as a feature's `initial_value`: strings as they are, other values in
/// their text form.
fn initial_text(raw: &serde_json::Value) -> Result<Option<String>, &'static str> {
    match raw {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) if s.chars().count() > MAX_TEXT => {
            Err("Ensure this field has no more than 20000 characters.")
        }
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        serde_json::Value::Bool(true) => Ok(Some("True".into())),
        serde_json::Value::Bool(false) => Ok(Some("False".into())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err("Not a valid string."),
    }
}

/// Reads a multivariate option request; errors go under `field` of `form`.
fn option_request(body: &serde_json::Value) -> Result<NewOption, serde_json::Value> {
    let Ok(mut form) = Form::new(body) else {
        return Err(json!({"non_field_errors": ["Invalid data. Expected a dictionary."]}));
    };
    let kind = form
        .optional_text("type", 10)
        .flatten()
        .unwrap_or_else(|| "unicode".into());
    let value = match kind.as_str() {
        "int" => match form.integer("integer_value") {
            Some(i) => Value::Int(i),
            None => Value::Null,
        },
        "bool" => match form.flag("boolean_value") {
            Some(b) => Value::Bool(b),
            None => Value::Null,
        },
        "unicode" => match form.optional_text("string_value", MAX_TEXT) {
            Some(Some(s)) => Value::String(s),
            _ => Value::String(String::new()),
        },
        other => {
            form.error("type", format!("\"{other}\" is not a valid choice."));
            Value::Null
        }
    };
    let allocation = form
        .number("default_percentage_allocation", 0.0, 100.0)
        .unwrap_or(100.0);
    let key = form.optional_text("key", 200).flatten();
    if key.as_deref() == Some("control") {
        form.error("key", "\"control\" is a reserved variant key.");
    }
    match form.finish() {
        Ok(()) => Ok(NewOption {
            value,
            default_percentage_allocation: allocation,
            key,
        }),
        Err(ApiError::Fields(errors)) => Err(json!(errors)),
        Err(_) => Err(json!({})),
    }
}

/// Adds environment-specific fields (`?environment=`): the default state and override counts.
async fn with_environment(
    state: &AppState,
    environment: Id,
    features: &mut [dto::Feature],
) -> ApiResult<()> {
    let defaults: std::collections::HashMap<Id, model::FeatureState> = state
        .store
        .feature_states(
            environment,
            &StateQuery {
                kind: StateKind::Defaults,
                ..Default::default()
            },
        )
        .await?
        .items
        .into_iter()
        .map(|s| (s.feature_id, s))
        .collect();
    let counts = state.store.override_counts(environment).await?;
    for feature in features {
        let default = defaults.get(&feature.id);
        feature.environment_feature_state = default.map(|s| dto::EnvironmentFeatureState {
            id: s.id,
            feature_state_value: s.value.clone(),
            environment: s.environment_id,
            identity: None,
            feature_segment: None,
            enabled: s.enabled,
        });
        let count = counts.get(&feature.id).copied().unwrap_or_default();
        feature.num_segment_overrides = Some(count.segments);
        feature.num_identity_overrides = Some(count.identities);
        feature.is_num_identity_overrides_complete = Some(true);
    }
    Ok(())
}

/// The project's features (`?search=` on the name, `?environment=` adds that environment's state).
#[utoipa::path(get, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path), ("search" = Option<String>, Query), ("environment" = Option<i64>, Query),
        ("page" = Option<u64>, Query), ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Feature>), (status = 404)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    Path(project): Path<Id>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Feature>>> {
    project_for(&state, &actor, project, false).await?;
    let page = page_of(&params, 999)?;
    let query = FeatureQuery {
        search: params.get("search").map(str::to_owned),
        page: Some(page),
    };
    let features = state.store.features(project, &query).await?;
    let mut items: Vec<dto::Feature> = features.items.iter().map(feature_dto).collect();
    if let Some(environment) = params.get("environment") {
        let id = environment
            .parse::<Id>()
            .map_err(|_| ApiError::field("environment", "A valid integer is required."))?;
        let environment = environment_by_id(&state, &actor, id, "environment", false).await?;
        with_environment(&state, environment.id, &mut items).await?;
    }
    Ok(Json(paginated(
        items,
        features.total,
        page,
        &uri,
        &headers,
    )?))
}

/// Creates a feature: every environment of the project gets a state with `default_enabled` and
/// `initial_value`, and each multivariate option at its default allocation.
#[utoipa::path(post, path = "/api/v1/projects/{project}/features", tag = "features",
    params(("project" = i64, Path)), request_body = dto::FeatureRequest,
    responses((status = 201, body = dto::Feature), (status = 400)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    Path(project): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Feature>)> {
    let settings = project_for(&state, &actor, project, true).await?;
    let mut form = Form::new(&body)?;
    let name = form.text("name", MAX_NAME);
    if let Some(name) = &name {
        check_name(&mut form, &settings, name);
    }
    let initial_value = match form.raw("initial_value") {
        None => None,
        Some(raw) => initial_text(raw)
            .map_err(|m| form.error("initial_value", m))
            .ok()
            .flatten(),
    };
    let default_enabled = form.flag("default_enabled").unwrap_or(false);
    let description = form.optional_text("description", MAX_TEXT).flatten();
    let is_server_key_only = form.flag("is_server_key_only").unwrap_or(false);
    let mut options = Vec::new();
    match form.raw("multivariate_options") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(items)) => {
            let mut errors = Vec::new();
            let mut any = false;
            for item in items {
                match option_request(item) {
                    Ok(option) => {
                        options.push(option);
                        errors.push(json!({}));
                    }
                    Err(e) => {
                        any = true;
                        errors.push(e);
                    }
                }
            }
            if any {
                form.nested("multivariate_options", serde_json::Value::Array(errors));
            }
        }
        Some(_) => form.error("multivariate_options", "Expected a list of items."),
    }
    if options
        .iter()
        .map(|o| o.default_percentage_allocation)
        .sum::<f64>()
        > 100.0
    {
        form.error("multivariate_options", "Invalid percentage allocation");
    }
    form.finish()?;
    let change = state
        .store
        .create_feature(
            &actor.author(),
            project,
            &NewFeature {
                name: name.unwrap_or_default(),
                description,
                initial_value,
                default_enabled,
                is_server_key_only,
                options,
            },
        )
        .await
        .map_err(name_conflict)?;
    after_write(&state, &change.environments).await?;
    Ok((StatusCode::CREATED, Json(feature_dto(&change.value))))
}

async fn feature_of(state: &AppState, project: Id, id: Id) -> ApiResult<FeatureRecord> {
    Ok(state.store.feature(project, id).await?)
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{id}", tag = "features",
    params(("project" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::Feature), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
) -> ApiResult<Json<dto::Feature>> {
    project_for(&state, &actor, project, false).await?;
    Ok(Json(feature_dto(&feature_of(&state, project, id).await?)))
}

/// The project's rules for feature names: no upper case when asked, and its regular expression
/// (matched from the start, as Flagsmith's `re.match` does).
fn check_name(form: &mut Form<'_>, project: &model::Project, name: &str) {
    if project.only_allow_lower_case_feature_names && name.chars().any(char::is_uppercase) {
        form.error("name", "Feature names must be lower case in this project.");
    }
    if let Some(pattern) = &project.feature_name_regex {
        let matches =
            regex::Regex::new(&format!(r"\A(?:{pattern})")).is_ok_and(|re| re.is_match(name));
        if !matches {
            form.error(
                "name",
                format!("Feature name must match the project's regex {pattern:?}."),
            );
        }
    }
}

async fn change(
    actor: Actor,
    state: AppState,
    project: Id,
    id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::Feature>> {
    let settings = project_for(&state, &actor, project, true).await?;
    feature_of(&state, project, id).await?;
    let mut form = Form::new(&body)?;
    let name = form.changed_text("name", MAX_NAME);
    if let Some(name) = &name {
        check_name(&mut form, &settings, name);
    }
    let update = FeatureUpdate {
        name,
        description: form.optional_text("description", MAX_TEXT),
        initial_value: match form.raw("initial_value") {
            None => None,
            Some(raw) => initial_text(raw)
                .map_err(|m| form.error("initial_value", m))
                .ok(),
        },
        default_enabled: form.flag("default_enabled"),
        is_server_key_only: form.flag("is_server_key_only"),
    };
    form.finish()?;
    let change = state
        .store
        .update_feature(&actor.author(), project, id, &update)
        .await
        .map_err(name_conflict)?;
    after_write(&state, &change.environments).await?;
    Ok(Json(feature_dto(&change.value)))
}

/// Changes a feature's name, description, defaults for new environments, or server-key-only flag.
#[utoipa::path(put, path = "/api/v1/projects/{project}/features/{id}", tag = "features",
    params(("project" = i64, Path), ("id" = i64, Path)), request_body = dto::FeatureRequest,
    responses((status = 200, body = dto::Feature), (status = 400), (status = 404)))]
async fn update(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Feature>> {
    change(actor, state, project, id, body).await
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/features/{id}", tag = "features",
    params(("project" = i64, Path), ("id" = i64, Path)), request_body = dto::FeatureRequest,
    responses((status = 200, body = dto::Feature), (status = 400), (status = 404)))]
async fn partial_update(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Feature>> {
    change(actor, state, project, id, body).await
}

/// Deletes a feature and every state of it.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/features/{id}", tag = "features",
    params(("project" = i64, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
) -> ApiResult<StatusCode> {
    project_for(&state, &actor, project, true).await?;
    let change = state
        .store
        .delete_feature(&actor.author(), project, id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The feature's multivariate options, 10 per page.
#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/mv-options", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::MultivariateOption>), (status = 404)))]
async fn list_options(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature)): Path<(Id, Id)>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::MultivariateOption>>> {
    project_for(&state, &actor, project, false).await?;
    let record = feature_of(&state, project, feature).await?;
    let page = page_of(&params, 10)?;
    let total = record.options.len() as u64;
    let items = record
        .options
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(option_dto)
        .collect();
    Ok(Json(paginated(items, total, page, &uri, &headers)?))
}

/// Adds an option: the feature becomes MULTIVARIATE and every environment's default state gets the
/// option at `default_percentage_allocation` (default 100).
#[utoipa::path(post, path = "/api/v1/projects/{project}/features/{feature}/mv-options", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path)), request_body = dto::MultivariateOptionRequest,
    responses((status = 201, body = dto::MultivariateOption), (status = 400)))]
async fn create_option(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature)): Path<(Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::MultivariateOption>)> {
    project_for(&state, &actor, project, true).await?;
    feature_of(&state, project, feature).await?;
    let new = option_request(&body).map_err(|e| match e {
        serde_json::Value::Object(map) => ApiError::Fields(map.into_iter().collect()),
        _ => ApiError::BadRequest("Invalid option.".into()),
    })?;
    let change = state
        .store
        .create_option(&actor.author(), feature, &new)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(_) => ApiError::field(
                "default_percentage_allocation",
                "Invalid percentage allocation",
            ),
            other => invalid(other),
        })?;
    after_write(&state, &change.environments).await?;
    Ok((StatusCode::CREATED, Json(option_dto(&change.value))))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{id}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::MultivariateOption), (status = 404)))]
async fn retrieve_option(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature, id)): Path<(Id, Id, Id)>,
) -> ApiResult<Json<dto::MultivariateOption>> {
    project_for(&state, &actor, project, false).await?;
    let record = feature_of(&state, project, feature).await?;
    let option = record
        .options
        .iter()
        .find(|o| o.id == id)
        .ok_or(ApiError::NotFound("Not found."))?;
    Ok(Json(option_dto(option)))
}

async fn change_option(
    actor: Actor,
    state: AppState,
    project: Id,
    feature: Id,
    id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::MultivariateOption>> {
    project_for(&state, &actor, project, true).await?;
    let record = feature_of(&state, project, feature).await?;
    let current = record
        .options
        .iter()
        .find(|o| o.id == id)
        .ok_or(ApiError::NotFound("Not found."))?;
    // Unspecified fields keep their current values.
    let mut merged = serde_json::to_value(option_dto(current)).unwrap_or_default();
    if let (Some(target), Some(given)) = (merged.as_object_mut(), body.as_object()) {
        for (k, v) in given {
            target.insert(k.clone(), v.clone());
        }
    }
    let update = option_request(&merged).map_err(|e| match e {
        serde_json::Value::Object(map) => ApiError::Fields(map.into_iter().collect()),
        _ => ApiError::BadRequest("Invalid option.".into()),
    })?;
    let change = state
        .store
        .update_option(&actor.author(), feature, id, &update)
        .await
        .map_err(|e| match e {
            StoreError::Invalid(_) => ApiError::field(
                "default_percentage_allocation",
                "Invalid percentage allocation",
            ),
            other => invalid(other),
        })?;
    after_write(&state, &change.environments).await?;
    Ok(Json(option_dto(&change.value)))
}

#[utoipa::path(put, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{id}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("id" = i64, Path)),
    request_body = dto::MultivariateOptionRequest,
    responses((status = 200, body = dto::MultivariateOption), (status = 400), (status = 404)))]
async fn update_option(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature, id)): Path<(Id, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::MultivariateOption>> {
    change_option(actor, state, project, feature, id, body).await
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{id}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("id" = i64, Path)),
    request_body = dto::MultivariateOptionRequest,
    responses((status = 200, body = dto::MultivariateOption), (status = 400), (status = 404)))]
async fn partial_update_option(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature, id)): Path<(Id, Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::MultivariateOption>> {
    change_option(actor, state, project, feature, id, body).await
}

/// Deletes an option (and its allocations); with none left the feature is STANDARD again.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/features/{feature}/mv-options/{id}", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
async fn destroy_option(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature, id)): Path<(Id, Id, Id)>,
) -> ApiResult<StatusCode> {
    project_for(&state, &actor, project, true).await?;
    feature_of(&state, project, feature).await?;
    let change = state
        .store
        .delete_option(&actor.author(), feature, id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Daily evaluation counts of a feature in an environment (`?environment_id=`: id or client key).
#[utoipa::path(get, path = "/api/v1/projects/{project}/features/{feature}/evaluation-data", tag = "features",
    params(("project" = i64, Path), ("feature" = i64, Path), ("environment_id" = String, Query)),
    responses((status = 200, body = Vec<dto::EvaluationCount>), (status = 400)))]
async fn evaluation_data(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, feature)): Path<(Id, Id)>,
    params: Params,
) -> ApiResult<Json<Vec<dto::EvaluationCount>>> {
    project_for(&state, &actor, project, false).await?;
    let Some(environment) = params.get("environment_id") else {
        return Err(ApiError::field("environment_id", "This field is required."));
    };
    let environment = match environment.parse::<Id>() {
        Ok(id) => environment_by_id(&state, &actor, id, "environment_id", false).await?,
        Err(_) => environment_for(&state, &actor, environment, false).await?.0,
    };
    let counts = state
        .store
        .evaluation_counts(environment.id, feature)
        .await?;
    Ok(Json(
        counts
            .into_iter()
            .map(|(day, count)| dto::EvaluationCount { day, count })
            .collect(),
    ))
}
