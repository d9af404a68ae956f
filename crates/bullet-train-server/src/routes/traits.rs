//! `POST traits/` (one trait), `PUT traits/bulk/` (many, across identities) and
//! `POST traits/increment-value/`. All create the identity when needed and honour the organisation's
//! `persist_trait_data` and the environment's `allow_client_traits`.

use axum::Json;
use axum::extract::State;
use bullet_train_store::model::{Increment, TraitChange};
use serde_json::{Value as Json_, json};

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::extract::{JsonBody, Sdk};
use crate::routes::identities::{check_identifier, expected_object, trait_key, trait_value};
use crate::snapshot::KeyKind;
use crate::state::AppState;

/// Refuses trait writes the environment does not allow.
pub(crate) fn check_trait_writes(sdk: &Sdk) -> ApiResult<()> {
    if !sdk.snapshot.persist_trait_data {
        return Err(ApiError::Forbidden(
            "Organisation is not authorised to store traits.",
        ));
    }
    if sdk.kind == KeyKind::Client && !sdk.snapshot.allow_client_traits {
        return Err(ApiError::field(
            "non_field_errors",
            "Setting traits not allowed with client key.",
        ));
    }
    Ok(())
}

/// A validated `{"identity": {"identifier"}, "trait_key", "trait_value"}`.
struct TraitWrite {
    identifier: String,
    key: String,
    value: Option<bullet_train_protocol::Value>,
}

fn parse_trait_write(body: &Json_) -> ApiResult<TraitWrite> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::field("non_field_errors", expected_object(body)));
    };
    let mut errors = FieldErrors::new();
    let identifier = match object.get("identity") {
        None | Some(Json_::Null) => {
            errors.insert("identity".into(), json!(["This field is required."]));
            None
        }
        Some(Json_::Object(identity)) => match identity.get("identifier") {
            Some(Json_::String(s)) if !s.is_empty() => {
                if let Err(ApiError::Fields(e)) = check_identifier("identifier", s) {
                    errors.insert("identity".into(), json!(e));
                }
                Some(s.clone())
            }
            Some(Json_::String(_)) => {
                errors.insert(
                    "identity".into(),
                    json!({"identifier": ["This field may not be blank."]}),
                );
                None
            }
            Some(Json_::Null) | None => {
                errors.insert(
                    "identity".into(),
                    json!({"identifier": ["This field is required."]}),
                );
                None
            }
            Some(_) => {
                errors.insert(
                    "identity".into(),
                    json!({"identifier": ["Not a valid string."]}),
                );
                None
            }
        },
        Some(other) => {
            errors.insert(
                "identity".into(),
                json!({"non_field_errors": [expected_object(other)]}),
            );
            None
        }
    };
    let key = trait_key(object.get("trait_key"))
        .map_err(|m| errors.insert("trait_key".into(), json!([m])))
        .ok();
    let value = match object.get("trait_value") {
        None => {
            errors.insert("trait_value".into(), json!(["This field is required."]));
            None
        }
        Some(v) => trait_value(v)
            .map_err(|m| errors.insert("trait_value".into(), json!([m])))
            .ok(),
    };
    match (identifier, key, value) {
        (Some(identifier), Some(key), Some(value)) if errors.is_empty() => Ok(TraitWrite {
            identifier,
            key,
            value,
        }),
        _ => Err(ApiError::Fields(errors)),
    }
}

fn echo(write: &TraitWrite) -> Json_ {
    json!({
        "identity": {"identifier": write.identifier},
        "trait_key": write.key,
        "trait_value": write.value,
    })
}

/// Sets one trait of an identity (created when missing); a null value deletes it.
#[utoipa::path(post, path = "/api/v1/traits", tag = "sdk", security(("environment_key" = [])),
    request_body = bullet_train_protocol::sdk::SetTraitRequest,
    responses((status = 200, body = bullet_train_protocol::sdk::SetTraitRequest), (status = 400), (status = 403)))]
