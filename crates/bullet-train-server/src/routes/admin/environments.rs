//! Environments (`/api/v1/environments/`, addressed by client key), and what hangs off one: cloning,
//! the environment document (import and export), server-side keys, webhooks and their deliveries,
//! and evaluating an identity with the reason for each flag.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use bullet_train_engine::{Identity, IdentityOverride};
use bullet_train_protocol::admin as dto;
use bullet_train_protocol::{EnvironmentDocument, Value};
use bullet_train_store::admin::{EnvironmentUpdate, NewEnvironment, NewWebhook};
use bullet_train_store::document::to_export;
use bullet_train_store::model::{Id, ServerKey, Webhook};
use bullet_train_store::time::iso;
use bullet_train_store::{ServerKeyUpdate, random};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Form, MAX_NAME, MAX_TEXT, after_write, environment_dto, environment_for, must_exist, page_of,
    paginated, project_for,
};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::registry::key_hash;
use crate::routes::json_bytes;
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, update, partial_update, destroy))
        .routes(routes!(clone))
        .routes(routes!(export_document, import_document))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, update_key, partial_update_key, delete_key))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(
            update_webhook,
            partial_update_webhook,
            delete_webhook
        ))
        .routes(routes!(webhook_deliveries))
        .routes(routes!(evaluate))
}

/// The environments of a project (`?project=` is required), 10 per page.
#[utoipa::path(get, path = "/api/v1/environments", tag = "environments",
    params(("project" = i64, Query), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Environment>), (status = 400)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Environment>>> {
    let invalid = || ApiError::BadRequest("Invalid or missing value for project parameter.".into());
    let project: Id = params
        .get("project")
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    project_for(&state, &actor, project, false)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => invalid(),
            other => other,
        })?;
    let page = page_of(&params, 10)?;
    let environments = state.store.project_environments(project).await?;
    let total = environments.len() as u64;
    let items = environments
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(environment_dto)
        .collect();
    Ok(Json(paginated(items, total, page, &uri, &headers)?))
}

/// Reads the settings of an environment request.
fn settings(form: &mut Form<'_>) -> EnvironmentUpdate {
    EnvironmentUpdate {
        name: form.changed_text("name", MAX_NAME),
        description: form.optional_text("description", MAX_TEXT),
        allow_client_traits: form.flag("allow_client_traits"),
        hide_sensitive_data: form.flag("hide_sensitive_data"),
        hide_disabled_flags: form.nullable_flag("hide_disabled_flags"),
        use_identity_composite_key_for_hashing: form.flag("use_identity_composite_key_for_hashing"),
        use_identity_overrides_in_local_eval: form.flag("use_identity_overrides_in_local_eval"),
    }
}

async fn name_taken(
    state: &AppState,
    project: Id,
    name: &str,
    except: Option<Id>,
) -> ApiResult<bool> {
    Ok(state
        .store
        .project_environments(project)
        .await?
        .iter()
        .any(|e| e.name == name && Some(e.id) != except))
}

/// Creates an environment; every feature of the project gets its default state there.
#[utoipa::path(post, path = "/api/v1/environments", tag = "environments",
    request_body = dto::EnvironmentRequest,
    responses((status = 201, body = dto::Environment), (status = 400)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Environment>)> {
    let mut form = Form::new(&body)?;
    let name = form.text("name", MAX_NAME);
    let project = form.required_integer("project");
    let settings = settings(&mut form);
    form.finish()?;
    let (Some(name), Some(project)) = (name, project) else {
        return Err(ApiError::BadRequest("Invalid environment.".into()));
    };
    let project = state
        .store
        .project(project)
        .await
        .map_err(|e| must_exist("project", e))?;
    actor.write(project.organisation_id)?;
    if name_taken(&state, project.id, &name, None).await? {
        return Err(ApiError::field(
            "non_field_errors",
            "An environment with this name already exists.",
        ));
    }
    let environment = state
        .store
        .create_environment(
            &actor.author(),
            &NewEnvironment {
                project_id: project.id,
                name,
                description: settings.description.clone().flatten(),
                settings,
            },
        )
        .await?;
    after_write(&state, &[environment.id]).await?;
    Ok((StatusCode::CREATED, Json(environment_dto(&environment))))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 200, body = dto::Environment), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<Json<dto::Environment>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    Ok(Json(environment_dto(&environment)))
}

