//! SDK API payloads (wire-protocol.md sections 2-3): flags, identities and traits. Reading is
//! tolerant (every SDK-era variant parses: no `variant`, no `project`, extra keys ignored); these types
//! are what the Rust SDK reads and what the OpenAPI document describes.

use serde::{Deserialize, Serialize};

use crate::Value;

/// The feature of a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagFeature {
    /// Feature id.
    pub id: u64,
    /// Feature name (the key SDKs look flags up by).
    pub name: String,
    /// Creation time (null when the environment hides sensitive data).
    #[serde(default)]
    pub created_date: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// The value new environments start with.
    #[serde(default)]
    pub initial_value: Option<String>,
    /// Whether new environments start enabled.
    #[serde(default)]
    pub default_enabled: Option<bool>,
    /// `STANDARD` or `MULTIVARIATE` (Bullet Train era: `FLAG` or `CONFIG`).
    #[serde(rename = "type", default)]
    pub feature_type: Option<String>,
    /// Project id (documented by the Bullet Train SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<u64>,
}

/// A flag: the state of one feature for the environment or an identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flag {
    /// Feature-state id.
    #[serde(default)]
    pub id: Option<i64>,
    /// The feature.
    pub feature: FlagFeature,
    /// The value: string, integer, boolean or null.
    #[serde(default)]
    pub feature_state_value: Value,
    /// Environment id.
    #[serde(default)]
    pub environment: Option<i64>,
    /// Identity id, when the flag is an identity override.
    #[serde(default)]
    pub identity: Option<i64>,
    /// Feature-segment id, when the flag is a segment override.
    #[serde(default)]
    pub feature_segment: Option<i64>,
    /// Whether the flag is on.
    pub enabled: bool,
    /// Identity flags: the variant key, `"control"`, or null for non-multivariate features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A trait as identity responses report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraitRecord {
    /// Stored trait id (null for transient or unsaved traits).
    #[serde(default)]
    pub id: Option<i64>,
    /// Trait key.
    pub trait_key: String,
    /// Trait value.
    #[serde(default)]
    pub trait_value: Value,
    /// Whether the trait came in as transient in this request.
    #[serde(default)]
    pub transient: bool,
}

/// The response of `identities/`: the identity's flags and traits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityResponse {
    /// The identifier (derived by the server when none was sent).
    #[serde(default)]
    pub identifier: Option<String>,
    /// Fully evaluated flags.
    pub flags: Vec<Flag>,
    /// Effective traits.
    #[serde(default)]
    pub traits: Vec<TraitRecord>,
}

/// One trait sent with `POST identities/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraitInput {
    /// Trait key (at most 200 characters).
    pub trait_key: String,
    /// The value; null deletes the stored trait.
    pub trait_value: Value,
    /// Used for this evaluation only, never stored.
    #[serde(default)]
    pub transient: bool,
}

/// `POST identities/`: identify, set traits, get flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentifyRequest {
    /// The identifier; absent or null for a never-stored identity with a derived identifier.
    #[serde(default)]
    pub identifier: Option<String>,
    /// Traits to apply.
    #[serde(default)]
    pub traits: Vec<TraitInput>,
    /// Store nothing for this identity.
    #[serde(default)]
    pub transient: bool,
}

/// The identity of a trait write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentityKey {
    /// The identifier.
    pub identifier: String,
}

/// `POST traits/` (also the items of `PUT traits/bulk/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetTraitRequest {
    /// The identity, created when missing.
    pub identity: IdentityKey,
    /// Trait key.
    pub trait_key: String,
    /// The value; null deletes the trait.
    pub trait_value: Value,
}

/// `POST traits/increment-value/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncrementTraitRequest {
    /// Trait key.
    pub trait_key: String,
    /// The identity.
    pub identifier: String,
    /// Amount to add (a missing trait counts as 0).
    pub increment_by: i64,
}

/// A JSON error: `{"detail": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// What went wrong.
    pub detail: String,
}
