//! The registry of environments: SDK keys to environments, each environment's current snapshot
//! (swapped atomically after a write commits) and its real-time channel.
//!
//! Readers never block: key lookups and snapshots are `ArcSwap` loads. Rebuilds of one environment are
//! serialised, and a snapshot never replaces one of a later revision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bullet_train_store::model::{Id, Micros};
use bullet_train_store::{Store, StoreError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::snapshot::{EnvSnapshot, KeyKind, float_seconds};

/// One environment as the server holds it.
#[derive(Debug)]
pub(crate) struct Environment {
    pub(crate) id: Id,
    pub(crate) api_key: Box<str>,
    snapshot: ArcSwap<EnvSnapshot>,
    /// The current `environment_updated` event, as SSE bytes.
    events: watch::Sender<Bytes>,
    /// Serialises rebuilds of this environment.
    rebuild: tokio::sync::Mutex<()>,
}

impl Environment {
    pub(crate) fn snapshot(&self) -> Arc<EnvSnapshot> {
        self.snapshot.load_full()
    }

    /// A receiver of this environment's `environment_updated` events (the current one first).
    pub(crate) fn subscribe(&self) -> watch::Receiver<Bytes> {
        self.events.subscribe()
    }
}

/// The SSE event announcing a change at `updated_at`.
fn sse_event(updated_at: Micros) -> Bytes {
    Bytes::from(format!(
        "event: environment_updated\ndata: {{\"updated_at\": {}}}\nretry: 15000\n\n",
        float_seconds(updated_at)
    ))
}

/// A server-side key as the request path checks it.
#[derive(Debug, Clone)]
struct ServerKeyEntry {
    environment: Arc<Environment>,
    active: bool,
    expires_at: Option<Micros>,
}

#[derive(Debug, Default)]
struct KeyIndex {
    clients: HashMap<Box<str>, Arc<Environment>>,
    servers: HashMap<[u8; 32], ServerKeyEntry>,
}

/// SHA-256 of a key, as stored.
pub(crate) fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[derive(Debug)]
pub(crate) struct Registry {
    store: Arc<dyn Store>,
    keys: ArcSwap<KeyIndex>,
    environments: Mutex<HashMap<Id, Arc<Environment>>>,
}

impl Registry {
    /// Loads every environment's snapshot and every server-side key.
    pub(crate) async fn load(store: Arc<dyn Store>) -> Result<Registry, StoreError> {
        let registry = Registry {
            store,
            keys: ArcSwap::from_pointee(KeyIndex::default()),
            environments: Mutex::new(HashMap::new()),
        };
        for environment in registry.store.environments().await? {
            registry.refresh(environment.id).await?;
        }
        registry.refresh_keys().await?;
        Ok(registry)
    }

    /// The environment of an SDK key, and the key's kind. Inactive or expired server keys find none;
    /// `now` is read only for server keys (client keys do not expire).
    pub(crate) fn lookup(
        &self,
        key: &str,
        now: impl FnOnce() -> Micros,
    ) -> Option<(Arc<Environment>, KeyKind)> {
        let keys = self.keys.load();
        if key.starts_with("ser.") {
            let entry = keys.servers.get(&key_hash(key))?;
            let valid = entry.active && entry.expires_at.is_none_or(|at| at > now());
            return valid.then(|| (entry.environment.clone(), KeyKind::Server));
        }
        keys.clients.get(key).map(|e| (e.clone(), KeyKind::Client))
    }

    /// The environment with this id, if loaded.
    pub(crate) fn environment(&self, id: Id) -> Option<Arc<Environment>> {
        self.environments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    /// The ids of every loaded environment.
    pub(crate) fn ids(&self) -> Vec<Id> {
        self.environments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }

    /// Rebuilds one environment's snapshot from the store and announces the change to its streams.
    /// Called after every committed write that affects the environment.
    pub(crate) async fn refresh(&self, id: Id) -> Result<Arc<Environment>, StoreError> {
        let existing = self.environment(id);
        let environment = match existing {
            Some(environment) => environment,
            None => {
                let data = self.store.environment_data(id).await?;
                let snapshot = EnvSnapshot::build(&data);
                let (events, _) = watch::channel(sse_event(snapshot.updated_at));
                let environment = Arc::new(Environment {
                    id,
                    api_key: data.environment.api_key.as_str().into(),
                    snapshot: ArcSwap::from_pointee(snapshot),
                    events,
                    rebuild: tokio::sync::Mutex::new(()),
                });
                let mut environments = self.environments.lock().unwrap_or_else(|e| e.into_inner());
                let entry = environments.entry(id).or_insert(environment).clone();
                drop(environments);
                self.index_client_key(&entry);
                return Ok(entry);
            }
        };
        {
            let _guard = environment.rebuild.lock().await;
            let data = self.store.environment_data(id).await?;
            let snapshot = EnvSnapshot::build(&data);
            let current = environment.snapshot();
            if snapshot.revision >= current.revision {
                let updated_at = snapshot.updated_at;
                environment.snapshot.store(Arc::new(snapshot));
                if updated_at != current.updated_at {
                    environment.events.send_replace(sse_event(updated_at));
                }
            }
        }
        Ok(environment)
    }

    /// Forgets a deleted environment: its keys stop working and its event streams end.
    pub(crate) fn remove(&self, id: Id) {
        let removed = self
            .environments
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(environment) = removed {
            self.keys.rcu(|keys| {
                let mut clients = keys.clients.clone();
                clients.remove(&environment.api_key);
                let mut servers = keys.servers.clone();
                servers.retain(|_, entry| entry.environment.id != id);
                Arc::new(KeyIndex { clients, servers })
            });
        }
    }

    fn index_client_key(&self, environment: &Arc<Environment>) {
        self.keys.rcu(|keys| {
            let mut clients = keys.clients.clone();
            clients.insert(environment.api_key.clone(), environment.clone());
            Arc::new(KeyIndex {
                clients,
                servers: keys.servers.clone(),
            })
        });
    }

    /// Reloads the server-side keys (after one is created, changed or revoked).
    pub(crate) async fn refresh_keys(&self) -> Result<(), StoreError> {
        let keys = self.store.server_keys(None).await?;
        let mut servers = HashMap::new();
        for key in keys {
            let Some(environment) = self.environment(key.environment_id) else {
                continue;
            };
            let Ok(bytes) = hex::decode(&key.key_hash) else {
                continue;
            };
            let Ok(hash) = <[u8; 32]>::try_from(bytes.as_slice()) else {
                continue;
            };
            servers.insert(
                hash,
                ServerKeyEntry {
                    environment,
                    active: key.active,
                    expires_at: key.expires_at,
                },
            );
        }
        self.keys.rcu(|keys| {
            Arc::new(KeyIndex {
                clients: keys.clients.clone(),
                servers: servers.clone(),
            })
        });
        Ok(())
    }
}
