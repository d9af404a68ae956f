//! Projects: `/api/v1/projects/` (a plain list, `?organisation=`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bullet_train_protocol::admin as dto;
use bullet_train_store::admin::{NewProject, ProjectSettings, ProjectUpdate};
use bullet_train_store::model::Id;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Form, MAX_NAME, after_write, must_exist, project_dto, project_for};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, update, partial_update, destroy))
}

/// Projects the caller may see (`?organisation=` filters).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    params(("organisation" = Option<i64>, Query)), responses((status = 200, body = Vec<dto::Project>)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
) -> ApiResult<Json<Vec<dto::Project>>> {
    let organisation = match params.get("organisation") {
        Some(o) => Some(
            o.parse::<Id>()
                .map_err(|_| ApiError::field("organisation", "A valid integer is required."))?,
        ),
        None => actor.organisation(),
    };
    let projects = state.store.projects(organisation).await?;
    Ok(Json(
        projects
            .iter()
            .filter(|p| actor.read(p.organisation_id).is_ok())
            .map(project_dto)
            .collect(),
    ))
}

/// Creates a project in an organisation.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = dto::ProjectRequest,
    responses((status = 201, body = dto::Project), (status = 400)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Project>)> {
    let mut form = Form::new(&body)?;
    let name = form.text("name", MAX_NAME);
    let organisation = form.required_integer("organisation");
    let hide_disabled_flags = form.flag("hide_disabled_flags").unwrap_or(false);
    let enable_realtime_updates = form.flag("enable_realtime_updates").unwrap_or(true);
    let defaults = ProjectSettings::default();
    let settings = ProjectSettings {
        prevent_flag_defaults: form
            .flag("prevent_flag_defaults")
            .unwrap_or(defaults.prevent_flag_defaults),
        only_allow_lower_case_feature_names: form
            .flag("only_allow_lower_case_feature_names")
            .unwrap_or(defaults.only_allow_lower_case_feature_names),
        feature_name_regex: name_regex(&mut form).flatten(),
        stale_flags_limit_days: stale_days(&mut form).unwrap_or(defaults.stale_flags_limit_days),
    };
    form.finish()?;
    let (Some(name), Some(organisation)) = (name, organisation) else {
        return Err(ApiError::BadRequest("Invalid project.".into()));
    };
    state
        .store
        .organisation(organisation)
        .await
        .map_err(|e| must_exist("organisation", e))?;
    actor.write(organisation)?;
    let taken = state
        .store
        .projects(Some(organisation))
        .await?
        .iter()
        .any(|p| p.name == name);
    if taken {
        return Err(ApiError::field(
            "non_field_errors",
            "A project with this name already exists.",
        ));
    }
    let project = state
        .store
        .create_project(
            &actor.author(),
            &NewProject {
                organisation_id: organisation,
                name,
                hide_disabled_flags,
                enable_realtime_updates,
                settings,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(project_dto(&project))))
}

#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    responses((status = 200, body = dto::Project), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
) -> ApiResult<Json<dto::Project>> {
    Ok(Json(project_dto(
        &project_for(&state, &actor, id, false).await?,
    )))
}

async fn change(
    actor: Actor,
    state: AppState,
    id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::Project>> {
    project_for(&state, &actor, id, true).await?;
    let mut form = Form::new(&body)?;
    let update = ProjectUpdate {
        name: form.changed_text("name", MAX_NAME),
        hide_disabled_flags: form.flag("hide_disabled_flags"),
        enable_realtime_updates: form.flag("enable_realtime_updates"),
        prevent_flag_defaults: form.flag("prevent_flag_defaults"),
        only_allow_lower_case_feature_names: form.flag("only_allow_lower_case_feature_names"),
        feature_name_regex: name_regex(&mut form),
        stale_flags_limit_days: stale_days(&mut form),
    };
    form.finish()?;
    let change = state
        .store
        .update_project(&actor.author(), id, &update)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(Json(project_dto(&change.value)))
}

#[utoipa::path(put, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    request_body = dto::ProjectRequest, responses((status = 200, body = dto::Project), (status = 400)))]
async fn update(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Project>> {
    change(actor, state, id, body).await
}

#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    request_body = dto::ProjectRequest, responses((status = 200, body = dto::Project), (status = 400)))]
async fn partial_update(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Project>> {
    change(actor, state, id, body).await
}

/// Deletes a project with its features, segments and environments.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
) -> ApiResult<StatusCode> {
    project_for(&state, &actor, id, true).await?;
    let change = state.store.delete_project(&actor.author(), id).await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `feature_name_regex`: absent `None`, null or blank `Some(None)`; a pattern must compile.
fn name_regex(form: &mut Form<'_>) -> Option<Option<String>> {
    let pattern = form.optional_text("feature_name_regex", MAX_NAME)?;
    if let Some(p) = &pattern
        && let Err(e) = regex::Regex::new(p)
    {
        form.error(
            "feature_name_regex",
            format!("Invalid regular expression: {e}"),
        );
        return None;
    }
    Some(pattern)
}

/// `stale_flags_limit_days`: a positive number of days.
fn stale_days(form: &mut Form<'_>) -> Option<i64> {
    let days = form.integer("stale_flags_limit_days")?;
    if days < 1 {
        form.error(
            "stale_flags_limit_days",
            "Ensure this value is greater than or equal to 1.",
        );
        return None;
    }
    Some(days)
}
