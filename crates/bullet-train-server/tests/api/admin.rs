//! Admin routes of the server core: authorisation, document import/export, server-side keys.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, flag_map, sample};

#[tokio::test]
async fn admin_routes_need_the_token() {
    let app = TestApp::sample().await;
    let path = format!("/api/v1/environments/{KEY}/document/");
    let response = app.request(Method::GET, &path).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Authentication credentials were not provided."})
    );
    for header in ["Token wrong", "Bearer test-admin-token", "test-admin-token"] {
        let response = app
            .request(Method::GET, &path)
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    let response = app
        .request(Method::GET, &path)
        .header("X-Environment-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "an SDK key is not an admin token");
}

#[tokio::test]
async fn import_creates_then_replaces_and_export_round_trips() {
    let app = TestApp::empty().await;
    let document = sample();
    let created = app.import(&document).await;
    assert_eq!(created.status(), 201);
    let exported = app.export(KEY).await;
    assert_eq!(exported["api_key"], KEY);
    assert_eq!(exported["feature_states"].as_array().unwrap().len(), 6);
    let names = |d: &Value| -> Vec<(Value, Value, Value)> {
        d["feature_states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["feature"]["name"].clone(),
                    s["django_id"].clone(),
                    s["featurestate_uuid"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        names(&exported),
        names(&document),
        "seeds survive the import"
    );
    let replaced = app.import(&exported).await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(names(&app.export(KEY).await), names(&document));
}

#[tokio::test]
async fn an_export_keeps_identity_overrides_the_sdk_document_leaves_out() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["use_identity_overrides_in_local_eval"] = json!(false);
    app.import(&document).await;
    let overridden = |d: &Value| -> Vec<Value> {
        d["identity_overrides"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["identifier"].clone())
            .collect()
    };
    assert_eq!(overridden(&document), [json!("ben@bullet-train.io")]);
    // SDKs doing local evaluation do not get them...
    let server_key = app.server_key(KEY).await;
    let (status, for_sdks) = app
        .get_json("/api/v1/environment-document/", &server_key)
        .await;
    assert_eq!(status, 200);
    assert_eq!(overridden(&for_sdks), Vec::<Value>::new());
    // ...but the export has them, so importing it back (or elsewhere) loses nothing.
    let exported = app.export(KEY).await;
    assert_eq!(overridden(&exported), overridden(&document));
    assert_eq!(
        exported["use_identity_overrides_in_local_eval"],
        json!(false)
    );
    assert_eq!(app.import(&exported).await.status(), 200);
    let (_, ben) = app
        .get_json("/api/v1/identities/?identifier=ben@bullet-train.io", KEY)
        .await;
    assert_eq!(
        flag_map(&ben["flags"])["dark_mode"],
        (true, json!("midnight")),
        "the override survived the round trip"
    );
}

#[tokio::test]
async fn bad_imports_change_nothing() {
    let app = TestApp::sample().await;
    let before = app.export(KEY).await;
    let path = format!("/api/v1/environments/{KEY}/document/");
    let mut wrong_key = sample();
    wrong_key["api_key"] = json!("SomeOtherKey");
    let mut duplicate = sample();
    duplicate["feature_states"][1]["feature"]["name"] = json!("HEADER");
    let cases = [wrong_key, duplicate, json!({"api_key": KEY}), json!([1])];
    for body in cases {
        let response = app
            .admin(Method::PUT, &path)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        assert!(response.json::<Value>().await.is_ok());
    }
    let mut after = app.export(KEY).await;
    after["updated_at"] = before["updated_at"].clone();
    assert_eq!(after, before);
}

#[tokio::test]
async fn server_keys_can_be_listed_deactivated_expired_and_revoked() {
    let app = TestApp::sample().await;
    let base = format!("/api/v1/environments/{KEY}/api-keys/");
    let response = app
        .admin(Method::POST, &base)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("ser.") && key.len() == 26);
    let document = "/api/v1/environment-document/";
    assert_eq!(app.get_json(document, &key).await.0, 200);
    let listed: Value = app
        .admin(Method::GET, &base)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed[0]["name"], "ci");
    assert_eq!(listed[0]["key"], Value::Null, "the key is shown only once");
    let id = created["id"].as_i64().unwrap();
    let item = format!("{base}{id}/");
    app.admin(Method::PATCH, &item)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.get_json(document, &key).await.0, 403);
    app.admin(Method::PATCH, &item)
        .json(&json!({"active": true, "expires_at": "2001-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.get_json(document, &key).await.0, 403, "expired");
    app.admin(Method::PATCH, &item)
        .json(&json!({"expires_at": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.get_json(document, &key).await.0, 200);
    let response = app.admin(Method::DELETE, &item).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(app.get_json(document, &key).await.0, 403);
    let response = app
        .admin(Method::POST, &base)
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let unknown = app
        .admin(Method::GET, "/api/v1/environments/nope/api-keys/")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_new_feature_reaches_every_environment_of_the_project() {
    let app = TestApp::sample().await;
    let mut staging = sample();
    staging["api_key"] = json!("QuickStartEnvironment2");
    staging["name"] = json!("Staging");
    staging["identity_overrides"] = json!([]);
    let mut extra = staging["feature_states"][0].clone();
    extra["feature"]["name"] = json!("new_feature");
    extra["feature"]["id"] = json!(77);
    extra["feature_state_value"] = json!("fresh");
    extra["django_id"] = json!(7777);
    extra["featurestate_uuid"] = json!("11111111-2222-4333-8444-555555555555");
    staging["feature_states"]
        .as_array_mut()
        .unwrap()
        .push(extra);
    app.import(&staging).await;
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(flag_map(&flags)["new_feature"], (true, json!("fresh")));
}
