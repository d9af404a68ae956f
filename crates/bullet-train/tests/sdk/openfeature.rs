//! The OpenFeature provider against a real server: targeting key and context fields, typed
//! resolvers with reasons and variants, errors, in local and remote mode.

use bullet_train::openfeature::BulletTrainProvider;
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature};

use crate::helpers::{BEN, KEY, TestServer};

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key)
}

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

#[tokio::test]
async fn typed_resolvers_answer_with_reasons_and_variants() {
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

        let size = provider
            .resolve_int_value("font_size", &anonymous)
            .await
            .unwrap();
        assert_eq!(size.value, 12);
        let pro = user("of-pro@example.com").with_custom_field("plan", "pro");
        let size = provider.resolve_int_value("font_size", &pro).await.unwrap();
        assert_eq!(size.value, 15, "{mode:?}: context fields are traits");
        if mode == bullet_train::Mode::Local {
            assert_eq!(size.reason, Some(EvaluationReason::TargetingMatch));
            let metadata = size.flag_metadata.unwrap();
            assert!(metadata.values.contains_key("segment"));
        }
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

        // Identity overrides, and disabled flags.
        let dark = provider
            .resolve_string_value("dark_mode", &user(BEN))
            .await
            .unwrap();
        assert_eq!(dark.value, "midnight");
        assert_eq!(
            dark.reason,
            if mode == bullet_train::Mode::Local {
                Some(EvaluationReason::TargetingMatch)
            } else {
                Some(EvaluationReason::Unknown)
            }
        );
        let off = provider
            .resolve_string_value("dark_mode", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(
            off.code,
            EvaluationErrorCode::General("FLAG_DISABLED".into())
        );
        let dark = provider
            .resolve_bool_value("dark_mode", &anonymous)
            .await
            .unwrap();
        assert!(!dark.value);

        // Multivariate flags report their variant; some identity lands on a non-control one.
        let mut split = false;
        for i in 0..40 {
            let checkout = provider
                .resolve_string_value("checkout", &user(&format!("shopper-{i}")))
                .await
                .unwrap();
            let variant = checkout.variant.clone().unwrap();
            assert!(
                ["control", "express", "one_page"].contains(&variant.as_str()),
                "{variant}"
            );
            if variant != "control" {
                assert_eq!(checkout.value, variant);
                assert_eq!(checkout.reason, Some(EvaluationReason::Split));
                split = true;
            }
        }
        assert!(split, "{mode:?}: no identity fell on a variant");

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
            .resolve_struct_value("header", &anonymous)
            .await
            .unwrap_err();
        assert_eq!(mismatch.code, EvaluationErrorCode::TypeMismatch);
    }
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
    let missing = client
        .get_int_value("missing", None, None)
        .await
        .unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
    assert!(client.get_bool_value("header", None, None).await.unwrap());
}
