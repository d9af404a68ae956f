//! Moving a whole installation between stores (SQLite to PostgreSQL and back): every table, rows
//! and ids unchanged, streamed in batches from one consistent read of the source into one
//! transaction on the target, which must be empty.

use tokio::sync::mpsc;

use crate::{Result, Store, StoreError};

/// The type of a column, as both schemas declare it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `BIGINT` / `INTEGER`.
    Int,
    /// `TEXT`.
    Text,
    /// `BOOLEAN`.
    Bool,
    /// `DOUBLE PRECISION`.
    Float,
}

/// One value; `None` is SQL `NULL`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// An integer column's value.
    Int(Option<i64>),
    /// A text column's value.
    Text(Option<String>),
    /// A boolean column's value.
    Bool(Option<bool>),
    /// A float column's value.
    Float(Option<f64>),
}

/// A table and its columns.
#[derive(Debug)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Its columns, in order.
    pub columns: &'static [(&'static str, Kind)],
    /// Whether it has an `id` primary key (read by id; its sequence is moved past the copied ids).
    pub has_id: bool,
    /// Its key columns, for a stable order.
    pub order: &'static str,
}

use Kind::{Bool, Float, Int, Text};

const fn table(
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    order: &'static str,
) -> Table {
    // Tables ordered by `id` have an `id` primary key.
    let key = order.as_bytes();
    let has_id = key.len() == 2 && key[0] == b'i' && key[1] == b'd';
    Table {
        name,
        columns,
        has_id,
        order,
    }
}

