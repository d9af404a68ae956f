//! Admin authentication and authorisation. `Authorization: Token <admin token>` acts on everything;
//! `Authorization: Api-Key <prefix>.<secret>` (an organisation API key) acts within its organisation:
//! admin keys may change anything there, other keys may only read. Secrets are compared by SHA-256 in
//! constant time; only hashes are stored.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bullet_train_store::model::{Author, Id};
use bullet_train_store::time::now_micros;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Who is calling the admin API.
#[derive(Debug, Clone)]
pub(crate) enum Actor {
    /// The admin token: every organisation.
    Token,
    /// An organisation API key.
    Key {
        organisation: Id,
        admin: bool,
        prefix: String,
        name: String,
    },
}

const FORBIDDEN: &str = "You do not have permission to perform this action.";

impl Actor {
    /// The author recorded in the audit log.
    pub(crate) fn author(&self) -> Author {
        Author {
            label: match self {
                Actor::Token => "admin token".to_owned(),
                Actor::Key { prefix, name, .. } => format!("api key {prefix} ({name})"),
            },
        }
    }

    /// Whether this actor may act on every organisation.
    pub(crate) fn is_superuser(&self) -> bool {
        matches!(self, Actor::Token)
    }

    /// The organisation an API key is limited to.
    pub(crate) fn organisation(&self) -> Option<Id> {
        match self {
            Actor::Token => None,
            Actor::Key { organisation, .. } => Some(*organisation),
        }
    }

    /// Refuses reads outside the actor's organisation.
    pub(crate) fn read(&self, organisation: Id) -> ApiResult<()> {
        match self {
            Actor::Token => Ok(()),
            Actor::Key {
                organisation: own, ..
            } if *own == organisation => Ok(()),
            Actor::Key { .. } => Err(ApiError::Forbidden(FORBIDDEN)),
        }
    }

    /// Refuses writes outside the actor's organisation, and writes by non-admin keys.
    pub(crate) fn write(&self, organisation: Id) -> ApiResult<()> {
        self.read(organisation)?;
        match self {
            Actor::Key { admin: false, .. } => Err(ApiError::Forbidden(FORBIDDEN)),
            _ => Ok(()),
        }
    }

    /// Refuses anything but the admin token.
    pub(crate) fn superuser(&self) -> ApiResult<()> {
        if self.is_superuser() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(FORBIDDEN))
        }
    }
}

/// SHA-256 of an organisation API key, as stored.
pub(crate) fn api_key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized(
                "Authentication credentials were not provided.",
            ))?;
        let (scheme, credentials) = header
            .split_once(' ')
            .ok_or(ApiError::Unauthorized("Invalid token header."))?;
        let credentials = credentials.trim();
        if scheme == "Token" {
            let presented: [u8; 32] = Sha256::digest(credentials.as_bytes()).into();
            return if bool::from(presented.ct_eq(&state.admin_token.sha256)) {
                Ok(Actor::Token)
            } else {
                Err(ApiError::Unauthorized("Invalid token."))
            };
        }
        if !scheme.eq_ignore_ascii_case("Api-Key") {
            return Err(ApiError::Unauthorized("Invalid token header."));
        }
        const NOT_FOUND: &str = "Valid Master API Key not found.";
        let prefix = credentials
            .split_once('.')
            .map(|(prefix, _)| prefix)
            .ok_or(ApiError::Unauthorized(NOT_FOUND))?;
        let key = state
            .store
            .api_key_by_prefix(prefix)
            .await?
            .ok_or(ApiError::Unauthorized(NOT_FOUND))?;
        let presented = api_key_hash(credentials);
        let matches: bool = presented.as_bytes().ct_eq(key.key_hash.as_bytes()).into();
        let expired = key.expires_at.is_some_and(|at| at <= now_micros());
        if !matches || key.revoked || expired {
            return Err(ApiError::Unauthorized(NOT_FOUND));
        }
        Ok(Actor::Key {
            organisation: key.organisation_id,
            admin: key.is_admin,
            prefix: key.prefix,
            name: key.name,
        })
    }
}
