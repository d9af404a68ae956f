//! The admin commands of the binary against a real server: the README walkthrough (from an empty
//! server to a segment-targeted, percentage-rolled-out flag), output formats, and errors with their
//! exit codes. Every subcommand is checked in both formats (the aligned table and the API's JSON),
//! by what it changed as seen through other commands, evaluations and the SDK endpoints, and by its
//! failures (message and exit code: 1 refused by the server, 2 a wrong command).

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

/// Runs a command with `--format json` and parses what it printed.
async fn json(server: &Running, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = ok(server, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{out}"))
}

/// Asserts that a command fails with `code` and prints exactly `error: <message>`.
async fn fails(server: &Running, args: &[&str], code: i32, message: &str) {
    let out = cli(server, args).await;
    assert_eq!(
        (out.code, out.stderr.trim()),
        (code, format!("error: {message}").as_str()),
        "{args:?}\nstdout: {}",
        out.stdout
    );
}

/// Runs a command authenticated with `key` (an organisation API key) instead of the admin token.
async fn as_key(server: &Running, key: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--token", key]);
    cli(server, &all).await
}

/// The cells of a printed table, its header row first. Columns start where the header has a name
/// after two spaces (names themselves have at most single spaces), so cells may hold spaces or be
/// empty.
fn cells(out: &str) -> Vec<Vec<String>> {
    let mut lines = out.lines();
    let header: Vec<char> = lines.next().expect("a header line").chars().collect();
    let starts: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != ' ' && (i == 0 || (i >= 2 && header[i - 2..i] == [' ', ' '])))
        .collect();
    std::iter::once(header.iter().collect::<String>())
        .chain(lines.map(str::to_owned))
        .map(|line| {
            let chars: Vec<char> = line.chars().collect();
            starts
                .iter()
                .enumerate()
                .map(|(k, &start)| {
                    let end = starts
                        .get(k + 1)
                        .copied()
                        .unwrap_or(chars.len())
                        .min(chars.len());
                    chars[start.min(end)..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned()
                })
                .collect()
        })
        .collect()
}

/// One column of a table's rows (the header left out).
fn column(table: &[Vec<String>], index: usize) -> Vec<&str> {
    table[1..].iter().map(|row| row[index].as_str()).collect()
}

/// The `field` of every item of a JSON list.
fn fields<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| {
            item[field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} in {item}"))
        })
        .collect()
}

