//! The blocking facade, from plain threads: every method, remote and local, and its background
//! tasks (refresh through the stream, analytics on drop).

use std::time::Duration;

use bullet_train::blocking::BulletTrain;
use bullet_train::{Mode, Trait, Value};
use serde_json::json;

use crate::helpers::{BEN, KEY, TestServer};

/// The server runs on its own runtime; the test thread stays synchronous.
fn server() -> (tokio::runtime::Runtime, TestServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::sample());
    (runtime, server)
}

#[test]
fn every_method_works_without_an_async_runtime() {
    let (runtime, server) = server();
    let bt = BulletTrain::builder(KEY)
        .api(server.api())
        .build_blocking()
        .unwrap();
    assert_eq!(bt.mode(), Mode::Remote);
    assert!(bt.is_ready());
    assert!(bt.has_feature("header").unwrap());
    assert!(!bt.has_feature("no_such_feature").unwrap());
    assert_eq!(bt.feature_enabled("header").unwrap(), Some(true));
    assert_eq!(bt.feature_enabled("no_such_feature").unwrap(), None);
    assert_eq!(
        bt.feature_enabled_for("dark_mode", BEN).unwrap(),
        Some(true)
    );
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(12)));
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).unwrap(),
        Some(Value::from("midnight"))
    );
    bt.set_trait("accept-cookies", "true", "blocking@example.com")
        .unwrap();
    assert_eq!(
        bt.get_trait("accept-cookies", "blocking@example.com")
            .unwrap(),
        Some(Value::from("true"))
    );
    assert_eq!(bt.get_flags().unwrap().len(), 5);
    let header = bt
        .get_flags_for_user("blocking@example.com")
        .unwrap()
        .into_iter()
        .find(|f| f.name() == "header")
        .unwrap();
    assert_eq!(header.value(), &Value::from("Thanks for accepting cookies"));
    let flags = bt
        .get_identity_flags("b2@example.com", &[Trait::new("plan", "pro")])
        .unwrap();
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    let flags = bt
        .get_transient_identity_flags("b3@example.com", &[Trait::new("plan", "pro")])
        .unwrap();
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    assert_eq!(bt.get_trait("plan", "b3@example.com").unwrap(), None);
    assert!(
        !bt.refresh().unwrap(),
        "remote clients have nothing to refresh"
    );
    drop(bt);
    runtime.block_on(server.stop());
}

#[test]
fn local_evaluation_stays_current_and_analytics_are_sent_on_drop() {
    let (runtime, server) = server();
    let key = runtime.block_on(server.server_key(KEY));
    let bt = BulletTrain::builder(&key)
        .api(server.api())
        .local_evaluation(true)
        .refresh_interval(Duration::from_secs(3600))
        .analytics(true)
        .analytics_interval(Duration::from_secs(3600))
        .build_blocking()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).unwrap();
    assert_eq!(bt.mode(), Mode::Local);
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(12)));

    // The client's own runtime runs the stream listener between calls.
    let mut updates = bt.updates();
    runtime.block_on(server.set_state(KEY, "font_size", true, json!(14)));
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), updates.changed())
            .await
            .expect("no update")
            .unwrap();
    });
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(14)));
    assert_eq!(bt.feature_enabled_for("header", "x").unwrap(), Some(true));
    assert_eq!(bt.get_flags().unwrap().len(), 6);

    drop(bt);
    // Two reads of font_size, one before the change (on the replaced document), one after.
    assert_eq!(runtime.block_on(server.evaluations("font_size")), 2);
    assert_eq!(runtime.block_on(server.evaluations("header")), 1);
    runtime.block_on(server.stop());
}
