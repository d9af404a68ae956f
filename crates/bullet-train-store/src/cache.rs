//! Identities kept in memory between requests: an SDK asking again for an identity whose traits did
//! not change is answered without the database.
//!
//! Correctness rests on one rule: every change to the stored identities moves a generation. This
//! process's own writes go through [`Writer`], which counts writes in progress and bumps the
//! generation when one starts and when it ends (after its commit, before the caller sees its
//! result). An entry is served only while no write is in progress and the generation is the one it
//! was read under; an entry is stored only if no write started or ended while it was read. Any write
//! therefore invalidates every entry: the cache pays off for reads between writes, which is the
//! common case (SDKs re-identify users far more often than their traits change).
//!
//! A store only this process writes (SQLite) keeps entries always. A store other processes write
//! too (PostgreSQL) keeps them only while a change feed is following the database: the feed bumps
//! the generation for every identity change any process commits, and when it loses or drops its
//! connection. Another replica's write then reaches this one's answers as fast as its notification
//! does.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::{Duration, Instant};

use crate::StoreError;
use crate::lease::{self, Lease};
use crate::model::{Id, IdentityRecord};

/// Most identities kept; reaching it empties the cache.
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    by_environment: HashMap<Id, HashMap<String, IdentityRecord>>,
    len: usize,
}

/// The cache, shared by a store and its [`Writer`].
#[derive(Debug, Default)]
pub(crate) struct IdentityCache {
    always: bool,
    feeds: AtomicUsize,
    generation: AtomicU64,
    writing: AtomicU64,
    entries: Mutex<Entries>,
}

/// What a reader notes before reading, to store what it read only if nothing was written meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(Option<u64>);

impl IdentityCache {
    /// A cache that holds entries `always` (a store only this process writes), or only while a
    /// change feed follows the database (see [`IdentityCache::feed_started`]).
    pub(crate) fn new(always: bool) -> IdentityCache {
        IdentityCache {
            always,
            ..IdentityCache::default()
        }
    }

    /// The generation, when the cache is enabled and no write is in progress.
    pub(crate) fn quiet_generation(&self) -> Option<u64> {
        let enabled = self.always || self.feeds.load(Ordering::SeqCst) > 0;
        if !enabled || self.writing.load(Ordering::SeqCst) > 0 {
            return None;
        }
        Some(self.generation.load(Ordering::SeqCst))
    }

    /// Someone else changed stored identities: every entry is out of date.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A change feed now hears of every change: entries may be kept from here on (what was read
    /// before is dropped).
    pub(crate) fn feed_started(&self) {
        self.invalidate();
        self.feeds.fetch_add(1, Ordering::SeqCst);
    }

    /// A change feed stopped hearing of changes: nothing is kept unless another one still does.
    pub(crate) fn feed_stopped(&self) {
        self.feeds.fetch_sub(1, Ordering::SeqCst);
        self.invalidate();
    }

    /// The cached identity, if it is current.
    pub(crate) fn get(&self, environment: Id, identifier: &str) -> Option<IdentityRecord> {
        let generation = self.quiet_generation()?;
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.generation != generation {
            return None;
        }
        entries
            .by_environment
            .get(&environment)?
            .get(identifier)
            .cloned()
    }

