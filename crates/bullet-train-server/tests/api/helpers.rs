//! Test harness: a real server on a random port over a fresh SQLite file, driven over HTTP.

use std::path::PathBuf;
use std::time::Duration;

use bullet_train_server::{Config, Limits, Server};
use bullet_train_store::testing::TestDatabase;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub(crate) const TOKEN: &str = "test-admin-token";
/// The client key of `examples/environment.json`.
pub(crate) const KEY: &str = "QuickStartEnvironment1";

pub(crate) struct TestApp {
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Scratch space for files a test writes.
    pub(crate) dir: tempfile::TempDir,
    /// The database (SQLite, or PostgreSQL with `BULLET_TRAIN_TEST_BACKEND=postgres`), unless
    /// another app owns it.
    _database: Option<TestDatabase>,
}

pub(crate) fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn workspace_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

impl TestApp {
    /// A server with no environments.
    pub(crate) async fn empty() -> TestApp {
        TestApp::with_limits(Limits::default()).await
    }

    pub(crate) async fn with_limits(limits: Limits) -> TestApp {
        let database = TestDatabase::from_env().await;
        let url = database.url().to_owned();
        TestApp::on(&url, limits, Some(database)).await
    }

    /// A server (a replica) on the database at `database_url`.
    pub(crate) async fn on(
        database_url: &str,
        limits: Limits,
        database: Option<TestDatabase>,
    ) -> TestApp {
        let config = Config {
            database_url: database_url.to_owned(),
            migrate: true,
            admin_token: Some(TOKEN.into()),
            limits,
        };
        let server = Server::start(config).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        TestApp {
            url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
            dir: tempfile::tempdir().unwrap(),
            _database: database,
        }
    }

    /// A server with the sample environment imported.
    pub(crate) async fn sample() -> TestApp {
        let app = TestApp::empty().await;
        app.import(&sample()).await;
        app
    }

    pub(crate) async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{}", self.url, path))
    }

    /// An SDK request with `X-Environment-Key`.
    pub(crate) fn sdk(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.request(method, path).header("X-Environment-Key", key)
    }

    /// An admin request with the token.
    pub(crate) fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path)
            .header("Authorization", format!("Token {TOKEN}"))
    }

    pub(crate) async fn import(&self, document: &Value) -> Response {
        let key = document["api_key"].as_str().unwrap();
        let response = self
            .admin(
                Method::PUT,
                &format!("/api/v1/environments/{key}/document/"),
            )
            .json(document)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "import failed: {}",
            response.status()
        );
        response
    }

    pub(crate) async fn export(&self, key: &str) -> Value {
        self.admin(
            Method::GET,
            &format!("/api/v1/environments/{key}/document/"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
    }

    /// Creates a server-side key for the environment and returns it.
    pub(crate) async fn server_key(&self, key: &str) -> String {
        let created: Value = self
            .admin(
                Method::POST,
                &format!("/api/v1/environments/{key}/api-keys/"),
            )
            .json(&serde_json::json!({"name": "test"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        created["key"].as_str().unwrap().to_owned()
    }

    /// GET with an SDK key, returning status and JSON body.
    pub(crate) async fn get_json(&self, path: &str, key: &str) -> (u16, Value) {
        status_and_json(self.sdk(Method::GET, path, key).send().await.unwrap()).await
    }

    /// POST JSON with an SDK key.
    pub(crate) async fn post_json(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.send_json(Method::POST, path, key, body).await
    }

    /// A JSON body sent with any method and an SDK key, returning status and JSON body.
    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: &Value,
    ) -> (u16, Value) {
        status_and_json(self.sdk(method, path, key).json(body).send().await.unwrap()).await
    }
}

/// `(status, body)` of an admin request (`Null` for an empty or non-JSON body).
pub(crate) async fn admin_call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    status_and_json(request.send().await.unwrap()).await
}

/// A response's status and JSON body (`Null` for an empty or non-JSON body).
async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The body of an admin request that must succeed (2xx).
pub(crate) async fn admin_ok(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, value) = admin_call(app, method.clone(), path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value
}

/// `(trait_key, trait_value)` of an identity answer's traits, in its order.
pub(crate) fn traits_of(identity: &Value) -> Vec<(String, Value)> {
    identity["traits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trait_key"].as_str().unwrap().to_owned(),
                t["trait_value"].clone(),
            )
        })
        .collect()
}

/// `name -> (enabled, value)` of a flags array.
pub(crate) fn flag_map(flags: &Value) -> std::collections::BTreeMap<String, (bool, Value)> {
    flags
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["feature"]["name"].as_str().unwrap().to_owned(),
                (
                    f["enabled"].as_bool().unwrap(),
                    f["feature_state_value"].clone(),
                ),
            )
        })
        .collect()
}

/// Reads the next SSE block (up to a blank line), failing after 10 s.
pub(crate) async fn next_block(response: &mut reqwest::Response, buffer: &mut String) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let block = buffer[..end].to_owned();
                buffer.drain(..end + 2);
                return block;
            }
            let chunk = response.chunk().await.unwrap().expect("stream ended");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("no event within 10 s")
}

pub(crate) fn updated_at(block: &str) -> f64 {
    assert!(block.contains("event: environment_updated"), "{block}");
    let data = block
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let data: Value = serde_json::from_str(data).unwrap();
    data["updated_at"].as_f64().unwrap()
}

/// The UTC day of a time as `YYYY-MM-DD`, read from its HTTP date ("Fri, 27 Nov 2026 14:58:00 GMT").
pub(crate) fn utc_day(at: std::time::SystemTime) -> String {
    let date = httpdate::fmt_http_date(at);
    let parts: Vec<&str> = date.split(' ').collect();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2]).unwrap() + 1;
    format!("{}-{month:02}-{}", parts[3], parts[1])
}
