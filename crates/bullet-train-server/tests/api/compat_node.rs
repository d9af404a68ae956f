//! Compatibility with the published JavaScript SDKs: the original Bullet Train clients
//! (`bullet-train-nodejs` for servers, `bullet-train-client` for browsers, which writes traits through
//! every trait endpoint), the current server-side `flagsmith-nodejs` (remote, local, offline,
//! analytics) and the `flagsmith` client that web apps use (remote and real-time). The SDKs come from npm into `target/compat-node`, made by
//! `scripts/compat-node` from the pinned lock file beside the scripts.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;
use tokio::process::Command;

use crate::analytics::counts;
use crate::compat::{
    RICH_KEY, exported_rich_document, realtime_check, rich_app, run_check, script,
};
use crate::helpers::{KEY, TestApp, sample, traits_of, workspace_dir};

fn node_modules() -> PathBuf {
    let path = workspace_dir().join("target/compat-node/node_modules");
    assert!(
        path.exists(),
        "{} is missing: run scripts/compat-node to install the JavaScript SDKs",
        path.display()
    );
    path
}

fn node(app: &TestApp, script_name: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new("node");
    command
        .arg(script(script_name))
        .env("NODE_PATH", node_modules())
        .env("BT_URL", &app.url)
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

async fn run(app: &TestApp, script_name: &str, args: &[&str], env: &[(&str, &str)]) {
    let mut command = node(app, script_name, env);
    command.args(args);
    run_check(command, &format!("node {script_name} {args:?}")).await;
}

#[tokio::test]
async fn bullet_train_nodejs_reads_flags_values_and_traits() {
    let app = TestApp::sample().await;
    let response = app
        .sdk(Method::PUT, "/api/v1/traits/bulk/", KEY)
        .json(&json!([
            {"identity": {"identifier": "ben@bullet-train.io"}, "trait_key": "plan", "trait_value": "pro"},
            {"identity": {"identifier": "ben@bullet-train.io"}, "trait_key": "logins", "trait_value": 150}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    run(&app, "bullet_train_nodejs.cjs", &[], &[("BT_KEY", KEY)]).await;
}

#[tokio::test]
async fn bullet_train_client_sets_bulk_sets_and_increments_traits() {
    let app = TestApp::sample().await;
    run(&app, "bullet_train_client.cjs", &[], &[("BT_KEY", KEY)]).await;
    // What the client wrote is what the server stored.
    let (status, identity) = app
        .get_json("/api/v1/identities/?identifier=browser-user", KEY)
        .await;
    assert_eq!(status, 200);
    let traits: std::collections::BTreeMap<_, _> = traits_of(&identity).into_iter().collect();
    assert_eq!(
        traits,
        [
            ("accept-cookies".to_owned(), json!("true")),
            ("logins".to_owned(), json!(50)),
            ("plan".to_owned(), json!("free"))
        ]
        .into()
    );
}

#[tokio::test]
async fn flagsmith_nodejs_remote_evaluation() {
    let app = TestApp::sample().await;
    run(
        &app,
        "flagsmith_nodejs.cjs",
        &["remote"],
        &[("BT_KEY", KEY)],
    )
    .await;
}

#[tokio::test]
async fn flagsmith_nodejs_local_evaluation_agrees_with_the_server() {
    let (app, server) = rich_app().await;
    run(
        &app,
        "flagsmith_nodejs.cjs",
        &["agreement"],
        &[("BT_KEY", RICH_KEY), ("BT_SERVER_KEY", &server)],
    )
    .await;
}

#[tokio::test]
async fn flagsmith_nodejs_offline_mode_from_an_exported_document() {
    let (app, _) = rich_app().await;
    let path = exported_rich_document(&app).await;
    run(
        &app,
        "flagsmith_nodejs.cjs",
        &["offline"],
        &[
            ("BT_KEY", RICH_KEY),
            ("BT_DOCUMENT", path.to_str().unwrap()),
        ],
    )
    .await;
}

#[tokio::test]
async fn flagsmith_nodejs_analytics_are_counted_by_feature_name() {
    let app = TestApp::sample().await;
    assert!(counts(&app, "header").await.is_empty());
    run(
        &app,
        "flagsmith_nodejs.cjs",
        &["analytics"],
        &[("BT_KEY", KEY)],
    )
    .await;
    assert_eq!(counts(&app, "header").await[0]["count"], 3);
    assert_eq!(counts(&app, "font_size").await[0]["count"], 1);
    assert!(counts(&app, "dark_mode").await.is_empty());
}

#[tokio::test]
async fn flagsmith_js_client_remote_evaluation_and_traits() {
    let app = TestApp::sample().await;
    run(&app, "flagsmith_js.cjs", &["remote"], &[("BT_KEY", KEY)]).await;
}

#[tokio::test]
async fn flagsmith_js_client_realtime_updates_arrive_through_the_stream() {
    let app = TestApp::sample().await;
    let mut command = node(&app, "flagsmith_js.cjs", &[("BT_KEY", KEY)]);
    command.arg("realtime");
    realtime_check(&app, command, sample(), "Hello again").await;
}
