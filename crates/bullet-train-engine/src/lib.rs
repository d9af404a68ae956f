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
//! - Nothing here can fail or panic on any input. A segment with a rule that cannot be compiled (an
//!   invalid or unsupported regex, an unknown rule type, a MODULO by zero, an IN or PERCENTAGE_SPLIT
//!   without a value: shapes on which the reference engine raises) never matches and is reported by
//!   [`Snapshot::warnings`]; the rest of the environment evaluates normally. (Read as a false
//!   condition instead, a broken condition would make a NONE rule match everyone.) Shapes the
//!   reference defines as a false condition, an unknown operator and a non-numeric PERCENTAGE_SPLIT
//!   value, are false conditions here too, also with a warning.
//! - Regexes use the linear-time `regex` crate, so no pattern can stall an evaluation. Python-only
//!   constructs (lookaround, backreferences, conditional groups, atomic groups and possessive
//!   quantifiers) are rejected at compile time, and so are patterns the `regex` crate cannot parse
//!   although Python can (such as a literal `{` in `a{`): such a segment never matches, with a
//!   warning. Patterns valid only for the `regex` crate (`\pL` classes, for example) are accepted.
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
