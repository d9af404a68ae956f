//! The real-time stream: the current `updated_at` on connect, a new event per change, keep-alives.

use std::time::Duration;

use bullet_train_server::Limits;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{KEY, TestApp, next_block, sample, updated_at};

#[tokio::test]
async fn announces_every_change_to_every_stream() {
    let app = TestApp::sample().await;
    let path = format!("/sse/environments/{KEY}/stream");
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = app.request(Method::GET, &path).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        streams.push((response, String::new()));
    }
    let header: f64 = app
        .sdk(Method::GET, "/api/v1/flags/", KEY)
        .send()
        .await
        .unwrap()
        .headers()["x-flagsmith-document-updated-at"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut initial = Vec::new();
    for (response, buffer) in &mut streams {
        let block = next_block(response, buffer).await;
        assert!(block.contains("retry: "));
        initial.push(updated_at(&block));
    }
    assert!(
        initial.iter().all(|t| (*t - header).abs() < 1e-6),
        "{initial:?} vs {header}"
    );

    let mut document = sample();
    document["feature_states"][1]["feature_state_value"] = json!(13);
    app.import(&document).await;
    for (response, buffer) in &mut streams {
        let mut block = next_block(response, buffer).await;
        while block.starts_with(':') {
            block = next_block(response, buffer).await;
        }
        assert!(updated_at(&block) > header);
    }
}

#[tokio::test]
async fn sends_keep_alives_and_refuses_unknown_keys() {
    let app = TestApp::with_limits(Limits {
        sse_keep_alive: Duration::from_millis(50),
        ..Limits::default()
    })
    .await;
    app.import(&sample()).await;
    let mut response = app
        .request(Method::GET, &format!("/sse/environments/{KEY}/stream"))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    updated_at(&next_block(&mut response, &mut buffer).await);
    assert_eq!(next_block(&mut response, &mut buffer).await, ": keep-alive");
    let unknown = app
        .request(Method::GET, "/sse/environments/nope/stream")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // Streams are addressed by client key only: a server-side key in the path names nothing.
    let server_key = app.server_key(KEY).await;
    let by_server_key = app
        .request(
            Method::GET,
            &format!("/sse/environments/{server_key}/stream"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_server_key.status(), 404);
}

#[tokio::test]
async fn streams_end_when_the_server_stops() {
    let app = TestApp::sample().await;
    let mut response = app
        .request(Method::GET, &format!("/sse/environments/{KEY}/stream"))
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    next_block(&mut response, &mut buffer).await;
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = response.chunk().await {} });
    app.stop().await;
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
}