    /// Notes the state before a read.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.quiet_generation())
    }

    /// Keeps what was read under `ticket`, if nothing was written since.
    pub(crate) fn put(&self, ticket: Ticket, environment: Id, record: &IdentityRecord) {
        let Some(generation) = ticket.0 else { return };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if self.quiet_generation() != Some(generation) {
            return;
        }
        if entries.generation != generation || entries.len >= CAPACITY {
            entries.by_environment.clear();
            entries.len = 0;
            entries.generation = generation;
        }
        let previous = entries
            .by_environment
            .entry(environment)
            .or_default()
            .insert(record.identity.identifier.clone(), record.clone());
        if previous.is_none() {
            entries.len += 1;
        }
    }

    fn begin_write(&self) {
        self.writing.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn end_write(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.writing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a write in progress for as long as it lives.
#[derive(Debug)]
pub(crate) struct WriteGuard(Arc<IdentityCache>);

impl WriteGuard {
    fn new(cache: &Arc<IdentityCache>) -> WriteGuard {
        cache.begin_write();
        WriteGuard(cache.clone())
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        self.0.end_write();
    }
}

/// The write side of a store: its pool, through which every write goes, marked in the cache.
#[derive(Debug)]
pub(crate) struct Writer<DB: sqlx::Database> {
    pub(crate) pool: sqlx::Pool<DB>,
    pub(crate) cache: Arc<IdentityCache>,
    /// The sole-writer lease, on a database other replicas may write (PostgreSQL).
    pub(crate) lease: Option<Arc<Lease>>,
}

impl<DB: sqlx::Database> Clone for Writer<DB> {
    fn clone(&self) -> Self {
        Writer {
            pool: self.pool.clone(),
            cache: self.cache.clone(),
            lease: self.lease.clone(),
        }
    }
}

/// How a backend checks, in a write transaction, that no other replica holds the sole-writer
/// lease (see `lease.rs`).
pub(crate) trait Fence: sqlx::Database {
    /// Whether `replica` may write in `tx`: no other replica's lease is valid.
    fn admit(
        tx: &mut sqlx::Transaction<'static, Self>,
        replica: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
}

/// How often a write waiting for another replica's lease to end checks again.
const FENCE_POLL: Duration = Duration::from_millis(20);

impl<DB: Fence> Writer<DB> {
    /// Begins a write transaction. On a database other replicas may write, its first statement
    /// checks the sole-writer lease, holding a shared lock until the transaction ends so that no
    /// replica can take the lease meanwhile (the holder's own writes too: its lease may run out
    /// before they commit). While another replica holds the lease, waits for it to end (asking it
    /// to step down), at most [`lease::WAIT`].
    pub(crate) async fn begin(&self) -> Result<WriteTx<DB>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(lease) = &self.lease {
            let deadline = Instant::now() + lease::WAIT;
            let mut asked = false;
            while !DB::admit(&mut tx, lease.replica).await? {
                tx.rollback().await?;
                if Instant::now() >= deadline {
                    return Err(StoreError::Unavailable(anyhow::anyhow!(
                        "another replica holds the sole-writer lease and did not give it up"
                    )));
                }
                if !asked {
                    // This replica's tick records it as alive and notifies the holder.
                    lease.wake();
                    asked = true;
                }
                tokio::time::sleep(FENCE_POLL).await;
                tx = self.pool.begin().await?;
            }
        }
        // Marked as a write from here, before it changes anything (not while it waited).
        Ok(WriteTx {
            tx,
            _guard: Some(WriteGuard::new(&self.cache)),
        })
    }
}

impl<DB: sqlx::Database> Writer<DB> {
    /// Begins a write transaction that touches nothing an identity answer is computed from (flag
    /// evaluation counts): kept identities stay valid, so SDKs reporting analytics every few
    /// seconds do not empty the cache.
    pub(crate) async fn begin_unrelated(&self) -> Result<WriteTx<DB>, sqlx::Error> {
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: None })
    }

    /// A connection for a single write statement.
    pub(crate) async fn acquire(&self) -> Result<WriteConn<DB>, sqlx::Error> {
        let guard = WriteGuard::new(&self.cache);
        let conn = self.pool.acquire().await?;
        Ok(WriteConn {
            conn,
            _guard: guard,
        })
    }
}

/// A write transaction (dereferences to its connection, like sqlx's).
#[derive(Debug)]
pub(crate) struct WriteTx<DB: sqlx::Database> {
    tx: sqlx::Transaction<'static, DB>,
    _guard: Option<WriteGuard>,
}

impl<DB: sqlx::Database> WriteTx<DB> {
    /// Commits; the write ends (and the cache moves on) when this returns.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl<DB: sqlx::Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// A connection for one write statement.
#[derive(Debug)]
pub(crate) struct WriteConn<DB: sqlx::Database> {
    conn: sqlx::pool::PoolConnection<DB>,
    _guard: WriteGuard,
}

impl<DB: sqlx::Database> Deref for WriteConn<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> DerefMut for WriteConn<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Identity;

    fn record(identifier: &str) -> IdentityRecord {
        IdentityRecord {
            identity: Identity {
                id: 1,
                environment_id: 7,
                identifier: identifier.into(),
                uuid: String::new(),
                created_at: 0,
            },
            traits: vec![],
            overrides: vec![],
        }
    }

    #[test]
    fn entries_live_until_any_write() {
        let cache = Arc::new(IdentityCache::new(true));
        let ticket = cache.ticket();
        cache.put(ticket, 7, &record("ann"));
        assert_eq!(cache.get(7, "ann"), Some(record("ann")));
        assert_eq!(cache.get(8, "ann"), None);
        drop(WriteGuard::new(&cache));
        assert_eq!(cache.get(7, "ann"), None, "a write invalidates");
    }

    #[test]
    fn nothing_is_kept_or_served_around_a_write() {
        let cache = Arc::new(IdentityCache::new(true));
        // A read that overlapped a write is not kept.
        let ticket = cache.ticket();
        drop(WriteGuard::new(&cache));
        cache.put(ticket, 7, &record("ann"));
        assert_eq!(cache.get(7, "ann"), None);
        // While a write is in progress, nothing is served or noted.
        cache.put(cache.ticket(), 7, &record("ann"));
        let guard = WriteGuard::new(&cache);
        assert_eq!(cache.get(7, "ann"), None);
        cache.put(cache.ticket(), 7, &record("bob"));
        drop(guard);
        assert_eq!(cache.get(7, "bob"), None);
    }

    #[test]
    fn a_shared_store_keeps_entries_only_while_a_feed_follows_it() {
        let cache = IdentityCache::new(false);
        cache.put(cache.ticket(), 7, &record("ann"));
        assert_eq!(cache.get(7, "ann"), None, "no feed");
        cache.feed_started();
        cache.put(cache.ticket(), 7, &record("ann"));
        assert_eq!(cache.get(7, "ann"), Some(record("ann")));
        cache.invalidate();
        assert_eq!(cache.get(7, "ann"), None, "a change another process made");
        cache.put(cache.ticket(), 7, &record("ann"));
        let ticket = cache.ticket();
        cache.feed_stopped();
        assert_eq!(cache.get(7, "ann"), None, "the feed stopped");
        cache.put(ticket, 7, &record("bob"));
        assert_eq!(cache.get(7, "bob"), None);
    }
}
