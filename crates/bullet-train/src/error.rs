//! The SDK's one error type. "No such feature" is not an error: methods return `Ok(None)` for it.

use std::path::PathBuf;

/// What can go wrong in a call to the SDK.
///
/// A feature that does not exist is not an error: the methods that look a feature up return
/// `Ok(None)` for it (or the default flag handler's answer).
///
/// # Examples
///
/// ```
/// # async fn example(bt: bullet_train::BulletTrain) {
/// match bt.feature_enabled("header").await {
///     Ok(Some(enabled)) => println!("header is {}", if enabled { "on" } else { "off" }),
///     Ok(None) => println!("no feature called header"),
///     Err(bullet_train::Error::Status { status, message }) => eprintln!("server said {status}: {message}"),
///     Err(error) => eprintln!("could not ask: {error}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given something unusable (a bad URL or header, an impossible combination).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The request could not be made or its response not read (connection refused, timeout, TLS).
    #[error("request to {path} failed")]
    Transport {
        /// The API path requested, relative to the API URL.
        path: String,
        /// What went wrong.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a status other than success.
    #[error("server answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's `detail` message, or the start of its body.
        message: String,
    },
    /// The server's answer was not what the protocol says.
    #[error("unexpected response from {path}")]
    Decode {
        /// The API path requested.
        path: String,
        /// Why it could not be read.
        #[source]
        source: serde_json::Error,
    },
    /// Local evaluation has no environment document yet (the first fetch has not succeeded within
    /// the ready timeout).
    #[error("the environment document has not been loaded yet")]
    NotReady,
    /// The client is in offline mode and the call needs the server (traits live on the server).
    #[error("this call needs the server, and the client is offline")]
    Offline,
    /// The offline environment document could not be read.
    #[error("cannot read the environment document {path}")]
    DocumentFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The offline environment document is not a valid document.
    #[error("the environment document {path} is not valid")]
    DocumentParse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Local evaluation, real-time updates and analytics run background tasks, which need a Tokio
    /// runtime: build the client inside one (or use [`crate::blocking::BulletTrain`]).
    #[error("no Tokio runtime to run background tasks: build the client inside a runtime")]
    NoRuntime,
}

impl Error {
    /// Whether the error means the server could not be reached or failed (transport errors and 5xx
    /// answers), as opposed to a request it refused.
    ///
    /// ```no_run
    /// # async fn run(bt: bullet_train::BulletTrain) {
    /// match bt.get_flags().await {
    ///     Err(error) if error.is_unavailable() => eprintln!("flag server down, using defaults"),
    ///     Err(error) => eprintln!("flag request refused: {error}"),
    ///     Ok(flags) => println!("{} flags", flags.len()),
    /// }
    /// # }
    /// ```
    pub fn is_unavailable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::NotReady => true,
            Error::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
