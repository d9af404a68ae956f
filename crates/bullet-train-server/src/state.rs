//! Application state shared by handlers: the store, the registry of environment snapshots, the admin
//! token, limits and the shutdown signal.

use std::sync::Arc;

use bullet_train_store::Store;
use tokio::sync::watch;

use crate::config::Limits;
use crate::extract::AdminToken;
use crate::registry::Registry;
use crate::responses::Responses;
use crate::webhooks::Webhooks;

/// The state, behind one reference count: axum clones it for every request (and drops the clone
/// after), which is one atomic increment and decrement instead of one per field.
#[derive(Clone, Debug)]
pub(crate) struct AppState(Arc<Shared>);

impl AppState {
    pub(crate) fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) admin_token: Arc<AdminToken>,
    pub(crate) limits: Limits,
    /// Wakes the webhook deliverer after writes.
    pub(crate) webhooks: Arc<Webhooks>,
    /// Identity answers to repeated requests.
    pub(crate) responses: Arc<Responses>,
    /// Becomes `true` when the server shuts down; long-lived streams end on it.
    pub(crate) shutdown: watch::Receiver<bool>,
}
