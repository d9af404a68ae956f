//! Storage for Bullet Train.
//!
//! # Layout
//!
//! - [`model`]: the domain types the rest of the system sees.
//! - [`Store`]: the storage trait, one method per use case, with [`StoreError`] as its only error.
//! - `sql`: the implementation, written once as a macro over the sqlx database type so that every
//!   backend runs the same SQL (`$N` placeholders, `RETURNING`, `ON CONFLICT`, all of which SQLite and
//!   PostgreSQL share). Each backend module owns its connection setup and its migrations.
//! - [`sqlite`]: the embedded default (WAL, `synchronous=FULL`, one writer connection).
//! - [`postgres`]: for several replicas on one database, with the [`ChangeFeed`] that tells each
//!   replica what the others committed.
//! - [`transfer`]: copying a whole installation between stores.
//! - `testing` (feature `testing`): fresh databases for tests of any crate.
//! - [`document`]: conversion between stored data and the Flagsmith environment document.
//! - [`random`]: keys, tokens, UUIDs and seeds from the OS CSPRNG.
//!
//! # Invariants
//!
//! - Only this crate contains SQL; no sqlx type appears in its public API.
//! - Every write is one transaction; a write that changes what an environment document holds bumps that
//!   environment's `revision` and `updated_at` in the same transaction.
//! - Migrations are versioned, embedded in the binary and applied once.

#![forbid(unsafe_code)]

use async_trait::async_trait;
use bullet_train_protocol::EnvironmentDocument;

pub mod admin;
mod cache;
pub mod document;
mod events;
mod lease;
pub mod model;
pub mod postgres;
pub mod random;
mod sql;
mod sql_admin;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod transfer;

use model::{
    Author, Environment, EnvironmentData, Id, IdentityRecord, ImportOutcome, Increment, Micros,
    ServerKey, TraitChange,
};

pub use postgres::{Change, ChangeFeed, PgStore};
pub use sqlite::SqliteStore;

/// Errors of the store: the cases callers handle, and everything else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint was violated.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The data is not acceptable (for example an import that contradicts itself).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database cannot be reached right now (connection refused or lost, no free connection).
    #[error("database unavailable: {0}")]
    Unavailable(anyhow::Error),
    /// Anything else (disk full, corrupt data).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StoreError::Unavailable(anyhow::Error::new(e))
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned())
            }
            other => StoreError::Other(anyhow::Error::new(other)),
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Changes to a server-side key; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ServerKeyUpdate {
    pub name: Option<String>,
    pub active: Option<bool>,
    /// `Some(None)` removes the expiry.
    pub expires_at: Option<Option<Micros>>,
}

