//! `identities/`: get-or-create, evaluation with traits, segments and overrides, persistence modes.

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{KEY, TestApp, flag_map, sample, traits_of};

const BEN: &str = "ben@bullet-train.io";

#[tokio::test]
async fn get_creates_the_identity_and_evaluates_its_overrides() {
    let app = TestApp::sample().await;
    let response = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=ben@bullet-train.io",
            KEY,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("x-flagsmith-document-updated-at")
            .is_some()
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["identifier"], "ben@bullet-train.io");
    assert_eq!(body["traits"], json!([]));
    let flags = body["flags"].as_array().unwrap();
    let dark = flags
        .iter()
        .find(|f| f["feature"]["name"] == "dark_mode")
        .unwrap();
    assert_eq!(
        (dark["enabled"].clone(), dark["feature_state_value"].clone()),
        (json!(true), json!("midnight"))
    );
    assert!(
        dark["identity"].is_i64(),
        "identity override carries the identity id"
    );
    let header = flags
        .iter()
        .find(|f| f["feature"]["name"] == "header")
        .unwrap();
    assert_eq!(header["variant"], Value::Null);
    let checkout = flags
        .iter()
        .find(|f| f["feature"]["name"] == "checkout")
        .unwrap();
    let variant = checkout["variant"].as_str().unwrap();
    assert!(["control", "express", "one_page"].contains(&variant));
    let expected_value = if variant == "control" {
        "classic"
    } else {
        variant
    };
    assert_eq!(checkout["feature_state_value"], expected_value);
}

#[tokio::test]
async fn get_without_identifier_keeps_the_flagsmith_quirk() {
    let app = TestApp::sample().await;
    for path in ["/api/v1/identities/", "/api/v1/identities/?identifier="] {
        let (status, body) = app.get_json(path, KEY).await;
        assert_eq!(
            (status, body),
            (200, json!({"detail": "Missing identifier"}))
        );
    }
}

#[tokio::test]
async fn get_one_feature_matches_the_name_exactly() {
    let app = TestApp::sample().await;
    let (status, flag) = app
        .get_json("/api/v1/identities/?identifier=ann&feature=header", KEY)
        .await;
    assert_eq!(status, 200);
    assert_eq!(flag["feature"]["name"], "header");
    assert!(flag.get("variant").is_some());
    let response = app
        .sdk(
            Method::GET,
            "/api/v1/identities/?identifier=ann&feature=HEADER",
            KEY,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response
            .headers()
            .get("x-flagsmith-document-updated-at")
            .is_some()
    );
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Given feature not found"})
    );
}

#[tokio::test]
async fn posted_traits_select_segments_and_persist() {
    let app = TestApp::sample().await;
    let body = json!({"identifier": "ann", "traits": [
        {"trait_key": "plan", "trait_value": "pro"},
        {"trait_key": "logins", "trait_value": 5},
        {"trait_key": "ratio", "trait_value": 0.5},
        {"trait_key": "accept-cookies", "trait_value": true},
    ]});
    let (status, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200);
    let flags = flag_map(&identity["flags"]);
    // power_users (priority 0) beats cookie_accepters (priority 1) on header.
    assert_eq!(flags["header"], (true, json!("Welcome back, power user")));
    assert_eq!(flags["font_size"], (true, json!(15)));
    let header = identity["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "header")
        .unwrap();
    assert!(
        header["feature_segment"].is_i64(),
        "segment overrides name their feature segment"
    );
    // Typed traits are stored and come back on the next request.
    let (_, again) = app
        .get_json("/api/v1/identities/?identifier=ann", KEY)
        .await;
    assert_eq!(
        traits_of(&again),
        vec![
            ("plan".into(), json!("pro")),
            ("logins".into(), json!(5)),
            ("ratio".into(), json!(0.5)),
            ("accept-cookies".into(), json!(true)),
        ]
    );
    assert!(again["traits"][0]["id"].is_i64());
    assert_eq!(flag_map(&again["flags"])["font_size"], (true, json!(15)));
    // Null deletes a trait; the segment no longer matches.
    let body = json!({"identifier": "ann", "traits": [{"trait_key": "plan", "trait_value": null}]});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert!(traits_of(&identity).iter().all(|(k, _)| k != "plan"));
    assert_eq!(
        flag_map(&identity["flags"])["header"],
        (true, json!("Thanks for accepting cookies"))
    );
}

#[tokio::test]
async fn transient_traits_and_identities_are_not_stored() {
    let app = TestApp::sample().await;
    let body = json!({"identifier": "tara", "traits": [
        {"trait_key": "plan", "trait_value": "team", "transient": true},
        {"trait_key": "logins", "trait_value": 1},
    ]});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(15)));
    let plan = identity["traits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trait_key"] == "plan")
        .unwrap();
    assert_eq!(
        (plan["transient"].clone(), plan["id"].clone()),
        (json!(true), Value::Null)
    );
    let (_, stored) = app
        .get_json("/api/v1/identities/?identifier=tara", KEY)
        .await;
    assert_eq!(traits_of(&stored), vec![("logins".into(), json!(1))]);

    // A transient identity: its stored traits are used, nothing incoming is stored.
    let body = json!({"identifier": "tara", "transient": true,
        "traits": [{"trait_key": "plan", "trait_value": "pro"}]});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(15)));
    assert_eq!(traits_of(&identity).len(), 2);
    let (_, stored) = app
        .get_json("/api/v1/identities/?identifier=tara", KEY)
        .await;
    assert_eq!(traits_of(&stored), vec![("logins".into(), json!(1))]);
    // A transient GET builds the identity in memory only.
    let (_, identity) = app
        .get_json("/api/v1/identities/?identifier=nobody&transient=true", KEY)
        .await;
    assert_eq!(identity["traits"], json!([]));
    let body = json!({"identifier": "nobody", "transient": true, "traits": []});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(identity["traits"], json!([]));
    // Neither request stored "nobody" (the admin API lists what is stored).
    let stored = crate::helpers::admin_ok(
        &app,
        Method::GET,
        &format!("/api/v1/environments/{KEY}/identities/?q=nobody"),
        None,
    )
    .await;
    assert_eq!(stored["count"], 0, "{stored}");
}

