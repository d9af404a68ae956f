//! `traits/`, `traits/bulk/` and `traits/increment-value/`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, sample};

async fn traits_of(app: &TestApp, identifier: &str) -> Vec<(String, Value)> {
    let (_, identity) = app
        .get_json(&format!("/api/v1/identities/?identifier={identifier}"), KEY)
        .await;
    crate::helpers::traits_of(&identity)
}

#[tokio::test]
async fn set_one_trait() {
    let app = TestApp::sample().await;
    let body = json!({"identity": {"identifier": "ben"}, "trait_key": "accept-cookies", "trait_value": true});
    let (status, echo) = app.post_json("/api/v1/traits/", KEY, &body).await;
    assert_eq!(status, 200, "exactly 200, not 201");
    assert_eq!(echo, body);
    assert_eq!(
        traits_of(&app, "ben").await,
        vec![("accept-cookies".into(), json!(true))]
    );
    let body = json!({"identity": {"identifier": "ben"}, "trait_key": "accept-cookies", "trait_value": null});
    app.post_json("/api/v1/traits/", KEY, &body).await;
    assert!(traits_of(&app, "ben").await.is_empty());
}

#[tokio::test]
async fn set_many_traits_across_identities() {
    let app = TestApp::sample().await;
    let body = json!([
        {"identity": {"identifier": "a"}, "trait_key": "n", "trait_value": 1},
        {"identity": {"identifier": "b"}, "trait_key": "n", "trait_value": "two"},
        {"identity": {"identifier": "a"}, "trait_key": "m", "trait_value": 1.5},
        {"identity": {"identifier": "a"}, "trait_key": "m", "trait_value": null},
    ]);
    let response = app
        .sdk(Method::PUT, "/api/v1/traits/bulk/", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let echoed: Value = response.json().await.unwrap();
    assert_eq!(
        echoed.as_array().unwrap().len(),
        3,
        "deletions are not listed"
    );
    assert_eq!(traits_of(&app, "a").await, vec![("n".into(), json!(1))]);
    assert_eq!(traits_of(&app, "b").await, vec![("n".into(), json!("two"))]);
    let response = app
        .sdk(Method::PUT, "/api/v1/traits/bulk/", KEY)
        .json(&json!({"not": "a list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid request data"})
    );
}

#[tokio::test]
async fn increment_a_trait() {
    let app = TestApp::sample().await;
    let body = json!({"trait_key": "visits", "identifier": "vic", "increment_by": 2});
    let (status, result) = app
        .post_json("/api/v1/traits/increment-value/", KEY, &body)
        .await;
    assert_eq!(
        (status, result),
        (
            200,
            json!({"trait_key": "visits", "trait_value": 2, "identifier": "vic"})
        )
    );
    let (_, result) = app
        .post_json("/api/v1/traits/increment-value/", KEY, &body)
        .await;
    assert_eq!(result["trait_value"], 4);
    let set = json!({"identity": {"identifier": "vic"}, "trait_key": "name", "trait_value": "Vic"});
    app.post_json("/api/v1/traits/", KEY, &set).await;
    let body = json!({"trait_key": "name", "identifier": "vic", "increment_by": 1});
    let (status, error) = app
        .post_json("/api/v1/traits/increment-value/", KEY, &body)
        .await;
    assert_eq!(
        (status, error),
        (
            400,
            json!({"non_field_errors": ["Trait is not an integer."]})
        )
    );
    assert!(
        traits_of(&app, "vic")
            .await
            .contains(&("name".into(), json!("Vic")))
    );
}

/// Sends a trait write: `traits/bulk/` takes PUT, the others POST.
async fn write(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let method = if path.ends_with("bulk/") {
        Method::PUT
    } else {
        Method::POST
    };
    let response = app.sdk(method, path, key).json(body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every SDK route that stores traits, with a body writing trait `k` of identity `x`.
fn trait_writes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/traits/",
            json!({"identity": {"identifier": "x"}, "trait_key": "k", "trait_value": 1}),
        ),
        (
            "/api/v1/traits/bulk/",
            json!([{"identity": {"identifier": "x"}, "trait_key": "k", "trait_value": 1}]),
        ),
        (
            "/api/v1/traits/increment-value/",
            json!({"identifier": "x", "trait_key": "k", "increment_by": 1}),
        ),
        ("/api/v1/identities/x/traits/k", json!({"trait_value": 1})),
    ]
}

#[tokio::test]
async fn trait_writes_follow_the_environment_settings() {
    let app = TestApp::empty().await;
    let mut document = sample();
    document["allow_client_traits"] = json!(false);
    app.import(&document).await;
    let server = app.server_key(KEY).await;
    for (path, body) in trait_writes() {
        let (status, error) = write(&app, path, KEY, &body).await;
        assert_eq!(
            (status, error),
            (
                400,
                json!({"non_field_errors": ["Setting traits not allowed with client key."]})
            ),
            "{path}"
        );
        assert!(traits_of(&app, "x").await.is_empty(), "{path}");
    }
    // A server-side key may still write them.
    for (path, body) in trait_writes() {
        let (status, answer) = write(&app, path, &server, &body).await;
        assert_eq!(status, 200, "{path}: {answer}");
    }
    assert_eq!(traits_of(&app, "x").await.len(), 1);

    document["project"]["organisation"]["persist_trait_data"] = json!(false);
    app.import(&document).await;
    for (path, body) in trait_writes() {
        let (status, error) = write(&app, path, &server, &body).await;
        assert_eq!(
            (status, error),
            (
                403,
                json!({"detail": "Organisation is not authorised to store traits."})
            ),
            "{path}"
        );
    }
}

#[tokio::test]
async fn increments_need_a_number() {
    let app = TestApp::sample().await;
    for increment_by in [json!("1"), json!(null), json!(true), json!([1])] {
        let body = json!({"identifier": "y", "trait_key": "hits", "increment_by": increment_by});
        let (status, error) = app
            .post_json("/api/v1/traits/increment-value/", KEY, &body)
            .await;
        assert_eq!(status, 400, "{increment_by}: {error}");
        assert!(error["increment_by"][0].is_string(), "{error}");
    }
    assert!(traits_of(&app, "y").await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn invalid_trait_writes_name_their_fields() {
    let app = TestApp::sample().await;
    let (status, error) = app
        .post_json("/api/v1/traits/", KEY, &json!({"trait_value": 1}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(error["identity"], json!(["This field is required."]));
    assert_eq!(error["trait_key"], json!(["This field is required."]));
    let long_key = "k".repeat(201);
    let body = json!({"identity": {"identifier": "x"}, "trait_key": long_key, "trait_value": "v"});
    let (status, error) = app.post_json("/api/v1/traits/", KEY, &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["trait_key"],
        json!(["Ensure this field has no more than 200 characters."])
    );
    let body =
        json!({"identity": {"identifier": "x"}, "trait_key": "k", "trait_value": "v".repeat(2000)});
    let (status, error) = app.post_json("/api/v1/traits/", KEY, &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["trait_value"],
        json!(["Value string is too long. Must be less than 2000 character"])
    );
    assert!(traits_of(&app, "x").await.is_empty(), "nothing was stored");
}
