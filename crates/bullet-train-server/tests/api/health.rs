//! Health and version routes, as load balancers and Flagsmith's tooling call them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;

#[tokio::test]
async fn health_routes_answer_without_credentials() {
    let app = TestApp::empty().await;
    for path in [
        "/health",
        "/health/",
        "/health/liveness/",
        "/health/readiness/",
        "/healthcheck",
        "/sse/health",
    ] {
        let response = app.request(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"status": "ok"}),
            "{path}"
        );
    }
    let database: Value = app
        .request(Method::GET, "/health/database")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(database["status"], "ok");
    assert_eq!(database["environments"], 0);
    // SQLite's server is always its database's only writer; a PostgreSQL replica becomes it once
    // alone for a moment (replicas.rs follows that).
    if std::env::var("BULLET_TRAIN_TEST_BACKEND").as_deref() == Ok("postgres") {
        assert!(database["sole_writer"].is_boolean(), "{database}");
    } else {
        assert_eq!(database["sole_writer"], true, "{database}");
    }
    let version: Value = app
        .request(Method::GET, "/version/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        version["package_versions"]["bullet-train"],
        env!("CARGO_PKG_VERSION")
    );
    assert!(version["image_tag"].is_string());
}
