//! Remote evaluation against a real server: the seed's functions, identity flags with traits,
//! the `api` option's spellings, errors and the default flag handler.

use std::time::Duration;

use bullet_train::{BulletTrain, DefaultFlag, Error, Mode, Trait, Value};

use crate::helpers::{BEN, KEY, TestServer};

#[tokio::test]
async fn the_seed_functions_answer_from_the_server() {
    let server = TestServer::sample().await;
    let bt = server.builder(KEY).build().unwrap();
    assert_eq!(bt.mode(), Mode::Remote);
    assert!(bt.is_ready());

    assert!(bt.has_feature("header").await.unwrap());
    assert!(!bt.has_feature("no_such_feature").await.unwrap());
    // Server-key-only features are hidden from client keys.
    assert!(!bt.has_feature("internal_tools").await.unwrap());
    // Names match exactly, although `flags/?feature=` matches ignoring case on the server.
    assert!(!bt.has_feature("HEADER").await.unwrap());

    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    assert_eq!(bt.feature_enabled("no_such_feature").await.unwrap(), None);

    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(
        bt.get_value("max_items").await.unwrap(),
        Some(Value::from("12.5"))
    );
    assert_eq!(bt.get_value("dark_mode").await.unwrap(), Some(Value::Null));
    assert_eq!(bt.get_value("no_such_feature").await.unwrap(), None);

    // The identity override of the sample.
    assert_eq!(
        bt.feature_enabled_for("dark_mode", BEN).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).await.unwrap(),
        Some(Value::from("midnight"))
    );
    assert_eq!(
        bt.feature_enabled_for("no_such_feature", BEN)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        bt.get_value_for("no_such_feature", BEN).await.unwrap(),
        None
    );

    // set_trait then get_trait, and a segment override reached through the stored trait.
    let user = "cookie-fan@example.com";
    assert_eq!(
        bt.get_value_for("header", user).await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    assert_eq!(bt.get_trait("accept-cookies", user).await.unwrap(), None);
    bt.set_trait("accept-cookies", "true", user).await.unwrap();
    assert_eq!(
        bt.get_trait("accept-cookies", user).await.unwrap(),
        Some(Value::from("true"))
    );
    assert_eq!(
        bt.get_value_for("header", user).await.unwrap(),
        Some(Value::from("Thanks for accepting cookies"))
    );
    bt.set_trait("logins", 12, user).await.unwrap();
    assert_eq!(
        bt.get_trait("logins", user).await.unwrap(),
        Some(Value::Int(12))
    );
    // Null deletes.
    bt.set_trait("logins", None::<i64>, user).await.unwrap();
    assert_eq!(bt.get_trait("logins", user).await.unwrap(), None);

    let flags = bt.get_flags().await.unwrap();
    let names: Vec<&str> = flags.iter().map(|f| f.name()).collect();
    assert_eq!(
        names,
        ["header", "font_size", "dark_mode", "checkout", "max_items"]
    );
    let header = &flags[0];
    assert!(header.enabled && !header.is_default);
    assert!(header.id.is_some());
    assert!(header.feature.id > 0);
    assert_eq!(header.feature.feature_type.as_deref(), Some("STANDARD"));
    assert!(header.environment.is_some());
    assert_eq!(header.reason, None, "remote evaluation reports no reason");

    let flags = bt.get_flags_for_user(user).await.unwrap();
    let header = flags.iter().find(|f| f.name() == "header").unwrap();
    assert_eq!(header.value(), &Value::from("Thanks for accepting cookies"));
    let flags = bt.get_flags_for_user(BEN).await.unwrap();
    let dark = flags.iter().find(|f| f.name() == "dark_mode").unwrap();
    assert!(dark.enabled);
    assert_eq!(dark.value(), &Value::from("midnight"));
}

