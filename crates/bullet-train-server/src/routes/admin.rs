//! Admin routes of the server core: environment document import and export, server-side keys, and
//! flag evaluation counts. Every route needs the admin token.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bullet_train_protocol::EnvironmentDocument;
use bullet_train_store::model::{Id, ServerKey};
use bullet_train_store::time::{iso, parse_iso};
use bullet_train_store::{ServerKeyUpdate, random};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{Admin, JsonBody, Params};
use crate::registry::key_hash;
use crate::routes::json_bytes;
use crate::state::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/environments/{key}/document",
            get(export_document).put(import_document),
        )
        .route(
            "/api/v1/environments/{key}/api-keys",
            get(list_keys).post(create_key),
        )
        .route(
            "/api/v1/environments/{key}/api-keys/{id}",
            get(get_key)
                .put(update_key)
                .patch(update_key)
                .delete(delete_key),
        )
        .route(
            "/api/v1/projects/{project}/features/{feature}/evaluation-data",
            get(evaluation_data),
        )
}

/// The id of the environment with this client key.
async fn environment_id(state: &AppState, key: &str) -> ApiResult<Id> {
    match state.store.environment_by_key(key).await {
        Ok(environment) => Ok(environment.id),
        Err(bullet_train_store::StoreError::NotFound) => Err(ApiError::NotFound("Not found.")),
        Err(e) => Err(e.into()),
    }
}

async fn export_document(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let id = environment_id(&state, &key).await?;
    let environment = match state.registry.environment(id) {
        Some(environment) => environment,
        None => state.registry.refresh(id).await?,
    };
    Ok(json_bytes(
        StatusCode::OK,
        environment.snapshot().document.clone(),
    ))
}

async fn import_document(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let document: EnvironmentDocument = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("Invalid environment document: {e}")))?;
    if document.api_key != key {
        return Err(ApiError::field(
            "api_key",
            "Does not match the environment key in the path.",
        ));
    }
    let outcome = state.store.import_document(&document).await?;
    // A new feature gives every environment of the project a state: refresh them all.
    for environment in state.store.environments().await? {
        if environment.project_id == outcome.project_id {
            state.registry.refresh(environment.id).await?;
        }
    }
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

fn key_json(key: &ServerKey, secret: Option<&str>) -> Value {
    json!({
        "id": key.id,
        "key": secret,
        "prefix": key.prefix,
        "name": key.name,
        "active": key.active,
        "created_at": iso(key.created_at),
        "expires_at": key.expires_at.map(iso),
    })
}

/// Reads `expires_at`: an ISO 8601 datetime or null.
fn expires_at(value: Option<&Value>, errors: &mut FieldErrors) -> Option<Option<i64>> {
    match value {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => match parse_iso(s) {
            Some(t) => Some(Some(t)),
            None => {
                errors.insert(
                    "expires_at".into(),
                    json!(["Datetime has wrong format. Use ISO 8601."]),
                );
                None
            }
        },
        Some(_) => {
            errors.insert(
                "expires_at".into(),
                json!(["Datetime has wrong format. Use ISO 8601."]),
            );
            None
        }
    }
}

fn key_name(value: Option<&Value>, required: bool, errors: &mut FieldErrors) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 200 => {
            Some(s.clone())
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.insert("name".into(), json!(["This field may not be blank."]));
            None
        }
        Some(Value::String(_)) => {
            errors.insert(
                "name".into(),
                json!(["Ensure this field has no more than 200 characters."]),
            );
            None
        }
        None | Some(Value::Null) if !required => None,
        None | Some(Value::Null) => {
            errors.insert("name".into(), json!(["This field is required."]));
            None
        }
        Some(_) => {
            errors.insert("name".into(), json!(["Not a valid string."]));
            None
        }
    }
}

async fn create_key(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Response> {
    let environment = environment_id(&state, &key).await?;
    let mut errors = FieldErrors::new();
    let name = key_name(body.get("name"), true, &mut errors);
    let expires = expires_at(body.get("expires_at"), &mut errors).flatten();
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Fields(errors));
    };
    let secret = random::server_key();
    let stored = state
        .store
        .create_server_key(
            environment,
            &name,
            &hex::encode(key_hash(&secret)),
            &secret[..8],
            expires,
        )
        .await?;
    state.registry.refresh_keys().await?;
    Ok((StatusCode::CREATED, Json(key_json(&stored, Some(&secret)))).into_response())
}

async fn list_keys(
    _: Admin,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let environment = environment_id(&state, &key).await?;
    let keys = state.store.server_keys(Some(environment)).await?;
    Ok(Json(Value::Array(
        keys.iter().map(|k| key_json(k, None)).collect(),
    )))
}

async fn get_key(
    _: Admin,
    State(state): State<AppState>,
    Path((key, id)): Path<(String, Id)>,
) -> ApiResult<Json<Value>> {
    let environment = environment_id(&state, &key).await?;
    let keys = state.store.server_keys(Some(environment)).await?;
    let found = keys
        .iter()
        .find(|k| k.id == id)
        .ok_or(ApiError::NotFound("Not found."))?;
    Ok(Json(key_json(found, None)))
}

async fn update_key(
    _: Admin,
    State(state): State<AppState>,
    Path((key, id)): Path<(String, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let environment = environment_id(&state, &key).await?;
    let mut errors = FieldErrors::new();
    let name = key_name(body.get("name"), false, &mut errors);
    let active = match body.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errors.insert("active".into(), json!(["Must be a valid boolean."]));
            None
        }
    };
    let expires = expires_at(body.get("expires_at"), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let updated = state
        .store
        .update_server_key(
            environment,
            id,
            ServerKeyUpdate {
                name,
                active,
                expires_at: expires,
            },
        )
        .await?;
    state.registry.refresh_keys().await?;
    Ok(Json(key_json(&updated, None)))
}

async fn delete_key(
    _: Admin,
    State(state): State<AppState>,
    Path((key, id)): Path<(String, Id)>,
) -> ApiResult<StatusCode> {
    let environment = environment_id(&state, &key).await?;
    state.store.delete_server_key(environment, id).await?;
    state.registry.refresh_keys().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `[{"day": "YYYY-MM-DD", "count": n}]` for a feature in an environment (`?environment_id=` takes the
/// numeric id or the client key).
async fn evaluation_data(
    _: Admin,
    State(state): State<AppState>,
    Path((_project, feature)): Path<(Id, Id)>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let Some(environment) = params.get("environment_id") else {
        return Err(ApiError::field("environment_id", "This field is required."));
    };
    let environment = match environment.parse::<Id>() {
        Ok(id) => id,
        Err(_) => environment_id(&state, environment).await?,
    };
    let counts = state.store.evaluation_counts(environment, feature).await?;
    Ok(Json(Value::Array(
        counts
            .into_iter()
            .map(|(day, count)| json!({ "day": day, "count": count }))
            .collect(),
    )))
}
