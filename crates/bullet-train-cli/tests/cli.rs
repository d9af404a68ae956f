//! The `bullet-train` binary as users run it: defaults, first-start token, durability across
//! `kill -9`, graceful shutdown on SIGTERM and ctrl-c, and `migrate`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const KEY: &str = "QuickStartEnvironment1";

struct Running {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    url: String,
    /// Lines printed before "listening on".
    banner: Vec<String>,
}

/// Starts `bullet-train serve` on a free port and waits until it listens.
async fn serve(database: &Path, token: Option<&str>) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bullet-train"));
    command
        .arg("serve")
        .args(["--bind", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .env_remove("BULLET_TRAIN_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.args(["--admin-token", token]);
    }
    let mut child = command.spawn().unwrap();
    let (stdout, url, banner) = listening(&mut child).await;
    Running {
        child,
        stdout,
        url,
        banner,
    }
}

/// Waits (at most 30 s) until a spawned server prints "listening on": its standard output from
/// there on, the URL it listens on, and the lines it printed before.
async fn listening(child: &mut Child) -> (Lines<BufReader<ChildStdout>>, String, Vec<String>) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = stdout.next_line().await.unwrap().expect("server exited");
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
            banner.push(line);
        }
    })
    .await
    .expect("server did not start");
    (stdout, url, banner)
}

fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn import(http: &reqwest::Client, url: &str, token: &str) -> reqwest::StatusCode {
    http.put(format!("{url}/api/v1/environments/{KEY}/document/"))
        .header("Authorization", format!("Token {token}"))
        .json(&sample())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn first_start_generates_a_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("bt.db");
    let http = reqwest::Client::new();
    let mut first = serve(&database, None).await;
    let line = first
        .banner
        .iter()
        .find(|l| l.starts_with("Generated admin token"))
        .expect("the token is printed on first start")
        .clone();
    let token = line.rsplit(' ').next().unwrap().to_owned();
    assert!(token.len() >= 32);
    assert!(import(&http, &first.url, &token).await.is_success());
    assert_eq!(import(&http, &first.url, "wrong").await, 401);
    first.child.kill().await.unwrap();

    let mut second = serve(&database, None).await;
    assert!(
        second.banner.iter().all(|l| !l.contains("token")),
        "{:?}",
        second.banner
    );
    assert!(
        import(&http, &second.url, &token).await.is_success(),
        "the stored hash still matches"
    );
    second.child.kill().await.unwrap();
    // The database holds the token's hash, never the token.
    let bytes = std::fs::read(&database).unwrap();
    let wal = std::fs::read(dir.path().join("bt.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for content in [&bytes, &wal] {
        assert!(!content.windows(needle.len()).any(|w| w == needle));
    }
}

/// `GET identities/?identifier=` of the sample environment.
async fn identity(http: &reqwest::Client, url: &str, identifier: &str) -> Value {
    http.get(format!("{url}/api/v1/identities/?identifier={identifier}"))
        .header("X-Environment-Key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn acknowledged_trait_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("bt.db");
    let http = reqwest::Client::new();
    let mut server = serve(&database, Some("t")).await;
    assert!(import(&http, &server.url, "t").await.is_success());
    for i in 0..20 {
        let body = json!({"identity": {"identifier": "durable"}, "trait_key": format!("k{i}"), "trait_value": i});
        let response = http
            .post(format!("{}/api/v1/traits/", server.url))
            .header("X-Environment-Key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The other acknowledged writes: an identify that stores traits, and a bulk write.
    let identify = json!({"identifier": "identified", "traits": [
        {"trait_key": "plan", "trait_value": "pro"}, {"trait_key": "seats", "trait_value": 12}]});
    let bulk = json!([
        {"identity": {"identifier": "bulk-a"}, "trait_key": "colour", "trait_value": "red"},
        {"identity": {"identifier": "bulk-b"}, "trait_key": "colour", "trait_value": "blue"}]);
    for (method, path, body) in [
        (reqwest::Method::POST, "identities/", identify),
        (reqwest::Method::PUT, "traits/bulk/", bulk),
    ] {
        let response = http
            .request(method, format!("{}/api/v1/{path}", server.url))
            .header("X-Environment-Key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // SIGKILL: no shutdown code runs.
    server.child.kill().await.unwrap();

    let restarted = serve(&database, Some("t")).await;
    let durable = identity(&http, &restarted.url, "durable").await;
    let traits = durable["traits"].as_array().unwrap();
    assert_eq!(traits.len(), 20);
    assert_eq!(traits[19]["trait_key"], "k19");
    assert_eq!(traits[19]["trait_value"], 19);
    for (identifier, expected) in [
        ("identified", json!({"plan": "pro", "seats": 12})),
        ("bulk-a", json!({"colour": "red"})),
        ("bulk-b", json!({"colour": "blue"})),
    ] {
        let stored: serde_json::Map<String, Value> = identity(&http, &restarted.url, identifier)
            .await["traits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["trait_key"].as_str().unwrap().to_owned(),
                    t["trait_value"].clone(),
                )
            })
            .collect();
        assert_eq!(Value::Object(stored), expected, "{identifier}");
    }
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_even_with_open_streams() {
    shuts_down_gracefully_on("-TERM").await;
}

#[tokio::test]
async fn ctrl_c_shuts_down_gracefully_even_with_open_streams() {
    shuts_down_gracefully_on("-INT").await;
}

/// Sends `signal` to a server with an open stream: it ends the stream, exits 0 and leaves its
/// database whole in one file.
async fn shuts_down_gracefully_on(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(&dir.path().join("bt.db"), Some("t")).await;
    let http = reqwest::Client::new();
    assert!(import(&http, &server.url, "t").await.is_success());
    let mut stream = http
        .get(format!("{}/sse/environments/{KEY}/stream", server.url))
        .send()
        .await
        .unwrap();
    assert!(stream.chunk().await.unwrap().is_some());
    let pid = server.child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("no exit after the signal")
        .unwrap();
    assert!(status.success(), "{status}");
    while let Ok(Some(_)) = stream.chunk().await {}
    assert!(server.stdout.next_line().await.unwrap().is_none());
    // A clean stop leaves the database in one file: the write-ahead log is folded into it, so
    // the file alone, copied elsewhere, holds everything.
    let wal = dir.path().join("bt.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "write-ahead log left behind"
    );
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("bt.db"), copy.path().join("bt.db")).unwrap();
    let restarted = serve(&copy.path().join("bt.db"), Some("t")).await;
    let flags = http
        .get(format!("{}/api/v1/flags/", restarted.url))
        .header("X-Environment-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(
        flags.status(),
        200,
        "the imported environment is in the file"
    );
}

#[tokio::test]
async fn migrate_applies_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bt.db").display());
    for _ in 0..2 {
        let output = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
            .args(["migrate", "--database-url", &url])
            .output()
            .await
            .unwrap();
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "migrations applied"
        );
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(["migrate", "--database-url", "mysql://nope"])
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unsupported database URL"));
}

#[tokio::test]
async fn serve_defaults_to_port_8000_and_a_database_in_the_working_directory() {
    let help = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("[default: 127.0.0.1:8000]"), "{help}");
    assert!(
        help.contains("[default: sqlite://bullet-train.db]"),
        "{help}"
    );
    // Started with nothing but a free port, it makes its database where it runs.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("BULLET_TRAIN_DATABASE_URL")
        .env_remove("BULLET_TRAIN_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (_stdout, url, banner) = listening(&mut child).await;
    let token = banner
        .iter()
        .find_map(|l| l.rsplit_once("keep it safe): ").map(|(_, t)| t.to_owned()))
        .expect("a first start prints its token");
    let http = reqwest::Client::new();
    assert_eq!(
        import(&http, &url, &token).await,
        reqwest::StatusCode::CREATED
    );
    assert!(dir.path().join("bullet-train.db").exists());
    child.kill().await.unwrap();
}

#[tokio::test]
async fn serve_is_configured_by_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("from-env.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .arg("serve")
        .env("BULLET_TRAIN_BIND", "127.0.0.1:0")
        .env(
            "BULLET_TRAIN_DATABASE_URL",
            format!("sqlite://{}", database.display()),
        )
        .env("BULLET_TRAIN_ADMIN_TOKEN", "token-from-the-environment")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (_stdout, url, banner) = listening(&mut child).await;
    // A configured token: none is generated.
    assert!(
        !banner.iter().any(|l| l.contains("admin token")),
        "{banner:?}"
    );
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":8000"));
    let url = url.as_str();
    let http = reqwest::Client::new();
    assert_eq!(
        import(&http, url, "token-from-the-environment").await,
        reqwest::StatusCode::CREATED
    );
    assert!(database.exists(), "the database is where the variable says");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn no_migrate_refuses_an_unmigrated_database_and_serves_a_migrated_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bt.db").display());
    let serve = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_bullet-train"))
            .args([
                "serve",
                "--no-migrate",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                url,
            ])
            .env_remove("BULLET_TRAIN_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let refused = serve(&url).wait_with_output().await.unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("bullet-train migrate"), "{message}");

    let migrated = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(["migrate", "--database-url", &url])
        .output()
        .await
        .unwrap();
    assert!(migrated.status.success());
    let mut child = serve(&url);
    let (_stdout, url, _) = listening(&mut child).await;
    assert!(url.starts_with("http://127.0.0.1:"));
    child.kill().await.unwrap();
}

#[tokio::test]
async fn debug_logs_trace_requests_by_route_without_keys_or_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let token = "token-never-logged";
    let mut child = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .arg("serve")
        .args(["--bind", "127.0.0.1:0", "--admin-token", token])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("debug.db").display()
        ))
        .env("RUST_LOG", "bullet_train_server=debug,tower_http=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (_stdout, url, _) = listening(&mut child).await;
    let http = reqwest::Client::new();
    assert_eq!(
        import(&http, &url, token).await,
        reqwest::StatusCode::CREATED
    );
    let response = http
        .get(format!(
            "{url}/api/v1/identities/?identifier=person-who-must-stay-private"
        ))
        .header("X-Environment-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    // Written to a file, the log is plain text.
    assert!(!logged.contains('\x1b'), "{logged}");
    // Each request has its span, named by its route pattern, with its answer's status.
    assert!(
        logged
            .lines()
            .any(|l| l.contains(r#"route="/api/v1/identities""#)
                && l.contains("finished processing request")
                && l.contains("status=200")),
        "{logged}"
    );
    assert!(
        logged
            .lines()
            .any(|l| l.contains(r#"route="/api/v1/environments/{api_key}/document""#)),
        "{logged}"
    );
    for secret in ["person-who-must-stay-private", token, KEY] {
        assert!(!logged.contains(secret), "{secret} logged: {logged}");
    }
}
