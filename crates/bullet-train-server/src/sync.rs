//! Keeping replicas in step. With PostgreSQL several servers share one database; each learns what
//! the others committed from the store's change feed (LISTEN/NOTIFY) and rebuilds the snapshots of
//! the environments that changed, announcing them to its own streams. A periodic comparison of
//! every environment's revision is the safety net, and runs at once whenever the feed reconnects,
//! so a replica that lost its database catches up on everything it missed. Following the feed is
//! also what lets the store keep identities in memory (it drops them on every identity change the
//! feed reports, and stops keeping them while the feed is gone). SQLite has no feed: one process
//! owns the file, and this task ends at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bullet_train_store::{Change, ChangeFeed, Store, StoreError};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::registry::Registry;

/// Delay before trying again after the feed failed.
const RETRY: Duration = Duration::from_secs(1);

/// Follows the change feed until shutdown.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut feed: Option<ChangeFeed> = match store.change_feed().await {
        Ok(None) => return,
        Ok(Some(feed)) => Some(feed),
        Err(e) => {
            tracing::warn!(error = %e, "change feed unavailable; relying on periodic checks");
            None
        }
    };
    let mut check = tokio::time::interval(period);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let change = tokio::select! {
            _ = shutdown.changed() => return,
            _ = check.tick() => Ok(Change::Resync),
            change = next(&mut feed, &store) => change,
        };
        let outcome = match change {
            Ok(change) => apply(&store, &registry, change).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "replica sync failed; serving the last snapshots");
            // The feed is not followed while waiting: dropping it stops the store keeping
            // identities, and reconnecting it later resynchronises everything.
            feed = None;
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
    }
}

/// The next change from the feed, (re)connecting it first when needed.
async fn next(feed: &mut Option<ChangeFeed>, store: &Arc<dyn Store>) -> Result<Change, StoreError> {
    let active = match feed {
        Some(active) => active,
        None => match store.change_feed().await? {
            Some(connected) => {
                tracing::info!("change feed connected");
                // Whatever happened while it was away must be checked.
                *feed = Some(connected);
                return Ok(Change::Resync);
            }
            None => return std::future::pending().await,
        },
    };
    match active.next().await {
        Ok(change) => Ok(change),
        Err(e) => {
            *feed = None;
            Err(e)
        }
    }
}

async fn apply(
    store: &Arc<dyn Store>,
    registry: &Registry,
    change: Change,
) -> Result<(), StoreError> {
    match change {
        Change::Environment { id, revision } => {
            let known = registry.environment(id);
            if known
                .as_ref()
                .is_some_and(|e| e.snapshot().revision >= revision)
            {
                return Ok(());
            }
            match registry.refresh(id).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => registry.remove(id),
                Err(e) => return Err(e),
            }
            if known.is_none() {
                // A new environment's server-side keys can only be indexed once it is loaded.
                registry.refresh_keys().await?;
            }
            Ok(())
        }
        Change::Deleted { id } => {
            registry.remove(id);
            Ok(())
        }
        Change::Keys => registry.refresh_keys().await,
        // The store dropped the identities it kept; snapshots do not hold identities.
        Change::Identities => Ok(()),
        Change::Resync => resync(store, registry).await,
    }
}

/// Brings every environment to the database's revision, and forgets deleted ones.
async fn resync(store: &Arc<dyn Store>, registry: &Registry) -> Result<(), StoreError> {
    let revisions = store.revisions().await?;
    let present: HashSet<_> = revisions.iter().map(|(id, _)| *id).collect();
    for id in registry.ids() {
        if !present.contains(&id) {
            registry.remove(id);
        }
    }
    for (id, revision) in revisions {
        let behind = registry
            .environment(id)
            .is_none_or(|e| e.snapshot().revision < revision);
        if behind {
            match registry.refresh(id).await {
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    registry.refresh_keys().await
}