async fn change(
    actor: Actor,
    state: AppState,
    api_key: String,
    body: serde_json::Value,
) -> ApiResult<Json<dto::Environment>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let update = settings(&mut form);
    form.finish()?;
    if let Some(name) = &update.name
        && name_taken(&state, environment.project_id, name, Some(environment.id)).await?
    {
        return Err(ApiError::field(
            "non_field_errors",
            "An environment with this name already exists.",
        ));
    }
    let updated = state
        .store
        .update_environment(&actor.author(), environment.id, &update)
        .await?;
    after_write(&state, &[environment.id]).await?;
    Ok(Json(environment_dto(&updated)))
}

/// Changes an environment's name, description or settings.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), request_body = dto::EnvironmentRequest,
    responses((status = 200, body = dto::Environment), (status = 400), (status = 404)))]
async fn update(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Environment>> {
    change(actor, state, api_key, body).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), request_body = dto::EnvironmentRequest,
    responses((status = 200, body = dto::Environment), (status = 400), (status = 404)))]
async fn partial_update(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Environment>> {
    change(actor, state, api_key, body).await
}

/// Deletes an environment; its keys stop working and its event streams end.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<StatusCode> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    state
        .store
        .delete_environment(&actor.author(), environment.id)
        .await?;
    after_write(&state, &[environment.id]).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a new environment of the same project with this one's states and segment overrides.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/clone", tag = "environments",
    params(("api_key" = String, Path)), request_body = dto::EnvironmentRequest,
    responses((status = 200, body = dto::Environment), (status = 400)))]
async fn clone(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Environment>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let name = form.text("name", MAX_NAME);
    form.finish()?;
    let name = name.unwrap_or_default();
    if name_taken(&state, environment.project_id, &name, None).await? {
        return Err(ApiError::field(
            "non_field_errors",
            "An environment with this name already exists.",
        ));
    }
    let clone = state
        .store
        .clone_environment(&actor.author(), environment.id, &name)
        .await?;
    after_write(&state, &[clone.id]).await?;
    Ok(Json(environment_dto(&clone)))
}

/// The Flagsmith environment document of the environment, with every identity override (even when
/// `use_identity_overrides_in_local_eval` keeps them out of the SDK document).
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/document", tag = "environments",
    params(("api_key" = String, Path)),
    responses((status = 200, description = "A Flagsmith environment document"), (status = 404)))]
async fn export_document(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<Response> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    if !environment.use_identity_overrides_in_local_eval {
        // The SDK document leaves identity overrides out; an export keeps them.
        let data = state.store.environment_export(environment.id).await?;
        let body = serde_json::to_vec(&to_export(&data))
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("document: {e}")))?;
        return Ok(json_bytes(StatusCode::OK, body));
    }
    let loaded = match state.registry.environment(environment.id) {
        Some(loaded) => loaded,
        None => state.registry.refresh(environment.id).await?,
    };
    Ok(json_bytes(
        StatusCode::OK,
        loaded.snapshot().document.clone(),
    ))
}

/// Creates the environment of a Flagsmith environment document (and its project and organisation
/// when new), or atomically replaces its whole content, keeping the document's hashing seeds. The
/// document's `api_key` must be the one in the path. Creating needs the admin token.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}/document", tag = "environments",
    params(("api_key" = String, Path)),
    request_body(description = "A Flagsmith environment document", content_type = "application/json"),
    responses((status = 200, description = "Replaced; the new document"),
        (status = 201, description = "Created; the new document"), (status = 400)))]
