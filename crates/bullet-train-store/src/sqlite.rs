//! The embedded SQLite backend, the default: WAL journal, `synchronous=FULL` (an acknowledged commit
//! survives a crash of the process or of the machine), foreign keys on, and a single writer
//! connection so that write transactions queue instead of failing with `SQLITE_BUSY`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use std::sync::Arc;

use crate::cache::{IdentityCache, Writer};
use crate::{Result, StoreError};

/// The SQLite migrations, embedded in the binary; versions are applied once, in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "admin",
        include_str!("../migrations/sqlite/0002_admin.sql"),
    ),
    (
        3,
        "scale",
        include_str!("../migrations/sqlite/0003_scale.sql"),
    ),
    (
        4,
        "foreign key indexes",
        include_str!("../migrations/sqlite/0004_foreign_key_indexes.sql"),
    ),
    (
        5,
        "project settings",
        include_str!("../migrations/sqlite/0005_project_settings.sql"),
    ),
    (
        6,
        "admin scale",
        include_str!("../migrations/sqlite/0006_admin_scale.sql"),
    ),
];

/// Only this process writes an SQLite database: there is no lease to check.
impl crate::cache::Fence for sqlx::Sqlite {
    async fn admit(
        _tx: &mut sqlx::Transaction<'static, Self>,
        _replica: i64,
    ) -> std::result::Result<bool, sqlx::Error> {
        Ok(true)
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: Writer<sqlx::Sqlite>,
}

impl SqliteStore {
    /// Locks an identity's row for the rest of the transaction (to read and then write its
    /// traits); SQLite's single writer already serialises write transactions.
    const LOCK_IDENTITY: &str = "SELECT id FROM identities WHERE id = $1";

    /// Only this process writes the file, so identities in memory are what the database holds.
    fn sole_writer(&self) -> bool {
        true
    }

    /// Folds the write-ahead log into the database file and truncates it before the pools close,
    /// so a stopped server leaves one self-contained file even if a connection's own close (on its
    /// worker thread) has not finished when the process exits.
    async fn retire(&self) {
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.write.pool)
            .await
        {
            tracing::warn!(error = %e, "checkpointing the write-ahead log at shutdown");
        }
    }

    /// Nothing to start once migrated.
    fn migrated(&self) {}

    /// An identity's traits as the database holds them now: this process's view is exact.
    async fn current_traits(
        &self,
        environment: crate::model::Id,
        identifier: &str,
    ) -> crate::Result<Option<Vec<crate::model::Trait>>> {
        use crate::Store as _;
        Ok(self
            .identity(environment, identifier)
            .await?
            .map(|record| record.traits))
    }

    /// A read transaction already sees one snapshot (WAL).
    const SNAPSHOT_READ: Option<&str> = None;

    /// New ids follow the largest id by themselves.
    fn resequence(_table: &str) -> Option<String> {
        None
    }

    /// Opens (creating if missing) the database at `url` (`sqlite://path`), without migrating.
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Identities are cached above the database, so small page and statement caches per
            // connection do (they are most of an idle server's memory otherwise).
            .pragma("cache_size", "-512")
            .statement_cache_capacity(32);
        // A connection to a local file does not go stale: no ping (a round trip to the connection's
        // worker thread) before each use.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        // Only this process writes the file, so identities can be answered from memory.
        let cache = Arc::new(IdentityCache::new(true));
        Ok(SqliteStore {
            read,
            write: Writer {
                pool: write,
                cache,
                lease: None,
            },
        })
    }

    /// SQLite is not shared between processes: no change feed.
    async fn feed(&self) -> Result<Option<crate::ChangeFeed>> {
        Ok(None)
    }
}

crate::sql::sql_store!(SqliteStore, sqlx::Sqlite);
