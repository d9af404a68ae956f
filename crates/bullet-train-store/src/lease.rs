//! Sole-writer mode on PostgreSQL: a replica alone on its database decides from memory, as the
//! SQLite store does, that a request storing traits changes nothing.
//!
//! A replica that shares the database with others must read the database before skipping such a
//! write, since its memory may not yet know another replica's change (a lost write otherwise). That
//! read costs most of the `identities/` throughput. A single replica on PostgreSQL, the common
//! case, needs no read as long as nobody else writes; this module establishes that, with a lease in
//! the database (migration 7):
//!
//! - Every replica ticks once a second ([`run`]): it records that it is alive and, when no other
//!   replica was seen for [`ALIVE`], takes or renews the lease, valid for [`LEASE`] in the
//!   database's clock. It counts itself the sole writer until [`LEASE`] minus a margin after it
//!   *sent* the tick, which is never later than the database's expiry.
//! - Every write transaction first shares an advisory lock, until it ends, and checks that no other
//!   replica's lease is valid; if one is, it waits for it to end (the holder, notified, steps down
//!   within milliseconds; a holder that died lets it expire). Taking the lease needs the lock
//!   exclusively, so writes that passed the check have committed first, the holder's own among
//!   them (its lease may have run out before they commit). Sessions are READ COMMITTED, so the
//!   check reads the lease after the lock wait.
//! - Stepping down clears the local mode *before* releasing the lease in the database; a tick
//!   that goes unanswered clears it at once; and a lease taken afresh, or renewed after any gap
//!   here, drops every identity kept in memory first: memory is trusted only for what was read
//!   while nobody else could write.
//!
//! A request that saw the mode still on may finish after another replica's write: it began before
//! that write could, so answering as if it came first is correct.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::sync::{Mutex, Notify, watch};

use crate::cache::IdentityCache;

/// How often a replica records that it is alive and renews its lease.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// How long a lease lasts without renewal (database clock).
pub(crate) const LEASE: Duration = Duration::from_secs(3);
/// How recently another replica must have ticked to count as alive.
pub(crate) const ALIVE: Duration = Duration::from_secs(3);
/// Subtracted from the lease on this side, for clocks that tick at slightly different rates.
const MARGIN: Duration = Duration::from_millis(250);
/// How long a write waits for another replica's lease to end before failing as unavailable:
/// longer than a lease whose holder died.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// This replica's side of the lease.
#[derive(Debug)]
pub(crate) struct Lease {
    /// This replica's id in `replicas` (random).
    pub(crate) replica: i64,
    epoch: Instant,
    /// Milliseconds after `epoch` until which this replica is the sole writer; 0 when it is not.
    until: AtomicU64,
    /// Wakes the ticking task early (another replica asks this one to step down).
    wake: Notify,
    /// Whether the mode is on, sent after every tick (for tests).
    changes: watch::Sender<bool>,
    /// Set when the store closes: no more ticks.
    retired: AtomicBool,
    /// Held by a tick, and by retiring (which so never overlaps one).
    ticking: Mutex<()>,
}

