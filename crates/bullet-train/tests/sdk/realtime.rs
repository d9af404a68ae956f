//! Keeping a local-evaluation client current: changes arrive through the real-time stream, polling
//! catches what the stream cannot, and a server that goes away leaves the client serving its last
//! document until it comes back.

use std::time::{Duration, Instant};

use bullet_train::Value;
use serde_json::json;

use crate::helpers::{KEY, TestServer, next_update};

/// Long enough that only the stream can explain an update.
const NO_POLLING: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_admin_change_reaches_a_local_client_through_the_stream_within_a_second() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .refresh_interval(NO_POLLING)
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    let mut updates = bt.updates();
    // Whether the stream is connected yet or not does not matter: a stream that connects after
    // the change opens with the newer `updated_at`.
    for round in 0..3 {
        let value = json!(format!("round {round}"));
        let written = Instant::now();
        server
            .set_state(KEY, "dark_mode", true, value.clone())
            .await;
        next_update(&mut updates, Duration::from_secs(1)).await;
        let latency = written.elapsed();
        eprintln!("change visible to the local client after {latency:?}");
        assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(true));
        assert_eq!(
            bt.get_value("dark_mode").await.unwrap(),
            Some(Value::from(format!("round {round}")))
        );
        server.set_state(KEY, "dark_mode", false, value).await;
        next_update(&mut updates, Duration::from_secs(1)).await;
        assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    }
}

#[tokio::test]
async fn polling_picks_up_changes_without_the_stream() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .realtime(false)
        .refresh_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    let mut updates = bt.updates();
    server.set_state(KEY, "font_size", true, json!(20)).await;
    next_update(&mut updates, Duration::from_secs(10)).await;
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(20))
    );
    // An unchanged document is not installed again (the poll gets 304 or the same document).
    assert!(!bt.refresh().await.unwrap());
    assert!(!updates.has_changed().unwrap());
}

#[tokio::test]
async fn a_vanished_server_leaves_the_last_document_serving_until_it_returns() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .refresh_interval(NO_POLLING)
        .retries(0)
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    let mut updates = bt.updates();

    let stopped = server.stop().await;
    // Refreshing fails, and nothing is lost.
    let error = bt.refresh().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(bt.is_ready());
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
    // Trait calls need the server.
    assert!(bt.get_trait("x", "y").await.unwrap_err().is_unavailable());

    // Back on the same port with the same data; a change made now reaches the client through
    // the reconnected stream.
    let server = stopped.restart().await;
    server.set_state(KEY, "font_size", true, json!(42)).await;
    next_update(&mut updates, Duration::from_secs(30)).await;
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(42))
    );
    assert!(!bt.refresh().await.unwrap(), "the client is current again");
}
