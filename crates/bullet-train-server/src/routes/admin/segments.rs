//! Segments: `/api/v1/projects/{project}/segments/`, with nested ALL/ANY/NONE rules and conditions on
//! every operator of the engine.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use bullet_train_protocol::admin as dto;
use bullet_train_store::admin::{NewSegment, SegmentQuery};
use bullet_train_store::model::{Condition, Id, Rule};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    Form, MAX_NAME, MAX_TEXT, after_write, invalid, page_of, paginated, project_for, segment_dto,
};
use crate::auth::Actor;
use crate::error::ApiResult;
use crate::extract::{JsonBody, Params, Path};
use crate::state::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(retrieve, update, partial_update, destroy))
}

/// The operators segment conditions may use.
pub(crate) const OPERATORS: [&str; 14] = [
    "EQUAL",
    "GREATER_THAN",
    "LESS_THAN",
    "LESS_THAN_INCLUSIVE",
    "CONTAINS",
    "GREATER_THAN_INCLUSIVE",
    "NOT_CONTAINS",
    "NOT_EQUAL",
    "REGEX",
    "PERCENTAGE_SPLIT",
    "MODULO",
    "IS_SET",
    "IS_NOT_SET",
    "IN",
];
/// Most conditions in one segment.
const MAX_CONDITIONS: usize = 100;
/// Deepest nesting of rules.
const MAX_DEPTH: usize = 8;

/// Reads rules; errors are returned in DRF's nested shape (one object per rule).
pub(crate) fn read_rules(raw: &Value, depth: usize, count: &mut usize) -> Result<Vec<Rule>, Value> {
    let Some(items) = raw.as_array() else {
        return Err(json!(["Expected a list of items but got type \"dict\"."]));
    };
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut failed = false;
    for item in items {
        if item.get("delete").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        match read_rule(item, depth, count) {
            Ok(rule) => {
                rules.push(rule);
                errors.push(json!({}));
            }
            Err(e) => {
                failed = true;
                errors.push(e);
            }
        }
    }
    if failed {
        Err(Value::Array(errors))
    } else {
        Ok(rules)
    }
}

fn read_rule(raw: &Value, depth: usize, count: &mut usize) -> Result<Rule, Value> {
    let Some(map) = raw.as_object() else {
        return Err(json!({"non_field_errors": ["Invalid data. Expected a dictionary."]}));
    };
    let mut errors = serde_json::Map::new();
    let rule_type = match map.get("type").and_then(Value::as_str) {
        Some(t @ ("ALL" | "ANY" | "NONE")) => t.to_owned(),
        Some(other) => {
            errors.insert(
                "type".into(),
                json!([format!("\"{other}\" is not a valid choice.")]),
            );
            String::new()
        }
        None => {
            errors.insert("type".into(), json!(["This field is required."]));
            String::new()
        }
    };
    let rules = match map.get("rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(_) if depth >= MAX_DEPTH => {
            errors.insert(
                "rules".into(),
                json!([format!("Rules may nest at most {MAX_DEPTH} levels.")]),
            );
            Vec::new()
        }
        Some(raw) => read_rules(raw, depth + 1, count).unwrap_or_else(|e| {
            errors.insert("rules".into(), e);
            Vec::new()
        }),
    };
    let mut conditions = Vec::new();
    match map.get("conditions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut condition_errors = Vec::new();
            let mut failed = false;
            for item in items {
                if item.get("delete").and_then(Value::as_bool) == Some(true) {
                    continue;
                }
                *count += 1;
                match read_condition(item) {
                    Ok(c) => {
                        conditions.push(c);
                        condition_errors.push(json!({}));
                    }
                    Err(e) => {
                        failed = true;
                        condition_errors.push(e);
                    }
                }
            }
            if failed {
                errors.insert("conditions".into(), Value::Array(condition_errors));
            }
        }
        Some(_) => {
            errors.insert("conditions".into(), json!(["Expected a list of items."]));
        }
    }
    if errors.is_empty() {
        Ok(Rule {
            rule_type,
            rules,
            conditions,
        })
    } else {
        Err(Value::Object(errors))
    }
}