async fn import_document(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    match state.store.environment_by_key(&api_key).await {
        Ok(environment) => {
            let project = state.store.project(environment.project_id).await?;
            actor.write(project.organisation_id)?;
        }
        Err(bullet_train_store::StoreError::NotFound) => actor.superuser()?,
        Err(e) => return Err(e.into()),
    }
    let document: EnvironmentDocument = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("Invalid environment document: {e}")))?;
    if document.api_key != api_key {
        return Err(ApiError::field(
            "api_key",
            "Does not match the environment key in the path.",
        ));
    }
    let outcome = state
        .store
        .import_document_by(&actor.author(), &document)
        .await?;
    // A new feature gives every environment of the project a state: refresh them all.
    let environments: Vec<Id> = state
        .store
        .project_environments(outcome.project_id)
        .await?
        .iter()
        .map(|e| e.id)
        .collect();
    after_write(&state, &environments).await?;
    let environment = state
        .registry
        .environment(outcome.environment_id)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("imported environment not loaded")))?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_bytes(status, environment.snapshot().document.clone()))
}

fn key_dto(key: &ServerKey, secret: Option<&str>) -> dto::ServerKey {
    dto::ServerKey {
        id: key.id,
        key: secret.map(str::to_owned),
        prefix: key.prefix.clone(),
        name: key.name.clone(),
        active: key.active,
        created_at: iso(key.created_at),
        expires_at: key.expires_at.map(iso),
    }
}

/// The environment's server-side keys (only their prefixes).
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/api-keys", tag = "environments",
    params(("api_key" = String, Path)), responses((status = 200, body = Vec<dto::ServerKey>)))]
async fn list_keys(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<Json<Vec<dto::ServerKey>>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let keys = state.store.server_keys(Some(environment.id)).await?;
    Ok(Json(keys.iter().map(|k| key_dto(k, None)).collect()))
}

/// Creates a server-side key (`ser.`...); the key is in this response only.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/api-keys", tag = "environments",
    params(("api_key" = String, Path)), request_body = dto::ServerKeyRequest,
    responses((status = 201, body = dto::ServerKey), (status = 400)))]
async fn create_key(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::ServerKey>)> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let name = form.text("name", 200);
    let expires_at = form.datetime("expires_at").flatten();
    form.finish()?;
    let secret = random::server_key();
    let stored = state
        .store
        .create_server_key(
            &actor.author(),
            environment.id,
            &name.unwrap_or_default(),
            &hex::encode(key_hash(&secret)),
            &secret[..8],
            expires_at,
        )
        .await?;
    state.registry.refresh_keys().await?;
    Ok((StatusCode::CREATED, Json(key_dto(&stored, Some(&secret)))))
}

#[utoipa::path(get, path = "/api/v1/environments/{api_key}/api-keys/{id}", tag = "environments",
    params(("api_key" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::ServerKey), (status = 404)))]
async fn get_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<Json<dto::ServerKey>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let keys = state.store.server_keys(Some(environment.id)).await?;
    let found = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or(ApiError::NotFound("Not found."))?;
    Ok(Json(key_dto(found, None)))
}

async fn change_key(
    actor: Actor,
    state: AppState,
    api_key: String,
    id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::ServerKey>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let mut form = Form::new(&body)?;
    let update = ServerKeyUpdate {
        name: form.changed_text("name", 200),
        active: form.flag("active"),
        expires_at: form.datetime("expires_at"),
    };
    form.finish()?;
    let updated = state
        .store
        .update_server_key(&actor.author(), environment.id, id, update)
        .await?;
    state.registry.refresh_keys().await?;
    Ok(Json(key_dto(&updated, None)))
}

/// Renames, (de)activates or changes the expiry of a server-side key.
#[utoipa::path(put, path = "/api/v1/environments/{api_key}/api-keys/{id}", tag = "environments",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::ServerKeyRequest,
    responses((status = 200, body = dto::ServerKey), (status = 404)))]
async fn update_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::ServerKey>> {
    change_key(actor, state, api_key, id, body).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/api-keys/{id}", tag = "environments",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::ServerKeyRequest,
    responses((status = 200, body = dto::ServerKey), (status = 404)))]
async fn partial_update_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::ServerKey>> {
    change_key(actor, state, api_key, id, body).await
}

