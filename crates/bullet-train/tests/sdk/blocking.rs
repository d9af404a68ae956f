//! The blocking facade, from plain threads: every method, remote and local, and its background
//! tasks (refresh through the stream, analytics on flush, close and drop).

use std::time::Duration;

use bullet_train::blocking::BulletTrain;
use bullet_train::{Mode, Trait, Value};
use serde_json::json;

use crate::helpers::{BEN, KEY, TestServer, sample};

/// The server runs on its own runtime; the test thread stays synchronous.
fn server() -> (tokio::runtime::Runtime, TestServer) {
    server_with(sample())
}

/// [`server`] with `document` imported instead of the sample.
fn server_with(document: serde_json::Value) -> (tokio::runtime::Runtime, TestServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(async {
        let server = TestServer::empty().await;
        server.import(&document).await;
        server
    });
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

#[test]
fn every_method_works_in_local_mode() {
    // Disabled flags are hidden, so has_feature and has_feature_for can differ: dark_mode is off
    // for the environment and on for Ben (identity override).
    let mut document = sample();
    document["hide_disabled_flags"] = json!(true);
    let (runtime, server) = server_with(document);
    let key = runtime.block_on(server.server_key(KEY));
    let bt = BulletTrain::builder(&key)
        .api(server.api())
        .local_evaluation(true)
        .realtime(false)
        .refresh_interval(Duration::from_secs(3600))
        .analytics(true)
        .analytics_interval(Duration::from_secs(3600))
        .build_blocking()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).unwrap();
    assert!(bt.is_ready());
    assert_eq!(bt.mode(), Mode::Local);
    assert_eq!(bt.client().mode(), Mode::Local);
    assert_eq!(bt.api_url(), Some(server.api().as_str()));
    assert!(bt.environment_updated_at().is_some());

    assert!(bt.has_feature("header").unwrap());
    assert!(!bt.has_feature("dark_mode").unwrap());
    assert!(bt.has_feature_for("dark_mode", BEN).unwrap());
    assert!(!bt.has_feature_for("no_such_feature", BEN).unwrap());
    assert_eq!(bt.feature_enabled("header").unwrap(), Some(true));
    assert_eq!(bt.feature_enabled("dark_mode").unwrap(), None);
    assert_eq!(
        bt.feature_enabled_for("dark_mode", BEN).unwrap(),
        Some(true)
    );
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(12)));
    assert_eq!(bt.get_value("no_such_feature").unwrap(), None);
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).unwrap(),
        Some(Value::from("midnight"))
    );

    let names: Vec<String> = bt
        .get_flags()
        .unwrap()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "header",
            "font_size",
            "checkout",
            "max_items",
            "internal_tools"
        ]
    );
    let flags = bt.get_flags_for_user(BEN).unwrap();
    assert_eq!(flags.len(), 6);
    let dark = flags.iter().find(|f| f.name() == "dark_mode").unwrap();
    assert_eq!(dark.value(), &Value::from("midnight"));

    let flags = bt
        .get_identity_flags("local-pro@example.com", &[Trait::new("plan", "pro")])
        .unwrap();
    assert_eq!(flags.identifier, "local-pro@example.com");
    assert_eq!(flags.traits, [Trait::new("plan", "pro")]);
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    let flags = bt
        .get_transient_identity_flags("visitor", &[Trait::new("accept-cookies", "true")])
        .unwrap();
    assert_eq!(
        flags.get_feature_value("header"),
        Some(Value::from("Thanks for accepting cookies"))
    );
    // Identity flags are evaluated in-process: the server never heard of that identity.
    assert_eq!(bt.get_trait("plan", "local-pro@example.com").unwrap(), None);
    // Traits live on the server, and local evaluation does not read them back.
    bt.set_trait("accept-cookies", "true", "blocking-local@example.com")
        .unwrap();
    assert_eq!(
        bt.get_trait("accept-cookies", "blocking-local@example.com")
            .unwrap(),
        Some(Value::from("true"))
    );
    assert_eq!(
        bt.get_value_for("header", "blocking-local@example.com")
            .unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );

    // refresh fetches now: nothing new, then the change.
    let updates = bt.updates();
    assert!(!bt.refresh().unwrap());
    assert!(!updates.has_changed().unwrap());
    runtime.block_on(server.set_state(KEY, "font_size", true, json!(14)));
    assert!(bt.refresh().unwrap());
    assert!(updates.has_changed().unwrap());
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(14)));

    // Analytics go out on flush and on close; nothing else reads max_items in this test.
    assert!(bt.get_value("max_items").unwrap().is_some());
    bt.flush_analytics().unwrap();
    assert_eq!(runtime.block_on(server.evaluations("max_items")), 1);
    assert_eq!(
        bt.feature_enabled_for("max_items", "x").unwrap(),
        Some(true)
    );
    bt.close().unwrap();
    assert_eq!(runtime.block_on(server.evaluations("max_items")), 2);
    // A closed client still answers from its last document.
    assert_eq!(bt.get_value("font_size").unwrap(), Some(Value::Int(14)));
    drop(bt);
    assert_eq!(runtime.block_on(server.evaluations("max_items")), 2);
    runtime.block_on(server.stop());
}
