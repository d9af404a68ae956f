//! The PostgreSQL backend, for several server replicas on one database: a connection pool, embedded
//! migrations (`migrations/postgres/`, applied under sqlx's advisory lock so replicas starting
//! together migrate once), and the change feed that tells each replica what the others wrote
//! (LISTEN/NOTIFY, fed by triggers of migrations 3 and 4). While a feed is followed, identities are
//! kept in memory between requests (see `cache.rs`), the feed invalidating them. A replica alone on
//! the database holds the sole-writer lease and trusts that memory for write decisions too
//! (`lease.rs`).

use std::time::Duration;

use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, watch};

use std::sync::Arc;

use crate::cache::{Fence, IdentityCache, Writer};
use crate::lease::{self, Lease};
use crate::model::{Id, Trait};
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
    (
        7,
        "sole writer",
        include_str!("../migrations/postgres/0007_sole_writer.sql"),
    ),
    (
        8,
        "admin scale",
        include_str!("../migrations/postgres/0008_admin_scale.sql"),
    ),
];

/// How this version's connections name themselves to PostgreSQL (`pg_stat_activity`).
pub const APPLICATION_NAME: &str = "bullet-train+lease";

/// The channel the triggers notify on.
const CHANNEL: &str = "bullet_train_changes";

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    read: PgPool,
    write: Writer<sqlx::Postgres>,
    trait_reads: mpsc::UnboundedSender<TraitRead>,
    lease: Arc<Lease>,
}

impl Fence for sqlx::Postgres {
    async fn admit(
        tx: &mut sqlx::Transaction<'static, Self>,
        replica: i64,
    ) -> std::result::Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT bullet_train_may_write($1)")
            .bind(replica)
            .fetch_one(&mut **tx)
            .await
    }
}

/// One identity's traits asked of [`read_traits_in_batches`].
#[derive(Debug)]
struct TraitRead {
    environment: Id,
    identifier: String,
    reply: oneshot::Sender<Result<Option<Vec<Trait>>>>,
}

/// The most identities one batched read asks for.
const TRAIT_READ_BATCH: usize = 256;