/// Revokes a server-side key.
#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/api-keys/{id}", tag = "environments",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn delete_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<StatusCode> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    state
        .store
        .delete_server_key(&actor.author(), environment.id, id)
        .await?;
    state.registry.refresh_keys().await?;
    Ok(StatusCode::NO_CONTENT)
}

fn webhook_dto(w: &Webhook) -> dto::Webhook {
    dto::Webhook {
        id: w.id,
        url: w.url.clone(),
        enabled: w.enabled,
        created_at: iso(w.created_at),
        updated_at: iso(w.updated_at),
        secret: w.secret.clone(),
    }
}

fn webhook_request(body: &serde_json::Value) -> ApiResult<NewWebhook> {
    let mut form = Form::new(body)?;
    let url = form.text("url", 2000);
    if let Some(url) = &url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        form.error("url", "Enter a valid URL.");
    }
    let enabled = form.flag("enabled").unwrap_or(true);
    let secret = form.optional_text("secret", 255).flatten();
    form.finish()?;
    Ok(NewWebhook {
        url: url.unwrap_or_default(),
        enabled,
        secret,
    })
}

/// The environment's webhooks (a plain list).
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/webhooks", tag = "webhooks",
    params(("api_key" = String, Path)), responses((status = 200, body = Vec<dto::Webhook>)))]
async fn list_webhooks(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
) -> ApiResult<Json<Vec<dto::Webhook>>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let webhooks = state.store.webhooks(environment.id).await?;
    Ok(Json(webhooks.iter().map(webhook_dto).collect()))
}

/// Adds a webhook: flag changes are POSTed to `url` (signed with `secret` when set).
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/webhooks", tag = "webhooks",
    params(("api_key" = String, Path)), request_body = dto::WebhookRequest,
    responses((status = 201, body = dto::Webhook), (status = 400)))]
async fn create_webhook(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Webhook>)> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let new = webhook_request(&body)?;
    let webhook = state
        .store
        .create_webhook(&actor.author(), environment.id, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(webhook_dto(&webhook))))
}

async fn change_webhook(
    actor: Actor,
    state: AppState,
    api_key: String,
    id: Id,
    body: serde_json::Value,
    partial: bool,
) -> ApiResult<Json<dto::Webhook>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    let current = state
        .store
        .webhooks(environment.id)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or(ApiError::NotFound("Not found."))?;
    let mut merged =
        json!({"url": current.url, "enabled": current.enabled, "secret": current.secret});
    if let (Some(target), Some(given)) = (merged.as_object_mut(), body.as_object()) {
        if !partial {
            target.insert("secret".into(), serde_json::Value::Null);
        }
        for (k, v) in given {
            target.insert(k.clone(), v.clone());
        }
    }
    let update = webhook_request(if body.is_object() { &merged } else { &body })?;
    let webhook = state
        .store
        .update_webhook(&actor.author(), environment.id, id, &update)
        .await?;
    Ok(Json(webhook_dto(&webhook)))
}

#[utoipa::path(put, path = "/api/v1/environments/{api_key}/webhooks/{id}", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::WebhookRequest,
    responses((status = 200, body = dto::Webhook), (status = 404)))]
async fn update_webhook(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Webhook>> {
    change_webhook(actor, state, api_key, id, body, false).await
}

#[utoipa::path(patch, path = "/api/v1/environments/{api_key}/webhooks/{id}", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), request_body = dto::WebhookRequest,
    responses((status = 200, body = dto::Webhook), (status = 404)))]
async fn partial_update_webhook(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Webhook>> {
    change_webhook(actor, state, api_key, id, body, true).await
}

#[utoipa::path(delete, path = "/api/v1/environments/{api_key}/webhooks/{id}", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn delete_webhook(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
) -> ApiResult<StatusCode> {
    let (environment, _) = environment_for(&state, &actor, &api_key, true).await?;
    state
        .store
        .delete_webhook(&actor.author(), environment.id, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a webhook, newest first.
#[utoipa::path(get, path = "/api/v1/environments/{api_key}/webhooks/{id}/deliveries", tag = "webhooks",
    params(("api_key" = String, Path), ("id" = i64, Path), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::WebhookDelivery>), (status = 404)))]