/// Every table of an installation, parents before children.
pub static TABLES: &[Table] = &[
    table("meta", &[("key", Text), ("value", Text)], "key"),
    table(
        "organisations",
        &[
            ("id", Int),
            ("uuid", Text),
            ("name", Text),
            ("persist_trait_data", Bool),
            ("feature_analytics", Bool),
            ("stop_serving_flags", Bool),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "projects",
        &[
            ("id", Int),
            ("organisation_id", Int),
            ("name", Text),
            ("hide_disabled_flags", Bool),
            ("enable_realtime_updates", Bool),
            ("created_at", Int),
            ("uuid", Text),
            ("prevent_flag_defaults", Bool),
            ("only_allow_lower_case_feature_names", Bool),
            ("feature_name_regex", Text),
            ("stale_flags_limit_days", Int),
        ],
        "id",
    ),
    table(
        "environments",
        &[
            ("id", Int),
            ("project_id", Int),
            ("api_key", Text),
            ("name", Text),
            ("description", Text),
            ("allow_client_traits", Bool),
            ("hide_sensitive_data", Bool),
            ("hide_disabled_flags", Bool),
            ("use_identity_composite_key_for_hashing", Bool),
            ("use_identity_overrides_in_local_eval", Bool),
            ("updated_at", Int),
            ("revision", Int),
            ("created_at", Int),
            ("uuid", Text),
        ],
        "id",
    ),
    table(
        "server_keys",
        &[
            ("id", Int),
            ("environment_id", Int),
            ("key_hash", Text),
            ("prefix", Text),
            ("name", Text),
            ("active", Bool),
            ("expires_at", Int),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "features",
        &[
            ("id", Int),
            ("project_id", Int),
            ("name", Text),
            ("name_key", Text),
            ("type", Text),
            ("description", Text),
            ("initial_value", Text),
            ("default_enabled", Bool),
            ("is_server_key_only", Bool),
            ("created_at", Int),
            ("uuid", Text),
        ],
        "id",
    ),
    table(
        "multivariate_options",
        &[
            ("id", Int),
            ("feature_id", Int),
            ("value", Text),
            ("default_percentage_allocation", Float),
            ("key", Text),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "segments",
        &[
            ("id", Int),
            ("project_id", Int),
            ("name", Text),
            ("description", Text),
            ("seed", Int),
            ("rules", Text),
            ("created_at", Int),
            ("feature_id", Int),
            ("uuid", Text),
        ],
        "id",
    ),
    table(
        "feature_segments",
        &[
            ("id", Int),
            ("feature_id", Int),
            ("segment_id", Int),
            ("environment_id", Int),
            ("priority", Int),
        ],
        "id",
    ),
    table(
        "identities",
        &[
            ("id", Int),
            ("environment_id", Int),
            ("identifier", Text),
            ("uuid", Text),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "feature_states",
        &[
            ("id", Int),
            ("feature_id", Int),
            ("environment_id", Int),
            ("feature_segment_id", Int),
            ("identity_id", Int),
            ("enabled", Bool),
            ("value", Text),
            ("seed", Int),
            ("uuid", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        "id",
    ),
    table(
        "multivariate_values",
        &[
            ("id", Int),
            ("feature_state_id", Int),
            ("option_id", Int),
            ("percentage_allocation", Float),
            ("sort_key", Int),
            ("uuid", Text),
        ],
        "id",
    ),
    table(
        "traits",
        &[
            ("id", Int),
            ("identity_id", Int),
            ("key", Text),
            ("value", Text),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "flag_analytics",
        &[
            ("environment_id", Int),
            ("feature_id", Int),
            ("day", Text),
            ("count", Int),
        ],
        "environment_id, feature_id, day",
    ),
    table(
        "organisation_api_keys",
        &[
            ("id", Int),
            ("organisation_id", Int),
            ("prefix", Text),
            ("key_hash", Text),
            ("name", Text),
            ("is_admin", Bool),
            ("revoked", Bool),
            ("expires_at", Int),
            ("created_at", Int),
        ],
        "id",
    ),
    table(
        "audit_log",
        &[
            ("id", Int),
            ("created_at", Int),
            ("author", Text),
            ("organisation_id", Int),
            ("project_id", Int),
            ("environment_id", Int),
            ("related_object_type", Text),
            ("related_object_id", Int),
            ("related_object_uuid", Text),
            ("log", Text),
            ("previous_state", Text),
            ("new_state", Text),
            ("is_system_event", Bool),
        ],
        "id",
    ),
    table(
        "webhooks",
        &[
            ("id", Int),
            ("environment_id", Int),
            ("url", Text),
            ("enabled", Bool),
            ("secret", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        "id",
    ),
    table(
        "webhook_deliveries",
        &[
            ("id", Int),
            ("webhook_id", Int),
            ("event_type", Text),
            ("payload", Text),
            ("status", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("last_status_code", Int),
            ("last_error", Text),
            ("created_at", Int),
            ("delivered_at", Int),
        ],
        "id",
    ),
];

/// Rows read from one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Index of the table in [`TABLES`].
    pub table: usize,
    /// The rows, cells in the table's column order.
    pub rows: Vec<Vec<Cell>>,
}

/// What a reading store sends: batches, then `Complete` once everything was read (a target
/// commits only then, so a failed read never leaves a partial copy).
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Rows of one table.
    Rows(Batch),
    /// The whole installation was sent.
    Complete,
}

/// Rows per batch.
pub(crate) const BATCH_ROWS: i64 = 500;

/// How many rows of each table a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// `(table, rows)` in copy order.
    pub tables: Vec<(&'static str, u64)>,
}

/// Copies every row of `from` into `to` (migrated, and empty but for its settings), ids unchanged,
/// in one transaction on `to`: on failure `to` is left as it was.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<CopyReport> {
    let (sender, receiver) = mpsc::channel(4);
    let (read, written) = tokio::join!(
        from.read_installation(sender),
        to.write_installation(receiver)
    );
    // A write failure drops the receiver, which fails the read: report the write's error.
    let report = written?;
    read?;
    Ok(report)
}

/// Every row of an installation, in copy order (for comparisons; copies stream instead).
pub async fn read_all(store: &dyn Store) -> Result<Vec<Batch>> {
    let (sender, mut receiver) = mpsc::channel(4);
    let collect = async {
        let mut batches: Vec<Batch> = Vec::new();
        while let Some(Piece::Rows(batch)) = receiver.recv().await {
            match batches.last_mut() {
                Some(last) if last.table == batch.table => last.rows.extend(batch.rows),
                _ => batches.push(batch),
            }
        }
        batches
    };
    let (read, batches) = tokio::join!(store.read_installation(sender), collect);
    read?;
    Ok(batches)
}

/// The error of a copy whose target is not empty.
pub(crate) fn not_empty(table: &str) -> StoreError {
    StoreError::Invalid(format!(
        "the target database is not empty (table {table} has rows); copy into a new database"
    ))
}