#[tokio::test]
async fn a_transient_get_ignores_the_stored_identity() {
    // Ben exists, with an identity override turning dark_mode on; "transient" with any non-empty
    // value (even "false") evaluates an in-memory identity instead: no override, no traits.
    let app = TestApp::sample().await;
    let set = json!({"identity": {"identifier": BEN}, "trait_key": "plan", "trait_value": "pro"});
    app.post_json("/api/v1/traits/", KEY, &set).await;
    let (_, stored) = app
        .get_json(&format!("/api/v1/identities/?identifier={BEN}"), KEY)
        .await;
    assert_eq!(
        flag_map(&stored["flags"])["dark_mode"],
        (true, json!("midnight"))
    );
    assert_eq!(traits_of(&stored).len(), 1);
    for value in ["true", "false", "1"] {
        let (_, transient) = app
            .get_json(
                &format!("/api/v1/identities/?identifier={BEN}&transient={value}"),
                KEY,
            )
            .await;
        assert_eq!(transient["traits"], json!([]), "transient={value}");
        assert_eq!(
            flag_map(&transient["flags"])["dark_mode"].1,
            Value::Null,
            "transient={value}: no identity override"
        );
    }
    // An empty value is not transient.
    let (_, stored) = app
        .get_json(
            &format!("/api/v1/identities/?identifier={BEN}&transient="),
            KEY,
        )
        .await;
    assert_eq!(
        flag_map(&stored["flags"])["dark_mode"],
        (true, json!("midnight"))
    );
}

#[tokio::test]
async fn posted_values_are_read_as_flagsmith_reads_them() {
    let app = TestApp::sample().await;
    // "transient": null is false, so the identity and its traits are stored.
    let body = json!({"identifier": "nia", "transient": null,
        "traits": [{"trait_key": "plan", "trait_value": "pro", "transient": null}]});
    let (status, _) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200);
    let (_, stored) = app
        .get_json("/api/v1/identities/?identifier=nia", KEY)
        .await;
    assert_eq!(traits_of(&stored), vec![("plan".into(), json!("pro"))]);
    // The answer carries the environment's updated-at header, as GET does.
    let response = app
        .sdk(Method::POST, "/api/v1/identities/", KEY)
        .json(&json!({"identifier": "nia"}))
        .send()
        .await
        .unwrap();
    let header: f64 = response.headers()["x-flagsmith-document-updated-at"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(header > 1.7e9, "{header}");
    // A derived identifier prints booleans and floats as Python does.
    let body = json!({"traits": [
        {"trait_key": "beta", "trait_value": true},
        {"trait_key": "score", "trait_value": 1.5},
    ]});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(
        identity["identifier"],
        hex::encode(Sha256::digest(b"betaTruescore1.5"))
    );
}

