//! Fresh databases for the tests of every crate (feature `testing`): a SQLite file in a temporary
//! directory, or a new PostgreSQL database created for the test and dropped when it ends.
//!
//! `BULLET_TRAIN_TEST_BACKEND=postgres` makes [`TestDatabase::from_env`] choose PostgreSQL;
//! `BULLET_TRAIN_TEST_POSTGRES_URL` names the server to create databases on (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, the trust-auth server CI provides).

use std::path::Path;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

/// Where tests create their PostgreSQL databases, unless `BULLET_TRAIN_TEST_POSTGRES_URL` says.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Sqlite(tempfile::TempDir),
    Postgres { server: String, name: String },
}

impl TestDatabase {
    /// The backend `BULLET_TRAIN_TEST_BACKEND` names (`sqlite`, the default, or `postgres`).
    pub async fn from_env() -> TestDatabase {
        match std::env::var("BULLET_TRAIN_TEST_BACKEND").as_deref() {
            Ok("postgres") => TestDatabase::postgres().await,
            Ok("sqlite") | Err(_) => TestDatabase::sqlite(),
            Ok(other) => panic!("BULLET_TRAIN_TEST_BACKEND={other}: expected sqlite or postgres"),
        }
    }

    /// A SQLite database file in a fresh temporary directory.
    pub fn sqlite() -> TestDatabase {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("bullet-train.db").display());
        TestDatabase {
            url,
            kind: Kind::Sqlite(dir),
        }
    }

    /// A new, empty PostgreSQL database, dropped with this value.
    pub async fn postgres() -> TestDatabase {
        let server = std::env::var("BULLET_TRAIN_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = format!("bt_test_{}", crate::random::token().to_lowercase());
        let name: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut conn = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed for this test: {e}"));
        // template0 has no connections, so concurrent tests can copy it at the same time.
        sqlx::query(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        let _ = conn.close().await;
        let url = database_url(&server, &name);
        TestDatabase {
            url,
            kind: Kind::Postgres { server, name },
        }
    }

    /// The database URL to give a store or a server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    /// The directory of a SQLite database (for other files a test needs); `None` for PostgreSQL.
    pub fn dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Sqlite(dir) => Some(dir.path()),
            Kind::Postgres { .. } => None,
        }
    }
}

/// Toggles the default state of `feature` in the environment with client key `api_key` and moves
/// the environment's revision, directly in the PostgreSQL database at `database_url` with its
/// triggers off: a change whose notification was lost, for tests of the replicas' periodic
/// revision check.
pub async fn change_without_notification(database_url: &str, api_key: &str, feature: &str) {
    let mut conn = PgConnection::connect(database_url)
        .await
        .expect("connecting to the test database");
    let mut tx = conn.begin().await.expect("a transaction");
    // Replica mode skips ordinary triggers, the NOTIFY ones included.
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("turning triggers off");
    let toggled = sqlx::query(
        "UPDATE feature_states SET enabled = NOT enabled \
         WHERE identity_id IS NULL AND feature_segment_id IS NULL \
         AND environment_id = (SELECT id FROM environments WHERE api_key = $1) \
         AND feature_id = (SELECT f.id FROM features f JOIN environments e \
             ON e.project_id = f.project_id WHERE e.api_key = $1 AND f.name = $2)",
    )
    .bind(api_key)
    .bind(feature)
    .execute(&mut *tx)
    .await
    .expect("toggling the flag");
    assert_eq!(toggled.rows_affected(), 1, "no flag {feature} in {api_key}");
    sqlx::query(
        "UPDATE environments SET revision = revision + 1, updated_at = updated_at + 1 \
         WHERE api_key = $1",
    )
    .bind(api_key)
    .execute(&mut *tx)
    .await
    .expect("moving the revision");
    tx.commit().await.expect("committing");
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (server, None),
    };
    let base = match base.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Kind::Postgres { server, name } = &self.kind else {
            return;
        };
        let (server, name) = (server.clone(), name.clone());
        // Drop may run inside a runtime, where blocking is not allowed: use a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&server).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_swap_the_database_name() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://h:5432", "t1"),
            "postgres://h:5432/t1"
        );
    }
}
