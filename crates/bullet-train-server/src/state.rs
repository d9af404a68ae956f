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

#[derive(Clone, Debug)]
pub(crate) struct AppState {
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
