//! HTTP-level tests of the server: each starts a real server on a random port and talks to it the way
//! SDKs do. `compat` and `compat_node` run the published Python and JavaScript SDKs against it;
//! `compat_rust` reads its documents with the Rust SDK's engine, `flagsmith-flag-engine`.

mod admin;
mod analytics;
mod compat;
mod compat_node;
mod compat_rust;
mod document;
mod errors;
mod flags;
mod health;
mod helpers;
mod identities;
mod legacy;
mod management;
mod replicas;
mod sse;
mod traits;