impl Lease {
    pub(crate) fn new() -> Lease {
        let mut bytes = [0u8; 8];
        crate::random::fill(&mut bytes);
        Lease {
            replica: i64::from_le_bytes(bytes) & i64::MAX,
            epoch: Instant::now(),
            until: AtomicU64::new(0),
            wake: Notify::new(),
            changes: watch::channel(false).0,
            retired: AtomicBool::new(false),
            ticking: Mutex::new(()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this replica is the sole writer now.
    pub(crate) fn sole(&self) -> bool {
        self.now() < self.until.load(Ordering::SeqCst)
    }

    /// Watches the mode, sent after every tick even when unchanged.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    /// Asks for a tick now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Turns the mode off here (before the database hears of it).
    fn step_down(&self) {
        self.until.store(0, Ordering::SeqCst);
    }

    /// Turns the mode on until `until` (milliseconds after `epoch`).
    fn hold(&self, until: u64) {
        self.until.store(until, Ordering::SeqCst);
    }
}

/// Ticks until the store closes ([`retire`]) or is dropped (then, as when the process dies, the
/// lease is left to run out). `cache` is the store's identity memory, emptied whenever the lease
/// is taken afresh.
pub(crate) async fn run(lease: Weak<Lease>, pool: PgPool, cache: Arc<IdentityCache>) {
    // Its own connection, so that a pool busy with requests does not hold up the renewal; a pooled
    // one when it cannot be had (for example at the server's connection limit), so that this
    // replica keeps being seen as alive.
    let options = pool.connect_options();
    let mut own: Option<PgConnection> = None;
    // Whether the database may record this replica as the holder (it is released when not needed).
    let mut may_hold = false;
    loop {
        let Some(current) = lease.upgrade() else {
            return;
        };
        {
            let _ticking = current.ticking.lock().await;
            if current.retired.load(Ordering::SeqCst) {
                return;
            }
            if own.is_none() {
                match tokio::time::timeout(LEASE, PgConnection::connect_with(&options)).await {
                    Ok(Ok(connected)) => own = Some(connected),
                    Ok(Err(error)) => tracing::debug!(%error, "sole-writer connection failed"),
                    Err(_) => tracing::debug!("sole-writer connection timed out"),
                }
            }
            let answered = if let Some(conn) = &mut own {
                tick(&current, conn, &cache, &mut may_hold).await
            } else if let Ok(Ok(mut conn)) = tokio::time::timeout(LEASE, pool.acquire()).await {
                tick(&current, &mut conn, &cache, &mut may_hold).await
            } else {
                false
            };
            if !answered {
                // Unconfirmed: memory is trusted no longer (the database may still record this
                // replica as the holder; a later tick renews or releases it).
                own = None;
                current.step_down();
            }
            // Every tick is reported, changed or not (tests wait for ticks).
            current.changes.send_replace(current.sole());
        }
        let wait = tokio::time::sleep(TICK);
        tokio::select! {
            () = wait => {}
            () = current.wake.notified() => {}
        }
    }
}

/// One tick: heartbeat, then renew, take or give up the lease. `false` when the database did not
/// answer in time (the connection is then replaced). `may_hold` tracks whether the database may
/// record this replica as the holder.
async fn tick(
    lease: &Lease,
    conn: &mut PgConnection,
    cache: &IdentityCache,
    may_hold: &mut bool,
) -> bool {
    let may_have_held = std::mem::replace(may_hold, true);
    let sent = lease.now();
    // Held here without a gap up to now: the database's lease was valid all along, so a renewal
    // (1) is gap-free. Otherwise even a renewal may follow a take whose answer was lost.
    let continuous = lease.sole();
    let query = sqlx::query_scalar::<_, i32>("SELECT bullet_train_tick($1, $2, $3)")
        .bind(lease.replica)
        .bind(LEASE)
        .bind(ALIVE)
        .fetch_one(&mut *conn);
    // A tick answered later than the lease lasts would be of no use anyway.
    let Ok(answer) = tokio::time::timeout(LEASE, query).await else {
        tracing::debug!("sole-writer tick timed out");
        return false;
    };
    let until = sent + u64::try_from((LEASE - MARGIN).as_millis()).unwrap_or(0);
    match answer {
        Ok(1) if continuous => lease.hold(until),
        // Taken afresh (or renewed after a gap): memory may predate others' writes.
        Ok(1 | 2) => {
            cache.invalidate();
            lease.hold(until);
            tracing::info!("alone on the database: deciding trait writes from memory");
        }
        Ok(_) => {
            if continuous {
                tracing::info!("another replica is running: checking trait writes in the database");
            }
            lease.step_down();
            if may_have_held {
                release(lease, &mut *conn).await;
            }
            *may_hold = false;
        }
        Err(error) => {
            tracing::debug!(%error, "sole-writer tick failed");
            return false;
        }
    }
    true
}

/// Gives the lease up in the database (after [`Lease::step_down`]).
async fn release<'c>(lease: &Lease, conn: impl sqlx::PgExecutor<'c>) {
    let released = sqlx::query("UPDATE sole_writer SET replica = NULL WHERE replica = $1")
        .bind(lease.replica)
        .execute(conn)
        .await;
    if let Err(error) = released {
        tracing::debug!(%error, "releasing the sole-writer lease failed (it expires by itself)");
    }
}

/// Leaves for good (the store closes): steps down, releases the lease and forgets this replica,
/// so that the next one need not wait for either to expire.
pub(crate) async fn retire(lease: &Lease, pool: &PgPool) {
    let _ticking = lease.ticking.lock().await;
    lease.retired.store(true, Ordering::SeqCst);
    // The ticking task ends (and closes its connection) now rather than after its sleep.
    lease.wake();
    lease.step_down();
    let gone = sqlx::query(
        "WITH released AS (UPDATE sole_writer SET replica = NULL WHERE replica = $1) \
         DELETE FROM replicas WHERE id = $1",
    )
    .bind(lease.replica)
    .execute(pool)
    .await;
    if let Err(error) = gone {
        tracing::debug!(%error, "giving up the lease and heartbeat failed (both expire by themselves)");
    }
}
