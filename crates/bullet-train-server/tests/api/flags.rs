//! `flags/`: the environment defaults, one flag by name, key kinds, headers, path tolerance.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, flag_map, sample};

#[tokio::test]
async fn lists_environment_defaults_in_flagsmith_shape() {
    let app = TestApp::sample().await;
    let response = app
        .sdk(Method::GET, "/api/v1/flags/", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let updated_at = headers["x-flagsmith-document-updated-at"].to_str().unwrap();
    assert!(
        updated_at.parse::<f64>().unwrap() > 1.7e9,
        "float seconds: {updated_at}"
    );
    assert_eq!(headers["vary"], "X_ENVIRONMENT_KEY");
    let flags: Value = response.json().await.unwrap();
    let map = flag_map(&flags);
    // The client key does not see the server-key-only feature.
    assert_eq!(
        map.keys().collect::<Vec<_>>(),
        vec!["checkout", "dark_mode", "font_size", "header", "max_items"]
    );
    assert_eq!(map["font_size"], (true, json!(12)));
    assert_eq!(map["dark_mode"], (false, Value::Null));
    assert_eq!(map["max_items"], (true, json!("12.5")));
    // Environment flags never take a variant, and carry every field SDKs read.
    let checkout = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "checkout")
        .unwrap();
    assert_eq!(checkout["feature_state_value"], "classic");
    assert!(checkout.get("variant").is_none());
    for field in ["id", "environment", "identity", "feature_segment"] {
        assert!(checkout.get(field).is_some(), "{field}");
    }
    assert_eq!(checkout["identity"], Value::Null);
    assert_eq!(checkout["feature"]["type"], "MULTIVARIATE");
    for field in [
        "id",
        "name",
        "created_date",
        "description",
        "initial_value",
        "default_enabled",
        "project",
    ] {
        assert!(checkout["feature"].get(field).is_some(), "feature.{field}");
    }
    // A server-side key sees every feature.
    let server = app.server_key(KEY).await;
    let (status, flags) = app.get_json("/api/v1/flags/", &server).await;
    assert_eq!(status, 200);
    assert_eq!(flag_map(&flags)["internal_tools"], (true, json!(true)));
}

#[tokio::test]
async fn paths_are_matched_with_or_without_slashes_and_extra_parameters() {
    let app = TestApp::sample().await;
    for path in [
        "/api/v1/flags",
        "/api/v1/flags/",
        "//api/v1//flags/",
        "/api/v1/flags/?format=json",
    ] {
        let (status, flags) = app.get_json(path, KEY).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(flags.as_array().unwrap().len(), 5, "{path}");
    }
}

#[tokio::test]
async fn one_flag_by_name_ignoring_case() {
    let app = TestApp::sample().await;
    let response = app
        .sdk(Method::GET, "/api/v1/flags/?feature=HEADER", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("x-flagsmith-document-updated-at")
            .is_none()
    );
    let flag: Value = response.json().await.unwrap();
    assert_eq!(flag["feature"]["name"], "header");
    assert_eq!(flag["feature_state_value"], "Welcome to Bullet Train");
    let (status, body) = app.get_json("/api/v1/flags/?feature=nope", KEY).await;
    assert_eq!(
        (status, body),
        (404, json!({"detail": "Given feature not found"}))
    );
    let (status, _) = app
        .get_json("/api/v1/flags/?feature=internal_tools", KEY)
        .await;
    assert_eq!(status, 404, "hidden from client keys");
}

#[tokio::test]
async fn keys_are_checked() {
    let app = TestApp::sample().await;
    let response = app
        .request(Method::GET, "/api/v1/flags/")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid or missing Environment key"})
    );
    let (status, body) = app.get_json("/api/v1/flags/", "not-a-key").await;
    assert_eq!(
        (status, body),
        (403, json!({"detail": "Invalid or missing Environment Key"}))
    );
    let (status, _) = app.get_json("/api/v1/flags/", "ser.unknown").await;
    assert_eq!(status, 403);
    // Header names are case-insensitive (old JS and Node send it lowercase).
    let response = app
        .request(Method::GET, "/api/v1/flags/")
        .header("x-environment-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn hide_disabled_flags_and_hide_sensitive_data() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["hide_disabled_flags"] = json!(true);
    document["hide_sensitive_data"] = json!(true);
    app.import(&document).await;
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    let map = flag_map(&flags);
    assert!(!map.contains_key("dark_mode"), "disabled flags are hidden");
    let header = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "header")
        .unwrap();
    for field in ["id", "environment", "identity", "feature_segment"] {
        assert_eq!(header[field], Value::Null, "{field}");
    }
    for field in [
        "created_date",
        "description",
        "initial_value",
        "default_enabled",
    ] {
        assert_eq!(header["feature"][field], Value::Null, "feature.{field}");
    }
    let (_, identity) = app
        .get_json("/api/v1/identities/?identifier=ann", KEY)
        .await;
    assert_eq!(identity["traits"], json!([]));
}