/// Reads identities' traits for write decisions in batches: every request queued while a read is
/// on its way goes into the next one, which is sent after they all arrived (so it sees every
/// write committed before any of them). Under load, one round trip serves many requests; alone, a
/// request costs one round trip as before. Ends when the store is dropped.
async fn read_traits_in_batches(pool: PgPool, mut queue: mpsc::UnboundedReceiver<TraitRead>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < TRAIT_READ_BATCH {
            match queue.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let environments: Vec<Id> = batch.iter().map(|r| r.environment).collect();
        let identifiers: Vec<&str> = batch.iter().map(|r| r.identifier.as_str()).collect();
        let rows = sqlx::query(
            "SELECT q.n, i.id AS identity, t.id, t.key, t.value \
             FROM UNNEST($1::bigint[], $2::text[]) WITH ORDINALITY AS q(environment_id, identifier, n) \
             LEFT JOIN identities i ON i.environment_id = q.environment_id AND i.identifier = q.identifier \
             LEFT JOIN traits t ON t.identity_id = i.id ORDER BY q.n, t.id",
        )
        .bind(&environments)
        .bind(&identifiers)
        .fetch_all(&pool)
        .await;
        let answers = rows
            .map_err(StoreError::from)
            .and_then(|rows| group_traits(&rows, batch.len()));
        match answers {
            Ok(answers) => {
                for (read, answer) in batch.into_iter().zip(answers) {
                    let _ = read.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                // Every request of the batch gets the error (rebuilt: errors are not Clone).
                let unavailable = matches!(error, StoreError::Unavailable(_));
                let message = error.to_string();
                for read in batch {
                    let error = anyhow::anyhow!("reading traits: {message}");
                    let _ = read.reply.send(Err(if unavailable {
                        StoreError::Unavailable(error)
                    } else {
                        StoreError::Other(error)
                    }));
                }
            }
        }
    }
}

/// Rows of the batched read, per request in order: `None` for no such identity.
fn group_traits(rows: &[sqlx::postgres::PgRow], len: usize) -> Result<Vec<Option<Vec<Trait>>>> {
    let mut answers: Vec<Option<Vec<Trait>>> = vec![None; len];
    for row in rows {
        let n: i64 = row.try_get("n")?;
        let Some(answer) = usize::try_from(n - 1).ok().and_then(|i| answers.get_mut(i)) else {
            continue;
        };
        if row.try_get::<Option<Id>, _>("identity")?.is_none() {
            continue;
        }
        let traits = answer.get_or_insert_with(Vec::new);
        if row.try_get::<Option<Id>, _>("id")?.is_some() {
            traits.push(backend::trait_row(row)?);
        }
    }
    Ok(answers)
}

impl PgStore {
    /// Locks an identity's row for the rest of the transaction, so that concurrent reads-then-writes
    /// of its traits (increments) queue instead of losing an update.
    const LOCK_IDENTITY: &str = "SELECT id FROM identities WHERE id = $1 FOR UPDATE";

    /// Whether this replica is alone on the database and holds the sole-writer lease
    /// (`lease.rs`); otherwise other replicas may write it, and identities in memory may miss
    /// their latest writes for the notification delay.
    fn sole_writer(&self) -> bool {
        self.lease.sole()
    }

    /// Migrated: the lease's tables exist, so tick now rather than at the next second.
    fn migrated(&self) {
        self.lease.wake();
    }

    /// Gives up the sole-writer lease and this replica's heartbeat.
    async fn retire(&self) {
        lease::retire(&self.lease, &self.read).await;
    }

    /// Watches whether this replica is the sole writer: a value after every tick (about once a
    /// second), changed or not.
    pub fn sole_writer_changes(&self) -> watch::Receiver<bool> {
        self.lease.subscribe()
    }

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
        // Not plain "bullet-train": that names servers of releases without the sole-writer lease,
        // whose presence keeps every replica from taking it (migration 7).
        let options = options
            .application_name(APPLICATION_NAME)
            // The sole-writer check (migration 7) reads the lease after waiting for a lock: it
            // needs a snapshot taken after the wait, as READ COMMITTED takes one per statement,
            // whatever the database's default isolation.
            .options([("default_transaction_isolation", r"read\ committed")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .connect_with(options)
            .await?;
        // Other replicas write too: identities are kept only while a change feed follows them.
        let cache = Arc::new(IdentityCache::new(false));
        let (trait_reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(read_traits_in_batches(pool.clone(), queue));
        let lease = Arc::new(Lease::new());
        tokio::spawn(lease::run(
            Arc::downgrade(&lease),
            pool.clone(),
            cache.clone(),
        ));
        Ok(PgStore {
            read: pool.clone(),
            write: Writer {
                pool,
                cache,
                lease: Some(lease.clone()),
            },
            trait_reads,
            lease,
        })
    }

    /// An identity's traits as the database holds them now, through the batched reader.
    async fn current_traits(
        &self,
        environment: Id,
        identifier: &str,
    ) -> Result<Option<Vec<Trait>>> {
        let (reply, answer) = oneshot::channel();
        let read = TraitRead {
            environment,
            identifier: identifier.to_owned(),
            reply,
        };
        let gone = || StoreError::Other(anyhow::anyhow!("the trait reader has stopped"));
        self.trait_reads.send(read).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Starts listening for changes made through any connection to this database.
    async fn feed(&self) -> Result<Option<ChangeFeed>> {
        let mut listener = PgListener::connect_with(&self.read).await?;
        listener.listen(CHANNEL).await?;
        self.write.cache.feed_started();
        // Migrated by now: no need to wait a tick to become the sole writer.
        self.lease.wake();
        Ok(Some(ChangeFeed {
            listener,
            cache: Some(self.write.cache.clone()),
            lease: self.lease.clone(),
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
    /// The store's sole-writer lease, woken when another replica asks it to step down.
    lease: Arc<Lease>,
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
            if notification.payload() == "replica" {
                self.lease.wake();
                continue;
            }
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
