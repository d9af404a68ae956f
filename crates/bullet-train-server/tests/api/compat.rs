//! Compatibility with the published Python SDKs: the original `bullet-train==1.0.5` running the seed's
//! usage example, and `flagsmith` 6.x in remote, local, offline and real-time modes. The SDKs come from
//! PyPI into a virtualenv made by `scripts/compat-venv` (its python is found through
//! `BULLET_TRAIN_PYTHON` or at `target/compat-venv/bin/python`). The runner, the real-time check and the
//! rich document here serve the JavaScript checks (`compat_node`) too.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::{KEY, TestApp, workspace_dir};

fn python() -> PathBuf {
    let path = std::env::var_os("BULLET_TRAIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("target/compat-venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/compat-venv to install the Python SDKs",
        path.display()
    );
    path
}

pub(crate) fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat")).join(name)
}

fn command(app: &TestApp, script_name: &str, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(python());
    command
        .arg(script(script_name))
        .env("BT_URL", &app.url)
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

async fn run(app: &TestApp, script_name: &str, args: &[&str], env: &[(&str, &str)]) {
    let mut command = command(app, script_name, env);
    command.args(args);
    run_check(command, &format!("{script_name} {args:?}")).await;
}

/// Runs a compatibility check to completion; fails the test, showing the check's output, unless it
/// exits successfully.
pub(crate) async fn run_check(mut command: Command, label: &str) {
    let output = tokio::time::timeout(Duration::from_secs(180), command.output())
        .await
        .unwrap_or_else(|_| panic!("{label} did not finish"))
        .unwrap();
    assert!(
        output.status.success(),
        "{label} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a real-time check: the SDK prints `READY <value>` once it serves the first feature of
/// `document` (already imported), this changes that feature's value to `new_value` through a document
/// import, and the SDK must print `UPDATED <new_value>`. Whether the SDK's stream connects before or
/// after the change, the event it receives carries an updated_at later than what it has seen, so the
/// new value can only arrive through the stream (the SDKs' polling is off or an hour apart).
pub(crate) async fn realtime_check(
    app: &TestApp,
    mut command: Command,
    mut document: Value,
    new_value: &str,
) {
    let before = document["feature_states"][0]["feature_state_value"].clone();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let next_line = async |lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>| {
        tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("no output from the SDK")
            .unwrap()
    };
    let ready = next_line(&mut lines).await;
    assert_eq!(
        ready,
        Some(format!("READY {}", before.as_str().unwrap())),
        "SDK did not start"
    );
    document["feature_states"][0]["feature_state_value"] = json!(new_value);
    app.import(&document).await;
    let updated = next_line(&mut lines).await;
    let status = child.wait().await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert_eq!(
        updated,
        Some(format!("UPDATED {new_value}")),
        "stderr: {stderr}"
    );
    assert!(status.success(), "stderr: {stderr}");
}

/// An environment exercising every operator family, nested rules, priorities, multivariate features
/// (including a multivariate segment override) and an identity override.
pub(crate) fn rich_document() -> Value {
    let state = |id: u64, name: &str, seed: u64, enabled: bool, value: Value| {
        json!({"feature": {"id": id, "name": name, "type": "STANDARD"}, "enabled": enabled,
            "django_id": seed, "featurestate_uuid": format!("00000000-0000-4000-8000-{seed:012}"),
            "feature_state_value": value, "feature_segment": null, "multivariate_feature_state_values": []})
    };
    let mv = |option: u64, value: &str, weight: f64, id: u64, key: Option<&str>| {
        json!({"multivariate_feature_option": {"value": value, "id": option, "key": key},
            "percentage_allocation": weight, "id": id,
            "mv_fs_value_uuid": format!("00000000-0000-4000-9000-{id:012}")})
    };
    let mut color = state(4, "mv_color", 404, true, json!("grey"));
    color["feature"]["type"] = json!("MULTIVARIATE");
    color["multivariate_feature_state_values"] = json!([
        mv(41, "red", 20.0, 4101, None),
        mv(42, "green", 30.0, 4102, None),
        mv(43, "blue", 25.0, 4103, Some("b"))
    ]);
    let mut layout = state(5, "mv_layout", 505, true, json!("list"));
    layout["feature"]["type"] = json!("MULTIVARIATE");
    layout["multivariate_feature_state_values"] = json!([
        mv(52, "cards", 50.0, 5202, Some("cards")),
        mv(51, "grid", 50.0, 5201, Some("grid"))
    ]);
    let with_priority = |mut s: Value, priority: i64| {
        s["feature_segment"] = json!({"priority": priority});
        s
    };
    let cond = |property: &str, operator: &str, value: &str| json!({"operator": operator, "property_": property, "value": value});
    let rule = |kind: &str, conditions: Value, rules: Value| json!({"type": kind, "conditions": conditions, "rules": rules});
    let mut color_override = with_priority(state(4, "mv_color", 9404, true, json!("black")), 0);
    color_override["feature"]["type"] = json!("MULTIVARIATE");
    color_override["multivariate_feature_state_values"] = json!([mv(41, "red", 60.0, 4101, None)]);
    let segments = json!([
        {"id": 11, "name": "pros", "rules": [rule("ANY", json!([cond("plan", "IN", "pro,team"), cond("plan", "EQUAL", "enterprise")]), json!([]))],
         "feature_states": [with_priority(state(2, "limit", 9101, true, json!(100)), 1)]},
        {"id": 12, "name": "adults_gb", "rules": [rule("ALL", json!([cond("age", "GREATER_THAN_INCLUSIVE", "18"), cond("country", "EQUAL", "GB")]), json!([]))],
         "feature_states": [with_priority(state(1, "banner", 9102, true, json!("Hello, UK")), 2)]},
        {"id": 13, "name": "new_versions", "rules": [rule("ALL", json!([cond("version", "GREATER_THAN", "2.0.0-alpha:semver")]), json!([]))],
         "feature_states": [with_priority(state(3, "new_ui", 9103, true, json!(null)), 1)]},
        {"id": 14, "name": "even_ages", "rules": [rule("ALL", json!([cond("age", "MODULO", "2|0")]), json!([]))],
         "feature_states": [with_priority(state(2, "limit", 9104, true, json!(50)), 0)]},
        {"id": 15, "name": "staff", "rules": [rule("ALL", json!([cond("email", "REGEX", r".*@example\.com$")]), json!([]))],
         "feature_states": [with_priority(state(1, "banner", 9105, true, json!("Hi staff")), 0)]},
        {"id": 16, "name": "not_beta", "rules": [rule("NONE", json!([cond("beta", "EQUAL", "true")]), json!([]))],
         "feature_states": [with_priority(state(6, "plain", 9106, false, json!("non-beta")), 0)]},
        {"id": 17, "name": "split_30", "rules": [rule("ALL", json!([cond("", "PERCENTAGE_SPLIT", "30")]), json!([]))],
         "feature_states": [with_priority(state(3, "new_ui", 9107, true, json!("split")), 0)]},
        {"id": 18, "name": "nested", "rules": [rule("ALL", json!([]), json!([
            rule("ANY", json!([cond("score", "LESS_THAN", "0.5"), cond("country", "NOT_CONTAINS", "G")]), json!([])),
            rule("ALL", json!([cond("age", "LESS_THAN", "40")]), json!([]))]))],
         "feature_states": [color_override]},
        {"id": 19, "name": "listed", "rules": [rule("ALL", json!([cond("$.identity.identifier", "IN", "user-1,user-2,user-3")]), json!([]))],
         "feature_states": [with_priority(state(5, "mv_layout", 9109, false, json!("listed")), 0)]},
        {"id": 20, "name": "coerced", "rules": [rule("ANY", json!([cond("logins", "EQUAL", "7"), cond("logins", "GREATER_THAN", "1.25")]), json!([]))],
         "feature_states": [with_priority(state(6, "plain", 9110, true, json!("coerced")), 1)]},
    ]);
    let mut document = json!({
        "id": 2, "api_key": "CompatEnvironmentKey01", "name": "Compat",
        "allow_client_traits": true, "hide_sensitive_data": false, "hide_disabled_flags": null,
        "use_identity_composite_key_for_hashing": true, "use_identity_overrides_in_local_eval": true,
        "project": {"id": 2, "name": "Compat", "hide_disabled_flags": false, "enable_realtime_updates": true,
            "server_key_only_feature_ids": [],
            "organisation": {"id": 1, "name": "Compat org", "feature_analytics": false,
                "stop_serving_flags": false, "persist_trait_data": true},
            "segments": segments},
        "feature_states": [
            state(1, "banner", 101, true, json!("Hello")),
            state(2, "limit", 202, true, json!(10)),
            state(3, "new_ui", 303, false, json!(null)),
            color, layout,
            state(6, "plain", 606, true, json!(null)),
        ],
        "identity_overrides": [{"identifier": "user-7", "environment_api_key": "CompatEnvironmentKey01",
            "created_date": "2026-01-01T00:00:00Z", "identity_uuid": "00000000-0000-4000-8000-000000000777",
            "django_id": 7, "identity_traits": [],
            "identity_features": [state(1, "banner", 0, false, json!("override for user-7"))]}],
    });
    document["identity_overrides"][0]["identity_features"][0]["django_id"] = Value::Null;
    document
}

pub(crate) const RICH_KEY: &str = "CompatEnvironmentKey01";

/// A server holding the rich document, and a server-side key of its environment.
pub(crate) async fn rich_app() -> (TestApp, String) {
    let app = TestApp::empty().await;
    app.import(&rich_document()).await;
    let server_key = app.server_key(RICH_KEY).await;
    (app, server_key)
}

/// The rich environment exported into a file, as offline modes read it.
pub(crate) async fn exported_rich_document(app: &TestApp) -> PathBuf {
    let path = app.dir.path().join("environment.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&app.export(RICH_KEY).await).unwrap(),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn bullet_train_1_0_5_runs_the_seed_example() {
    let app = TestApp::sample().await;
    run(&app, "seed_example.py", &[], &[("BT_KEY", KEY)]).await;
}

#[tokio::test]
async fn flagsmith_sdk_remote_evaluation() {
    let app = TestApp::sample().await;
    run(&app, "flagsmith_sdk.py", &["remote"], &[("BT_KEY", KEY)]).await;
}

#[tokio::test]
async fn flagsmith_sdk_local_evaluation_agrees_with_the_server() {
    let (app, server) = rich_app().await;
    run(
        &app,
        "flagsmith_sdk.py",
        &["agreement"],
        &[("BT_KEY", RICH_KEY), ("BT_SERVER_KEY", &server)],
    )
    .await;
}

#[tokio::test]
async fn flagsmith_sdk_offline_mode_from_an_exported_document() {
    let (app, _) = rich_app().await;
    let path = exported_rich_document(&app).await;
    run(
        &app,
        "flagsmith_sdk.py",
        &["offline"],
        &[
            ("BT_KEY", RICH_KEY),
            ("BT_DOCUMENT", path.to_str().unwrap()),
        ],
    )
    .await;
}

#[tokio::test]
async fn flagsmith_sdk_realtime_updates_arrive_through_the_stream() {
    let (app, server) = rich_app().await;
    let mut command = command(
        &app,
        "flagsmith_sdk.py",
        &[("BT_KEY", RICH_KEY), ("BT_SERVER_KEY", &server)],
    );
    command.arg("realtime");
    realtime_check(&app, command, rich_document(), "Hello again").await;
}