#[tokio::test]
async fn hide_disabled_flags_falls_back_to_the_project_setting() {
    let app = TestApp::empty().await;
    // (environment value, project value, whether the disabled dark_mode is listed)
    for (environment, project, listed) in [
        (Value::Null, json!(true), false),
        (Value::Null, json!(false), true),
        (json!(false), json!(true), true),
        (json!(true), json!(false), false),
    ] {
        let mut document = sample();
        document["hide_disabled_flags"] = environment.clone();
        document["project"]["hide_disabled_flags"] = project.clone();
        app.import(&document).await;
        let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
        assert_eq!(
            flag_map(&flags).contains_key("dark_mode"),
            listed,
            "environment {environment}, project {project}"
        );
    }
}

#[tokio::test]
async fn stopped_organisations_are_refused() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["project"]["organisation"]["stop_serving_flags"] = json!(true);
    app.import(&document).await;
    let (status, body) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(
        (status, body),
        (
            403,
            json!({"detail": "Organisation is disabled from serving flags."})
        )
    );
}

#[tokio::test]
async fn multivariate_options_of_a_feature() {
    let app = TestApp::sample().await;
    let (_, flags) = app.get_json("/api/v1/flags/", KEY).await;
    let id = flags
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"]["name"] == "checkout")
        .unwrap()["feature"]["id"]
        .as_i64()
        .unwrap();
    let (status, body) = app
        .get_json(&format!("/api/v1/flags/{id}/multivariate-options/"), KEY)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"control_value": "classic", "options": [{"value": "express"}, {"value": "one_page"}]})
    );
}

#[tokio::test]
async fn cors_allows_sdk_headers_and_exposes_updated_at() {
    let app = TestApp::sample().await;
    // A preflight to each kind of SDK route: answered from memory, reaching the store, streaming.
    for path in [
        "/api/v1/flags/".to_owned(),
        "/api/v1/identities/".to_owned(),
        format!("/sse/environments/{KEY}/stream"),
    ] {
        let response = app
            .request(Method::OPTIONS, &path)
            .header("Origin", "https://app.example.com")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "x-environment-key,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert_eq!(headers["access-control-max-age"], "86400", "{path}");
        let methods = headers["access-control-allow-methods"].to_str().unwrap();
        for method in ["GET", "POST", "PUT"] {
            assert!(methods.split(',').any(|m| m == method), "{path}: {methods}");
        }
        let allowed = headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for header in [
            "x-environment-key",
            "content-type",
            "flagsmith-sdk-user-agent",
            "flagsmith-application-name",
            "flagsmith-application-version",
            "accept",
            "authorization",
            "x-requested-with",
        ] {
            assert!(allowed.split(',').any(|h| h == header), "{path}: {allowed}");
        }
        assert!(response.bytes().await.unwrap().is_empty());
    }
    // Answers, errors included, are readable from any origin, with the updated-at header exposed.
    for (key, status) in [(KEY, 200), ("not-a-key", 403)] {
        let response = app
            .sdk(Method::GET, "/api/v1/flags/", key)
            .header("Origin", "https://app.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let exposed = response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(exposed.contains("x-flagsmith-document-updated-at"));
    }
    let response = app
        .sdk(Method::DELETE, "/api/v1/identities/", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // Admin routes are not open to other origins, nor answer preflights.
    let path = format!("/api/v1/environments/{KEY}/document/");
    let response = app
        .admin(Method::GET, &path)
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = app
        .request(Method::OPTIONS, &path)
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