/// Persistent storage, one method per use case. Implementations are cheap to share (`Arc<dyn Store>`).
#[async_trait]
pub trait Store: admin::AdminStore + std::fmt::Debug + Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// The versions of this binary's migrations the database has not applied (all of them for an
    /// empty database).
    async fn pending_migrations(&self) -> Result<Vec<i64>>;

    /// A value of the key-value settings table.
    async fn meta(&self, key: &str) -> Result<Option<String>>;
    /// Sets a value of the key-value settings table.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    /// The feed of changes committed through any connection to the database, for stores that
    /// several processes share (PostgreSQL); `None` for a store only this process uses (SQLite).
    async fn change_feed(&self) -> Result<Option<ChangeFeed>>;

    /// Closes idle read connections beyond one. A pool opens another connection whenever a query
    /// starts before the previous query's connection is back (connections return asynchronously),
    /// so a run of sequential reads, such as loading every environment at start, leaves several
    /// open; the server calls this once start-up is done, so that an idle server holds one. The
    /// pool opens connections again when load needs them. Returns how many it closed.
    async fn close_idle_connections(&self) -> usize;

    /// Closes every connection, waiting for queries in flight. On SQLite the writer closes last,
    /// which folds the write-ahead log into the database file: a stopped server's database is one
    /// file.
    async fn close(&self);

    /// Every environment's id and revision: what a replica compares to find what it missed.
    async fn revisions(&self) -> Result<Vec<(Id, i64)>>;

    /// Sends every row of the installation ([`transfer::TABLES`], in order) from one consistent
    /// read, then [`transfer::Piece::Complete`].
    async fn read_installation(
        &self,
        sink: tokio::sync::mpsc::Sender<transfer::Piece>,
    ) -> Result<()>;
    /// Writes the rows received into this store, which must hold no data (settings aside), in one
    /// transaction committed when `Complete` arrives; ids are kept.
    async fn write_installation(
        &self,
        source: tokio::sync::mpsc::Receiver<transfer::Piece>,
    ) -> Result<transfer::CopyReport>;

    /// Every environment.
    async fn environments(&self) -> Result<Vec<Environment>>;
    /// The environment with this client key.
    async fn environment_by_key(&self, api_key: &str) -> Result<Environment>;
    /// Everything an environment's snapshot is built from.
    async fn environment_data(&self, id: Id) -> Result<EnvironmentData>;
    /// [`Store::environment_data`] with every identity override, whatever the environment's
    /// `use_identity_overrides_in_local_eval` says: what an export holds.
    async fn environment_export(&self, id: Id) -> Result<EnvironmentData>;

    /// Server-side keys of one environment, or of all environments.
    async fn server_keys(&self, environment_id: Option<Id>) -> Result<Vec<ServerKey>>;
    /// Stores a new server-side key (its hash only), with an audit entry by `author`.
    async fn create_server_key(
        &self,
        author: &Author,
        environment_id: Id,
        name: &str,
        key_hash: &str,
        prefix: &str,
        expires_at: Option<Micros>,
    ) -> Result<ServerKey>;
    /// Renames, (de)activates or changes the expiry of a server-side key.
    async fn update_server_key(
        &self,
        author: &Author,
        environment_id: Id,
        id: Id,
        update: ServerKeyUpdate,
    ) -> Result<ServerKey>;
    /// Deletes (revokes) a server-side key.
    async fn delete_server_key(&self, author: &Author, environment_id: Id, id: Id) -> Result<()>;

    /// Creates the environment of a Flagsmith environment document (and its project and organisation
    /// when new), or replaces its whole content, atomically, with an audit entry by `author`.
    async fn import_document_by(
        &self,
        author: &Author,
        document: &EnvironmentDocument,
    ) -> Result<ImportOutcome>;

    /// [`Store::import_document_by`] on behalf of the server itself (tools and tests).
    async fn import_document(&self, document: &EnvironmentDocument) -> Result<ImportOutcome> {
        let author = Author {
            label: "bullet-train".into(),
        };
        self.import_document_by(&author, document).await
    }

    /// A number that changes whenever stored identities may have changed, for answers computed
    /// from them to be reused while it stays the same; `None` while a write is in progress or when
    /// the store cannot tell (PostgreSQL while no change feed follows the database).
    fn identity_generation(&self) -> Option<u64>;

    /// An identity with its traits and overrides.
    async fn identity(
        &self,
        environment_id: Id,
        identifier: &str,
    ) -> Result<Option<IdentityRecord>>;
    /// An identity's traits as the database holds them now (`None`: no such identity), to decide
    /// whether a trait write would change anything: from memory when only this process writes the
    /// store (SQLite), from the database in one query on PostgreSQL, since skipping a write on a
    /// copy that misses another replica's change would lose it.
    async fn traits_for_write(
        &self,
        environment_id: Id,
        identifier: &str,
    ) -> Result<Option<Vec<model::Trait>>>;
    /// Whether other processes may write this store now (PostgreSQL, unless this replica holds
    /// the sole-writer lease): then memory may be behind the database, and a write is skipped only
    /// once [`Store::traits_for_write`] shows it changes nothing. An answer of `false` stays
    /// correct for whatever the caller decides from memory right after asking: the lease is
    /// released in the database only after this starts answering `true`.
    fn shared(&self) -> bool;
    /// An identity, created if it does not exist.
    async fn ensure_identity(&self, environment_id: Id, identifier: &str)
    -> Result<IdentityRecord>;
    /// Applies trait changes to identities (created when missing), atomically, and returns them.
    /// A value equal to the stored one is left untouched; `None` deletes.
    async fn write_traits(
        &self,
        environment_id: Id,
        changes: &[(String, Vec<TraitChange>)],
    ) -> Result<Vec<IdentityRecord>>;
    /// Adds `by` to an integer trait (a missing trait counts as 0).
    async fn increment_trait(
        &self,
        environment_id: Id,
        identifier: &str,
        key: &str,
        by: i64,
    ) -> Result<Increment>;

    /// Adds flag evaluation counts for a day (`YYYY-MM-DD`).
    async fn record_evaluations(
        &self,
        environment_id: Id,
        day: &str,
        counts: &[(Id, i64)],
    ) -> Result<()>;
    /// Evaluation counts of one feature, per day, oldest first.
    async fn evaluation_counts(
        &self,
        environment_id: Id,
        feature_id: Id,
    ) -> Result<Vec<(String, i64)>>;
}
