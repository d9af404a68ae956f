//! `environment-document/`: server-side keys only, conditional requests.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, sample};

#[tokio::test]
async fn only_server_keys_get_the_document() {
    let app = TestApp::sample().await;
    let (status, body) = app.get_json("/api/v1/environment-document/", KEY).await;
    assert_eq!(
        (status, body),
        (403, json!({"detail": "Invalid or missing Environment key"}))
    );
    let server = app.server_key(KEY).await;
    let response = app
        .sdk(Method::GET, "/api/v1/environment-document/", &server)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("last-modified").is_some());
    assert!(
        response
            .headers()
            .get("x-flagsmith-document-updated-at")
            .is_some()
    );
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["api_key"], KEY);
    assert_eq!(document["feature_states"].as_array().unwrap().len(), 6);
    assert_eq!(
        document["project"]["segments"][0]["id"], 1001,
        "segment ids are the hashing seeds"
    );
    assert_eq!(
        document["identity_overrides"][0]["identifier"],
        "ben@bullet-train.io"
    );
}

/// The document's `Last-Modified`, and the answer to `If-Modified-Since` with it.
async fn revalidate(app: &TestApp, server: &str) -> (reqwest::Response, reqwest::Response) {
    let first = app
        .sdk(Method::GET, "/api/v1/environment-document/", server)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let last_modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    let again = app
        .sdk(Method::GET, "/api/v1/environment-document/", server)
        .header("If-Modified-Since", &last_modified)
        .send()
        .await
        .unwrap();
    (first, again)
}

#[tokio::test]
async fn if_modified_since_answers_not_modified_until_a_change() {
    let app = TestApp::sample().await;
    let server = app.server_key(KEY).await;
    // A 304 comes once the second of the last change is over (HTTP dates have whole seconds);
    // until then the document is sent again. Poll for it, for at most 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(20));
    let (first, unchanged) = loop {
        ticks.tick().await;
        let (first, again) = revalidate(&app, &server).await;
        if again.status() == 304 || std::time::Instant::now() > deadline {
            break (first, again);
        }
        assert_eq!(again.status(), 200);
    };
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let old = app
        .sdk(Method::GET, "/api/v1/environment-document/", &server)
        .header("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    // A change moves updated_at forward.
    let before: f64 = first.headers()["x-flagsmith-document-updated-at"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut document = sample();
    document["feature_states"][0]["enabled"] = json!(false);
    app.import(&document).await;
    let changed = app
        .sdk(Method::GET, "/api/v1/environment-document/", &server)
        .send()
        .await
        .unwrap();
    let after: f64 = changed.headers()["x-flagsmith-document-updated-at"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(after > before);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["feature_states"][0]["enabled"], false);
}

#[tokio::test]
async fn a_second_change_within_the_same_second_is_not_hidden_by_if_modified_since() {
    let app = TestApp::sample().await;
    let server = app.server_key(KEY).await;
    let mut document = sample();
    for round in 0..3 {
        // Change, read the date, change again at once (most often within the same second), and
        // revalidate with the date read between the two: the second change must come back.
        document["feature_states"][0]["feature_state_value"] = json!(format!("first {round}"));
        app.import(&document).await;
        let (first, _) = revalidate(&app, &server).await;
        let last_modified = first.headers()["last-modified"].clone();
        document["feature_states"][0]["feature_state_value"] = json!(format!("second {round}"));
        app.import(&document).await;
        let after = app
            .sdk(Method::GET, "/api/v1/environment-document/", &server)
            .header("If-Modified-Since", last_modified)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 200, "round {round}");
        let body: Value = after.json().await.unwrap();
        assert_eq!(
            body["feature_states"][0]["feature_state_value"],
            json!(format!("second {round}"))
        );
    }
}
