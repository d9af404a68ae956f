//! Identity responses kept for requests that come again unchanged. An SDK identifying the same user
//! with the same traits gets the same answer as long as the environment (its snapshot revision)
//! and the stored identities (the store's identity generation, which any write moves) are as they
//! were: the answer is then the stored bytes, with no parsing, store access or evaluation.
//!
//! Only a store that can tell that nothing was written gives a generation: SQLite, which this
//! process alone writes, and PostgreSQL while the replica follows its change feed (another
//! replica's write reaches this cache as fast as its notification does).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bullet_train_store::model::Id;
use bytes::Bytes;

use crate::snapshot::KeyKind;

/// Most bytes (requests and answers) kept; reaching it empties the cache.
const BUDGET: usize = 32 << 20;

#[derive(Debug)]
struct Entry {
    revision: i64,
    generation: u64,
    body: Bytes,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<(Id, KeyKind, Bytes), Entry>,
    bytes: usize,
}

/// The cache of identity answers, keyed by environment, key kind and the exact request.
#[derive(Debug, Default)]
pub(crate) struct Responses {
    entries: Mutex<Entries>,
}

impl Responses {
    /// The answer to `request`, if it was kept under this revision and generation.
    pub(crate) fn get(
        &self,
        environment: Id,
        kind: KeyKind,
        request: &Bytes,
        revision: i64,
        generation: u64,
    ) -> Option<Bytes> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.map.get(&(environment, kind, request.clone()))?;
        (entry.revision == revision && entry.generation == generation).then(|| entry.body.clone())
    }

    /// Keeps the answer to `request`.
    pub(crate) fn put(
        &self,
        environment: Id,
        kind: KeyKind,
        request: Bytes,
        revision: i64,
        generation: u64,
        body: Bytes,
    ) {
        let size = request.len() + body.len();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.bytes + size > BUDGET {
            entries.map.clear();
            entries.bytes = 0;
        }
        let entry = Entry {
            revision,
            generation,
            body,
        };
        if let Some(old) = entries.map.insert((environment, kind, request), entry) {
            entries.bytes = entries.bytes.saturating_sub(old.body.len());
        } else {
            entries.bytes += size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_under_the_same_revision_and_generation() {
        let cache = Responses::default();
        let request = Bytes::from_static(br#"{"identifier":"ann"}"#);
        let body = Bytes::from_static(b"{}");
        cache.put(1, KeyKind::Client, request.clone(), 5, 9, body.clone());
        assert_eq!(cache.get(1, KeyKind::Client, &request, 5, 9), Some(body));
        assert_eq!(
            cache.get(1, KeyKind::Client, &request, 6, 9),
            None,
            "environment changed"
        );
        assert_eq!(
            cache.get(1, KeyKind::Client, &request, 5, 10),
            None,
            "a write happened"
        );
        assert_eq!(
            cache.get(1, KeyKind::Server, &request, 5, 9),
            None,
            "other key kind"
        );
        assert_eq!(
            cache.get(2, KeyKind::Client, &request, 5, 9),
            None,
            "other environment"
        );
    }
}
