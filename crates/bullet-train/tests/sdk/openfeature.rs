//! The OpenFeature provider against a real server (and a stub, for the provider's status):
//! targeting key and context fields, typed resolvers with reasons, variants and metadata, disabled
//! flags, errors, in local, remote and offline mode.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bullet_train::openfeature::BulletTrainProvider;
use bullet_train::{BulletTrain, DefaultFlag, Mode};
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{
    EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadata, FlagMetadataValue,
    OpenFeature,
};
use serde_json::json;
use tokio::sync::watch;

use crate::helpers::{BEN, KEY, TestServer, sample, stub};

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

/// A local provider (initialised) and a remote one, both with a server-side key.
async fn providers(server: &TestServer) -> Vec<BulletTrainProvider> {
    let server_key = server.server_key(KEY).await;
    let local = server
        .builder(&server_key)
        .local_evaluation(true)
        .build()
        .unwrap();
    let mut local = BulletTrainProvider::new(local);
    local.initialize(&EvaluationContext::default()).await;
    assert_eq!(local.status(), ProviderStatus::Ready);
    let remote = BulletTrainProvider::new(server.builder(&server_key).build().unwrap());
    vec![local, remote]
}

fn text(metadata: &FlagMetadata, key: &str) -> Option<String> {
    match metadata.values.get(key)? {
        FlagMetadataValue::String(s) => Some(s.clone()),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

fn int(metadata: &FlagMetadata, key: &str) -> Option<i64> {
    match metadata.values.get(key)? {
        FlagMetadataValue::Int(i) => Some(*i),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

#[tokio::test]
async fn typed_resolvers_answer_with_reasons() {
    let server = TestServer::sample().await;
    for provider in providers(&server).await {
        let mode = provider.client().mode();
        assert_eq!(provider.metadata().name, "bullet-train");
        let anonymous = EvaluationContext::default();

        let header = provider
            .resolve_bool_value("header", &anonymous)
            .await
            .unwrap();
        assert!(header.value, "{mode:?}");
        assert_eq!(header.reason, Some(EvaluationReason::Static));
        assert_eq!(header.variant, None);

        let size = provider
            .resolve_int_value("font_size", &anonymous)
            .await
            .unwrap();
        assert_eq!(size.value, 12);
        let pro = user("of-pro@example.com").with_custom_field("plan", "pro");
        let size = provider.resolve_int_value("font_size", &pro).await.unwrap();
        assert_eq!(size.value, 15, "{mode:?}: context fields are traits");
        // Resolving stores nothing: neither the identity nor its context fields.
        let stored = server
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/environments/{KEY}/identities/?q=of-pro"),
                None,
            )
            .await;
        assert_eq!(stored["count"], 0, "{mode:?}: {stored}");

        // Floats travel as strings in Flagsmith; numbers parse.
        let items = provider
            .resolve_float_value("max_items", &anonymous)
            .await
            .unwrap();
        assert_eq!(items.value, 12.5);
        let size = provider
            .resolve_float_value("font_size", &anonymous)
            .await
            .unwrap();
        assert_eq!(size.value, 12.0);

        let text = provider
            .resolve_string_value("header", &user("x"))
            .await
            .unwrap();
        assert_eq!(text.value, "Welcome to Bullet Train");
        // An identity on the environment default: locally DEFAULT, remotely not known.
        let expected = match mode {
            Mode::Local => EvaluationReason::Default,
            _ => EvaluationReason::Unknown,
        };
        assert_eq!(text.reason, Some(expected), "{mode:?}");

        let missing = provider
            .resolve_bool_value("missing", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
        let mismatch = provider
            .resolve_int_value("header", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
        let mismatch = provider
            .resolve_string_value("font_size", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
    }
}

#[tokio::test]
async fn disabled_flags_resolve_false_with_reason_disabled() {
    let server = TestServer::sample().await;
    // max_items has no overrides: disabled for everyone, with a value.
    server
        .set_state(KEY, "max_items", false, json!("7.5"))
        .await;
    for provider in providers(&server).await {
        let mode = provider.client().mode();
        for context in [EvaluationContext::default(), user("someone@example.com")] {
            let items = provider
                .resolve_bool_value("max_items", &context)
                .await
                .unwrap();
            assert!(!items.value, "{mode:?}");
            assert_eq!(items.reason, Some(EvaluationReason::Disabled), "{mode:?}");
            // Typed values of a disabled flag are an error, so the caller's default applies.
            let error = provider
                .resolve_float_value("max_items", &context)
                .await
                .unwrap_err();
            assert_eq!(
                error.code,
                EvaluationErrorCode::General("FLAG_DISABLED".into()),
                "{mode:?}"
            );
        }
        let dark = provider
            .resolve_bool_value("dark_mode", &EvaluationContext::default())
            .await
            .unwrap();
        assert!(!dark.value);
        assert_eq!(dark.reason, Some(EvaluationReason::Disabled), "{mode:?}");
        let error = provider
            .resolve_string_value("dark_mode", &EvaluationContext::default())
            .await
            .unwrap_err();
        assert_eq!(
            error.code,
            EvaluationErrorCode::General("FLAG_DISABLED".into())
        );
        // Ben's identity override turns dark_mode on for him only.
        let dark = provider
            .resolve_bool_value("dark_mode", &user(BEN))
            .await
            .unwrap();
        assert!(dark.value, "{mode:?}");
        assert_ne!(dark.reason, Some(EvaluationReason::Disabled), "{mode:?}");
    }

    // With the option, the disabled flag's value comes back, still with reason DISABLED.
    let provider = BulletTrainProvider::new(server.builder(KEY).build().unwrap())
        .return_value_for_disabled_flags(true);
    let items = provider
        .resolve_float_value("max_items", &user("someone@example.com"))
        .await
        .unwrap();
    assert_eq!(items.value, 7.5);
    assert_eq!(items.reason, Some(EvaluationReason::Disabled));
    let items = provider
        .resolve_bool_value("max_items", &EvaluationContext::default())
        .await
        .unwrap();
    assert!(!items.value);
    assert_eq!(items.reason, Some(EvaluationReason::Disabled));
}

#[tokio::test]
async fn strings_that_are_not_json_are_parse_errors_for_structures() {
    let server = TestServer::sample().await;
    server
        .set_state(KEY, "header", true, json!(r#"{"title": "hi","#))
        .await;
    server
        .set_state(KEY, "checkout", true, json!("[1, 2]"))
        .await;
    for provider in providers(&server).await {
        let mode = provider.client().mode();
        let anonymous = EvaluationContext::default();
        // Truncated JSON.
        let error = provider
            .resolve_struct_value("header", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::ParseError, "{mode:?}");
        // Valid JSON, but not an object: the wrong type.
        let error = provider
            .resolve_struct_value("checkout", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "{mode:?}");
        // "12.5" is a JSON number, not an object.
        let error = provider
            .resolve_struct_value("max_items", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "{mode:?}");
        // Not a string at all.
        let error = provider
            .resolve_struct_value("font_size", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(error.code, EvaluationErrorCode::TypeMismatch, "{mode:?}");
    }
}

#[tokio::test]
async fn overrides_and_variants_report_targeting_match_and_split() {
    let server = TestServer::sample().await;
    let environment_id = server.export(KEY).await["id"].as_i64().unwrap();
    for provider in providers(&server).await {
        let mode = provider.client().mode();
        let local = mode == Mode::Local;

        // A segment override (power_users: plan in pro, team).
        let pro = user("of-pro@example.com").with_custom_field("plan", "pro");
        let size = provider.resolve_int_value("font_size", &pro).await.unwrap();
        assert_eq!(size.value, 15);
        let metadata = size.flag_metadata.unwrap();
        assert_eq!(int(&metadata, "featureId"), Some(2), "{mode:?}");
        assert_eq!(text(&metadata, "type").as_deref(), Some("STANDARD"));
        assert_eq!(int(&metadata, "environment"), Some(environment_id));
        if local {
            assert_eq!(size.reason, Some(EvaluationReason::TargetingMatch));
            assert_eq!(size.variant.as_deref(), Some("power_users"));
            assert_eq!(text(&metadata, "segment").as_deref(), Some("power_users"));
        } else {
            // Remote answers do not say which state won.
            assert_eq!(size.reason, Some(EvaluationReason::Unknown));
            assert_eq!(size.variant, None);
            assert!(!metadata.values.contains_key("segment"));
        }

        // An identity override.
        let dark = provider
            .resolve_string_value("dark_mode", &user(BEN))
            .await
            .unwrap();
        assert_eq!(dark.value, "midnight");
        if local {
            assert_eq!(dark.reason, Some(EvaluationReason::TargetingMatch));
            assert_eq!(dark.variant.as_deref(), Some("identity_override"));
            assert!(!dark.flag_metadata.unwrap().values.contains_key("segment"));
        } else {
            assert_eq!(dark.reason, Some(EvaluationReason::Unknown));
            assert_eq!(dark.variant, None);
        }

        // A multivariate flag: 30% express, 30% one_page, the rest the control value.
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..60 {
            let checkout = provider
                .resolve_string_value("checkout", &user(&format!("shopper-{i}")))
                .await
                .unwrap();
            let variant = checkout.variant.clone().unwrap();
            match variant.as_str() {
                "express" | "one_page" => {
                    assert_eq!(checkout.value, variant);
                    assert_eq!(checkout.reason, Some(EvaluationReason::Split));
                }
                "control" => {
                    assert_eq!(checkout.value, "classic");
                    let expected = if local {
                        EvaluationReason::Default
                    } else {
                        EvaluationReason::Unknown
                    };
                    assert_eq!(checkout.reason, Some(expected), "{mode:?}");
                }
                other => panic!("unexpected variant {other}"),
            }
            let metadata = checkout.flag_metadata.unwrap();
            assert_eq!(text(&metadata, "type").as_deref(), Some("MULTIVARIATE"));
            assert_eq!(int(&metadata, "featureId"), Some(4));
            seen.insert(variant);
        }
        assert_eq!(seen.len(), 3, "{mode:?}: {seen:?}");
        // Without an identity there is no split: the environment's value, STATIC.
        let checkout = provider
            .resolve_string_value("checkout", &EvaluationContext::default())
            .await
            .unwrap();
        assert_eq!(checkout.value, "classic");
        assert_eq!(checkout.reason, Some(EvaluationReason::Static));
        assert_eq!(checkout.variant, None);
    }
}

#[tokio::test]
async fn offline_answers_carry_the_document_version_and_handler_defaults() {
    let document = serde_json::from_value(sample()).unwrap();
    let bt = BulletTrain::builder(KEY)
        .offline_mode(true)
        .offline_document(document)
        .default_flag_handler(|name| {
            (name == "beta_banner").then(|| DefaultFlag::new(true, "from the handler"))
        })
        .build()
        .unwrap();
    let provider = BulletTrainProvider::new(bt);
    assert_eq!(provider.status(), ProviderStatus::Ready);

    let size = provider
        .resolve_int_value("font_size", &user("offline@example.com"))
        .await
        .unwrap();
    assert_eq!(size.value, 12);
    assert_eq!(size.reason, Some(EvaluationReason::Default));
    let metadata = size.flag_metadata.unwrap();
    assert_eq!(int(&metadata, "featureId"), Some(2));
    assert_eq!(int(&metadata, "environment"), Some(1));
    assert_eq!(text(&metadata, "type").as_deref(), Some("STANDARD"));
    // The sample's updated_at, 2026-01-01T00:00:00.000000+00:00.
    assert_eq!(
        text(&metadata, "version").as_deref(),
        Some("2026-01-01T00:00:00Z")
    );

    // The default flag handler answers for a missing feature: DEFAULT, and nothing known of it.
    let banner = provider
        .resolve_string_value("beta_banner", &user("offline@example.com"))
        .await
        .unwrap();
    assert_eq!(banner.value, "from the handler");
    assert_eq!(banner.reason, Some(EvaluationReason::Default));
    assert_eq!(banner.variant, None);
    assert!(banner.flag_metadata.unwrap().values.is_empty());
    let missing = provider
        .resolve_string_value("other", &EvaluationContext::default())
        .await
        .unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
}

/// `environment-document/` that answers only once released.
async fn held_document(
    State(mut released): State<watch::Receiver<bool>>,
) -> axum::Json<serde_json::Value> {
    released.wait_for(|r| *r).await.unwrap();
    axum::Json(sample())
}

#[tokio::test]
async fn resolving_before_the_document_is_loaded_is_provider_not_ready() {
    let (release, released) = watch::channel(false);
    let api = stub(
        Router::new()
            .route("/api/v1/environment-document/", get(held_document))
            .with_state(released),
    )
    .await;
    let bt = BulletTrain::builder("ser.stub")
        .api(api)
        .local_evaluation(true)
        .realtime(false)
        .request_timeout(Duration::from_secs(60))
        // Calls of the client itself would wait this long for the first document.
        .ready_timeout(Duration::from_secs(3600))
        .default_flag_handler(|_| Some(DefaultFlag::new(true, "from the handler")))
        .build()
        .unwrap();
    let mut provider = BulletTrainProvider::new(bt);
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    // The provider answers at once (the bound only turns a hang into a failure), and the default
    // flag handler is not asked: the caller's default applies.
    let anonymous = EvaluationContext::default();
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        provider.resolve_bool_value("header", &anonymous),
    )
    .await
    .expect("the provider waited for the document")
    .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::ProviderNotReady);
    let error = tokio::time::timeout(
        Duration::from_secs(10),
        provider.resolve_string_value("header", &user("u")),
    )
    .await
    .expect("the provider waited for the document")
    .unwrap_err();
    assert_eq!(error.code, EvaluationErrorCode::ProviderNotReady);

    // Once the document arrives, initialisation completes and flags resolve.
    release.send_replace(true);
    provider.initialize(&anonymous).await;
    assert_eq!(provider.status(), ProviderStatus::Ready);
    let header = provider
        .resolve_string_value("header", &anonymous)
        .await
        .unwrap();
    assert_eq!(header.value, "Welcome to Bullet Train");
    assert_eq!(header.reason, Some(EvaluationReason::Static));
}

#[tokio::test]
async fn options_change_booleans_and_disabled_values() {
    let server = TestServer::sample().await;
    server
        .set_state(
            KEY,
            "header",
            true,
            serde_json::json!(r#"{"title": "hi", "size": 3}"#),
        )
        .await;
    let bt = server.builder(KEY).build().unwrap();
    let provider = BulletTrainProvider::new(bt.clone())
        .use_boolean_config_value(true)
        .return_value_for_disabled_flags(true);
    let anonymous = EvaluationContext::default();
    let internal = BulletTrainProvider::new(
        server
            .builder(&server.server_key(KEY).await)
            .build()
            .unwrap(),
    )
    .use_boolean_config_value(true);
    assert!(
        internal
            .resolve_bool_value("internal_tools", &anonymous)
            .await
            .unwrap()
            .value
    );
    let not_bool = provider
        .resolve_bool_value("font_size", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(not_bool.code, EvaluationErrorCode::TypeMismatch);
    let dark = provider
        .resolve_string_value("dark_mode", &user(BEN))
        .await
        .unwrap();
    assert_eq!(dark.value, "midnight");
    let header = provider
        .resolve_struct_value("header", &anonymous)
        .await
        .unwrap();
    assert_eq!(header.value.fields["title"].as_str(), Some("hi"));
    assert_eq!(header.value.fields["size"].as_i64(), Some(3));

    // A boolean config value of a disabled flag is treated like the other typed values.
    server
        .set_state(KEY, "internal_tools", false, json!(true))
        .await;
    let error = internal
        .resolve_bool_value("internal_tools", &anonymous)
        .await
        .unwrap_err();
    assert_eq!(
        error.code,
        EvaluationErrorCode::General("FLAG_DISABLED".into())
    );
}

#[tokio::test]
async fn the_provider_serves_the_open_feature_client() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server.builder(&key).local_evaluation(true).build().unwrap();
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(BulletTrainProvider::new(bt)).await;
    let client = api.create_client();
    drop(api);
    let context = user("client@example.com").with_custom_field("accept-cookies", "true");
    let header = client
        .get_string_details("header", Some(&context), None)
        .await
        .unwrap();
    assert_eq!(header.value, "Thanks for accepting cookies");
    assert_eq!(header.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(header.variant.as_deref(), Some("cookie_accepters"));
    let missing = client
        .get_int_value("missing", None, None)
        .await
        .unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
    assert!(client.get_bool_value("header", None, None).await.unwrap());
    let dark = client
        .get_bool_details("dark_mode", None, None)
        .await
        .unwrap();
    assert!(!dark.value);
    assert_eq!(dark.reason, Some(EvaluationReason::Disabled));
}