#[tokio::test]
async fn identity_flags_come_with_traits_in_one_call() {
    let server = TestServer::sample().await;
    let bt = server.builder(KEY).build().unwrap();
    let user = "pro@example.com";
    let flags = bt
        .get_identity_flags(
            user,
            &[
                Trait::new("plan", "pro"),
                Trait::transient("device", "phone"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(flags.identifier, user);
    assert_eq!(
        flags.get_feature_value("header"),
        Some(Value::from("Welcome back, power user"))
    );
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    assert_eq!(flags.is_feature_enabled("no_such_feature"), None);
    assert_eq!(flags.get_trait("plan"), Some(&Value::from("pro")));
    let device = flags.traits.iter().find(|t| t.key == "device").unwrap();
    assert!(device.transient);
    // Multivariate flags of identities carry their variant.
    let checkout = flags.flags.iter().find(|f| f.name() == "checkout").unwrap();
    assert!(checkout.variant.is_some(), "{checkout:?}");

    // The plain trait was stored, the transient one was not.
    assert_eq!(
        bt.get_trait("plan", user).await.unwrap(),
        Some(Value::from("pro"))
    );
    assert_eq!(bt.get_trait("device", user).await.unwrap(), None);

    // A transient identity stores nothing at all.
    let ghost = "ghost@example.com";
    let flags = bt
        .get_transient_identity_flags(ghost, &[Trait::new("plan", "team")])
        .await
        .unwrap();
    assert_eq!(flags.get_feature_value("font_size"), Some(Value::Int(15)));
    assert_eq!(bt.get_trait("plan", ghost).await.unwrap(), None);
}

#[tokio::test]
async fn the_api_option_is_accepted_in_every_spelling() {
    let server = TestServer::sample().await;
    for api in [
        format!("{}/api", server.url),
        format!("{}/api/", server.url),
        format!("{}/api/v1", server.url),
        format!("{}/api/v1/", server.url),
        server.url.clone(),
    ] {
        let bt = BulletTrain::builder(KEY).api(&api).build().unwrap();
        assert_eq!(bt.api_url(), Some(server.api().as_str()), "{api}");
        assert_eq!(
            bt.feature_enabled("header").await.unwrap(),
            Some(true),
            "{api}"
        );
    }
}

#[tokio::test]
async fn a_server_key_sees_server_only_features() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server.builder(&key).build().unwrap();
    assert_eq!(
        bt.get_value("internal_tools").await.unwrap(),
        Some(Value::Bool(true))
    );
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
}

#[tokio::test]
async fn errors_are_told_apart_from_missing_features() {
    let server = TestServer::sample().await;
    let bt = server.builder("not-a-key").build().unwrap();
    match bt.feature_enabled("header").await {
        Err(Error::Status { status, message }) => {
            assert!(status == 401 || status == 403, "{status}");
            assert!(!message.is_empty());
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(matches!(bt.get_flags().await, Err(Error::Status { .. })));

    // Nothing listens on this port once the server is stopped.
    let bt = server
        .builder(KEY)
        .retries(0)
        .request_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    server.stop().await;
    let error = bt.feature_enabled("header").await.unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert!(error.is_unavailable());
    assert!(bt.get_flags_for_user(BEN).await.is_err());
    assert!(bt.set_trait("a", 1, BEN).await.is_err());
}

#[tokio::test]
async fn the_default_flag_handler_covers_missing_features_and_outages() {
    let server = TestServer::sample().await;
    let bt = server
        .builder(KEY)
        .retries(0)
        .default_flag_handler(|name| match name {
            "header" | "beta_banner" => Some(DefaultFlag::new(true, "from the handler")),
            _ => None,
        })
        .build()
        .unwrap();
    // Present features come from the server.
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    // Missing ones from the handler, when it knows them.
    assert_eq!(bt.feature_enabled("beta_banner").await.unwrap(), Some(true));
    assert_eq!(
        bt.get_value_for("beta_banner", BEN).await.unwrap(),
        Some(Value::from("from the handler"))
    );
    assert_eq!(bt.feature_enabled("other").await.unwrap(), None);
    // has_feature tells the truth about the environment.
    assert!(!bt.has_feature("beta_banner").await.unwrap());
    let flags = bt.get_identity_flags(BEN, &[]).await.unwrap();
    let banner = flags.get_flag("beta_banner").unwrap();
    assert!(banner.is_default && banner.enabled);

    server.stop().await;
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("from the handler"))
    );
    assert_eq!(
        bt.feature_enabled_for("header", BEN).await.unwrap(),
        Some(true)
    );
    assert!(bt.feature_enabled("other").await.is_err());
    assert!(bt.has_feature("header").await.is_err());
}

#[test]
fn building_checks_the_options() {
    let config = |result: Result<BulletTrain, Error>| match result {
        Err(Error::Config(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    };
    assert!(config(BulletTrain::builder("").build()).contains("empty"));
    assert!(config(BulletTrain::builder(KEY).api("ftp://x/api").build()).contains("http"));
    assert!(config(BulletTrain::builder(KEY).header("bad header", "x").build()).contains("header"));
    assert!(
        config(BulletTrain::builder(KEY).local_evaluation(true).build()).contains("ser."),
        "local evaluation needs a server key"
    );
    assert!(config(BulletTrain::builder(KEY).offline_mode(true).build()).contains("offline"));
    // Remote clients need no runtime; background tasks do.
    assert!(BulletTrain::new(KEY).is_ok());
    assert!(matches!(
        BulletTrain::builder("ser.x").local_evaluation(true).build(),
        Err(Error::NoRuntime)
    ));
    assert!(matches!(
        BulletTrain::builder(KEY).analytics(true).build(),
        Err(Error::NoRuntime)
    ));
}

#[tokio::test]
async fn has_feature_for_a_user_sees_what_overrides_reveal() {
    // Disabled flags are hidden here. dark_mode is off for the environment, on for Ben (identity
    // override) and for a quarter of everyone (the early_adopters percentage split).
    let server = TestServer::empty().await;
    let mut document = crate::helpers::sample();
    document["hide_disabled_flags"] = serde_json::json!(true);
    server.import(&document).await;
    let server_key = server.server_key(KEY).await;
    let remote = server.builder(KEY).build().unwrap();
    let local = server
        .builder(&server_key)
        .local_evaluation(true)
        .build()
        .unwrap();
    local
        .wait_until_ready(Duration::from_secs(10))
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for bt in [&remote, &local] {
        let mode = bt.mode();
        assert!(!bt.has_feature("dark_mode").await.unwrap(), "{mode:?}");
        assert!(
            bt.has_feature_for("dark_mode", BEN).await.unwrap(),
            "{mode:?}"
        );
        assert!(
            !bt.has_feature_for("no_such_feature", BEN).await.unwrap(),
            "{mode:?}"
        );
        for i in 0..20 {
            let user = format!("user-{i}");
            // The user's own flag list says whether the flag is there for them.
            let listed = remote
                .get_flags_for_user(&user)
                .await
                .unwrap()
                .iter()
                .any(|f| f.name() == "dark_mode");
            assert_eq!(
                bt.has_feature_for("dark_mode", &user).await.unwrap(),
                listed,
                "{mode:?} {user}"
            );
            seen.insert(listed);
        }
    }
    assert_eq!(seen.len(), 2, "some users have the flag and some do not");
}
