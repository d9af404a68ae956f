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
    assert_eq!(database, json!({"status": "ok", "environments": 0}));
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