fn read_condition(raw: &Value) -> Result<Condition, Value> {
    let Some(map) = raw.as_object() else {
        return Err(json!({"non_field_errors": ["Invalid data. Expected a dictionary."]}));
    };
    let mut errors = serde_json::Map::new();
    let operator = match map.get("operator").and_then(Value::as_str) {
        Some(op) if OPERATORS.contains(&op) => op.to_owned(),
        Some(other) => {
            errors.insert(
                "operator".into(),
                json!([format!("\"{other}\" is not a valid choice.")]),
            );
            String::new()
        }
        None => {
            errors.insert("operator".into(), json!(["This field is required."]));
            String::new()
        }
    };
    let property = match map.get("property") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 1000 => s.clone(),
        Some(Value::String(_)) => {
            errors.insert(
                "property".into(),
                json!(["Ensure this field has no more than 1000 characters."]),
            );
            String::new()
        }
        Some(_) => {
            errors.insert("property".into(), json!(["Not a valid string."]));
            String::new()
        }
    };
    if property.trim().is_empty()
        && operator != "PERCENTAGE_SPLIT"
        && !errors.contains_key("operator")
    {
        errors.insert("property".into(), json!(["This field may not be blank."]));
    }
    // Values are kept as text (numbers and booleans in their text form).
    let value = match map.get("value") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_TEXT => Some(s.clone()),
        Some(Value::Bool(b)) => Some(if *b { "True" } else { "False" }.to_owned()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            errors.insert("value".into(), json!(["Not a valid string."]));
            None
        }
    };
    let description = map
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if errors.is_empty() {
        Ok(Condition {
            operator,
            property,
            value,
            description,
        })
    } else {
        Err(Value::Object(errors))
    }
}

/// Reads a whole segment (create or full replacement).
fn segment_request(body: &Value) -> ApiResult<NewSegment> {
    let mut form = Form::new(body)?;
    let name = form.text("name", MAX_NAME);
    let description = form.optional_text("description", MAX_TEXT).flatten();
    let feature = form.integer("feature");
    let mut count = 0;
    let rules = match form.raw("rules") {
        None | Some(Value::Null) => {
            form.error("rules", "This field is required.");
            Vec::new()
        }
        Some(raw) => match read_rules(raw, 0, &mut count) {
            Ok(rules) => rules,
            Err(e) => {
                form.nested("rules", e);
                Vec::new()
            }
        },
    };
    if form
        .raw("rules")
        .is_some_and(|r| r.as_array().is_some_and(Vec::is_empty))
    {
        form.error("rules", "Segment cannot be created without any rules.");
    }
    if count > MAX_CONDITIONS {
        form.error(
            "segment",
            format!("The segment has {count} conditions, which exceeds the maximum condition count of {MAX_CONDITIONS}."),
        );
    }
    form.finish()?;
    Ok(NewSegment {
        name: name.unwrap_or_default(),
        description,
        feature_id: feature,
        rules,
    })
}

/// The project's segments (`?q=` searches names).
#[utoipa::path(get, path = "/api/v1/projects/{project}/segments", tag = "segments",
    params(("project" = i64, Path), ("q" = Option<String>, Query), ("page" = Option<u64>, Query),
        ("page_size" = Option<u64>, Query)),
    responses((status = 200, body = dto::Paginated<dto::Segment>), (status = 404)))]
