//! The examples, run as programs against a real server: they must work as their docs say.

use std::path::PathBuf;

use crate::helpers::{KEY, TestServer};

/// An example's binary; `cargo test` and `cargo nextest run` build examples with the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "example {name} not built at {}",
        path.display()
    );
    path
}

async fn run(name: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let output = tokio::process::Command::new(example(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{name} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_seed_usage_example_runs_end_to_end() {
    let server = TestServer::sample().await;
    let api = format!("{}/api/", server.url);
    let out = run(
        "seed_usage",
        &[
            ("BULLET_TRAIN_API", &api),
            ("BULLET_TRAIN_ENVIRONMENT_KEY", KEY),
        ],
        &[],
    )
    .await;
    for line in [
        "header is enabled",
        "header for <My User Id>: Welcome to Bullet Train",
        "header: Welcome to Bullet Train",
        "accept-cookies of ben@bullet-train.io: true",
        "header for ben@bullet-train.io: Thanks for accepting cookies",
        "flag font_size: enabled=true value=12",
        "flag of ben@bullet-train.io dark_mode: enabled=true value=midnight",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
}

#[tokio::test]
async fn the_local_evaluation_example_runs_and_sends_analytics() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let api = format!("{}/api/", server.url);
    let out = run(
        "local_evaluation",
        &[
            ("BULLET_TRAIN_API", &api),
            ("BULLET_TRAIN_SERVER_KEY", &key),
        ],
        &[],
    )
    .await;
    assert!(
        out.contains("dark_mode for ben@bullet-train.io: enabled=Some(true)"),
        "{out}"
    );
    assert!(
        out.contains("header for ada (plan=pro): enabled=true value=Welcome back, power user reason=TARGETING_MATCH; segment=power_users"),
        "{out}"
    );
    // It closes the client, which sends the two dark_mode evaluations per user.
    assert_eq!(server.evaluations("dark_mode").await, 4);
}

#[cfg(feature = "openfeature")]
#[tokio::test]
async fn the_openfeature_example_runs() {
    let server = TestServer::sample().await;
    let api = format!("{}/api/", server.url);
    let out = run(
        "openfeature",
        &[
            ("BULLET_TRAIN_API", &api),
            ("BULLET_TRAIN_ENVIRONMENT_KEY", KEY),
        ],
        &[],
    )
    .await;
    assert!(
        out.contains("header: \"Welcome back, power user\""),
        "{out}"
    );
    assert!(out.contains("font_size: 15"), "{out}");
    assert!(out.contains("no_such_flag: FlagNotFound"), "{out}");
}
