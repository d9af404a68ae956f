//! Flag evaluation with the exact semantics of Flagsmith's reference engine (v2 rules), compiled once
//! and evaluated many times.
//!
//! # Layout
//!
//! - [`snapshot`]: compiles an environment document or a v2 evaluation context into an immutable
//!   [`Snapshot`] (operands parsed, regexes and JSONPaths compiled, IN sets built, trait names interned).
//! - `condition`: the operators and how a condition reads its value (trait, JSONPath, identity key).
//! - `scope`: per-evaluation state (the identity's traits coerced once, the identity key).
//! - [`evaluate`]: segments, override priorities, identity overrides, multivariate selection.
//! - `hashing`: the MD5 percentage hash; `python`: Python-compatible number parsing and printing.
//!
//! # Invariants
//!
//! - No IO, no tasks, no clock, no environment variables: evaluation is a pure function of the snapshot
//!   and the identity.
//! - Nothing here can fail or panic on any input. A rule that cannot be compiled never matches and is
//!   reported by [`Snapshot::warnings`]; the rest of the environment evaluates normally.
//! - Regexes use the linear-time `regex` crate, so no pattern can stall an evaluation. Python-only
//!   constructs (lookaround, backreferences, conditional groups, atomic groups and possessive
//!   quantifiers) are rejected at compile time: such a condition never matches, with a warning.
//! - JSONPaths that are not one of the direct forms (`$.identity.identifier`, `$.identity.key`,
//!   `$.identity.traits.<name>`, `$.environment.key|name`) are evaluated over a context holding
//!   `environment` and `identity` only.

#![forbid(unsafe_code)]

mod condition;
pub mod evaluate;
mod hashing;
mod python;
mod scope;
pub mod snapshot;

pub use evaluate::{
    Evaluation, Flag, IDENTITY_OVERRIDES, Identity, IdentityOverride, Reason, Source,
};
pub use hashing::hashed_percentage;
pub use snapshot::{Snapshot, Warning};