#[tokio::test]
async fn identities_without_identifier_get_a_derived_one() {
    let app = TestApp::sample().await;
    let body = json!({"traits": [
        {"trait_key": "plan", "trait_value": "pro"},
        {"trait_key": "age", "trait_value": 30},
        {"trait_key": "gone", "trait_value": null},
    ]});
    let (status, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200);
    // sha256 of key+value in key order, null values skipped.
    let expected = hex::encode(Sha256::digest(b"age30planpro"));
    assert_eq!(identity["identifier"], expected);
    assert!(
        identity["traits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["transient"] == true)
    );
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(15)));
    let (_, blank) = app
        .post_json("/api/v1/identities/", KEY, &json!({"identifier": null}))
        .await;
    assert_eq!(blank["identifier"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn client_keys_cannot_set_traits_when_the_environment_forbids_it() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["allow_client_traits"] = json!(false);
    app.import(&document).await;
    let body =
        json!({"identifier": "cody", "traits": [{"trait_key": "plan", "trait_value": "pro"}]});
    let (status, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200, "dropped without error");
    assert_eq!(identity["traits"], json!([]));
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(12)));
    let server = app.server_key(KEY).await;
    let (_, identity) = app.post_json("/api/v1/identities/", &server, &body).await;
    assert_eq!(flag_map(&identity["flags"])["font_size"], (true, json!(15)));
}

#[tokio::test]
async fn traits_are_not_stored_when_the_organisation_forbids_it() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["project"]["organisation"]["persist_trait_data"] = json!(false);
    app.import(&document).await;
    let body =
        json!({"identifier": "pat", "traits": [{"trait_key": "plan", "trait_value": "pro"}]});
    let (_, identity) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(
        flag_map(&identity["flags"])["font_size"],
        (true, json!(15)),
        "used for this evaluation"
    );
    let (_, stored) = app
        .get_json("/api/v1/identities/?identifier=pat", KEY)
        .await;
    assert_eq!(stored["traits"], json!([]));
}

#[tokio::test]
async fn percentage_splits_bucket_identities_consistently() {
    let app = TestApp::sample().await;
    let mut enabled = 0;
    for i in 0..200 {
        let path = format!("/api/v1/identities/?identifier=user-{i}&transient=1");
        let (_, first) = app.get_json(&path, KEY).await;
        let (_, second) = app.get_json(&path, KEY).await;
        assert_eq!(first["flags"], second["flags"]);
        if flag_map(&first["flags"])["dark_mode"].0 {
            enabled += 1;
        }
    }
    // early_adopters is a 25% split: far from none and far from all.
    assert!(
        (20..=80).contains(&enabled),
        "{enabled} of 200 in a 25% split"
    );
}

/// Identity answers are reused for repeated identical requests (SQLite), so every kind of change
/// must show in the very next identical request.
#[tokio::test]
async fn repeated_requests_see_every_change_at_once() {
    let app = TestApp::sample().await;
    let body = json!({"identifier": "repeat@example.com", "traits": [
        {"trait_key": "plan", "trait_value": "free"}
    ]});
    let identify = || async { app.post_json("/api/v1/identities/", KEY, &body).await };
    let (status, first) = identify().await;
    assert_eq!(status, 200);
    for _ in 0..3 {
        assert_eq!(identify().await.1, first, "unchanged answers");
    }

    // A trait written through another endpoint: the segment now matches.
    let (status, _) = app
        .post_json(
            "/api/v1/traits/",
            KEY,
            &json!({"identity": {"identifier": "repeat@example.com"}, "trait_key": "accept-cookies", "trait_value": "true"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, after_trait) = identify().await;
    assert_eq!(
        flag_map(&after_trait["flags"])["header"],
        (true, json!("Thanks for accepting cookies"))
    );

    // An identity override made through the admin API.
    let identities: Value = app
        .admin(
            Method::GET,
            &format!("/api/v1/environments/{KEY}/identities/?q=repeat"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = identities["results"][0]["id"].as_i64().unwrap();
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    let font = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "font_size")
        .unwrap()["feature"]["id"]
        .clone();
    let response = app
        .admin(
            Method::POST,
            &format!("/api/v1/environments/{KEY}/identities/{id}/featurestates/"),
        )
        .json(&json!({"feature": font, "enabled": true, "feature_state_value": 99}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (_, after_override) = identify().await;
    assert_eq!(
        flag_map(&after_override["flags"])["font_size"],
        (true, json!(99))
    );

    // An environment change.
    let mut document = app.export(KEY).await;
    for state in document["feature_states"].as_array_mut().unwrap() {
        if state["feature"]["name"] == "max_items" {
            state["feature_state_value"] = json!("25");
        }
    }
    app.import(&document).await;
    let (_, after_import) = identify().await;
    assert_eq!(
        flag_map(&after_import["flags"])["max_items"],
        (true, json!("25"))
    );

    // The identity deleted: its stored traits are gone.
    let response = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/environments/{KEY}/identities/{id}/"),
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (_, after_delete) = identify().await;
    let keys: Vec<&str> = after_delete["traits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trait_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["plan"]);
}
