//! The admin commands of the binary against a real server: the README walkthrough (from an empty
//! server to a segment-targeted, percentage-rolled-out flag), output formats, and errors with their
//! exit codes.

use std::time::Duration;

use bullet_train_server::{Config, Limits, Server};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;

const TOKEN: &str = "cli-test-token";

struct Running {
    url: String,
    _dir: tempfile::TempDir,
}

async fn server() -> Running {
    server_with_token(TOKEN).await
}

async fn server_with_token(token: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        database_url: format!("sqlite://{}", dir.path().join("bt.db").display()),
        migrate: true,
        admin_token: Some(token.into()),
        limits: Limits::default(),
    };
    let server = Server::start(config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(server.serve(listener, std::future::pending()));
    Running { url, _dir: dir }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn cli(server: &Running, args: &[&str]) -> Output {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_bullet-train"))
            .args(args)
            .env("BULLET_TRAIN_URL", &server.url)
            .env("BULLET_TRAIN_TOKEN", TOKEN)
            .output(),
    )
    .await
    .expect("the command finished")
    .unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary with only the given arguments (no URL or token from the environment).
async fn bare(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
        .args(args)
        .env_remove("BULLET_TRAIN_TOKEN")
        .env_remove("BULLET_TRAIN_URL")
        .output()
        .await
        .unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn ok(server: &Running, args: &[&str]) -> String {
    let out = cli(server, args).await;
    assert_eq!(
        out.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_from_an_empty_server_to_a_targeted_rollout() {
    let s = server().await;
    assert_eq!(
        ok(&s, &["organisations", "create", "Acme", "-q"])
            .await
            .trim(),
        "1"
    );
    ok(
        &s,
        &["projects", "create", "Web", "--organisation", "Acme", "-q"],
    )
    .await;
    let key = ok(
        &s,
        &[
            "environments",
            "create",
            "Production",
            "--project",
            "Web",
            "-q",
        ],
    )
    .await;
    let key = key.trim();
    assert_eq!(key.len(), 22);
    let created = ok(
        &s,
        &[
            "features",
            "create",
            "new_checkout",
            "--project",
            "Web",
            "--value",
            "classic",
            "--description",
            "The new checkout",
        ],
    )
    .await;
    assert!(created.starts_with("ID"), "{created}");
    assert!(created.contains("new_checkout") && created.contains("classic"));
    ok(
        &s,
        &[
            "segments",
            "create",
            "beta_testers",
            "--project",
            "Web",
            "--rule",
            "plan EQUAL beta",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "segments",
            "create",
            "ten_percent",
            "--project",
            "Web",
            "--rule",
            "PERCENTAGE_SPLIT 10",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "new_checkout",
            "--segment",
            "beta_testers",
            "--enabled",
            "--value",
            "beta",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "new_checkout",
            "--segment",
            "ten_percent",
            "--enabled",
            "--value",
            "rollout",
        ],
    )
    .await;
    let listed = ok(
        &s,
        &[
            "overrides",
            "list",
            "--environment",
            key,
            "--feature",
            "new_checkout",
        ],
    )
    .await;
    let rows: Vec<&str> = listed.lines().collect();
    assert!(rows[0].starts_with("PRIORITY"));
    assert!(
        rows[1].starts_with("0") && rows[1].contains("beta_testers"),
        "{listed}"
    );
    assert!(
        rows[2].starts_with("1") && rows[2].contains("ten_percent"),
        "{listed}"
    );
    let evaluated = ok(
        &s,
        &[
            "eval",
            "--environment",
            key,
            "--identity",
            "ann",
            "--trait",
            "plan=beta",
        ],
    )
    .await;
    assert!(
        evaluated.contains("TARGETING_MATCH; segment=beta_testers"),
        "{evaluated}"
    );
    assert!(evaluated.contains("segments: beta_testers"), "{evaluated}");
    // About one identity in ten falls in the rollout.
    let mut rolled = 0;
    for i in 0..120 {
        let identity = format!("user-{i}");
        let out = ok(
            &s,
            &[
                "eval",
                "--environment",
                key,
                "--identity",
                &identity,
                "--format",
                "json",
            ],
        )
        .await;
        let result: Value = serde_json::from_str(&out).unwrap();
        if result["flags"][0]["value"] == "rollout" {
            rolled += 1;
        }
    }
    assert!(
        (1..40).contains(&rolled),
        "{rolled} of 120 in a 10% rollout"
    );
    // Reorder, toggle, and read it all back.
    ok(
        &s,
        &[
            "overrides",
            "reorder",
            "--environment",
            key,
            "--feature",
            "new_checkout",
            "ten_percent",
            "beta_testers",
        ],
    )
    .await;
    let listed = ok(
        &s,
        &[
            "overrides",
            "list",
            "--environment",
            key,
            "--feature",
            "new_checkout",
            "--format",
            "json",
        ],
    )
    .await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["segment"], "ten_percent");
    ok(
        &s,
        &["flags", "enable", "new_checkout", "--environment", key],
    )
    .await;
    ok(
        &s,
        &[
            "flags",
            "set",
            "new_checkout",
            "modern",
            "--environment",
            key,
        ],
    )
    .await;
    let flags = ok(&s, &["flags", "list", "--environment", key]).await;
    let row = flags
        .lines()
        .find(|l| l.starts_with("new_checkout"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[..4],
        ["new_checkout", "true", "modern", "2"],
        "{flags}"
    );
    let audit = ok(&s, &["audit", "--environment", key, "--format", "json"]).await;
    let audit: Value = serde_json::from_str(&audit).unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["author"]["email"] == "admin token")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_traits_keys_and_documents() {
    let s = server().await;
    ok(&s, &["organisations", "create", "Acme"]).await;
    ok(&s, &["projects", "create", "Web", "--organisation", "Acme"]).await;
    let key = ok(
        &s,
        &[
            "environments",
            "create",
            "Production",
            "--project",
            "Web",
            "-q",
        ],
    )
    .await;
    let key = key.trim();
    ok(
        &s,
        &[
            "features",
            "create",
            "colour",
            "--project",
            "Web",
            "--value",
            "blue",
            "--option",
            "red:30:red",
            "--option",
            "green:20",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "flags",
            "split",
            "colour",
            "--environment",
            key,
            "red=50",
            "green=10",
        ],
    )
    .await;
    ok(&s, &["identities", "create", "ann", "--environment", key]).await;
    ok(
        &s,
        &[
            "traits",
            "set",
            "age",
            "41",
            "--environment",
            key,
            "--identity",
            "ann",
        ],
    )
    .await;
    let traits = ok(
        &s,
        &["traits", "list", "--environment", key, "--identity", "ann"],
    )
    .await;
    assert!(
        traits
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["age", "int", "41"]),
        "{traits}"
    );
    ok(
        &s,
        &[
            "identity-overrides",
            "set",
            "--environment",
            key,
            "--identity",
            "ann",
            "--feature",
            "colour",
            "--value",
            "gold",
            "--enabled",
        ],
    )
    .await;
    let evaluated = ok(
        &s,
        &[
            "eval",
            "--environment",
            key,
            "--identity",
            "ann",
            "--format",
            "json",
        ],
    )
    .await;
    let evaluated: Value = serde_json::from_str(&evaluated).unwrap();
    assert_eq!(evaluated["flags"][0]["value"], "gold");
    assert_eq!(
        evaluated["flags"][0]["reason"],
        "TARGETING_MATCH; segment=identity_overrides"
    );
    let server_key = ok(
        &s,
        &["keys", "create", "backend", "--environment", key, "-q"],
    )
    .await;
    assert!(server_key.trim().starts_with("ser."));
    // Export, then import into a new environment key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("production.json");
    ok(
        &s,
        &[
            "documents",
            "export",
            "--environment",
            key,
            "--output",
            path.to_str().unwrap(),
        ],
    )
    .await;
    let mut document: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        document["feature_states"][0]["multivariate_feature_state_values"][0]["percentage_allocation"],
        50.0
    );
    document["api_key"] = "CopiedProductionKey123".into();
    document["name"] = "Copy".into();
    std::fs::write(&path, serde_json::to_vec(&document).unwrap()).unwrap();
    let imported = ok(&s, &["documents", "import", path.to_str().unwrap()]).await;
    assert!(imported.contains("CopiedProductionKey123"), "{imported}");
    let environments = ok(
        &s,
        &[
            "environments",
            "list",
            "--project",
            "Web",
            "--format",
            "json",
        ],
    )
    .await;
    let environments: Value = serde_json::from_str(&environments).unwrap();
    assert_eq!(environments.as_array().unwrap().len(), 2);
    ok(&s, &["identities", "delete", "ann", "--environment", key]).await;
    let listed = ok(
        &s,
        &[
            "identities",
            "list",
            "--environment",
            key,
            "--format",
            "json",
        ],
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&listed).unwrap(),
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear_with_exit_codes() {
    let s = server().await;
    ok(&s, &["organisations", "create", "Acme"]).await;
    ok(&s, &["projects", "create", "Web", "--organisation", "Acme"]).await;
    ok(&s, &["features", "create", "banner", "--project", "Web"]).await;
    let duplicate = cli(&s, &["features", "create", "BANNER", "--project", "Web"]).await;
    assert_eq!(duplicate.code, 1);
    assert!(
        duplicate
            .stderr
            .contains("400 Bad Request: name: Feature with that name already exists"),
        "{}",
        duplicate.stderr
    );
    let unknown = cli(&s, &["features", "list", "--project", "Nope"]).await;
    assert_eq!(
        (unknown.code, unknown.stderr.trim()),
        (2, "error: no project named \"Nope\"")
    );
    let bad_rule = cli(
        &s,
        &[
            "segments",
            "create",
            "s",
            "--project",
            "Web",
            "--rule",
            "lonely",
        ],
    )
    .await;
    assert_eq!(bad_rule.code, 2);
    let wrong_token = bare(&["projects", "list", "--url", &s.url, "--token", "wrong"]).await;
    assert_eq!(wrong_token.code, 1);
    assert!(
        wrong_token
            .stderr
            .contains("401 Unauthorized: Invalid token.")
    );
    let no_token = bare(&["projects", "list", "--url", &s.url]).await;
    assert_eq!(no_token.code, 2);
    let unreachable = bare(&[
        "projects",
        "list",
        "--url",
        "http://127.0.0.1:9",
        "--token",
        "x",
    ])
    .await;
    assert_eq!(unreachable.code, 3);
    assert!(unreachable.stderr.contains("cannot reach the server"));
}

/// The value `eval` gives `feature` for `identity` with `traits`.
async fn evaluated(
    s: &Running,
    key: &str,
    identity: &str,
    traits: &[&str],
    feature: &str,
) -> Value {
    let mut args = vec!["eval", "--environment", key, "--identity", identity];
    for t in traits {
        args.extend(["--trait", t]);
    }
    args.extend(["--format", "json"]);
    let result: Value = serde_json::from_str(&ok(s, &args).await).unwrap();
    result["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == feature)
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_segments_and_overrides_change_after_creation() {
    let s = server().await;
    ok(&s, &["organisations", "create", "Acme", "-q"]).await;
    ok(
        &s,
        &["projects", "create", "Web", "--organisation", "Acme", "-q"],
    )
    .await;
    let key = ok(
        &s,
        &[
            "environments",
            "create",
            "Production",
            "--project",
            "Web",
            "-q",
        ],
    )
    .await;
    let key = key.trim();
    ok(
        &s,
        &[
            "features",
            "create",
            "checkout",
            "--project",
            "Web",
            "--value",
            "classic",
            "--option",
            "express:20:express",
            "--option",
            "one_page:0",
        ],
    )
    .await;

    // Options are added and removed by value or key.
    let added: Value = serde_json::from_str(
        &ok(
            &s,
            &[
                "features",
                "add-option",
                "checkout",
                "v2:10:v2",
                "--project",
                "Web",
                "--format",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        (added["string_value"].clone(), added["key"].clone()),
        ("v2".into(), "v2".into())
    );
    ok(
        &s,
        &[
            "features",
            "remove-option",
            "checkout",
            "one_page",
            "--project",
            "Web",
        ],
    )
    .await;
    let features: Value = serde_json::from_str(
        &ok(
            &s,
            &["features", "list", "--project", "Web", "--format", "json"],
        )
        .await,
    )
    .unwrap();
    let options: Vec<Value> = features[0]["multivariate_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["string_value"].clone())
        .collect();
    assert_eq!(options, ["express", "v2"]);
    let missing = cli(
        &s,
        &[
            "features",
            "remove-option",
            "checkout",
            "nope",
            "--project",
            "Web",
        ],
    )
    .await;
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no option \"nope\""),
        "{}",
        missing.stderr
    );

    // Renaming and describing a feature.
    let updated: Value = serde_json::from_str(
        &ok(
            &s,
            &[
                "features",
                "update",
                "checkout",
                "--project",
                "Web",
                "--name",
                "checkout_flow",
                "--description",
                "The checkout",
                "--server-key-only",
                "true",
                "--format",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(updated["name"], "checkout_flow");
    assert_eq!(updated["description"], "The checkout");
    assert_eq!(updated["is_server_key_only"], true);
    // Names are found ignoring case, as the server keeps them unique.
    let shown: Value = serde_json::from_str(
        &ok(
            &s,
            &[
                "features",
                "update",
                "CHECKOUT_FLOW",
                "--project",
                "web",
                "--description",
                "Checkout",
                "--format",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown["name"], "checkout_flow");
    let nothing = cli(
        &s,
        &["features", "update", "checkout_flow", "--project", "Web"],
    )
    .await;
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);

    // A segment's rules replaced: "team" joins "pro".
    ok(
        &s,
        &[
            "segments",
            "create",
            "pros",
            "--project",
            "Web",
            "--rule",
            "plan EQUAL pro",
        ],
    )
    .await;
    ok(
        &s,
        &["flags", "enable", "checkout_flow", "--environment", key],
    )
    .await;
    // Outside the segment nobody gets a variant: the environment's split is emptied.
    ok(
        &s,
        &[
            "flags",
            "split",
            "checkout_flow",
            "--environment",
            key,
            "express=0",
            "v2=0",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "checkout_flow",
            "--segment",
            "pros",
            "--enabled",
            "--split",
            "express=100",
        ],
    )
    .await;
    let flag = evaluated(&s, key, "tess", &["plan=team"], "checkout_flow").await;
    assert_eq!(flag["value"], "classic", "{flag}");
    ok(
        &s,
        &[
            "segments",
            "update",
            "pros",
            "--project",
            "Web",
            "--name",
            "payers",
            "--rule",
            "plan IN pro,team",
        ],
    )
    .await;
    let shown: Value = serde_json::from_str(
        &ok(
            &s,
            &[
                "segments",
                "show",
                "payers",
                "--project",
                "Web",
                "--format",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(shown["rules"][0]["conditions"][0]["operator"], "IN");
    // The override's split sends every member to the express variant.
    let flag = evaluated(&s, key, "tess", &["plan=team"], "checkout_flow").await;
    assert_eq!(flag["value"], "express", "{flag}");
    let flag = evaluated(&s, key, "olga", &["plan=free"], "checkout_flow").await;
    assert_eq!(flag["value"], "classic", "{flag}");

    // Turning the flag off, then removing the override.
    ok(
        &s,
        &["flags", "disable", "checkout_flow", "--environment", key],
    )
    .await;
    let flags: Value = serde_json::from_str(
        &ok(
            &s,
            &["flags", "list", "--environment", key, "--format", "json"],
        )
        .await,
    )
    .unwrap();
    assert_eq!(flags[0]["enabled"], false, "{flags}");
    ok(
        &s,
        &[
            "overrides",
            "delete",
            "--environment",
            key,
            "--feature",
            "checkout_flow",
            "--segment",
            "payers",
        ],
    )
    .await;
    let flag = evaluated(&s, key, "tess", &["plan=team"], "checkout_flow").await;
    assert_eq!(
        (flag["enabled"].clone(), flag["value"].clone()),
        (false.into(), "classic".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_can_name_its_scheme() {
    // An admin token with a dot reads as an API key unless its scheme is given.
    let s = server_with_token("admin.token-with-a-dot").await;
    let run = |token: &'static str| {
        let url = s.url.clone();
        async move {
            Command::new(env!("CARGO_BIN_EXE_bullet-train"))
                .args(["organisations", "list", "--url", &url, "--token", token])
                .env_remove("BULLET_TRAIN_TOKEN")
                .output()
                .await
                .unwrap()
        }
    };
    let guessed = run("admin.token-with-a-dot").await;
    assert_eq!(guessed.status.code(), Some(1));
    let named = run("Token admin.token-with-a-dot").await;
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
}