/// An organisation `Acme` with a project `Web` (id 1) and its environment `Production`: the
/// environment's key.
async fn acme_web_production(s: &Running) -> String {
    ok(s, &["organisations", "create", "Acme", "-q"]).await;
    ok(
        s,
        &["projects", "create", "Web", "--organisation", "Acme", "-q"],
    )
    .await;
    let key = ok(
        s,
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
    key.trim().to_owned()
}

/// The status of the SDK's `flags/` request with an environment key (client or server-side), and
/// the names of the flags it returned, sorted.
async fn sdk_flags(s: &Running, key: &str) -> (u16, Vec<String>) {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/flags/", s.url))
        .header("X-Environment-Key", key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let mut names: Vec<String> = body
        .as_array()
        .map(|flags| {
            flags
                .iter()
                .map(|f| f["feature"]["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (status, names)
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

/// What `eval` gives `identity` with `traits` (JSON).
async fn evaluation(s: &Running, key: &str, identity: &str, traits: &[&str]) -> Value {
    let mut args = vec!["eval", "--environment", key, "--identity", identity];
    for t in traits {
        args.extend(["--trait", t]);
    }
    json(s, &args).await
}

/// The segments `eval` finds `identity` with `traits` in, sorted.
async fn segments_of(s: &Running, key: &str, identity: &str, traits: &[&str]) -> Vec<String> {
    let result = evaluation(s, key, identity, traits).await;
    let mut names: Vec<String> = result["segments"]
        .as_array()
        .unwrap_or_else(|| panic!("no segments in {result}"))
        .iter()
        .map(|name| name.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The value `eval` gives `feature` for `identity` with `traits`.
async fn evaluated(
    s: &Running,
    key: &str,
    identity: &str,
    traits: &[&str],
    feature: &str,
) -> Value {
    let result = evaluation(s, key, identity, traits).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisation_api_keys_are_created_listed_used_and_revoked() {
    let s = server().await;
    ok(&s, &["organisations", "create", "Acme"]).await;
    ok(&s, &["organisations", "create", "Other"]).await;
    ok(&s, &["projects", "create", "Web", "--organisation", "Acme"]).await;

    // The whole key, `<prefix>.<secret>`, is shown once, by `create`.
    let created = cells(&ok(&s, &["api-keys", "create", "ci", "--organisation", "Acme"]).await);
    assert_eq!(created.len(), 2, "{created:?}");
    assert_eq!(created[0], ["KEY", "PREFIX", "NAME"]);
    let (admin_key, admin_prefix) = (created[1][0].clone(), created[1][1].clone());
    assert_eq!(created[1][2], "ci");
    assert_eq!(admin_prefix.len(), 8, "{created:?}");
    let secret = admin_key
        .strip_prefix(&format!("{admin_prefix}."))
        .unwrap_or_else(|| panic!("{admin_key} does not start with its prefix"));
    assert!(secret.len() >= 16, "{admin_key}");
    let reader = json(
        &s,
        &[
            "api-keys",
            "create",
            "reader",
            "--organisation",
            "Acme",
            "--read-only",
        ],
    )
    .await;
    assert_eq!(
        (&reader["name"], &reader["is_admin"], &reader["revoked"]),
        (&"reader".into(), &false.into(), &false.into()),
        "{reader}"
    );
    let reader_prefix = reader["prefix"].as_str().unwrap().to_owned();
    let reader_key = reader["key"].as_str().unwrap().to_owned();
    assert!(
        reader_key.starts_with(&format!("{reader_prefix}.")),
        "{reader}"
    );
    let other_key = ok(
        &s,
        &["api-keys", "create", "ops", "--organisation", "Other", "-q"],
    )
    .await;
    let other_key = other_key.trim();
    assert_eq!(other_key.split_once('.').map(|(p, _)| p.len()), Some(8));

    // Listed without their secrets, each organisation its own.
    let listed = cells(&ok(&s, &["api-keys", "list", "--organisation", "Acme"]).await);
    assert_eq!(listed[0], ["PREFIX", "NAME", "ADMIN", "CREATED"]);
    let mut rows: Vec<[&str; 3]> = listed[1..]
        .iter()
        .map(|r| [r[0].as_str(), r[1].as_str(), r[2].as_str()])
        .collect();
    rows.sort();
    let mut expected = vec![
        [admin_prefix.as_str(), "ci", "true"],
        [reader_prefix.as_str(), "reader", "false"],
    ];
    expected.sort();
    assert_eq!(rows, expected, "{listed:?}");
    assert!(
        listed[1..].iter().all(|r| r[3].starts_with("20")),
        "{listed:?}"
    );
    let listed = json(&s, &["api-keys", "list", "--organisation", "Acme"]).await;
    let mut names = fields(&listed, "name");
    names.sort();
    assert_eq!(names, ["ci", "reader"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("key").is_none() && k["revoked"] == false),
        "{listed}"
    );
    fails(
        &s,
        &["api-keys", "list", "--organisation", "Nope"],
        2,
        "no organisation named \"Nope\"",
    )
    .await;

    // An admin key writes in its organisation; a read-only key only reads; neither manages keys.
    let made = as_key(
        &s,
        &admin_key,
        &["projects", "create", "Api", "--organisation", "Acme", "-q"],
    )
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let read = as_key(&s, &reader_key, &["projects", "list", "--format", "json"]).await;
    assert_eq!(read.code, 0, "{}", read.stderr);
    let read: Value = serde_json::from_str(&read.stdout).unwrap();
    assert_eq!(fields(&read, "name"), ["Web", "Api"]);
    const FORBIDDEN: &str =
        "error: 403 Forbidden: You do not have permission to perform this action.";
    let refused = as_key(
        &s,
        &reader_key,
        &["projects", "create", "X", "--organisation", "Acme"],
    )
    .await;
    assert_eq!((refused.code, refused.stderr.trim()), (1, FORBIDDEN));
    let refused = as_key(
        &s,
        &admin_key,
        &["api-keys", "list", "--organisation", "Acme"],
    )
    .await;
    assert_eq!((refused.code, refused.stderr.trim()), (1, FORBIDDEN));

    // Revoking: only through the key's own organisation; afterwards the server refuses the key.
    fails(
        &s,
        &[
            "api-keys",
            "revoke",
            &admin_prefix,
            "--organisation",
            "Other",
        ],
        1,
        "404 Not Found: Not found.",
    )
    .await;
    assert_eq!(as_key(&s, &admin_key, &["projects", "list"]).await.code, 0);
    assert_eq!(
        ok(
            &s,
            &[
                "api-keys",
                "revoke",
                &admin_prefix,
                "--organisation",
                "Acme"
            ]
        )
        .await,
        "revoked\n"
    );
    const REVOKED: &str = "error: 401 Unauthorized: Valid Master API Key not found.";
    let refused = as_key(&s, &admin_key, &["projects", "list"]).await;
    assert_eq!((refused.code, refused.stderr.trim()), (1, REVOKED));
    let listed = json(&s, &["api-keys", "list", "--organisation", "Acme"]).await;
    assert_eq!(fields(&listed, "name"), ["reader"]);
    fails(
        &s,
        &[
            "api-keys",
            "revoke",
            &admin_prefix,
            "--organisation",
            "Acme",
        ],
        1,
        "404 Not Found: Not found.",
    )
    .await;
    // With `--format json` a revocation prints nothing.
    assert_eq!(
        ok(
            &s,
            &[
                "api-keys",
                "revoke",
                &reader_prefix,
                "--organisation",
                "Acme",
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    let refused = as_key(&s, &reader_key, &["projects", "list"]).await;
    assert_eq!((refused.code, refused.stderr.trim()), (1, REVOKED));
    assert_eq!(
        cells(&ok(&s, &["api-keys", "list", "--organisation", "Acme"]).await),
        [["PREFIX", "NAME", "ADMIN", "CREATED"]]
    );
    assert_eq!(
        json(&s, &["api-keys", "list", "--organisation", "Acme"]).await,
        serde_json::json!([])
    );
    // The other organisation's key is untouched.
    assert_eq!(as_key(&s, other_key, &["projects", "list"]).await.code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_and_projects_are_listed_and_deleted() {
    let s = server().await;
    let acme = ok(&s, &["organisations", "create", "Acme", "-q"]).await;
    let acme = acme.trim();
    let other = ok(&s, &["organisations", "create", "Other", "-q"]).await;
    let other = other.trim();
    let mut projects = Vec::new();
    for (name, organisation) in [("Web", "Acme"), ("Shop", "Acme"), ("Mobile", "Other")] {
        let id = ok(
            &s,
            &[
                "projects",
                "create",
                name,
                "--organisation",
                organisation,
                "-q",
            ],
        )
        .await;
        projects.push(id.trim().to_owned());
    }
    assert_eq!(
        cells(&ok(&s, &["organisations", "list"]).await),
        vec![
            vec!["ID", "NAME", "PERSIST TRAITS"],
            vec![acme, "Acme", "true"],
            vec![other, "Other", "true"],
        ]
    );
    let organisations = json(&s, &["organisations", "list"]).await;
    assert_eq!(fields(&organisations, "name"), ["Acme", "Other"]);
    assert_eq!(organisations[1]["id"].to_string(), other);

    // `--organisation` keeps that organisation's projects, by name or id.
    assert_eq!(
        cells(&ok(&s, &["projects", "list", "--organisation", "Acme"]).await),
        vec![
            vec!["ID", "NAME", "ORGANISATION"],
            vec![projects[0].as_str(), "Web", acme],
            vec![projects[1].as_str(), "Shop", acme],
        ]
    );
    let mobile = json(&s, &["projects", "list", "--organisation", other]).await;
    assert_eq!(fields(&mobile, "name"), ["Mobile"]);
    assert_eq!(mobile[0]["organisation"].to_string(), other);
    let all = json(&s, &["projects", "list"]).await;
    assert_eq!(fields(&all, "name"), ["Web", "Shop", "Mobile"]);
    fails(
        &s,
        &["projects", "list", "--organisation", "Nope"],
        2,
        "no organisation named \"Nope\"",
    )
    .await;

    // A deleted project takes its environments (and their keys) with it.
    let key = ok(
        &s,
        &["environments", "create", "Live", "--project", "Shop", "-q"],
    )
    .await;
    let key = key.trim();
    assert_eq!(sdk_flags(&s, key).await.0, 200);
    assert_eq!(ok(&s, &["projects", "delete", "Shop"]).await, "deleted\n");
    let left = json(&s, &["projects", "list", "--organisation", "Acme"]).await;
    assert_eq!(fields(&left, "name"), ["Web"]);
    assert_eq!(sdk_flags(&s, key).await.0, 403);
    fails(
        &s,
        &["environments", "list", "--project", "Shop"],
        2,
        "no project named \"Shop\"",
    )
    .await;
    fails(
        &s,
        &["projects", "delete", "Shop"],
        2,
        "no project named \"Shop\"",
    )
    .await;
    assert_eq!(
        ok(
            &s,
            &["projects", "delete", &projects[0], "--format", "json"]
        )
        .await,
        ""
    );
    assert_eq!(
        json(&s, &["projects", "list", "--organisation", "Acme"]).await,
        serde_json::json!([])
    );

    // Only the admin token deletes an organisation; its projects and keys go with it.
    let other_key = ok(
        &s,
        &["api-keys", "create", "ops", "--organisation", "Other", "-q"],
    )
    .await;
    let other_key = other_key.trim();
    let refused = as_key(&s, other_key, &["organisations", "delete", "Other"]).await;
    assert_eq!(
        (refused.code, refused.stderr.trim()),
        (
            1,
            "error: 403 Forbidden: You do not have permission to perform this action."
        )
    );
    assert_eq!(
        ok(&s, &["organisations", "delete", "Other"]).await,
        "deleted\n"
    );
    let organisations = json(&s, &["organisations", "list"]).await;
    assert_eq!(fields(&organisations, "name"), ["Acme"]);
    assert_eq!(json(&s, &["projects", "list"]).await, serde_json::json!([]));
    let refused = as_key(&s, other_key, &["projects", "list"]).await;
    assert_eq!(
        (refused.code, refused.stderr.trim()),
        (
            1,
            "error: 401 Unauthorized: Valid Master API Key not found."
        )
    );
    fails(
        &s,
        &["organisations", "delete", "Other"],
        2,
        "no organisation named \"Other\"",
    )
    .await;
    assert_eq!(
        ok(&s, &["organisations", "delete", acme, "--format", "json"]).await,
        ""
    );
    assert_eq!(
        cells(&ok(&s, &["organisations", "list"]).await),
        [["ID", "NAME", "PERSIST TRAITS"]]
    );
    assert_eq!(
        json(&s, &["organisations", "list"]).await,
        serde_json::json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_are_cloned_changed_and_deleted() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--value",
            "hello",
            "--enabled",
        ],
    )
    .await;
    ok(&s, &["features", "create", "beta", "--project", "Web"]).await;
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
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "banner",
            "--segment",
            "pros",
            "--enabled",
            "--value",
            "pro-banner",
        ],
    )
    .await;
    ok(&s, &["identities", "create", "ann", "--environment", key]).await;

    // A clone: a new key, the same flags and segment overrides, no identities.
    let cloned = cells(&ok(&s, &["environments", "clone", key, "Staging"]).await);
    assert_eq!(cloned[0], ["NAME", "KEY", "ID", "PROJECT"]);
    assert_eq!(
        (cloned[1][0].as_str(), cloned[1][3].as_str()),
        ("Staging", "1")
    );
    let staging = cloned[1][1].clone();
    let staging = staging.as_str();
    assert_eq!(staging.len(), 22, "{cloned:?}");
    assert_ne!(staging, key);
    let overrides = json(
        &s,
        &[
            "overrides",
            "list",
            "--environment",
            staging,
            "--feature",
            "banner",
        ],
    )
    .await;
    assert_eq!(fields(&overrides, "segment"), ["pros"]);
    assert_eq!(
        (&overrides[0]["enabled"], &overrides[0]["value"]),
        (&true.into(), &"pro-banner".into())
    );
    let flag = evaluated(&s, staging, "pat", &["plan=pro"], "banner").await;
    assert_eq!(flag["value"], "pro-banner", "{flag}");
    let flag = evaluated(&s, staging, "fay", &["plan=free"], "banner").await;
    assert_eq!(
        (&flag["enabled"], &flag["value"]),
        (&true.into(), &"hello".into())
    );
    assert_eq!(
        json(&s, &["identities", "list", "--environment", staging]).await,
        serde_json::json!([])
    );
    // A copy: changing it leaves the source as it was.
    ok(
        &s,
        &["flags", "set", "banner", "staged", "--environment", staging],
    )
    .await;
    let flag = evaluated(&s, staging, "fay", &[], "banner").await;
    assert_eq!(flag["value"], "staged");
    let flag = evaluated(&s, key, "fay", &[], "banner").await;
    assert_eq!(flag["value"], "hello");
    let second = json(&s, &["environments", "clone", key, "Staging2"]).await;
    assert_eq!(
        (&second["name"], &second["project"]),
        (&"Staging2".into(), &1.into())
    );
    let second_key = second["api_key"].as_str().unwrap().to_owned();
    assert!(second_key.len() == 22 && second_key != key && second_key != staging);
    fails(
        &s,
        &["environments", "clone", key, "Staging"],
        1,
        "400 Bad Request: An environment with this name already exists.",
    )
    .await;
    fails(
        &s,
        &["environments", "clone", "NoSuchKey", "Other"],
        1,
        "404 Not Found: Not found.",
    )
    .await;

    // Settings: shown by `set`, read back by `list`, and followed by the SDK.
    assert_eq!(
        sdk_flags(&s, staging).await,
        (200, vec!["banner".into(), "beta".into()])
    );
    let set = cells(
        &ok(
            &s,
            &[
                "environments",
                "set",
                staging,
                "--name",
                "QA",
                "--allow-client-traits",
                "false",
                "--hide-disabled-flags",
                "true",
                "--hide-sensitive-data",
                "true",
            ],
        )
        .await,
    );
    assert_eq!(
        set,
        vec![
            vec!["NAME", "KEY", "ID", "PROJECT"],
            vec!["QA", staging, "2", "1"]
        ]
    );
    let listed = json(&s, &["environments", "list", "--project", "Web"]).await;
    let qa = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["api_key"] == staging)
        .unwrap();
    assert_eq!(
        (
            &qa["name"],
            &qa["allow_client_traits"],
            &qa["hide_disabled_flags"],
            &qa["hide_sensitive_data"]
        ),
        (&"QA".into(), &false.into(), &true.into(), &true.into()),
        "{qa}"
    );
    assert_eq!(sdk_flags(&s, staging).await, (200, vec!["banner".into()]));
    assert_eq!(
        sdk_flags(&s, key).await,
        (200, vec!["banner".into(), "beta".into()])
    );
    let set = json(
        &s,
        &[
            "environments",
            "set",
            staging,
            "--name",
            "QA2",
            "--hide-disabled-flags",
            "false",
        ],
    )
    .await;
    assert_eq!(
        (
            &set["name"],
            &set["hide_disabled_flags"],
            &set["allow_client_traits"]
        ),
        (&"QA2".into(), &false.into(), &false.into()),
        "{set}"
    );
    assert_eq!(
        sdk_flags(&s, staging).await,
        (200, vec!["banner".into(), "beta".into()])
    );
    fails(
        &s,
        &["environments", "set", staging, "--name", "Production"],
        1,
        "400 Bad Request: An environment with this name already exists.",
    )
    .await;
    fails(
        &s,
        &["environments", "set", "NoSuchKey", "--name", "X"],
        1,
        "404 Not Found: Not found.",
    )
    .await;

    // Deleted: gone from the list, and its key no longer serves flags.
    assert_eq!(
        ok(&s, &["environments", "delete", staging]).await,
        "deleted\n"
    );
    let listed = json(&s, &["environments", "list", "--project", "Web"]).await;
    assert_eq!(fields(&listed, "api_key"), [key, second_key.as_str()]);
    assert_eq!(sdk_flags(&s, staging).await.0, 403);
    assert_eq!(sdk_flags(&s, key).await.0, 200);
    fails(
        &s,
        &["environments", "delete", staging],
        1,
        "404 Not Found: Not found.",
    )
    .await;
    assert_eq!(
        ok(
            &s,
            &["environments", "delete", &second_key, "--format", "json"]
        )
        .await,
        ""
    );
    let listed = cells(&ok(&s, &["environments", "list", "--project", "Web"]).await);
    assert_eq!(column(&listed, 0), ["Production"]);

    // Without `--output` the document goes to standard output.
    let document: Value =
        serde_json::from_str(&ok(&s, &["documents", "export", "--environment", key]).await)
            .unwrap();
    assert_eq!(
        (&document["api_key"], &document["name"]),
        (&key.into(), &"Production".into())
    );
    assert_eq!(document["feature_states"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_keys_are_listed_and_revoked() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--enabled",
        ],
    )
    .await;
    let created = cells(&ok(&s, &["keys", "create", "backend", "--environment", key]).await);
    assert_eq!(created[0], ["KEY", "ID", "NAME"]);
    let (backend, backend_id) = (created[1][0].clone(), created[1][1].clone());
    assert_eq!(created[1][2], "backend");
    assert!(
        backend.starts_with("ser.") && backend.len() > 12,
        "{created:?}"
    );
    let worker = json(&s, &["keys", "create", "worker", "--environment", key]).await;
    assert_eq!(
        (&worker["name"], &worker["active"]),
        (&"worker".into(), &true.into())
    );
    let worker_key = worker["key"].as_str().unwrap().to_owned();
    let worker_id = worker["id"].to_string();
    assert!(worker_key.starts_with("ser."), "{worker}");

    // Listed by prefix (the key's first eight characters), never with the key itself.
    assert_eq!(
        cells(&ok(&s, &["keys", "list", "--environment", key]).await),
        vec![
            vec!["ID", "PREFIX", "NAME", "ACTIVE"],
            vec![backend_id.as_str(), &backend[..8], "backend", "true"],
            vec![worker_id.as_str(), &worker_key[..8], "worker", "true"],
        ]
    );
    let listed = json(&s, &["keys", "list", "--environment", key]).await;
    assert_eq!(fields(&listed, "name"), ["backend", "worker"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["key"].is_null()),
        "{listed}"
    );
    fails(
        &s,
        &["keys", "list", "--environment", "NoSuchKey"],
        1,
        "404 Not Found: Not found.",
    )
    .await;

    // A revoked key is refused by the SDK endpoints at once; the other keeps working.
    assert_eq!(sdk_flags(&s, &backend).await, (200, vec!["banner".into()]));
    assert_eq!(
        ok(&s, &["keys", "revoke", &backend_id, "--environment", key]).await,
        "revoked\n"
    );
    assert_eq!(sdk_flags(&s, &backend).await.0, 403);
    assert_eq!(sdk_flags(&s, &worker_key).await.0, 200);
    let listed = json(&s, &["keys", "list", "--environment", key]).await;
    assert_eq!(fields(&listed, "name"), ["worker"]);
    fails(
        &s,
        &["keys", "revoke", &backend_id, "--environment", key],
        1,
        "404 Not Found: Not found.",
    )
    .await;
    // Only through its own environment.
    let staging = ok(
        &s,
        &[
            "environments",
            "create",
            "Staging",
            "--project",
            "Web",
            "-q",
        ],
    )
    .await;
    fails(
        &s,
        &[
            "keys",
            "revoke",
            &worker_id,
            "--environment",
            staging.trim(),
        ],
        1,
        "404 Not Found: Not found.",
    )
    .await;
    assert_eq!(sdk_flags(&s, &worker_key).await.0, 200);
    assert_eq!(
        ok(
            &s,
            &[
                "keys",
                "revoke",
                &worker_id,
                "--environment",
                key,
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    assert_eq!(sdk_flags(&s, &worker_key).await.0, 403);
    assert_eq!(
        cells(&ok(&s, &["keys", "list", "--environment", key]).await),
        [["ID", "PREFIX", "NAME", "ACTIVE"]]
    );
    assert_eq!(
        json(&s, &["keys", "list", "--environment", key]).await,
        serde_json::json!([])
    );
    let not_an_id = cli(&s, &["keys", "revoke", "backend", "--environment", key]).await;
    assert_eq!(not_an_id.code, 2);
    assert!(
        not_an_id.stderr.contains("invalid value 'backend'"),
        "{}",
        not_an_id.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_take_rules_files_and_match_modes_and_are_deleted() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--value",
            "plain",
            "--enabled",
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };

    // Rules from a file: Flagsmith's nested rule JSON, kept as it is.
    let dach = file(
        "dach.json",
        r#"[{"type": "ALL", "conditions": [], "rules": [{"type": "ANY", "rules": [],
            "conditions": [{"operator": "EQUAL", "property": "country", "value": "de"},
                           {"operator": "EQUAL", "property": "country", "value": "at"}]}]}]"#,
    );
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "segments",
                    "create",
                    "dach",
                    "--project",
                    "Web",
                    "--rules-file",
                    &dach,
                    "--description",
                    "German speakers",
                ],
            )
            .await
        ),
        [
            ["ID", "NAME", "DESCRIPTION"],
            ["1", "dach", "German speakers"]
        ]
    );
    let shown = json(&s, &["segments", "show", "dach", "--project", "Web"]).await;
    let rule = &shown["rules"][0];
    assert_eq!(
        (&rule["type"], &rule["rules"][0]["type"]),
        (&"ALL".into(), &"ANY".into()),
        "{shown}"
    );
    assert_eq!(
        fields(&rule["rules"][0]["conditions"], "value"),
        ["de", "at"]
    );
    assert_eq!(segments_of(&s, key, "u", &["country=at"]).await, ["dach"]);
    assert!(segments_of(&s, key, "u", &["country=fr"]).await.is_empty());

    // `--match any` and `--match none` combine the `--rule` conditions; the default is all.
    let payers = json(
        &s,
        &[
            "segments",
            "create",
            "payers",
            "--project",
            "Web",
            "--match",
            "any",
            "--rule",
            "plan EQUAL pro",
            "--rule",
            "plan EQUAL team",
        ],
    )
    .await;
    assert_eq!(
        (&payers["name"], &payers["rules"][0]["type"]),
        (&"payers".into(), &"ANY".into())
    );
    assert_eq!(
        fields(&payers["rules"][0]["conditions"], "value"),
        ["pro", "team"]
    );
    let non_free = ok(
        &s,
        &[
            "segments",
            "create",
            "non_free",
            "--project",
            "Web",
            "--match",
            "none",
            "--rule",
            "plan EQUAL free",
            "-q",
        ],
    )
    .await;
    assert_eq!(non_free.trim(), "3");
    ok(
        &s,
        &[
            "segments",
            "create",
            "austrian_pros",
            "--project",
            "Web",
            "--rule",
            "plan EQUAL pro",
            "--rule",
            "country EQUAL at",
        ],
    )
    .await;
    assert_eq!(
        segments_of(&s, key, "u", &["plan=team"]).await,
        ["non_free", "payers"]
    );
    assert!(segments_of(&s, key, "u", &["plan=free"]).await.is_empty());
    // NONE of the conditions holds when the trait is missing.
    assert_eq!(segments_of(&s, key, "u", &[]).await, ["non_free"]);
    assert_eq!(
        segments_of(&s, key, "u", &["plan=pro", "country=at"]).await,
        ["austrian_pros", "dach", "non_free", "payers"]
    );
    assert_eq!(
        segments_of(&s, key, "u", &["plan=pro", "country=de"]).await,
        ["dach", "non_free", "payers"]
    );

    // Updates: rules replaced from a file (other fields kept), or by `--rule` with `--match`.
    let swiss = file(
        "swiss.json",
        r#"[{"type": "ALL", "rules": [],
            "conditions": [{"operator": "EQUAL", "property": "country", "value": "ch"}]}]"#,
    );
    let updated = json(
        &s,
        &[
            "segments",
            "update",
            "dach",
            "--project",
            "Web",
            "--name",
            "swiss",
            "--rules-file",
            &swiss,
        ],
    )
    .await;
    assert_eq!(
        (&updated["name"], &updated["description"]),
        (&"swiss".into(), &"German speakers".into())
    );
    assert_eq!(updated["rules"][0]["conditions"][0]["value"], "ch");
    assert_eq!(
        segments_of(&s, key, "u", &["country=ch"]).await,
        ["non_free", "swiss"]
    );
    assert_eq!(
        segments_of(&s, key, "u", &["country=de"]).await,
        ["non_free"]
    );
    ok(
        &s,
        &[
            "segments",
            "update",
            "payers",
            "--project",
            "Web",
            "--match",
            "none",
            "--rule",
            "plan EQUAL pro",
            "--rule",
            "plan EQUAL team",
        ],
    )
    .await;
    assert_eq!(
        segments_of(&s, key, "u", &["plan=team"]).await,
        ["non_free"]
    );
    assert_eq!(
        segments_of(&s, key, "u", &["plan=enterprise"]).await,
        ["non_free", "payers"]
    );
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "segments",
                    "update",
                    "payers",
                    "--project",
                    "Web",
                    "--description",
                    "Neither pro nor team",
                ],
            )
            .await
        ),
        [
            ["ID", "NAME", "DESCRIPTION"],
            ["2", "payers", "Neither pro nor team"]
        ]
    );

    // Files that cannot be used.
    let bad = file("bad.json", "not json");
    let out = cli(
        &s,
        &[
            "segments",
            "create",
            "x",
            "--project",
            "Web",
            "--rules-file",
            &bad,
        ],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with(&format!("error: {bad} is not JSON: ")),
        "{}",
        out.stderr
    );
    let out = cli(
        &s,
        &[
            "segments",
            "update",
            "swiss",
            "--project",
            "Web",
            "--rules-file",
            &bad,
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    // The rules are those of the last good update (and `payers` holds anyone without a plan).
    assert_eq!(
        segments_of(&s, key, "u", &["country=ch"]).await,
        ["non_free", "payers", "swiss"]
    );
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let out = cli(
        &s,
        &[
            "segments",
            "create",
            "x",
            "--project",
            "Web",
            "--rules-file",
            missing,
        ],
    )
    .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot read {missing}: ")),
        "{}",
        out.stderr
    );
    let object = file("object.json", r#"{"type": "ALL"}"#);
    fails(
        &s,
        &[
            "segments",
            "create",
            "x",
            "--project",
            "Web",
            "--rules-file",
            &object,
        ],
        1,
        "400 Bad Request: rules: Expected a list of items but got type \"dict\".",
    )
    .await;
    fails(
        &s,
        &["segments", "create", "x", "--project", "Web"],
        2,
        "give --rule conditions or a --rules-file",
    )
    .await;

    // Listing.
    let listed = cells(&ok(&s, &["segments", "list", "--project", "Web"]).await);
    assert_eq!(
        listed,
        [
            ["ID", "NAME", "DESCRIPTION"],
            ["1", "swiss", "German speakers"],
            ["2", "payers", "Neither pro nor team"],
            ["3", "non_free", ""],
            ["4", "austrian_pros", ""],
        ]
    );
    let listed = json(&s, &["segments", "list", "--project", "Web"]).await;
    assert_eq!(
        fields(&listed, "name"),
        ["swiss", "payers", "non_free", "austrian_pros"]
    );
    assert_eq!(listed[2]["rules"][0]["type"], "NONE");
    fails(
        &s,
        &["segments", "list", "--project", "Nope"],
        2,
        "no project named \"Nope\"",
    )
    .await;

    // Deleting a segment removes its overrides.
    ok(
        &s,
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "banner",
            "--segment",
            "swiss",
            "--enabled",
            "--value",
            "gruezi",
        ],
    )
    .await;
    let flag = evaluated(&s, key, "u", &["country=ch"], "banner").await;
    assert_eq!(flag["value"], "gruezi");
    assert_eq!(
        ok(&s, &["segments", "delete", "swiss", "--project", "Web"]).await,
        "deleted\n"
    );
    let listed = json(&s, &["segments", "list", "--project", "Web"]).await;
    assert_eq!(
        fields(&listed, "name"),
        ["payers", "non_free", "austrian_pros"]
    );
    assert_eq!(
        json(
            &s,
            &[
                "overrides",
                "list",
                "--environment",
                key,
                "--feature",
                "banner"
            ]
        )
        .await,
        serde_json::json!([])
    );
    let flag = evaluated(&s, key, "u", &["country=ch"], "banner").await;
    assert_eq!(flag["value"], "plain");
    assert_eq!(
        segments_of(&s, key, "u", &["country=ch"]).await,
        ["non_free", "payers"]
    );
    fails(
        &s,
        &["segments", "delete", "swiss", "--project", "Web"],
        2,
        "no segment named \"swiss\"",
    )
    .await;
    // By id, and silent in JSON.
    assert_eq!(
        ok(
            &s,
            &[
                "segments",
                "delete",
                "4",
                "--project",
                "Web",
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    let listed = cells(&ok(&s, &["segments", "list", "--project", "Web"]).await);
    assert_eq!(column(&listed, 1), ["payers", "non_free"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_overrides_take_a_priority_and_a_type() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--value",
            "plain",
            "--enabled",
        ],
    )
    .await;
    for (segment, rule) in [
        ("pros", "plan EQUAL pro"),
        ("europe", "region EQUAL eu"),
        ("beta", "beta EQUAL yes"),
        ("staff", "staff EQUAL yes"),
    ] {
        ok(
            &s,
            &[
                "segments",
                "create",
                segment,
                "--project",
                "Web",
                "--rule",
                rule,
            ],
        )
        .await;
    }
    let create = |segment: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "banner",
            "--segment",
            segment,
            "--enabled",
        ];
        args.extend(extra);
        args
    };
    ok(&s, &create("pros", &["--value", "pro"])).await;
    ok(&s, &create("europe", &["--value", "eu"])).await;
    let flag = evaluated(&s, key, "u", &["plan=pro", "region=eu"], "banner").await;
    assert_eq!(flag["reason"], "TARGETING_MATCH; segment=pros");

    // `--priority 0` puts an override first; its value is text with `--type string`.
    let created = json(
        &s,
        &create(
            "beta",
            &["--value", "7", "--type", "string", "--priority", "0"],
        ),
    )
    .await;
    assert_eq!(
        (&created["segment"], &created["priority"], &created["value"]),
        (&"beta".into(), &0.into(), &"7".into()),
        "{created}"
    );
    // A priority past the last puts it last; `--value` is typed automatically.
    let created = cells(&ok(&s, &create("staff", &["--value", "5", "--priority", "99"])).await);
    assert_eq!(
        created,
        [
            ["SEGMENT", "PRIORITY", "ENABLED", "VALUE"],
            ["staff", "3", "true", "5"]
        ]
    );
    let listed = cells(
        &ok(
            &s,
            &[
                "overrides",
                "list",
                "--environment",
                key,
                "--feature",
                "banner",
            ],
        )
        .await,
    );
    assert_eq!(
        listed,
        [
            ["PRIORITY", "SEGMENT", "ENABLED", "VALUE"],
            ["0", "beta", "true", "7"],
            ["1", "pros", "true", "pro"],
            ["2", "europe", "true", "eu"],
            ["3", "staff", "true", "5"],
        ]
    );
    let flag = evaluated(
        &s,
        key,
        "u",
        &["plan=pro", "region=eu", "beta=yes"],
        "banner",
    )
    .await;
    assert_eq!(
        (&flag["value"], &flag["reason"]),
        (&"7".into(), &"TARGETING_MATCH; segment=beta".into())
    );
    let flag = evaluated(&s, key, "u", &["region=eu", "staff=yes"], "banner").await;
    assert_eq!(flag["value"], "eu");
    let flag = evaluated(&s, key, "u", &["staff=yes"], "banner").await;
    assert_eq!(flag["value"], 5);

    fails(
        &s,
        &create("staff", &["--value", "x", "--type", "integer"]),
        2,
        "\"x\" is not an integer",
    )
    .await;
    ok(
        &s,
        &[
            "overrides",
            "delete",
            "--environment",
            key,
            "--feature",
            "banner",
            "--segment",
            "staff",
        ],
    )
    .await;
    fails(
        &s,
        &create("staff", &["--priority=-1"]),
        1,
        "400 Bad Request: feature_segment.priority: A valid non-negative integer is required.",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_are_searched_and_their_overrides_and_traits_changed() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--value",
            "plain",
            "--enabled",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "features",
            "create",
            "limit",
            "--project",
            "Web",
            "--value",
            "10",
        ],
    )
    .await;
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
        &[
            "overrides",
            "create",
            "--environment",
            key,
            "--feature",
            "banner",
            "--segment",
            "pros",
            "--enabled",
            "--value",
            "pro",
        ],
    )
    .await;
    for identifier in ["ann", "anna", "Annika", "joanne", "bob", "a_b", "axb"] {
        ok(
            &s,
            &["identities", "create", identifier, "--environment", key],
        )
        .await;
    }

    // `--search` finds identifiers starting with the text, ignoring case; `_` is no wildcard.
    let found = cells(
        &ok(
            &s,
            &[
                "identities",
                "list",
                "--environment",
                key,
                "--search",
                "ann",
            ],
        )
        .await,
    );
    assert_eq!(found[0], ["ID", "IDENTIFIER", "CREATED"]);
    assert_eq!(column(&found, 1), ["ann", "anna", "Annika"]);
    assert_eq!(column(&found, 0), ["1", "2", "3"]);
    let found = json(
        &s,
        &[
            "identities",
            "list",
            "--environment",
            key,
            "--search",
            "ANN",
        ],
    )
    .await;
    assert_eq!(fields(&found, "identifier"), ["ann", "anna", "Annika"]);
    assert!(found[0]["created_date"].as_str().is_some(), "{found}");
    let found = json(
        &s,
        &["identities", "list", "--environment", key, "--search", "a_"],
    )
    .await;
    assert_eq!(fields(&found, "identifier"), ["a_b"]);
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "identities",
                    "list",
                    "--environment",
                    key,
                    "--search",
                    "zed"
                ],
            )
            .await
        ),
        [["ID", "IDENTIFIER", "CREATED"]]
    );
    let everyone = json(&s, &["identities", "list", "--environment", key]).await;
    assert_eq!(everyone.as_array().unwrap().len(), 7);

    // Identity overrides: none, then one per feature; `set` again changes the one there is.
    let overrides = [
        "identity-overrides",
        "list",
        "--environment",
        key,
        "--identity",
        "ann",
    ];
    assert_eq!(
        cells(&ok(&s, &overrides).await),
        [["FEATURE", "ENABLED", "VALUE"]]
    );
    assert_eq!(json(&s, &overrides).await, serde_json::json!([]));
    let set = |feature: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "identity-overrides",
            "set",
            "--environment",
            key,
            "--identity",
            "ann",
            "--feature",
            feature,
        ];
        args.extend(extra);
        args
    };
    assert_eq!(
        cells(&ok(&s, &set("banner", &["--value", "first", "--enabled"])).await),
        [["FEATURE", "ENABLED", "VALUE"], ["banner", "true", "first"]]
    );
    let limit = json(&s, &set("limit", &["--value", "20"])).await;
    assert_eq!(
        (
            &limit["feature_name"],
            &limit["enabled"],
            &limit["feature_state_value"],
            &limit["identity"]["identifier"]
        ),
        (&"limit".into(), &false.into(), &20.into(), &"ann".into()),
        "{limit}"
    );
    let before = json(&s, &overrides).await;
    let banner_id = before[0]["id"].clone();
    let updated = json(
        &s,
        &set("banner", &["--value", "7", "--type", "string", "--enabled"]),
    )
    .await;
    assert_eq!(
        (
            &updated["id"],
            &updated["feature_state_value"],
            &updated["enabled"]
        ),
        (&banner_id, &"7".into(), &true.into()),
        "{updated}"
    );
    let after = json(&s, &overrides).await;
    assert_eq!(fields(&after, "feature_name"), ["banner", "limit"]);
    assert_eq!(after[0]["feature_state_value"], "7");
    let flag = evaluated(&s, key, "ann", &[], "banner").await;
    assert_eq!(
        (&flag["enabled"], &flag["value"], &flag["reason"]),
        (
            &true.into(),
            &"7".into(),
            &"TARGETING_MATCH; segment=identity_overrides".into()
        )
    );
    assert_eq!(evaluated(&s, key, "ann", &[], "limit").await["value"], 20);
    // `set` replaces the override: without `--enabled` the flag is off for the identity.
    assert_eq!(
        cells(&ok(&s, &set("banner", &["--value", "second"])).await),
        [
            ["FEATURE", "ENABLED", "VALUE"],
            ["banner", "false", "second"]
        ]
    );
    assert_eq!(
        cells(&ok(&s, &overrides).await),
        [
            ["FEATURE", "ENABLED", "VALUE"],
            ["banner", "false", "second"],
            ["limit", "false", "20"]
        ]
    );
    let flag = evaluated(&s, key, "ann", &[], "banner").await;
    assert_eq!(
        (&flag["enabled"], &flag["value"]),
        (&false.into(), &"second".into())
    );
    assert_eq!(
        evaluated(&s, key, "anna", &[], "banner").await["value"],
        "plain"
    );

    // Deleting an override gives the identity the environment's flag again.
    let delete = |feature: &'static str, identity: &'static str| {
        vec![
            "identity-overrides",
            "delete",
            "--environment",
            key,
            "--identity",
            identity,
            "--feature",
            feature,
        ]
    };
    assert_eq!(ok(&s, &delete("banner", "ann")).await, "deleted\n");
    assert_eq!(
        fields(&json(&s, &overrides).await, "feature_name"),
        ["limit"]
    );
    let flag = evaluated(&s, key, "ann", &[], "banner").await;
    assert_eq!(
        (&flag["enabled"], &flag["value"], &flag["reason"]),
        (&true.into(), &"plain".into(), &"DEFAULT".into())
    );
    fails(
        &s,
        &delete("banner", "ann"),
        2,
        "no override of that feature",
    )
    .await;
    fails(&s, &delete("limit", "nobody"), 2, "no identity \"nobody\"").await;
    fails(&s, &delete("nope", "ann"), 2, "no feature named \"nope\"").await;
    let mut silent = delete("limit", "ann");
    silent.extend(["--format", "json"]);
    assert_eq!(ok(&s, &silent).await, "");
    assert_eq!(json(&s, &overrides).await, serde_json::json!([]));

    // Traits: stored ones take part in evaluation until deleted.
    let traits = ["traits", "list", "--environment", key, "--identity", "ann"];
    for (trait_key, value, kind) in [
        ("plan", "pro", "auto"),
        ("age", "41", "auto"),
        ("vip", "true", "string"),
    ] {
        ok(
            &s,
            &[
                "traits",
                "set",
                trait_key,
                value,
                "--environment",
                key,
                "--identity",
                "ann",
                "--type",
                kind,
            ],
        )
        .await;
    }
    assert_eq!(
        evaluated(&s, key, "ann", &[], "banner").await["value"],
        "pro"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "traits",
                "delete",
                "plan",
                "--environment",
                key,
                "--identity",
                "ann"
            ]
        )
        .await,
        "deleted\n"
    );
    assert_eq!(
        cells(&ok(&s, &traits).await),
        [
            ["KEY", "TYPE", "VALUE"],
            ["age", "int", "41"],
            ["vip", "unicode", "true"]
        ]
    );
    assert_eq!(
        evaluated(&s, key, "ann", &[], "banner").await["value"],
        "plain"
    );
    fails(
        &s,
        &[
            "traits",
            "delete",
            "plan",
            "--environment",
            key,
            "--identity",
            "ann",
        ],
        2,
        "no trait named \"plan\"",
    )
    .await;
    fails(
        &s,
        &[
            "traits",
            "delete",
            "age",
            "--environment",
            key,
            "--identity",
            "nobody",
        ],
        2,
        "no identity \"nobody\"",
    )
    .await;
    for trait_key in ["age", "vip"] {
        assert_eq!(
            ok(
                &s,
                &[
                    "traits",
                    "delete",
                    trait_key,
                    "--environment",
                    key,
                    "--identity",
                    "ann",
                    "--format",
                    "json"
                ]
            )
            .await,
            ""
        );
    }
    assert_eq!(json(&s, &traits).await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_values_are_typed_and_features_deleted() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    let key = key.as_str();
    ok(
        &s,
        &[
            "features",
            "create",
            "limit",
            "--project",
            "Web",
            "--value",
            "10",
            "--enabled",
        ],
    )
    .await;
    ok(
        &s,
        &[
            "features",
            "create",
            "banner",
            "--project",
            "Web",
            "--value",
            "hi",
        ],
    )
    .await;
    ok(&s, &["features", "create", "banner_v2", "--project", "Web"]).await;
    let found = cells(
        &ok(
            &s,
            &["features", "list", "--project", "Web", "--search", "BANNER"],
        )
        .await,
    );
    assert_eq!(
        found[0],
        ["ID", "NAME", "TYPE", "INITIAL VALUE", "ENABLED BY DEFAULT"]
    );
    assert_eq!(column(&found, 1), ["banner", "banner_v2"]);
    assert_eq!(found[1][3], "hi");

    // `--type` decides how the value is read; `auto` reads numbers and booleans.
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "flags",
                    "set",
                    "limit",
                    "42",
                    "--environment",
                    key,
                    "--type",
                    "string"
                ]
            )
            .await
        ),
        [["FEATURE", "ENABLED", "VALUE"], ["limit", "true", "42"]]
    );
    assert_eq!(evaluated(&s, key, "u", &[], "limit").await["value"], "42");
    for (value, kind, expected) in [
        ("42", "integer", serde_json::json!(42)),
        ("true", "boolean", serde_json::json!(true)),
        ("true", "string", serde_json::json!("true")),
        ("-3", "auto", serde_json::json!(-3)),
        ("4.5", "auto", serde_json::json!("4.5")),
    ] {
        // Written as a user writes it: `-3` is a value, not an option.
        let set = ok(
            &s,
            &[
                "flags",
                "set",
                "limit",
                value,
                "--environment",
                key,
                "--type",
                kind,
                "--format",
                "json",
            ],
        )
        .await;
        let set: Value = serde_json::from_str(&set).unwrap();
        assert_eq!(
            (&set["feature"], &set["feature_state_value"]),
            (&"limit".into(), &expected),
            "{value} as {kind}: {set}"
        );
        let flag = evaluated(&s, key, "u", &[], "limit").await;
        assert_eq!(flag["value"], expected, "{value} as {kind}");
    }
    fails(
        &s,
        &[
            "flags",
            "set",
            "limit",
            "yes",
            "--environment",
            key,
            "--type",
            "boolean",
        ],
        2,
        "\"yes\" is not true or false",
    )
    .await;
    fails(
        &s,
        &[
            "flags",
            "set",
            "limit",
            "4.5",
            "--environment",
            key,
            "--type",
            "integer",
        ],
        2,
        "\"4.5\" is not an integer",
    )
    .await;
    let unknown = cli(
        &s,
        &[
            "flags",
            "set",
            "limit",
            "1",
            "--environment",
            key,
            "--type",
            "float",
        ],
    )
    .await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown
            .stderr
            .contains("invalid value 'float' for '--type <KIND>'"),
        "{}",
        unknown.stderr
    );
    assert_eq!(evaluated(&s, key, "u", &[], "limit").await["value"], "4.5");

    // A deleted feature leaves lists, flags, evaluations and identity overrides.
    ok(&s, &["identities", "create", "ann", "--environment", key]).await;
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
            "limit",
            "--value",
            "1",
        ],
    )
    .await;
    assert_eq!(
        ok(&s, &["features", "delete", "limit", "--project", "Web"]).await,
        "deleted\n"
    );
    let features = json(&s, &["features", "list", "--project", "Web"]).await;
    assert_eq!(fields(&features, "name"), ["banner", "banner_v2"]);
    let flags = json(&s, &["flags", "list", "--environment", key]).await;
    assert_eq!(fields(&flags, "feature"), ["banner", "banner_v2"]);
    let result = evaluation(&s, key, "ann", &[]).await;
    assert_eq!(fields(&result["flags"], "feature"), ["banner", "banner_v2"]);
    assert_eq!(
        json(
            &s,
            &[
                "identity-overrides",
                "list",
                "--environment",
                key,
                "--identity",
                "ann"
            ]
        )
        .await,
        serde_json::json!([])
    );
    fails(
        &s,
        &["features", "delete", "limit", "--project", "Web"],
        2,
        "no feature named \"limit\"",
    )
    .await;
    fails(
        &s,
        &["flags", "set", "limit", "1", "--environment", key],
        2,
        "no feature named \"limit\"",
    )
    .await;
    assert_eq!(
        ok(
            &s,
            &[
                "features",
                "delete",
                "banner_v2",
                "--project",
                "Web",
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    let features = cells(&ok(&s, &["features", "list", "--project", "Web"]).await);
    assert_eq!(column(&features, 1), ["banner"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_filtered_by_project_text_and_limit() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    ok(
        &s,
        &["projects", "create", "Mobile", "--organisation", "Acme"],
    )
    .await;
    ok(&s, &["features", "create", "checkout", "--project", "Web"]).await;
    ok(&s, &["features", "create", "login", "--project", "Mobile"]).await;
    ok(&s, &["flags", "enable", "checkout", "--environment", &key]).await;

    // `--project`: that project's entries only.
    let mobile = cells(&ok(&s, &["audit", "--project", "Mobile"]).await);
    assert_eq!(mobile[0], ["WHEN", "WHO", "WHAT", "LOG"]);
    let rows: Vec<&[String]> = mobile[1..].iter().map(|r| &r[1..]).collect();
    assert_eq!(
        rows,
        [
            [
                "admin token",
                "FEATURE",
                "New Flag / Remote Config created: login"
            ],
            ["admin token", "PROJECT", "Project created: Mobile"],
        ]
    );
    assert!(
        mobile[1..].iter().all(|r| r[0].ends_with('Z')),
        "{mobile:?}"
    );
    let mobile = json(&s, &["audit", "--project", "Mobile"]).await;
    assert_eq!(
        fields(&mobile, "log"),
        [
            "New Flag / Remote Config created: login",
            "Project created: Mobile"
        ]
    );
    assert!(
        mobile
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["project"]["name"] == "Mobile"),
        "{mobile}"
    );
    fails(
        &s,
        &["audit", "--project", "Nope"],
        2,
        "no project named \"Nope\"",
    )
    .await;

    // `--search`: entries whose text holds it, ignoring case; combined with `--project`.
    let found = json(&s, &["audit", "--search", "CHECKOUT"]).await;
    assert_eq!(
        fields(&found, "log"),
        [
            "Flag state / Remote Config value updated for feature: checkout",
            "New Flag / Remote Config created: checkout",
        ]
    );
    let found = cells(&ok(&s, &["audit", "--search", "checkout"]).await);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        json(
            &s,
            &["audit", "--project", "Mobile", "--search", "checkout"]
        )
        .await,
        serde_json::json!([])
    );
    assert_eq!(
        cells(&ok(&s, &["audit", "--search", "no such thing"]).await),
        [["WHEN", "WHO", "WHAT", "LOG"]]
    );

    // `--limit`: the newest entries.
    ok(&s, &["features", "create", "last_one", "--project", "Web"]).await;
    let newest = json(&s, &["audit", "--limit", "1"]).await;
    assert_eq!(
        fields(&newest, "log"),
        ["New Flag / Remote Config created: last_one"]
    );
    let newest = cells(&ok(&s, &["audit", "--limit", "2"]).await);
    assert_eq!(
        column(&newest, 3),
        [
            "New Flag / Remote Config created: last_one",
            "Flag state / Remote Config value updated for feature: checkout"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_change_commands_print_a_table_or_the_api_object() {
    let s = server().await;
    assert_eq!(
        cells(&ok(&s, &["organisations", "create", "Acme"]).await),
        [["ID", "NAME", "PERSIST TRAITS"], ["1", "Acme", "true"]]
    );
    let other = json(&s, &["organisations", "create", "Other"]).await;
    assert_eq!((&other["id"], &other["name"]), (&2.into(), &"Other".into()));
    assert_eq!(
        cells(&ok(&s, &["projects", "create", "Web", "--organisation", "Acme"]).await),
        [["ID", "NAME", "ORGANISATION"], ["1", "Web", "1"]]
    );
    let mobile = json(
        &s,
        &["projects", "create", "Mobile", "--organisation", "Other"],
    )
    .await;
    assert_eq!(
        (&mobile["id"], &mobile["name"], &mobile["organisation"]),
        (&2.into(), &"Mobile".into(), &2.into())
    );
    let created = cells(
        &ok(
            &s,
            &["environments", "create", "Production", "--project", "Web"],
        )
        .await,
    );
    assert_eq!(created[0], ["NAME", "KEY", "ID", "PROJECT"]);
    let key = created[1][1].clone();
    let key = key.as_str();
    assert_eq!(
        (
            created[1][0].as_str(),
            key.len(),
            created[1][2].as_str(),
            created[1][3].as_str()
        ),
        ("Production", 22, "1", "1")
    );
    let staging = json(
        &s,
        &["environments", "create", "Staging", "--project", "Web"],
    )
    .await;
    assert_eq!(
        (&staging["name"], &staging["project"]),
        (&"Staging".into(), &1.into())
    );
    assert_eq!(staging["api_key"].as_str().map(str::len), Some(22));

    // Features: the created object, changes, options.
    let colour = json(
        &s,
        &[
            "features",
            "create",
            "colour",
            "--project",
            "Web",
            "--value",
            "blue",
            "--description",
            "Paint",
            "--server-key-only",
            "--enabled",
            "--option",
            "red:30:r",
            "--option",
            "green:20",
        ],
    )
    .await;
    assert_eq!(
        (
            &colour["name"],
            &colour["initial_value"],
            &colour["description"],
            &colour["is_server_key_only"],
            &colour["default_enabled"],
            &colour["type"]
        ),
        (
            &"colour".into(),
            &"blue".into(),
            &"Paint".into(),
            &true.into(),
            &true.into(),
            &"MULTIVARIATE".into()
        ),
        "{colour}"
    );
    assert_eq!(
        fields(&colour["multivariate_options"], "string_value"),
        ["red", "green"]
    );
    assert_eq!(colour["multivariate_options"][0]["key"], "r");
    assert_eq!(
        colour["multivariate_options"][1]["default_percentage_allocation"],
        20.0
    );
    // Hidden from the client key, served to a server-side key.
    let server_key = ok(&s, &["keys", "create", "b", "--environment", key, "-q"]).await;
    assert_eq!(sdk_flags(&s, key).await, (200, vec![]));
    assert_eq!(
        sdk_flags(&s, server_key.trim()).await,
        (200, vec!["colour".into()])
    );
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "features",
                    "update",
                    "colour",
                    "--project",
                    "Web",
                    "--server-key-only",
                    "false"
                ]
            )
            .await
        ),
        [
            ["ID", "NAME", "TYPE", "INITIAL VALUE", "ENABLED BY DEFAULT"],
            ["1", "colour", "MULTIVARIATE", "blue", "true"]
        ]
    );
    assert_eq!(sdk_flags(&s, key).await, (200, vec!["colour".into()]));
    let added = cells(
        &ok(
            &s,
            &[
                "features",
                "add-option",
                "colour",
                "yellow:5:y",
                "--project",
                "Web",
            ],
        )
        .await,
    );
    assert_eq!(added[0], ["ID", "TYPE", "KEY", "ALLOCATION"]);
    assert_eq!(added[1][1..], ["unicode", "y", "5.0"]);
    assert_eq!(
        ok(
            &s,
            &[
                "features",
                "remove-option",
                "colour",
                "y",
                "--project",
                "Web"
            ]
        )
        .await,
        "removed\n"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "features",
                "remove-option",
                "colour",
                "green",
                "--project",
                "Web",
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    let features = json(&s, &["features", "list", "--project", "Web"]).await;
    assert_eq!(
        fields(&features[0]["multivariate_options"], "string_value"),
        ["red"]
    );

    // Flags: toggles and splits show the changed state.
    assert_eq!(
        cells(&ok(&s, &["flags", "disable", "colour", "--environment", key]).await),
        [["FEATURE", "ENABLED", "VALUE"], ["colour", "false", "blue"]]
    );
    let enabled = json(&s, &["flags", "enable", "colour", "--environment", key]).await;
    assert_eq!(
        (
            &enabled["feature"],
            &enabled["enabled"],
            &enabled["feature_state_value"]
        ),
        (&"colour".into(), &true.into(), &"blue".into())
    );
    let red = colour["multivariate_options"][0]["id"].to_string();
    assert_eq!(
        cells(
            &ok(
                &s,
                &["flags", "split", "colour", "--environment", key, "r=40"]
            )
            .await
        ),
        [["OPTION", "PERCENT"], [red.as_str(), "40.0"]]
    );
    let split = json(
        &s,
        &["flags", "split", "colour", "--environment", key, "red=100"],
    )
    .await;
    assert_eq!(split[0]["percentage_allocation"], 100.0);
    assert_eq!(split.as_array().unwrap().len(), 1);
    assert_eq!(evaluated(&s, key, "u", &[], "colour").await["value"], "red");

    // Segment overrides: reordered and deleted.
    for (segment, rule) in [("first", "a EQUAL 1"), ("second", "b EQUAL 1")] {
        ok(
            &s,
            &[
                "segments",
                "create",
                segment,
                "--project",
                "Web",
                "--rule",
                rule,
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
                "colour",
                "--segment",
                segment,
                "--value",
                segment,
            ],
        )
        .await;
    }
    // `segments show` prints the segment as JSON in either format.
    let shown: Value =
        serde_json::from_str(&ok(&s, &["segments", "show", "second", "--project", "Web"]).await)
            .unwrap();
    assert_eq!(shown["rules"][0]["conditions"][0]["property"], "b");
    let reorder = |order: [&'static str; 2]| {
        let mut args = vec![
            "overrides",
            "reorder",
            "--environment",
            key,
            "--feature",
            "colour",
        ];
        args.extend(order);
        args
    };
    assert_eq!(
        cells(&ok(&s, &reorder(["second", "first"])).await),
        [["PRIORITY", "SEGMENT"], ["0", "second"], ["1", "first"]]
    );
    let flag = evaluated(&s, key, "u", &["a=1", "b=1"], "colour").await;
    assert_eq!(flag["value"], "second");
    let reordered = json(&s, &reorder(["first", "second"])).await;
    assert_eq!(fields(&reordered, "segment_name"), ["first", "second"]);
    assert_eq!(reordered[0]["priority"], 0);
    let flag = evaluated(&s, key, "u", &["a=1", "b=1"], "colour").await;
    assert_eq!(flag["value"], "first");
    let delete = |segment: &'static str| {
        vec![
            "overrides",
            "delete",
            "--environment",
            key,
            "--feature",
            "colour",
            "--segment",
            segment,
        ]
    };
    assert_eq!(ok(&s, &delete("first")).await, "deleted\n");
    let mut silent = delete("second");
    silent.extend(["--format", "json"]);
    assert_eq!(ok(&s, &silent).await, "");
    assert_eq!(
        json(
            &s,
            &[
                "overrides",
                "list",
                "--environment",
                key,
                "--feature",
                "colour"
            ]
        )
        .await,
        serde_json::json!([])
    );
    fails(&s, &delete("first"), 2, "no override of that segment").await;

    // Identities and traits.
    let zoe = cells(&ok(&s, &["identities", "create", "zoe", "--environment", key]).await);
    assert_eq!(zoe[0], ["ID", "IDENTIFIER", "CREATED"]);
    assert_eq!(zoe[1][..2], ["1", "zoe"]);
    let yan = json(&s, &["identities", "create", "yan", "--environment", key]).await;
    assert_eq!(
        (&yan["id"], &yan["identifier"], &yan["environment"]),
        (&2.into(), &"yan".into(), &1.into())
    );
    fails(
        &s,
        &["identities", "create", "zoe", "--environment", key],
        1,
        "400 Bad Request: identifier: Identity with identifier 'zoe' already exists in this environment",
    )
    .await;
    let set = json(
        &s,
        &[
            "traits",
            "set",
            "n",
            "5",
            "--environment",
            key,
            "--identity",
            "zoe",
        ],
    )
    .await;
    assert_eq!(
        (&set["trait_key"], &set["value_type"], &set["value"]),
        (&"n".into(), &"int".into(), &5.into())
    );
    assert_eq!(
        cells(
            &ok(
                &s,
                &[
                    "traits",
                    "set",
                    "n",
                    "six",
                    "--environment",
                    key,
                    "--identity",
                    "zoe"
                ]
            )
            .await
        ),
        [["KEY", "TYPE", "VALUE"], ["n", "unicode", "six"]]
    );
    assert_eq!(
        ok(&s, &["identities", "delete", "zoe", "--environment", key]).await,
        "deleted\n"
    );
    assert_eq!(
        ok(
            &s,
            &[
                "identities",
                "delete",
                "yan",
                "--environment",
                key,
                "--format",
                "json"
            ]
        )
        .await,
        ""
    );
    fails(
        &s,
        &["identities", "delete", "yan", "--environment", key],
        2,
        "no identity \"yan\"",
    )
    .await;
    assert_eq!(
        json(&s, &["identities", "list", "--environment", key]).await,
        serde_json::json!([])
    );

    // A document import prints a summary.
    let document = json(&s, &["documents", "export", "--environment", key]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.json");
    let mut copy = document.clone();
    copy["api_key"] = "ImportedKey12345678901".into();
    copy["name"] = "Imported".into();
    std::fs::write(&path, serde_json::to_vec(&copy).unwrap()).unwrap();
    let path = path.to_str().unwrap();
    let imported = json(&s, &["documents", "import", path]).await;
    assert_eq!(
        imported,
        serde_json::json!({"api_key": "ImportedKey12345678901", "name": "Imported",
            "features": 1, "segments": 2})
    );
    assert_eq!(
        cells(&ok(&s, &["documents", "import", path]).await),
        [
            ["ENVIRONMENT", "NAME", "FEATURES", "SEGMENTS"],
            ["ImportedKey12345678901", "Imported", "1", "2"]
        ]
    );
    assert_eq!(
        ok(&s, &["documents", "import", path, "-q"]).await,
        "ImportedKey12345678901\n"
    );
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly() {
    let s = server().await;
    acme_web_production(&s).await;
    // A pipe whose reading end is already closed, as after `| head -1` has read its line.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    for args in [&["audit"][..], &["audit", "--format", "json"][..]] {
        let output = Command::new(env!("CARGO_BIN_EXE_bullet-train"))
            .args(args)
            .env("BULLET_TRAIN_URL", &s.url)
            .env("BULLET_TRAIN_TOKEN", TOKEN)
            .stdout(writer.try_clone().unwrap())
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn options_that_would_be_ignored_are_refused() {
    let s = server().await;
    let key = acme_web_production(&s).await;
    // Nothing to change is a usage error, not an empty update in the audit log.
    fails(
        &s,
        &["environments", "set", &key],
        2,
        "give --name, --allow-client-traits, --hide-disabled-flags or --hide-sensitive-data",
    )
    .await;
    let audit = json(&s, &["audit"]).await;
    assert!(
        audit.as_array().unwrap().iter().all(|e| e["log"]
            .as_str()
            .is_none_or(|l| !l.starts_with("Environment updated"))),
        "{audit}"
    );
    // A rules file and --rule conditions, or --match without conditions: one would be dropped.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.json");
    std::fs::write(&file, r#"[{"type": "ALL", "rules": [], "conditions": []}]"#).unwrap();
    let file = file.to_str().unwrap();
    for args in [
        &[
            "segments",
            "create",
            "s",
            "--project",
            "Web",
            "--rules-file",
            file,
            "--rule",
            "plan EQUAL pro",
        ][..],
        &[
            "segments",
            "create",
            "s",
            "--project",
            "Web",
            "--rules-file",
            file,
            "--match",
            "any",
        ][..],
        &[
            "segments",
            "create",
            "s",
            "--project",
            "Web",
            "--match",
            "none",
        ][..],
        &[
            "segments",
            "update",
            "s",
            "--project",
            "Web",
            "--match",
            "any",
            "--name",
            "t",
        ][..],
    ] {
        let out = cli(&s, args).await;
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot be used with") || out.stderr.contains("required"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Nothing was created.
    assert_eq!(
        json(&s, &["segments", "list", "--project", "Web"]).await,
        serde_json::json!([])
    );
}
