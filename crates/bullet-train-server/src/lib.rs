//! The Bullet Train server: every Bullet Train / Flagsmith SDK endpoint, the real-time stream, health
//! and admin routes, over a [`bullet_train_store::Store`].
//!
//! # Layout
//!
//! - [`Server`]: startup (store, migrations, admin token, snapshots) and serving on a bound listener.
//! - `registry`: SDK keys to environments; each environment's snapshot and event channel.
//! - `sync`: with PostgreSQL, keeps this replica's snapshots in step with the others'.
//! - `snapshot`: what an environment's snapshot holds (engine snapshot, pre-serialized bodies).
//! - `routes`: one module per resource; `extract`: keys, tokens and bodies; `error`: `ApiError`.
//!
//! # Invariants
//!
//! - The SDK read path reads no environment data from the store: only an identity's own traits and
//!   overrides. Snapshots are rebuilt and swapped after every committed write.
//! - Only this crate knows HTTP status codes.
//! - No secret is logged: request spans record the route pattern only.

#![forbid(unsafe_code)]

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::ServiceExt;
use axum::extract::Request;
use bullet_train_store::{PgStore, SqliteStore, Store};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::Layer as _;

mod auth;
mod config;
mod error;
mod extract;
mod registry;
mod responses;
mod routes;
mod snapshot;
mod state;
mod sync;
mod webhooks;

pub use config::{Config, Limits};

use extract::AdminToken;
use registry::Registry;
use state::AppState;
use webhooks::Webhooks;

/// Where the admin token's hash is kept when the server generated the token.
const ADMIN_TOKEN_META: &str = "admin_token_sha256";

/// Opens the store a database URL names: `sqlite://path` or `postgres://...` (`postgresql://`).
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let shown = config::redact_url(url);
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url)
            .await
            .with_context(|| format!("opening {shown}"))?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::connect(url)
            .await
            .with_context(|| format!("connecting to {shown}"))?;
        return Ok(Arc::new(store));
    }
    anyhow::bail!("unsupported database URL (expected sqlite://... or postgres://...)")
}

/// A started server, ready to serve.
pub struct Server {
    state: AppState,
    /// Built in `start`, so that everything start-up allocates is in place when it returns.
    router: axum::Router,
    shutdown: watch::Sender<bool>,
    generated_admin_token: Option<String>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the generated token.
        f.debug_struct("Server")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens and migrates the store, settles the admin token, and loads every environment.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let store = open_store(&config.database_url).await?;
        if config.migrate {
            store.migrate().await.context("applying migrations")?;
        } else {
            let pending = store.pending_migrations().await?;
            if !pending.is_empty() {
                anyhow::bail!(
                    "the database lacks migrations {pending:?} of this release: run \
                     `bullet-train migrate` first, or start without --no-migrate"
                );
            }
        }
        let (sha256, generated_admin_token) = match &config.admin_token {
            Some(token) => (Sha256::digest(token.as_bytes()).into(), None),
            None => match store.meta(ADMIN_TOKEN_META).await? {
                Some(stored) => {
                    let bytes = hex::decode(&stored).context("corrupt stored admin token hash")?;
                    let hash = <[u8; 32]>::try_from(bytes.as_slice())
                        .map_err(|_| anyhow::anyhow!("corrupt stored admin token hash"))?;
                    (hash, None)
                }
                None => {
                    let token = bullet_train_store::random::token();
                    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                    store.set_meta(ADMIN_TOKEN_META, &hex::encode(hash)).await?;
                    (hash, Some(token))
                }
            },
        };
        let registry = Registry::load(store.clone())
            .await
            .context("loading environments")?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let state = AppState::new(state::Shared {
            store,
            registry: Arc::new(registry),
            admin_token: Arc::new(AdminToken { sha256 }),
            limits: config.limits,
            webhooks: Arc::new(Webhooks::default()),
            responses: Arc::default(),
            shutdown: shutdown_rx,
        });
        let router = routes::router(state.clone());
        let closed = state.store.close_idle_connections().await;
        tracing::debug!(closed, "idle database connections closed after start-up");
        Ok(Server {
            router,
            state,
            shutdown,
            generated_admin_token,
        })
    }

    /// The admin token generated on this first start, to be shown once. `None` when a token was
    /// configured or had been generated before.
    pub fn generated_admin_token(&self) -> Option<&str> {
        self.generated_admin_token.as_deref()
    }

    /// Serves on `listener` until `shutdown` completes, then finishes the requests in flight (event
    /// streams end) and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router;
        let anchor = tokio::spawn(timer_anchor(
            self.state.limits.request_timeout,
            self.state.shutdown.clone(),
        ));
        let deliverer = tokio::spawn(webhooks::run(
            self.state.store.clone(),
            self.state.webhooks.clone(),
            self.state.limits,
            self.state.shutdown.clone(),
        ));
        let service = tower::util::MapRequestLayer::new(routes::normalise_path).layer(router);
        let syncer = tokio::spawn(sync::run(
            self.state.store.clone(),
            self.state.registry.clone(),
            self.state.limits.sync_interval,
            self.state.shutdown.clone(),
        ));
        let stop = self.shutdown.clone();
        let signal = async move {
            shutdown.await;
            stop.send_replace(true);
        };
        axum::serve(listener, ServiceExt::<Request>::into_make_service(service))
            .with_graceful_shutdown(signal)
            .await
            .context("serving")?;
        let _ = deliverer.await;
        let _ = syncer.await;
        let _ = anchor.await;
        self.state.store.close().await;
        Ok(())
    }
}

/// Keeps a timer due sooner than any request's timeout, until shutdown. Tokio wakes its I/O driver
/// (a system call, and another turn of the worker's loop) whenever a timer is registered that is due
/// before every other one (tokio-rs/tokio#5207). With no timer pending, as after any idle moment,
/// the timeout of the next request was such a timer: an extra wake-up on most requests at partial
/// load, about 8% of an identity request's cost. With this timer pending, request timeouts are
/// never the earliest. It costs one wake-up every few seconds.
async fn timer_anchor(request_timeout: std::time::Duration, mut shutdown: watch::Receiver<bool>) {
    let period = (request_timeout / 3).clamp(
        std::time::Duration::from_millis(10),
        std::time::Duration::from_secs(10),
    );
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
    }
}
