//! The PostgreSQL backend, for several server replicas on one database: a connection pool, embedded
//! migrations (`migrations/postgres/`, applied under sqlx's advisory lock so replicas starting
//! together migrate once), and the change feed that tells each replica what the others wrote
//! (LISTEN/NOTIFY, fed by triggers of migrations 3 and 4). While a feed is followed, identities are
//! kept in memory between requests (see `cache.rs`), the feed invalidating them.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use std::sync::Arc;

use crate::cache::{IdentityCache, Writer};
use crate::{Result, StoreError};

/// The PostgreSQL migrations, embedded in the binary; versions are applied once, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "admin",
        include_str!("../migrations/postgres/0002_admin.sql"),
    ),
    (
        3,
        "scale",
        include_str!("../migrations/postgres/0003_scale.sql"),
    ),
    (
        4,
        "identity notifications",
        include_str!("../migrations/postgres/0004_identity_notify.sql"),
    ),
    (
        5,
        "foreign key indexes",
        include_str!("../migrations/postgres/0005_foreign_key_indexes.sql"),
    ),
    (
        6,
        "project settings",
        include_str!("../migrations/postgres/0006_project_settings.sql"),
    ),
];

/// The channel the triggers notify on.
const CHANNEL: &str = "bullet_train_changes";

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    read: PgPool,
    write: Writer<sqlx::Postgres>,
}

impl PgStore {
    /// Locks an identity's row for the rest of the transaction, so that concurrent reads-then-writes
    /// of its traits (increments) queue instead of losing an update.
    const LOCK_IDENTITY: &str = "SELECT id FROM identities WHERE id = $1 FOR UPDATE";

    /// Other replicas write the same database: identities in memory may miss their latest writes
    /// for the notification delay.
    const SHARED: bool = true;

    /// A read of several statements sees one snapshot only at this isolation level.
    const SNAPSHOT_READ: Option<&str> =
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");

    /// Moves a table's id sequence past the ids a copy inserted.
    fn resequence(table: &str) -> Option<String> {
        Some(format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        ))
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/database`), without
    /// migrating. A request waits at most 5 s for a connection, so a database outage fails
    /// requests quickly instead of piling them up.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        let options = options.application_name("bullet-train");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await?;
        // Other replicas write too: identities are kept only while a change feed follows them.
        let cache = Arc::new(IdentityCache::new(false));
        Ok(PgStore {
            read: pool.clone(),
            write: Writer { pool, cache },
        })
    }

    /// Starts listening for changes made through any connection to this database.
    async fn feed(&self) -> Result<Option<ChangeFeed>> {
        let mut listener = PgListener::connect_with(&self.read).await?;
        listener.listen(CHANNEL).await?;
        self.write.cache.feed_started();
        Ok(Some(ChangeFeed {
            listener,
            cache: Some(self.write.cache.clone()),
        }))
    }
}

/// A change another process (or this one) committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The environment was created or changed; `revision` is its revision after the change.
    Environment {
        /// The environment's id.
        id: i64,
        /// Its revision.
        revision: i64,
    },
    /// The environment was deleted.
    Deleted {
        /// The environment's id.
        id: i64,
    },
    /// Server-side keys changed.
    Keys,
    /// Identities, their traits or overrides changed (identities kept in memory were dropped).
    Identities,
    /// The connection was lost and is back: notifications may have been missed, so everything must
    /// be checked again.
    Resync,
}

/// The stream of [`Change`]s, reconnecting by itself.
///
/// While it exists and is followed, its store keeps identities in memory: whoever holds a feed must
/// keep calling [`ChangeFeed::next`], and drop the feed when it stops.
#[derive(Debug)]
pub struct ChangeFeed {
    listener: PgListener,
    /// The store's identity cache, while this feed is connected.
    cache: Option<Arc<IdentityCache>>,
}

impl ChangeFeed {
    /// The next change. After a lost connection it reconnects and answers [`Change::Resync`]; an
    /// error means the database cannot be reached right now, and the feed is done.
    pub async fn next(&mut self) -> Result<Change> {
        let Some(cache) = self.cache.clone() else {
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the change feed lost its connection"
            )));
        };
        loop {
            let notification = match self.listener.try_recv().await {
                Ok(Some(notification)) => notification,
                Ok(None) => {
                    // Reconnected and listening again: what happened meanwhile is unknown.
                    cache.invalidate();
                    return Ok(Change::Resync);
                }
                Err(e) => {
                    self.stop();
                    return Err(e.into());
                }
            };
            if let Some(change) = parse(notification.payload()) {
                if change == Change::Identities {
                    cache.invalidate();
                }
                return Ok(change);
            }
            tracing::debug!(
                payload = notification.payload(),
                "ignoring an unknown notification"
            );
        }
    }
}

impl ChangeFeed {
    fn stop(&mut self) {
        if let Some(cache) = self.cache.take() {
            cache.feed_stopped();
        }
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(payload: &str) -> Option<Change> {
    let mut parts = payload.split(':');
    match (parts.next()?, parts.next(), parts.next()) {
        ("environment", Some(id), Some(revision)) => Some(Change::Environment {
            id: id.parse().ok()?,
            revision: revision.parse().ok()?,
        }),
        ("deleted", Some(id), None) => Some(Change::Deleted {
            id: id.parse().ok()?,
        }),
        ("keys", None, None) => Some(Change::Keys),
        ("identities", None, None) => Some(Change::Identities),
        _ => None,
    }
}

crate::sql::sql_store!(PgStore, sqlx::Postgres);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads() {
        assert_eq!(
            parse("environment:12:7"),
            Some(Change::Environment {
                id: 12,
                revision: 7
            })
        );
        assert_eq!(parse("deleted:3"), Some(Change::Deleted { id: 3 }));
        assert_eq!(parse("keys"), Some(Change::Keys));
        assert_eq!(parse("identities"), Some(Change::Identities));
        assert_eq!(parse("environment:x:1"), None);
        assert_eq!(parse("other"), None);
    }
}
