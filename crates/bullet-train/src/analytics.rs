//! Flag analytics: evaluation counts per feature name, flushed in the background to
//! `analytics/flags/` as `{"name": count}`. Remote lookups count here; local evaluation counts in
//! per-feature atomics of the loaded environment (see `local::LocalState`), drained into this at
//! each flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::watch;

use crate::client::Shared;

/// Counts waiting for the next flush.
#[derive(Debug, Default)]
pub(crate) struct Analytics {
    pending: Mutex<HashMap<String, u64>>,
}

impl Analytics {
    /// Counts one evaluation of `name`.
    pub(crate) fn count(&self, name: &str) {
        self.add(name, 1);
    }

    pub(crate) fn add(&self, name: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(name) {
            Some(count) => *count += n,
            None => {
                pending.insert(name.to_owned(), n);
            }
        }
    }

    /// Takes every pending count.
    pub(crate) fn take(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts counts back after a failed flush.
    pub(crate) fn restore(&self, counts: HashMap<String, u64>) {
        for (name, n) in counts {
            self.add(&name, n);
        }
    }
}

/// Sends the pending counts; on failure they stay pending for the next flush.
pub(crate) async fn flush(shared: &Shared) -> Result<(), crate::Error> {
    let (Some(analytics), Some(http)) = (&shared.analytics, &shared.http) else {
        return Ok(());
    };
    // One flush at a time, so a flush returns only once counts taken by another have been sent.
    let _flushing = shared.flushing.lock().await;
    shared.drain_local_counts(analytics);
    let counts = analytics.take();
    if counts.is_empty() {
        return Ok(());
    }
    match http.call(Method::POST, "analytics/flags/", &counts).await {
        Ok(()) => Ok(()),
        Err(error) => {
            analytics.restore(counts);
            Err(error)
        }
    }
}

/// Flushes every `interval` until shutdown, then once more.
pub(crate) async fn run(
    shared: Arc<Shared>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        if let Err(error) = flush(&shared).await {
            tracing::warn!(%error, "flag analytics not sent; keeping the counts");
        }
    }
    if let Err(error) = flush(&shared).await {
        tracing::warn!(%error, "last flag analytics not sent");
    }
}
