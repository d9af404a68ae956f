//! Server configuration, built once by the binary from flags and environment variables and passed
//! down explicitly; nothing below reads the environment.

use std::fmt;
use std::time::Duration;

/// Request and stream limits (documented in the README).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body on SDK endpoints.
    pub sdk_body_bytes: usize,
    /// Largest request body on admin endpoints (environment document imports).
    pub admin_body_bytes: usize,
    /// Longest time a request (other than an event stream) may take.
    pub request_timeout: Duration,
    /// Interval of keep-alive comments on event streams.
    pub sse_keep_alive: Duration,
    /// Delay before the first retry of a failed webhook delivery; doubles on each retry.
    pub webhook_backoff: Duration,
    /// Attempts per webhook delivery before it is marked failed.
    pub webhook_attempts: u32,
    /// Time allowed for one webhook delivery.
    pub webhook_timeout: Duration,
    /// How often a replica compares every environment's revision with the database (PostgreSQL),
    /// in case a change notification was lost.
    pub sync_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sdk_body_bytes: 1 << 20,
            admin_body_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            sse_keep_alive: Duration::from_secs(5),
            webhook_backoff: Duration::from_secs(2),
            webhook_attempts: 5,
            webhook_timeout: Duration::from_secs(10),
            sync_interval: Duration::from_secs(5),
        }
    }
}

/// Everything `bullet-train serve` needs.
#[derive(Clone)]
pub struct Config {
    /// `sqlite://path` (created if missing) or `postgres://user:password@host:port/database`.
    pub database_url: String,
    /// Whether to apply pending migrations on start (with PostgreSQL, run `bullet-train migrate`
    /// once instead when replicas must not migrate on their own).
    pub migrate: bool,
    /// The admin token; when `None`, the stored one is used, or one is generated on first start.
    pub admin_token: Option<String>,
    pub limits: Limits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("migrate", &self.migrate)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

/// A database URL without its password, for logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_url("postgres://bt:s3cret@db:5432/flags"),
            "postgres://bt:<redacted>@db:5432/flags"
        );
        assert_eq!(
            redact_url("postgres://bt@db/flags"),
            "postgres://bt@db/flags"
        );
        assert_eq!(
            redact_url("sqlite://bullet-train.db"),
            "sqlite://bullet-train.db"
        );
    }
}
