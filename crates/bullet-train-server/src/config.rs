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
        }
    }
}

/// Everything `bullet-train serve` needs.
#[derive(Clone)]
pub struct Config {
    /// `sqlite://path` (created if missing).
    pub database_url: String,
    /// The admin token; when `None`, the stored one is used, or one is generated on first start.
    pub admin_token: Option<String>,
    pub limits: Limits,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("limits", &self.limits)
            .finish()
    }
}