pub(crate) async fn set(
    State(state): State<AppState>,
    sdk: Sdk,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Json_>> {
    check_trait_writes(&sdk)?;
    let write = parse_trait_write(&body)?;
    state
        .store
        .write_traits(
            sdk.environment.id,
            &[(
                write.identifier.clone(),
                vec![TraitChange {
                    key: write.key.clone(),
                    value: write.value.clone(),
                }],
            )],
        )
        .await?;
    Ok(Json(echo(&write)))
}

/// Sets many traits across identities; null values delete.
#[utoipa::path(put, path = "/api/v1/traits/bulk", tag = "sdk", security(("environment_key" = [])),
    request_body = Vec<bullet_train_protocol::sdk::SetTraitRequest>,
    responses((status = 200, body = Vec<bullet_train_protocol::sdk::SetTraitRequest>), (status = 400), (status = 403)))]
pub(crate) async fn bulk(
    State(state): State<AppState>,
    sdk: Sdk,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Json_>> {
    check_trait_writes(&sdk)?;
    let Some(items) = body
        .as_array()
        .filter(|items| items.iter().all(Json_::is_object))
    else {
        return Err(ApiError::BadRequest("Invalid request data".into()));
    };
    if items.len() > crate::routes::identities::MAX_TRAITS {
        return Err(ApiError::BadRequest(format!(
            "At most {} traits per request.",
            crate::routes::identities::MAX_TRAITS
        )));
    }
    let writes = items
        .iter()
        .map(parse_trait_write)
        .collect::<ApiResult<Vec<_>>>()?;
    let mut by_identity: Vec<(String, Vec<TraitChange>)> = Vec::new();
    for write in &writes {
        let change = TraitChange {
            key: write.key.clone(),
            value: write.value.clone(),
        };
        match by_identity.iter_mut().find(|(i, _)| *i == write.identifier) {
            Some((_, changes)) => changes.push(change),
            None => by_identity.push((write.identifier.clone(), vec![change])),
        }
    }
    state
        .store
        .write_traits(sdk.environment.id, &by_identity)
        .await?;
    Ok(Json(Json_::Array(
        writes
            .iter()
            .filter(|w| w.value.is_some())
            .map(echo)
            .collect(),
    )))
}

/// Adds to an integer trait.
#[utoipa::path(post, path = "/api/v1/traits/increment-value", tag = "sdk", security(("environment_key" = [])),
    request_body = bullet_train_protocol::sdk::IncrementTraitRequest,
    responses((status = 200, description = "`{\"trait_key\", \"trait_value\", \"identifier\"}`"), (status = 400), (status = 403)))]
pub(crate) async fn increment(
    State(state): State<AppState>,
    sdk: Sdk,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Json_>> {
    check_trait_writes(&sdk)?;
    let Some(object) = body.as_object() else {
        return Err(ApiError::field("non_field_errors", expected_object(&body)));
    };
    let mut errors = FieldErrors::new();
    let key = trait_key(object.get("trait_key"))
        .map_err(|m| errors.insert("trait_key".into(), json!([m])))
        .ok();
    let identifier = match object.get("identifier") {
        Some(Json_::String(s)) if !s.is_empty() => {
            if let Err(ApiError::Fields(e)) = check_identifier("identifier", s) {
                errors.extend(e);
            }
            Some(s.clone())
        }
        Some(Json_::String(_)) => {
            errors.insert("identifier".into(), json!(["This field may not be blank."]));
            None
        }
        None | Some(Json_::Null) => {
            errors.insert("identifier".into(), json!(["This field is required."]));
            None
        }
        Some(_) => {
            errors.insert("identifier".into(), json!(["Not a valid string."]));
            None
        }
    };
    let by = match object.get("increment_by") {
        Some(Json_::Number(n)) if n.as_i64().is_some() => n.as_i64(),
        None | Some(Json_::Null) => {
            errors.insert("increment_by".into(), json!(["This field is required."]));
            None
        }
        Some(_) => {
            errors.insert(
                "increment_by".into(),
                json!(["A valid integer is required."]),
            );
            None
        }
    };
    let (Some(key), Some(identifier), Some(by)) = (key, identifier, by) else {
        return Err(ApiError::Fields(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    match state
        .store
        .increment_trait(sdk.environment.id, &identifier, &key, by)
        .await?
    {
        Increment::Value(value) => Ok(Json(json!({
            "trait_key": key,
            "trait_value": value,
            "identifier": identifier,
        }))),
        Increment::NotInteger => Err(ApiError::field(
            "non_field_errors",
            "Trait is not an integer.",
        )),
    }
}
