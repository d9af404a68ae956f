//! The Rust SDK of Bullet Train: feature flags and remote config from a Bullet Train server or any
//! Flagsmith-compatible one (same wire protocol).
//!
//! The API is the Bullet Train SDK's (`has_feature`, `feature_enabled`, `get_value`, `set_trait`,
//! `get_trait`, `get_flags`, `get_flags_for_user`), async on [`BulletTrain`] and blocking on
//! [`blocking::BulletTrain`], with what current SDKs add: identity flags with traits in one call,
//! **local evaluation** (in-process, from the environment document, kept current by the real-time
//! stream and polling), **offline mode**, a **default flag handler**, **analytics**, and an
//! **OpenFeature** provider (cargo feature `openfeature`).
//!
//! # Examples
//!
//! ```no_run
//! use bullet_train::{BulletTrain, Trait};
//!
//! # async fn run() -> Result<(), bullet_train::Error> {
//! let bt = BulletTrain::builder("<YOUR_ENVIRONMENT_KEY>")
//!     .api("http://localhost:8000/api/")
//!     .build()?;
//!
//! if bt.feature_enabled("header").await? == Some(true) {
//!     let text = bt.get_value_for("header", "ben@bullet-train.io").await?;
//!     println!("{text:?}");
//! }
//!
//! // Flags of a user with traits, in one call.
//! let flags = bt.get_identity_flags("ben@bullet-train.io", &[Trait::new("plan", "pro")]).await?;
//! println!("{:?}", flags.get_feature_value("font_size"));
//! # Ok(()) }
//! ```
//!
//! Local evaluation with a server-side key:
//!
//! ```no_run
//! # async fn run() -> Result<(), bullet_train::Error> {
//! let bt = bullet_train::BulletTrain::builder("ser.<YOUR_SERVER_KEY>")
//!     .api("http://localhost:8000/api/v1/")
//!     .local_evaluation(true)
//!     .build()?;
//! bt.wait_until_ready(std::time::Duration::from_secs(5)).await?;
//! // No request: evaluated in-process, allocation-free.
//! let on = bt.feature_enabled_for("header", "ben@bullet-train.io").await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `client`: [`BulletTrain`] and the dispatch between remote, local and offline answers.
//! - `builder`: [`Builder`], every option. `error`: [`Error`]. `types`: [`Flag`], [`Feature`],
//!   [`Trait`], [`DefaultFlag`], [`IdentityFlags`].
//! - `http`: requests, retries, the conditional paginated document fetch.
//! - `local`: the compiled environment and the background refresher (poll + SSE).
//! - `analytics`: evaluation counts and their background flush.
//! - [`blocking`]: the blocking facade. `openfeature`: the OpenFeature provider (cargo feature
//!   `openfeature`).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod analytics;
pub mod blocking;
mod builder;
mod client;
mod error;
mod http;
mod local;
#[cfg(feature = "openfeature")]
pub mod openfeature;
mod types;

pub use builder::{Builder, DEFAULT_API_URL};
pub use bullet_train_protocol::{EnvironmentDocument, Value};
pub use client::{BulletTrain, Mode};
pub use error::Error;
pub use types::{DefaultFlag, Feature, Flag, IdentityFlags, Reason, Trait};

/// The `User-Agent` of every request.
pub(crate) const USER_AGENT: &str = concat!("bullet-train-rust-sdk/", env!("CARGO_PKG_VERSION"));
