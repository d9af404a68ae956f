//! The audit log: `/api/v1/audit/` (`?project=`, `?environments=`, `?search=`, and Bullet Train's
//! `?from_date=`/`?to_date=`), `/api/v1/projects/{id}/audit/` and `/api/v1/organisations/{id}/audit/`.
//! Every entry names its author (the admin token or an API key) and the object's state before and
//! after the change.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use bullet_train_protocol::admin as dto;
use bullet_train_store::model::{AuditEntry, AuditFilter, Id};
use bullet_train_store::time::{iso_z, parse_iso};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_of, paginated, project_for};
use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(project_log))
        .routes(routes!(organisation_log))
}

/// Every value of a repeated (or comma-separated) integer query parameter.
fn integers(uri: &Uri, name: &str) -> ApiResult<Vec<Id>> {
    let mut out = Vec::new();
    for pair in uri.query().unwrap_or("").split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        if key != name {
            continue;
        }
        for item in value.split("%2C").flat_map(|v| v.split(',')) {
            if item.is_empty() {
                continue;
            }
            out.push(
                item.parse()
                    .map_err(|_| ApiError::field(name, "A valid integer is required."))?,
            );
        }
    }
    Ok(out)
}

fn filter_of(params: &Params, uri: &Uri) -> ApiResult<AuditFilter> {
    let date = |name: &str| -> ApiResult<Option<i64>> {
        match params.get(name) {
            None => Ok(None),
            Some(text) => parse_iso(text)
                .or_else(|| parse_iso(&format!("{text}T00:00:00")))
                .map(Some)
                .ok_or_else(|| ApiError::field(name, "Datetime has wrong format.")),
        }
    };
    Ok(AuditFilter {
        organisation: None,
        project: match params.get("project") {
            Some(p) => Some(
                p.parse()
                    .map_err(|_| ApiError::field("project", "A valid integer is required."))?,
            ),
            None => None,
        },
        environments: integers(uri, "environments")?,
        search: params.get("search").map(str::to_owned),
        object_type: params.get("related_object_type").map(str::to_owned),
        since: date("from_date")?,
        until: date("to_date")?,
    })
}

async fn entries(
    state: &AppState,
    filter: AuditFilter,
    params: &Params,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::AuditLogEntry>>> {
    let page = page_of(params, 999)?;
    let log = state.store.audit_log(&filter, page).await?;
    let mut projects: HashMap<Id, Option<dto::AuditProject>> = HashMap::new();
    let mut environments: HashMap<Id, Option<dto::AuditEnvironment>> = HashMap::new();
    let mut items = Vec::with_capacity(log.items.len());
    for entry in &log.items {
        items.push(entry_dto(state, entry, &mut projects, &mut environments).await);
    }
    Ok(Json(paginated(items, log.total, page, uri, headers)?))
}

async fn entry_dto(
    state: &AppState,
    entry: &AuditEntry,
    projects: &mut HashMap<Id, Option<dto::AuditProject>>,
    environments: &mut HashMap<Id, Option<dto::AuditEnvironment>>,
) -> dto::AuditLogEntry {
    let project = match entry.project_id {
        Some(id) => match projects.get(&id) {
            Some(known) => known.clone(),
            None => {
                let found = state
                    .store
                    .project(id)
                    .await
                    .ok()
                    .map(|p| dto::AuditProject {
                        id: p.id,
                        name: p.name,
                        organisation: p.organisation_id,
                    });
                projects.insert(id, found.clone());
                found
            }
        },
        None => None,
    };
    let environment = match entry.environment_id {
        Some(id) => match environments.get(&id) {
            Some(known) => known.clone(),
            None => {
                let found = state
                    .store
                    .environment(id)
                    .await
                    .ok()
                    .map(|e| dto::AuditEnvironment {
                        id: e.id,
                        name: e.name,
                        api_key: e.api_key,
                    });
                environments.insert(id, found.clone());
                found
            }
        },
        None => None,
    };
    dto::AuditLogEntry {
        id: entry.id,
        created_date: iso_z(entry.created_at),
        log: entry.log.clone(),
        author: Some(dto::AuditAuthor {
            id: None,
            email: entry.author.clone(),
            first_name: String::new(),
            last_name: String::new(),
        }),
        environment,
        project,
        related_object_id: entry.related_object_id,
        related_object_uuid: entry.related_object_uuid.clone(),
        related_object_type: entry.related_object_type.clone(),
        is_system_event: entry.is_system_event,
        previous_state: entry.previous_state.clone(),
        new_state: entry.new_state.clone(),
    }
}

/// Audit entries, newest first, that the caller may see.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("project" = Option<i64>, Query), ("environments" = Option<Vec<i64>>, Query),
        ("search" = Option<String>, Query), ("related_object_type" = Option<String>, Query),
        ("from_date" = Option<String>, Query), ("to_date" = Option<String>, Query),
        ("page" = Option<u64>, Query), ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::AuditLogEntry>)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::AuditLogEntry>>> {
    let mut filter = filter_of(&params, &uri)?;
    if let Some(project) = filter.project {
        project_for(&state, &actor, project, false).await?;
    }
    filter.organisation = actor.organisation();
    entries(&state, filter, &params, &uri, &headers).await
}

/// A project's audit entries, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{id}/audit", tag = "audit",
    params(("id" = i64, Path), ("environments" = Option<Vec<i64>>, Query), ("search" = Option<String>, Query),
        ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::AuditLogEntry>), (status = 404)))]
async fn project_log(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::AuditLogEntry>>> {
    project_for(&state, &actor, id, false).await?;
    let mut filter = filter_of(&params, &uri)?;
    filter.project = Some(id);
    entries(&state, filter, &params, &uri, &headers).await
}

/// An organisation's audit entries, newest first.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/audit", tag = "audit",
    params(("id" = i64, Path), ("search" = Option<String>, Query), ("page" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::AuditLogEntry>), (status = 404)))]
async fn organisation_log(
    actor: Actor,
    State(state): State<AppState>,
    Path(id): Path<Id>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::AuditLogEntry>>> {
    actor.read(id)?;
    state.store.organisation(id).await?;
    let mut filter = filter_of(&params, &uri)?;
    filter.organisation = Some(id);
    entries(&state, filter, &params, &uri, &headers).await
}
