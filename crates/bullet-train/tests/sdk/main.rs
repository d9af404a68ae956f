//! End-to-end tests of the Rust SDK: each starts a real `bullet-train` server in-process (or, in
//! `compat`, a small server answering as other Flagsmith-compatible servers do) and uses the SDK as
//! an application would.

mod analytics;
mod blocking;
mod compat;
mod examples;
mod helpers;
mod local;
mod offline;
#[cfg(feature = "openfeature")]
mod openfeature;
mod realtime;
mod remote;
