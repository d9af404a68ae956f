//! Organisations and their API keys: `/api/v1/organisations/` and
//! `/api/v1/organisations/{id}/master-api-keys/`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bullet_train_protocol::admin as dto;
use bullet_train_store::admin::{ApiKeyUpdate, NewApiKey, NewOrganisation, OrganisationUpdate};
use bullet_train_store::model::{ApiKey, Id};
use bullet_train_store::random;
use bullet_train_store::time::{iso_z, now_micros};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Form, MAX_NAME, after_write, organisation_dto, page_of, paginated};
use crate::auth::{Actor, api_key_hash};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params, Path};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, update, partial_update, destroy))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(
            retrieve_key,
            update_key,
            partial_update_key,
            destroy_key
        ))
}

/// Organisations the caller may see, 10 per page.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "organisations",
    params(("page" = Option<u64>, Query), ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Organisation>), (status = 401)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Organisation>>> {
    let page = page_of(&params, 10)?;
    let all: Vec<_> = state
        .store
        .organisations()
        .await?
        .into_iter()
        .filter(|o| actor.read(o.id).is_ok())
        .collect();
    let total = all.len() as u64;
    let items = all
        .iter()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(organisation_dto)
        .collect();
    Ok(Json(paginated(items, total, page, &uri, &headers)?))
}

/// Creates an organisation (admin token only).
#[utoipa::path(post, path = "/api/v1/organisations", tag = "organisations",
    request_body = dto::OrganisationRequest,
    responses((status = 201, body = dto::Organisation), (status = 400), (status = 403)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Organisation>)> {
    actor.superuser()?;
    let mut form = Form::new(&body)?;
    let name = form.text("name", MAX_NAME);
    form.finish()?;
    let organisation = state
        .store
        .create_organisation(
            &actor.author(),
            &NewOrganisation {
                name: name.unwrap_or_default(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(organisation_dto(&organisation))))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), responses((status = 200, body = dto::Organisation), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
) -> ApiResult<Json<dto::Organisation>> {
    actor.read(id)?;
    Ok(Json(organisation_dto(&state.store.organisation(id).await?)))
}

async fn change(
    actor: Actor,
    state: AppState,
    id: Id,
    body: serde_json::Value,
) -> ApiResult<Json<dto::Organisation>> {
    actor.write(id)?;
    let mut form = Form::new(&body)?;
    let update = OrganisationUpdate {
        name: form.changed_text("name", MAX_NAME),
        persist_trait_data: form.flag("persist_trait_data"),
        feature_analytics: form.flag("feature_analytics"),
        stop_serving_flags: form.flag("stop_serving_flags"),
    };
    form.finish()?;
    let change = state
        .store
        .update_organisation(&actor.author(), id, &update)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(Json(organisation_dto(&change.value)))
}

/// Renames an organisation or changes its settings (`persist_trait_data`, `feature_analytics`,
/// `stop_serving_flags`).
#[utoipa::path(put, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), request_body = dto::OrganisationRequest,
    responses((status = 200, body = dto::Organisation), (status = 400), (status = 404)))]
async fn update(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Organisation>> {
    change(actor, state, id, body).await
}

#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), request_body = dto::OrganisationRequest,
    responses((status = 200, body = dto::Organisation), (status = 400), (status = 404)))]
async fn partial_update(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Organisation>> {
    change(actor, state, id, body).await
}

/// Deletes an organisation with its projects, environments and keys (admin token only).
#[utoipa::path(delete, path = "/api/v1/organisations/{id}", tag = "organisations",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
) -> ApiResult<StatusCode> {
    actor.superuser()?;
    let change = state.store.delete_organisation(&actor.author(), id).await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn key_dto(key: &ApiKey, secret: Option<String>) -> dto::MasterApiKey {
    dto::MasterApiKey {
        id: key.id,
        prefix: key.prefix.clone(),
        created: iso_z(key.created_at),
        name: key.name.clone(),
        revoked: key.revoked,
        expiry_date: key.expires_at.map(iso_z),
        key: secret,
        is_admin: key.is_admin,
        has_expired: key.expires_at.is_some_and(|at| at <= now_micros()),
    }
}

/// The organisation's API keys (admin token only; keys cannot manage keys).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/master-api-keys", tag = "organisations",
    params(("id" = i64, Path)), responses((status = 200, body = dto::Paginated<dto::MasterApiKey>)))]
