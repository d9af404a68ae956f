//! Wire types of Bullet Train, which speaks the Flagsmith SDK protocol.
//!
//! This crate holds only data that crosses a process boundary, with serde derives; every type here is a
//! compatibility promise. Layout:
//!
//! - [`value`]: the JSON scalar used for feature, variant and trait values.
//! - [`document`]: the environment document (`environment-document/`, import/export, offline mode).
//! - [`context`] and [`result`]: the v2 evaluation context and result of the reference engine.
//! - [`sdk`]: SDK payloads (flags, identities, traits).
//! - [`admin`]: admin API payloads in Flagsmith's shapes (with `openapi`, their schemas).
//!
//! Reading is tolerant (defaults for missing keys and nulls), writing is complete (every key the
//! strictest SDK parser needs).

#![forbid(unsafe_code)]

pub mod admin;
pub mod context;
pub mod document;
pub mod result;
pub mod sdk;
pub mod value;

pub use context::EvaluationContext;
pub use document::EnvironmentDocument;
pub use result::EvaluationResult;
pub use value::Value;