async fn list(
    actor: Actor,
    State(state): State<AppState>,
    Path(project): Path<Id>,
    params: Params,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Json<dto::Paginated<dto::Segment>>> {
    project_for(&state, &actor, project, false).await?;
    let page = page_of(&params, 999)?;
    let segments = state
        .store
        .segments(
            project,
            &SegmentQuery {
                search: params.get("q").map(str::to_owned),
                page: Some(page),
            },
        )
        .await?;
    let items = segments.items.iter().map(segment_dto).collect();
    Ok(Json(paginated(
        items,
        segments.total,
        page,
        &uri,
        &headers,
    )?))
}

/// Creates a segment.
#[utoipa::path(post, path = "/api/v1/projects/{project}/segments", tag = "segments",
    params(("project" = i64, Path)), request_body = dto::SegmentRequest,
    responses((status = 201, body = dto::Segment), (status = 400)))]
async fn create(
    actor: Actor,
    State(state): State<AppState>,
    Path(project): Path<Id>,
    JsonBody(body): JsonBody,
) -> ApiResult<(StatusCode, Json<dto::Segment>)> {
    project_for(&state, &actor, project, true).await?;
    let new = segment_request(&body)?;
    let change = state
        .store
        .create_segment(&actor.author(), project, &new)
        .await
        .map_err(|e| super::must_exist("feature", e))?;
    after_write(&state, &change.environments).await?;
    Ok((StatusCode::CREATED, Json(segment_dto(&change.value))))
}

#[utoipa::path(get, path = "/api/v1/projects/{project}/segments/{id}", tag = "segments",
    params(("project" = i64, Path), ("id" = i64, Path)),
    responses((status = 200, body = dto::Segment), (status = 404)))]
async fn retrieve(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
) -> ApiResult<Json<dto::Segment>> {
    project_for(&state, &actor, project, false).await?;
    Ok(Json(segment_dto(&state.store.segment(project, id).await?)))
}

async fn change(
    actor: Actor,
    state: AppState,
    project: Id,
    id: Id,
    body: Value,
    partial: bool,
) -> ApiResult<Json<dto::Segment>> {
    project_for(&state, &actor, project, true).await?;
    let current = state.store.segment(project, id).await?;
    let body = if partial {
        // Unspecified fields keep their current values.
        let mut merged = serde_json::to_value(segment_dto(&current)).unwrap_or_default();
        if let (Some(target), Some(given)) = (merged.as_object_mut(), body.as_object()) {
            for (k, v) in given {
                target.insert(k.clone(), v.clone());
            }
        }
        merged
    } else {
        body
    };
    let update = segment_request(&body)?;
    let change = state
        .store
        .update_segment(&actor.author(), project, id, &update)
        .await
        .map_err(invalid)?;
    after_write(&state, &change.environments).await?;
    Ok(Json(segment_dto(&change.value)))
}

/// Replaces a segment (rules are written in full).
#[utoipa::path(put, path = "/api/v1/projects/{project}/segments/{id}", tag = "segments",
    params(("project" = i64, Path), ("id" = i64, Path)), request_body = dto::SegmentRequest,
    responses((status = 200, body = dto::Segment), (status = 400), (status = 404)))]
async fn update(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Segment>> {
    change(actor, state, project, id, body, false).await
}

#[utoipa::path(patch, path = "/api/v1/projects/{project}/segments/{id}", tag = "segments",
    params(("project" = i64, Path), ("id" = i64, Path)), request_body = dto::SegmentRequest,
    responses((status = 200, body = dto::Segment), (status = 400), (status = 404)))]
async fn partial_update(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<dto::Segment>> {
    change(actor, state, project, id, body, true).await
}

/// Deletes a segment and its overrides.
#[utoipa::path(delete, path = "/api/v1/projects/{project}/segments/{id}", tag = "segments",
    params(("project" = i64, Path), ("id" = i64, Path)), responses((status = 204), (status = 404)))]
async fn destroy(
    actor: Actor,
    State(state): State<AppState>,
    Path((project, id)): Path<(Id, Id)>,
) -> ApiResult<StatusCode> {
    project_for(&state, &actor, project, true).await?;
    let change = state
        .store
        .delete_segment(&actor.author(), project, id)
        .await?;
    after_write(&state, &change.environments).await?;
    Ok(StatusCode::NO_CONTENT)
}
