//! `bullet-train copy` and PostgreSQL from the command line: an installation with every kind of data
//! is copied from SQLite to PostgreSQL and back, and all three databases hold the same rows; a server
//! started with `--no-migrate` on the copy (migrated by `bullet-train migrate`) serves the same flags
//! and identities with the same admin token.

use std::time::Duration;

use bullet_train_server::{Config, Limits, Server};
use bullet_train_store::testing::TestDatabase;
use bullet_train_store::transfer::read_all;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

const KEY: &str = "QuickStartEnvironment1";

fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Client {
    url: String,
    http: reqwest::Client,
    token: String,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        request = match key {
            Some(key) => request.header("X-Environment-Key", key),
            None => request.header("Authorization", format!("Token {}", self.token)),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// Fills a server with every kind of data: organisations and their API keys, projects,
/// environments, features with multivariate options, segments and overrides, server-side keys,
/// identities with traits and overrides, analytics, webhooks with queued deliveries, audit entries.
async fn populate(client: &Client) {
    client
        .call(
            Method::PUT,
            &format!("/api/v1/environments/{KEY}/document/"),
            None,
            Some(sample()),
        )
        .await;
    client
        .call(
            Method::POST,
            &format!("/api/v1/environments/{KEY}/api-keys/"),
            None,
            Some(json!({"name": "ci"})),
        )
        .await;
    let organisation = client
        .call(
            Method::POST,
            "/api/v1/organisations/",
            None,
            Some(json!({"name": "Second org"})),
        )
        .await;
    let org = &organisation["id"];
    client
        .call(
            Method::POST,
            &format!("/api/v1/organisations/{org}/master-api-keys/"),
            None,
            Some(json!({"name": "automation", "is_admin": false})),
        )
        .await;
    let project = client
        .call(
            Method::POST,
            "/api/v1/projects/",
            None,
            Some(json!({"name": "Shop", "organisation": org})),
        )
        .await;
    let environment = client
        .call(
            Method::POST,
            "/api/v1/environments/",
            None,
            Some(json!({"name": "Production", "project": project["id"]})),
        )
        .await;
    let env_key = environment["api_key"].as_str().unwrap().to_owned();
    client
        .call(
            Method::POST,
            &format!("/api/v1/projects/{}/features/", project["id"]),
            None,
            Some(
                json!({"name": "banner", "type": "MULTIVARIATE", "initial_value": "plain",
                        "multivariate_options": [{"type": "unicode", "string_value": "bold",
                                                  "default_percentage_allocation": 40.0}]}),
            ),
        )
        .await;
    client
        .call(
            Method::POST,
            &format!("/api/v1/environments/{env_key}/webhooks/"),
            None,
            Some(json!({"url": "http://127.0.0.1:9/hook", "enabled": true, "secret": "s"})),
        )
        .await;
    let states = client
        .call(
            Method::GET,
            &format!("/api/v1/environments/{env_key}/featurestates/"),
            None,
            None,
        )
        .await;
    let state = &states["results"][0]["id"];
    client
        .call(
            Method::PATCH,
            &format!("/api/v1/environments/{env_key}/featurestates/{state}/"),
            None,
            Some(json!({"enabled": true})),
        )
        .await;
    for (i, identifier) in ["ann", "bob", "cy"].iter().enumerate() {
        client
            .call(
                Method::POST,
                "/api/v1/identities/",
                Some(KEY),
                Some(json!({"identifier": identifier, "traits": [
                    {"trait_key": "plan", "trait_value": "pro"},
                    {"trait_key": "logins", "trait_value": i * 50},
                    {"trait_key": "score", "trait_value": 0.5 + i as f64},
                    {"trait_key": "beta", "trait_value": i % 2 == 0},
                ]})),
            )
            .await;
    }
    client
        .call(
            Method::POST,
            "/api/v1/analytics/flags/",
            Some(KEY),
            Some(json!({"header": 7, "font_size": 2})),
        )
        .await;
}

struct Started {
    client: Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Started {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// A server on `database_url` with no configured token: the first start generates one (its hash
/// stored in the database), later starts use the stored hash; `token` is what the caller knows.
async fn start(database_url: &str, migrate: bool, token: Option<&str>) -> Started {
    let server = Server::start(Config {
        database_url: database_url.to_owned(),
        migrate,
        admin_token: None,
        limits: Limits::default(),
    })
    .await
    .unwrap();
    let token = match (server.generated_admin_token(), token) {
        (Some(generated), _) => generated.to_owned(),
        (None, Some(known)) => known.to_owned(),
        (None, None) => panic!("no token generated and none known"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Started {
        client: Client { url, http, token },
        stop,
        task,
    }
}

async fn run(args: &[&str]) -> (i32, String, String) {
    let child: Child = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the command finished")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What an SDK sees of the installation.
async fn sdk_view(client: &Client) -> Value {
    let flags = client
        .call(Method::GET, "/api/v1/flags/", Some(KEY), None)
        .await;
    let ann = client
        .call(
            Method::GET,
            "/api/v1/identities/?identifier=ann",
            Some(KEY),
            None,
        )
        .await;
    let ben = client
        .call(
            Method::GET,
            "/api/v1/identities/?identifier=ben@bullet-train.io",
            Some(KEY),
            None,
        )
        .await;
    let audit = client.call(Method::GET, "/api/v1/audit/", None, None).await;
    json!({"flags": flags, "ann": ann, "ben": ben, "audit_count": audit["count"]})
}

#[tokio::test]
async fn an_installation_copies_from_sqlite_to_postgres_and_back_unchanged() {
    let original = TestDatabase::sqlite();
    let server = start(original.url(), true, None).await;
    let token = server.client.token.clone();
    populate(&server.client).await;
    let before = sdk_view(&server.client).await;
    server.stop().await;

    let postgres = TestDatabase::postgres().await;
    let back = TestDatabase::sqlite();
    let (code, out, err) = run(&["copy", "--from", original.url(), "--to", postgres.url()]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("identities") && out.ends_with("copied\n"),
        "{out}"
    );
    let (code, out, err) = run(&["copy", "--from", postgres.url(), "--to", back.url()]).await;
    assert_eq!(code, 0, "{out}{err}");

    // The same rows in all three, table by table.
    let open = |url: String| async move { bullet_train_server::open_store(&url).await.unwrap() };
    let rows = |store: std::sync::Arc<dyn bullet_train_store::Store>| async move {
        read_all(store.as_ref()).await.unwrap()
    };
    let first = rows(open(original.url().to_owned()).await).await;
    let second = rows(open(postgres.url().to_owned()).await).await;
    let third = rows(open(back.url().to_owned()).await).await;
    let tables: Vec<&str> = first
        .iter()
        .map(|b| bullet_train_store::transfer::TABLES[b.table].name)
        .collect();
    for table in [
        "organisations",
        "identities",
        "traits",
        "feature_states",
        "audit_log",
        "organisation_api_keys",
        "server_keys",
        "webhook_deliveries",
        "flag_analytics",
        "multivariate_values",
        "meta",
    ] {
        assert!(
            tables.contains(&table),
            "no {table} rows to compare: {tables:?}"
        );
    }
    assert_eq!(first, second, "SQLite to PostgreSQL changed rows");
    assert_eq!(first, third, "PostgreSQL to SQLite changed rows");

    // The copy serves the same answers with the same admin token, and takes new writes.
    let (code, out, err) = run(&["migrate", "--database-url", postgres.url()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let server = start(postgres.url(), false, Some(&token)).await;
    assert_eq!(
        sdk_view(&server.client).await,
        before,
        "same answers, same admin token"
    );
    server
        .client
        .call(
            Method::POST,
            "/api/v1/identities/",
            Some(KEY),
            Some(json!({"identifier": "dee", "traits": [{"trait_key": "plan", "trait_value": "team"}]})),
        )
        .await;
    server.stop().await;

    // A target that holds data is refused, and left as it was.
    let (code, _, err) = run(&["copy", "--from", original.url(), "--to", back.url()]).await;
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(rows(open(back.url().to_owned()).await).await, third);
}
