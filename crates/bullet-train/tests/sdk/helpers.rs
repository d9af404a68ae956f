//! Test harness: a real `bullet-train` server on a random port over a fresh database (SQLite, or
//! PostgreSQL with `BULLET_TRAIN_TEST_BACKEND=postgres`), stoppable and restartable on the same
//! port and data, admin calls over HTTP, and SDK builders pointed at it; and [`stub`], for tests
//! that need a server answering exactly as they say.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bullet_train::{Builder, BulletTrain};
use bullet_train_server::{Config, Limits, Server};
use bullet_train_store::testing::TestDatabase;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub(crate) const TOKEN: &str = "sdk-test-admin-token";
/// The client key of `examples/environment.json`.
pub(crate) const KEY: &str = "QuickStartEnvironment1";
/// The identity with an identity override in the sample (`dark_mode` on, `"midnight"`).
pub(crate) const BEN: &str = "ben@bullet-train.io";

/// A running server.
pub(crate) struct TestServer {
    pub(crate) url: String,
    addr: SocketAddr,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data: Data,
}

/// What outlives a server restart: its database and a scratch directory.
pub(crate) struct Data {
    database: TestDatabase,
    dir: tempfile::TempDir,
}

pub(crate) fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

impl TestServer {
    /// A server with no environments.
    pub(crate) async fn empty() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let data = Data {
            database: TestDatabase::from_env().await,
            dir: tempfile::tempdir().unwrap(),
        };
        TestServer::serve(listener, data).await
    }

    /// A server with the sample environment imported.
    pub(crate) async fn sample() -> TestServer {
        let server = TestServer::empty().await;
        server.import(&sample()).await;
        server
    }

    /// A server on `listener` (already bound, so clients can connect as soon as this returns).
    pub(crate) async fn serve(listener: TcpListener, data: Data) -> TestServer {
        let config = Config {
            database_url: data.database.url().to_owned(),
            migrate: true,
            admin_token: Some(TOKEN.into()),
            limits: Limits::default(),
        };
        let server = Server::start(config).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            stop: Some(stop),
            task: Some(task),
            data,
        }
    }

    /// Stops the server (open streams end); its data stays for [`Stopped::restart`].
    pub(crate) async fn stop(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        Stopped {
            addr: self.addr,
            data: self.data,
        }
    }

    /// The API URL to give the SDK.
    pub(crate) fn api(&self) -> String {
        format!("{}/api/v1/", self.url)
    }

    /// An SDK builder for `key`, pointed at this server, failing fast.
    pub(crate) fn builder(&self, key: &str) -> Builder {
        BulletTrain::builder(key)
            .api(self.api())
            .request_timeout(Duration::from_secs(10))
            .retries(1)
            .retry_backoff(Duration::from_millis(20))
    }

    /// An admin request.
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .header("Authorization", format!("Token {TOKEN}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub(crate) async fn import(&self, document: &Value) {
        let key = document["api_key"].as_str().unwrap();
        self.admin(
            Method::PUT,
            &format!("/api/v1/environments/{key}/document/"),
            Some(document.clone()),
        )
        .await;
    }

    pub(crate) async fn export(&self, key: &str) -> Value {
        self.admin(
            Method::GET,
            &format!("/api/v1/environments/{key}/document/"),
            None,
        )
        .await
    }

    /// Creates a server-side key for the environment.
    pub(crate) async fn server_key(&self, key: &str) -> String {
        let created = self
            .admin(
                Method::POST,
                &format!("/api/v1/environments/{key}/api-keys/"),
                Some(json!({"name": "sdk tests"})),
            )
            .await;
        created["key"].as_str().unwrap().to_owned()
    }

    /// Changes the environment default of `feature` through the admin API.
    pub(crate) async fn set_state(&self, key: &str, feature: &str, enabled: bool, value: Value) {
        let page = self
            .admin(
                Method::GET,
                &format!("/api/v1/environments/{key}/featurestates/?feature_name={feature}"),
                None,
            )
            .await;
        let id = &page["results"][0]["id"];
        assert!(id.is_number(), "no state for {feature}: {page}");
        self.admin(
            Method::PATCH,
            &format!("/api/v1/environments/{key}/featurestates/{id}/"),
            Some(json!({"enabled": enabled, "feature_state_value": value})),
        )
        .await;
    }

    /// The evaluation count stored today for `feature` of the sample environment.
    pub(crate) async fn evaluations(&self, feature: &str) -> u64 {
        let flags: Value = self
            .http
            .get(format!("{}/api/v1/flags/", self.url))
            .header("X-Environment-Key", KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let flag = flags
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"]["name"] == feature)
            .unwrap();
        let (id, project) = (&flag["feature"]["id"], &flag["feature"]["project"]);
        let days = self
            .admin(
                Method::GET,
                &format!(
                    "/api/v1/projects/{project}/features/{id}/evaluation-data/?environment_id={KEY}"
                ),
                None,
            )
            .await;
        days.as_array()
            .unwrap()
            .iter()
            .map(|d| d["count"].as_u64().unwrap())
            .sum()
    }

    /// Writes the exported document of `key` to a file and returns its path.
    pub(crate) async fn export_to_file(&self, key: &str) -> PathBuf {
        let path = self.data.dir.path().join(format!("{key}.json"));
        std::fs::write(&path, self.export(key).await.to_string()).unwrap();
        path
    }
}

/// A stopped server's address and data.
pub(crate) struct Stopped {
    addr: SocketAddr,
    data: Data,
}

impl Stopped {
    /// Starts the server again on the same port with the same data.
    pub(crate) async fn restart(self) -> TestServer {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        TestServer::serve(listener, self.data).await
    }
}

/// Waits (bounded) until the client has installed a document newer than `seen`.
pub(crate) async fn next_update(updates: &mut tokio::sync::watch::Receiver<u64>, limit: Duration) {
    tokio::time::timeout(limit, updates.changed())
        .await
        .expect("no environment update arrived in time")
        .expect("the client stopped");
}

/// Serves `app` (a stub answering as the test needs) on a random port; returns its API URL. The
/// listener is bound before this returns, so clients can connect at once.
pub(crate) async fn stub(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}
