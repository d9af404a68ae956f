//! Flag analytics: evaluation counts per feature reach the server's `analytics/flags/`, from
//! remote and local evaluation, across document changes, on flush and on close.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{BEN, KEY, TestServer, next_update};

const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn remote_evaluations_are_counted_per_feature() {
    let server = TestServer::sample().await;
    let bt = server
        .builder(KEY)
        .analytics(true)
        .analytics_interval(NEVER)
        .build()
        .unwrap();
    for _ in 0..3 {
        bt.feature_enabled("header").await.unwrap();
    }
    bt.get_value_for("font_size", BEN).await.unwrap();
    bt.get_value("font_size").await.unwrap();
    // Existence checks and missing features count nothing.
    bt.has_feature("dark_mode").await.unwrap();
    bt.feature_enabled("no_such_feature").await.unwrap();
    let flags = bt.get_identity_flags(BEN, &[]).await.unwrap();
    flags.is_feature_enabled("checkout");

    bt.flush_analytics().await.unwrap();
    assert_eq!(server.evaluations("header").await, 3);
    assert_eq!(server.evaluations("font_size").await, 2);
    assert_eq!(server.evaluations("checkout").await, 1);
    assert_eq!(server.evaluations("dark_mode").await, 0);
    // Counts are sent once.
    bt.flush_analytics().await.unwrap();
    assert_eq!(server.evaluations("header").await, 3);
}

#[tokio::test]
async fn local_evaluations_are_counted_across_document_changes() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .refresh_interval(NEVER)
        .analytics(true)
        .analytics_interval(NEVER)
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    let mut updates = bt.updates();
    for _ in 0..4 {
        bt.feature_enabled_for("header", "someone").await.unwrap();
    }
    // A new document replaces the one these counts were made on; they are still sent.
    server.set_state(KEY, "font_size", true, json!(13)).await;
    next_update(&mut updates, Duration::from_secs(10)).await;
    bt.feature_enabled("header").await.unwrap();
    bt.get_value("font_size").await.unwrap();

    // Closing sends what is pending.
    bt.close().await.unwrap();
    assert_eq!(server.evaluations("header").await, 5);
    assert_eq!(server.evaluations("font_size").await, 1);
}

#[tokio::test]
async fn counts_survive_a_failed_flush() {
    let server = TestServer::sample().await;
    let bt = server
        .builder(KEY)
        .retries(0)
        .analytics(true)
        .analytics_interval(NEVER)
        .build()
        .unwrap();
    bt.feature_enabled("header").await.unwrap();
    bt.feature_enabled("header").await.unwrap();
    let stopped = server.stop().await;
    assert!(bt.flush_analytics().await.is_err());
    let server = stopped.restart().await;
    bt.flush_analytics().await.unwrap();
    assert_eq!(server.evaluations("header").await, 2);
}

#[tokio::test]
async fn answers_from_the_offline_fallback_are_counted_once_the_server_is_back() {
    let server = TestServer::sample().await;
    let document = serde_json::from_value(server.export(KEY).await).unwrap();
    let bt = server
        .builder(KEY)
        .retries(0)
        .offline_document(document)
        .analytics(true)
        .analytics_interval(NEVER)
        .build()
        .unwrap();
    bt.feature_enabled("header").await.unwrap();
    let stopped = server.stop().await;
    // Served from the offline document while the server is away.
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    let server = stopped.restart().await;
    bt.flush_analytics().await.unwrap();
    assert_eq!(server.evaluations("header").await, 3);
}
