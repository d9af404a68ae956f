//! The Bullet Train era routes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, flag_map};

#[tokio::test]
async fn flags_of_an_identity_by_path() {
    let app = TestApp::sample().await;
    let set = json!({"identity": {"identifier": "lee"}, "trait_key": "accept-cookies", "trait_value": "true"});
    app.post_json("/api/v1/traits/", KEY, &set).await;
    let (status, flags) = app.get_json("/api/v1/flags/lee", KEY).await;
    assert_eq!(status, 200);
    let map = flag_map(&flags);
    assert_eq!(map["header"], (true, json!("Thanks for accepting cookies")));
    assert_eq!(
        map["checkout"],
        (true, json!("classic")),
        "multivariate at its control value"
    );
    let (status, flag) = app.get_json("/api/v1/flags/lee?feature=header", KEY).await;
    assert_eq!(status, 200);
    assert_eq!(flag["feature_state_value"], "Thanks for accepting cookies");
    let (status, _) = app.get_json("/api/v1/flags/lee?feature=missing", KEY).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn identity_by_path_with_traits_and_segments() {
    let app = TestApp::sample().await;
    let response = app
        .sdk(Method::POST, "/api/v1/identities/kim/traits/plan", KEY)
        .json(&json!({"trait_value": "pro"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let trait_: Value = response.json().await.unwrap();
    assert_eq!(trait_["trait_key"], "plan");
    assert_eq!(trait_["trait_value"], "pro");
    assert!(trait_["id"].is_i64());
    let (status, identity) = app.get_json("/api/v1/identities/kim/", KEY).await;
    assert_eq!(status, 200);
    assert_eq!(identity["traits"][0]["trait_key"], "plan");
    assert_eq!(identity["segments"][0]["name"], "power_users");
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(15)));
    let response = app
        .sdk(Method::POST, "/api/v1/identities/kim/traits/plan", KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Trait value not provided"})
    );
}

#[tokio::test]
async fn legacy_routes_hash_identities_as_identities_does() {
    // Hashing by the identity's stored id (not the composite key) must reach the legacy routes too.
    let app = TestApp::empty().await;
    let mut document = crate::helpers::sample();
    document["use_identity_composite_key_for_hashing"] = json!(false);
    document["project"]["segments"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "id": 1999, "name": "half",
            "rules": [{"type": "ALL", "rules": [], "conditions": [
                {"operator": "PERCENTAGE_SPLIT", "property_": null, "value": "50"}]}],
            "feature_states": [{
                "feature": {"id": 1, "name": "header", "type": "STANDARD"},
                "enabled": true, "django_id": 2999, "feature_state_value": "half",
                "featurestate_uuid": "4c3e7a64-2d1f-4c5e-9b63-1f3a2b4c5d99",
                "feature_segment": {"priority": 0}, "multivariate_feature_state_values": [],
            }],
        }));
    assert!(app.import(&document).await.status().is_success());
    let mut in_split = 0;
    for i in 0..40 {
        let identifier = format!("user-{i}");
        let (_, current) = app
            .get_json(&format!("/api/v1/identities/?identifier={identifier}"), KEY)
            .await;
        let header = flag_map(&current["flags"])["header"].clone();
        let (_, legacy_flags) = app
            .get_json(&format!("/api/v1/flags/{identifier}"), KEY)
            .await;
        assert_eq!(flag_map(&legacy_flags)["header"], header, "{identifier}");
        let (_, legacy) = app
            .get_json(&format!("/api/v1/identities/{identifier}/"), KEY)
            .await;
        assert_eq!(flag_map(&legacy["flags"])["header"], header, "{identifier}");
        if header.1 == json!("half") {
            in_split += 1;
        }
    }
    assert!(
        (5..=35).contains(&in_split),
        "{in_split} of 40 in the split"
    );
}
