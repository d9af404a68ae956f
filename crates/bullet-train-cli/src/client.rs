//! The admin API client the CLI commands use: JSON over HTTP with `Authorization: Token <token>` (or
//! `Api-Key <key>` when the token is an organisation key, `<prefix>.<secret>`), and errors turned into
//! messages a person can act on.

use std::fmt;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

/// Why a command failed; each maps to an exit code.
#[derive(Debug)]
pub(crate) enum CliError {
    /// The server refused the request (exit code 1).
    Refused { status: StatusCode, message: String },
    /// The server could not be reached (exit code 3).
    Unreachable(String),
    /// The command itself is wrong, for example an unknown name (exit code 2).
    Usage(String),
}

impl CliError {
    pub(crate) fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused { .. } => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Refused { status, message } => write!(f, "{status}: {message}"),
            CliError::Unreachable(message) => write!(f, "cannot reach the server: {message}"),
            CliError::Usage(message) => f.write_str(message),
        }
    }
}

pub(crate) type CliResult<T> = Result<T, CliError>;

/// A readable message from an error body: `detail`, or `field: message` pairs.
fn describe(body: &Value) -> String {
    fn flatten(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) if prefix.is_empty() => out.push(s.clone()),
            Value::String(s) => out.push(format!("{prefix}: {s}")),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let nested = match item {
                        Value::Object(_) if !prefix.is_empty() => format!("{prefix}[{i}]"),
                        _ => prefix.to_owned(),
                    };
                    flatten(&nested, item, out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let nested = if key == "detail" || key == "non_field_errors" {
                        prefix.to_owned()
                    } else if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    flatten(&nested, item, out);
                }
            }
            other => out.push(other.to_string()),
        }
    }
    let mut out = Vec::new();
    flatten("", body, &mut out);
    if out.is_empty() {
        "no details".to_owned()
    } else {
        out.join("; ")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    authorization: String,
}

impl Client {
    pub(crate) fn new(url: &str, token: &str) -> CliResult<Client> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build an HTTP client: {e}")))?;
        // `prefix.secret` is an organisation API key, anything else the admin token; a token given
        // with its scheme (`Token ...`, `Api-Key ...`) is sent as it is.
        let authorization = if token.starts_with("Token ") || token.starts_with("Api-Key ") {
            token.to_owned()
        } else if token.contains('.') {
            format!("Api-Key {token}")
        } else {
            format!("Token {token}")
        };
        Ok(Client {
            http,
            base: url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// Sends a request and reads the JSON answer (`Value::Null` for an empty body).
    pub(crate) async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> CliResult<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", &self.authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            Ok(body)
        } else {
            Err(CliError::Refused {
                status,
                message: describe(&body),
            })
        }
    }

    pub(crate) async fn get(&self, path: &str) -> CliResult<Value> {
        self.send::<()>(Method::GET, path, None).await
    }

    pub(crate) async fn post<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<Value> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub(crate) async fn put<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<Value> {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn patch<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> CliResult<Value> {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub(crate) async fn delete(&self, path: &str) -> CliResult<Value> {
        self.send::<()>(Method::DELETE, path, None).await
    }

    /// Every item of a paginated list (following `next` pages).
    pub(crate) async fn all(&self, path: &str) -> CliResult<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut page = 1;
        loop {
            let body = self
                .get(&format!("{path}{separator}page={page}&page_size=999"))
                .await?;
            match body {
                Value::Array(list) => return Ok(list),
                Value::Object(mut map) => {
                    if let Some(Value::Array(results)) = map.remove("results") {
                        items.extend(results);
                    }
                    if map.get("next").is_none_or(Value::is_null) {
                        return Ok(items);
                    }
                    page += 1;
                }
                _ => return Ok(items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_become_readable_messages() {
        assert_eq!(describe(&json!({"detail": "Not found."})), "Not found.");
        assert_eq!(
            describe(&json!({"name": ["This field is required."], "non_field_errors": ["Bad."]})),
            "name: This field is required.; Bad."
        );
        assert_eq!(
            describe(&json!({"traits": [{}, {"trait_key": ["Too long."]}]})),
            "traits[1].trait_key: Too long."
        );
    }
}