async fn list_keys(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::MasterApiKey>>> {
    actor.superuser()?;
    state.store.organisation(id).await?;
    let page = page_of(&params, 10)?;
    let keys: Vec<_> = state
        .store
        .api_keys(id)
        .await?
        .into_iter()
        .filter(|k| !k.revoked)
        .collect();
    let total = keys.len() as u64;
    let items = keys
        .iter()
        .rev()
        .skip(page.offset() as usize)
        .take(page.size as usize)
        .map(|k| key_dto(k, None))
        .collect();
    Ok(Json(paginated(items, total, page, &uri, &headers)?))
}

/// Creates an API key; the full key (`<prefix>.<secret>`) is in this response only.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/master-api-keys", tag = "organisations",
    params(("id" = i64, Path)), request_body = dto::MasterApiKeyRequest,
    responses((status = 201, body = dto::MasterApiKey), (status = 400)))]
async fn create_key(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::MasterApiKey>)> {
    actor.superuser()?;
    let mut form = Form::new(&body)?;
    let name = form.text("name", 50);
    let expires_at = form.datetime("expiry_date").flatten();
    let is_admin = form.flag("is_admin").unwrap_or(true);
    form.finish()?;
    let prefix: String = random::token().chars().take(8).collect();
    let full = format!("{prefix}.{}", random::token());
    let key = state
        .store
        .create_api_key(
            &actor.author(),
            id,
            &NewApiKey {
                name: name.unwrap_or_default(),
                prefix,
                key_hash: api_key_hash(&full),
                is_admin,
                expires_at,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key_dto(&key, Some(full)))))
}

async fn key_of(state: &AppState, organisation: Id, prefix: &str) -> ApiResult<ApiKey> {
    state
        .store
        .api_keys(organisation)
        .await?
        .into_iter()
        .find(|k| k.prefix == prefix && !k.revoked)
        .ok_or(ApiError::NotFound("Not found."))
}

#[utoipa::path(get, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}", tag = "organisations",
    params(("id" = i64, Path), ("prefix" = String, Path)),
    responses((status = 200, body = dto::MasterApiKey), (status = 404)))]
async fn retrieve_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((id, prefix)): Path<(Id, String)>,
) -> ApiResult<Json<dto::MasterApiKey>> {
    actor.superuser()?;
    Ok(Json(key_dto(&key_of(&state, id, &prefix).await?, None)))
}

async fn change_key(
    actor: Actor,
    state: AppState,
    id: Id,
    prefix: String,
    body: serde_json::Value,
) -> ApiResult<Json<dto::MasterApiKey>> {
    actor.superuser()?;
    let current = key_of(&state, id, &prefix).await?;
    let mut form = Form::new(&body)?;
    let update = ApiKeyUpdate {
        name: form.changed_text("name", 50),
        revoked: form.flag("revoked"),
        expires_at: form.datetime("expiry_date"),
    };
    if current.revoked && update.revoked == Some(false) {
        form.error(
            "revoked",
            "The API key has been revoked, which cannot be undone.",
        );
    }
    form.finish()?;
    let key = state
        .store
        .update_api_key(&actor.author(), id, &prefix, &update)
        .await?;
    Ok(Json(key_dto(&key, None)))
}

/// Renames a key, changes its expiry, or revokes it (`{"revoked": true}`, irreversible).
#[utoipa::path(put, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}", tag = "organisations",
    params(("id" = i64, Path), ("prefix" = String, Path)), request_body = dto::MasterApiKeyRequest,
    responses((status = 200, body = dto::MasterApiKey), (status = 404)))]
async fn update_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((id, prefix)): Path<(Id, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::MasterApiKey>> {
    change_key(actor, state, id, prefix, body).await
}

#[utoipa::path(patch, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}", tag = "organisations",
    params(("id" = i64, Path), ("prefix" = String, Path)), request_body = dto::MasterApiKeyRequest,
    responses((status = 200, body = dto::MasterApiKey), (status = 404)))]
async fn partial_update_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((id, prefix)): Path<(Id, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::MasterApiKey>> {
    change_key(actor, state, id, prefix, body).await
}

/// Deletes (revokes) a key.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}/master-api-keys/{prefix}", tag = "organisations",
    params(("id" = i64, Path), ("prefix" = String, Path)), responses((status = 204), (status = 404)))]
async fn destroy_key(
    actor: Actor,
    State(state): State<AppState>,
    Path((id, prefix)): Path<(Id, String)>,
) -> ApiResult<StatusCode> {
    actor.superuser()?;
    state
        .store
        .delete_api_key(&actor.author(), id, &prefix)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
