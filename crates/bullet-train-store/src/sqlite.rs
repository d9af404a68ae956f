//! The embedded SQLite backend, the default: WAL journal, `synchronous=FULL` (an acknowledged commit
//! survives a crash of the process or of the machine), foreign keys on, and a single writer
//! connection so that write transactions queue instead of failing with `SQLITE_BUSY`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
];

/// Embedded migrations as an sqlx migration source.
#[derive(Debug)]
pub(crate) struct Embedded(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send + 's>>
    {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`), without migrating.
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { read, write })
    }

    async fn run_migrations(&self) -> Result<()> {
        let migrator = Migrator::new(Embedded(MIGRATIONS))
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        migrator
            .run(&self.write)
            .await
            .map_err(|e| StoreError::Other(e.into()))?;
        Ok(())
    }

    /// Closes both pools, waiting for queries in flight.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

crate::sql::sql_store!(SqliteStore, sqlx::Sqlite);