async fn webhook_deliveries(
    actor: Actor,
    State(state): State<AppState>,
    Path((api_key, id)): Path<(String, Id)>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::WebhookDelivery>>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    if !state
        .store
        .webhooks(environment.id)
        .await?
        .iter()
        .any(|w| w.id == id)
    {
        return Err(ApiError::NotFound("Not found."));
    }
    let page = page_of(&params, 10)?;
    let deliveries = state.store.webhook_deliveries(id, page).await?;
    let items = deliveries
        .items
        .iter()
        .map(|d| dto::WebhookDelivery {
            id: d.id,
            event_type: d.event_type.clone(),
            status: d.status.clone(),
            attempts: d.attempts,
            next_attempt_at: (d.status == "pending").then(|| iso(d.next_attempt_at)),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: iso(d.created_at),
            delivered_at: d.delivered_at.map(iso),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(Json(paginated(
        items,
        deliveries.total,
        page,
        &uri,
        &headers,
    )?))
}

/// Evaluates an identity (its stored traits and overrides, with the given traits on top) and
/// explains each flag; nothing is stored.
#[utoipa::path(post, path = "/api/v1/environments/{api_key}/evaluate", tag = "environments",
    params(("api_key" = String, Path)), request_body = dto::EvaluationRequest,
    responses((status = 200, body = dto::EvaluationResponse), (status = 400)))]
async fn evaluate(
    actor: Actor,
    State(state): State<AppState>,
    Path(api_key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::EvaluationResponse>> {
    let (environment, _) = environment_for(&state, &actor, &api_key, false).await?;
    let mut form = Form::new(&body)?;
    let identifier = form.text("identifier", crate::routes::identities::MAX_IDENTIFIER_LEN);
    let mut given: Vec<(String, Value)> = Vec::new();
    match form.raw("traits") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(traits)) => {
            for (key, raw) in traits {
                match crate::routes::identities::trait_value(raw) {
                    Ok(Some(value)) => given.push((key.clone(), value)),
                    Ok(None) => {}
                    Err(message) => form.error("traits", format!("{key}: {message}")),
                }
            }
        }
        Some(_) => form.error("traits", "Expected an object of trait values."),
    }
    form.finish()?;
    let identifier = identifier.unwrap_or_default();
    let loaded = match state.registry.environment(environment.id) {
        Some(loaded) => loaded,
        None => state.registry.refresh(environment.id).await?,
    };
    let snapshot = loaded.snapshot();
    let record = state.store.identity(environment.id, &identifier).await?;
    let mut traits: Vec<(String, Value)> = record
        .as_ref()
        .map(|r| {
            r.traits
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    for (key, value) in given {
        traits.retain(|(k, _)| *k != key);
        traits.push((key, value));
    }
    let refs: Vec<(&str, &Value)> = traits.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let overrides: Vec<IdentityOverride<'_>> = record
        .as_ref()
        .map(|r| {
            r.overrides
                .iter()
                .filter_map(|o| {
                    let position = snapshot.position_of_id(o.feature_id)?;
                    Some(IdentityOverride {
                        feature: &snapshot.features[position].name,
                        enabled: o.enabled,
                        value: &o.value,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let identity = Identity::new(&identifier)
        .with_traits(&refs)
        .with_overrides(&overrides);
    let evaluation = snapshot.engine.evaluate(Some(&identity));
    Ok(Json(dto::EvaluationResponse {
        identifier: identifier.clone(),
        flags: evaluation
            .flags()
            .iter()
            .map(|f| dto::EvaluatedFlag {
                feature: f.name.to_owned(),
                enabled: f.enabled,
                value: f.value.clone(),
                variant: f.variant.map(str::to_owned),
                reason: f.reason.to_string(),
            })
            .collect(),
        segments: evaluation.segment_names().map(str::to_owned).collect(),
    }))
}
