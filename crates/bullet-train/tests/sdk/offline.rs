//! Offline mode from an exported document file (with the default flag handler for missing
//! features), and the offline document as the fallback of a remote client whose server is gone.

use bullet_train::{BulletTrain, DefaultFlag, Error, Mode, Trait, Value};

use crate::helpers::{BEN, KEY, TestServer, sample};

#[tokio::test]
async fn offline_mode_answers_from_an_exported_document_without_a_server() {
    let server = TestServer::sample().await;
    let path = server.export_to_file(KEY).await;
    let stopped = server.stop().await;

    let bt = BulletTrain::builder(KEY)
        .offline_mode(true)
        .offline_document_file(&path)
        .build()
        .unwrap();
    assert_eq!(bt.mode(), Mode::Offline);
    assert!(bt.is_ready());
    assert_eq!(bt.api_url(), None);
    assert!(bt.has_feature("header").await.unwrap());
    assert!(!bt.has_feature("no_such_feature").await.unwrap());
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).await.unwrap(),
        Some(Value::from("midnight"))
    );
    assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
    assert_eq!(bt.get_flags_for_user(BEN).await.unwrap().len(), 6);
    let flags = bt
        .get_identity_flags("x", &[Trait::new("accept-cookies", "true")])
        .await
        .unwrap();
    assert_eq!(
        flags.get_feature_value("header"),
        Some(Value::from("Thanks for accepting cookies"))
    );
    assert!(matches!(
        bt.set_trait("a", 1, BEN).await,
        Err(Error::Offline)
    ));
    assert!(matches!(bt.get_trait("a", BEN).await, Err(Error::Offline)));
    drop(stopped);
}

#[tokio::test]
async fn offline_the_default_flag_handler_answers_only_for_missing_features() {
    let bt = BulletTrain::builder(KEY)
        .offline_mode(true)
        .offline_document(serde_json::from_value(sample()).unwrap())
        .default_flag_handler(|name| match name {
            "header" | "beta_banner" => Some(DefaultFlag::new(false, 7)),
            _ => None,
        })
        .build()
        .unwrap();
    // Features of the document: the document answers.
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(
        bt.get_value_for("header", BEN).await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    // Missing ones: the handler, when it knows them.
    assert_eq!(
        bt.feature_enabled("beta_banner").await.unwrap(),
        Some(false)
    );
    assert_eq!(
        bt.get_value("beta_banner").await.unwrap(),
        Some(Value::Int(7))
    );
    assert_eq!(
        bt.get_value_for("beta_banner", BEN).await.unwrap(),
        Some(Value::Int(7))
    );
    assert_eq!(bt.get_value("other").await.unwrap(), None);
    assert!(!bt.has_feature("beta_banner").await.unwrap());
    assert!(!bt.has_feature_for("beta_banner", BEN).await.unwrap());
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
    let flags = bt
        .get_transient_identity_flags("x", &[Trait::new("plan", "pro")])
        .await
        .unwrap();
    let banner = flags.get_flag("beta_banner").unwrap();
    assert!(banner.is_default && !banner.enabled);
    assert_eq!(banner.value(), &Value::Int(7));
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    assert!(flags.get_flag("other").is_none());
}

#[tokio::test]
async fn the_offline_document_stands_in_when_the_server_fails() {
    let server = TestServer::sample().await;
    let path = server.export_to_file(KEY).await;
    let bt = server
        .builder(KEY)
        .retries(0)
        .offline_document_file(&path)
        .build()
        .unwrap();
    assert_eq!(bt.mode(), Mode::Remote);
    server
        .set_state(KEY, "font_size", true, serde_json::json!(99))
        .await;
    // The server answers while it is up...
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(99))
    );
    server.stop().await;
    // ...and the document (exported before the change) when it is not.
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).await.unwrap(),
        Some(Value::from("midnight"))
    );
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
    assert_eq!(bt.get_flags_for_user("u").await.unwrap().len(), 6);
    let flags = bt
        .get_identity_flags("u", &[Trait::new("plan", "pro")])
        .await
        .unwrap();
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
}

#[test]
fn unreadable_documents_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let result = BulletTrain::builder(KEY)
        .offline_mode(true)
        .offline_document_file(&missing)
        .build();
    assert!(matches!(result, Err(Error::DocumentFile { path, .. }) if path == missing));

    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, b"{\"api_key\": 12").unwrap();
    let result = BulletTrain::builder(KEY)
        .offline_mode(true)
        .offline_document_file(&broken)
        .build();
    assert!(matches!(result, Err(Error::DocumentParse { path, .. }) if path == broken));
}
