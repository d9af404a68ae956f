//! Bad input: every case gets a JSON 4xx, nothing is stored, and the server keeps serving.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, admin_ok};

async fn stored_traits(app: &TestApp, identifier: &str) -> Value {
    let (_, identity) = app
        .get_json(&format!("/api/v1/identities/?identifier={identifier}"), KEY)
        .await;
    identity["traits"].clone()
}

async fn send_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Vec<u8>,
    content_type: &str,
) -> (u16, Value) {
    let response = app
        .sdk(method, path, KEY)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response
        .json::<Value>()
        .await
        .expect("error bodies are JSON");
    (status, body)
}

#[tokio::test]
async fn malformed_bodies() {
    let app = TestApp::sample().await;
    let json = "application/json";
    let (status, body) = send_raw(
        &app,
        Method::POST,
        "/api/v1/identities/",
        b"{\"identifier\": ".to_vec(),
        json,
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error - ")
    );
    let not_utf8 = b"{\"identifier\": \"\xff\xfe\"}".to_vec();
    let (status, _) = send_raw(&app, Method::POST, "/api/v1/identities/", not_utf8, json).await;
    assert_eq!(status, 400);
    let (status, body) = send_raw(
        &app,
        Method::POST,
        "/api/v1/identities/",
        b"ident".to_vec(),
        "text/plain",
    )
    .await;
    assert_eq!(
        (status, body),
        (
            415,
            json!({"detail": "Unsupported media type \"text/plain\" in request."})
        )
    );
    let (status, body) = send_raw(
        &app,
        Method::POST,
        "/api/v1/identities/",
        b"[]".to_vec(),
        json,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["non_field_errors"],
        json!(["Invalid data. Expected a dictionary, but got list."])
    );
    assert_eq!(stored_traits(&app, "x").await, json!([]));
}

#[tokio::test]
async fn wrong_field_types_and_lengths() {
    let app = TestApp::sample().await;
    let cases = [
        (json!({"identifier": 5}), "identifier"),
        (json!({"identifier": "x", "transient": "yes"}), "transient"),
        (json!({"identifier": "x", "traits": {"a": 1}}), "traits"),
        (json!({"identifier": "x".repeat(2001)}), "identifier"),
    ];
    for (body, field) in cases {
        let (status, error) = app.post_json("/api/v1/identities/", KEY, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(error.get(field).is_some(), "{field}: {error}");
    }
    let body = json!({"identifier": "x", "traits": [
        {"trait_key": "ok", "trait_value": 1},
        {"trait_value": 1},
        {"trait_key": "k".repeat(201), "trait_value": 1},
        {"trait_key": "v", "trait_value": "v".repeat(2000)},
        "nope",
    ]});
    let (status, error) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        error,
        json!({"traits": [
            {},
            {"trait_key": ["This field is required."]},
            {"trait_key": ["Ensure this field has no more than 200 characters."]},
            {"trait_value": ["Value string is too long. Must be less than 2000 character"]},
            {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]},
        ]})
    );
    assert_eq!(
        stored_traits(&app, "x").await,
        json!([]),
        "the valid trait was not stored either"
    );
    let (status, _) = app
        .get_json(
            &format!("/api/v1/identities/?identifier={}", "y".repeat(2001)),
            KEY,
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = TestApp::sample().await;
    let huge = format!(
        "{{\"identifier\": \"big\", \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let (status, body) = send_raw(
        &app,
        Method::POST,
        "/api/v1/identities/",
        huge.into_bytes(),
        "application/json",
    )
    .await;
    assert_eq!(
        (status, body),
        (413, json!({"detail": "Request body too large."}))
    );
    let (status, _) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = TestApp::sample().await;
    let (status, body) = app.get_json("/api/v1/nothing-here/", KEY).await;
    assert_eq!((status, body), (404, json!({"detail": "Not found."})));
    let response = app
        .sdk(Method::DELETE, "/api/v1/flags/", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Method \"DELETE\" not allowed."})
    );
    let (status, _) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn unparsable_path_parameters_get_json_errors() {
    let app = TestApp::sample().await;
    // An id that is not a number names no object.
    for path in [
        "/api/v1/projects/abc/",
        "/api/v1/organisations/1x/",
        "/api/v1/projects/99999999999999999999999/features/",
    ] {
        let response = app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            response.json::<Value>().await.unwrap(),
            json!({"detail": "Not found."}),
            "{path}"
        );
    }
    // A path parameter that is not UTF-8 once decoded.
    let response = app
        .sdk(Method::GET, "/api/v1/identities/%FF%FE/", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"detail": "Path parameters must be valid UTF-8."})
    );
    let (status, _) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_request_over_the_time_limit_gets_a_json_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::with_limits(bullet_train_server::Limits {
        request_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    app.import(&crate::helpers::sample()).await;
    // A client that announces a body and never sends it: the server gives up on it.
    let address = app.url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/identities/ HTTP/1.1\r\nHost: {address}\r\nX-Environment-Key: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/json"), "{answer}");
    assert!(
        answer.ends_with(r#"{"detail":"Request timed out."}"#),
        "{answer}"
    );
    // The server keeps serving.
    let (status, _) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(status, 200);
}

/// How many identities the sample environment holds, through the admin API.
async fn identity_count(app: &TestApp) -> u64 {
    admin_ok(
        app,
        Method::GET,
        &format!("/api/v1/environments/{KEY}/identities/"),
        None,
    )
    .await["count"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn every_route_that_takes_a_body_refuses_bad_ones_and_stores_nothing() {
    let app = TestApp::sample().await;
    // The sample's identities (those with overrides).
    let before = identity_count(&app).await;
    let long = "i".repeat(2001);
    let routes: [(Method, &str, Value); 6] = [
        (
            Method::POST,
            "/api/v1/identities/",
            json!({"identifier": "bad", "traits": []}),
        ),
        (
            Method::POST,
            "/api/v1/traits/",
            json!({"identity": {"identifier": "bad"}, "trait_key": "k", "trait_value": 1}),
        ),
        (
            Method::PUT,
            "/api/v1/traits/bulk/",
            json!([{"identity": {"identifier": "bad"}, "trait_key": "k", "trait_value": 1}]),
        ),
        (
            Method::POST,
            "/api/v1/traits/increment-value/",
            json!({"identifier": "bad", "trait_key": "k", "increment_by": 1}),
        ),
        (
            Method::POST,
            "/api/v1/identities/bad/traits/k",
            json!({"trait_value": 1}),
        ),
        (
            Method::POST,
            "/api/v1/analytics/flags/",
            json!({"header": 1}),
        ),
    ];
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 << 20));
    for (method, path, _) in &routes {
        for (body, expected) in [
            (b"{\"identifier\": ".to_vec(), 400),
            (b"{\"identifier\": \"\xff\xfe\"}".to_vec(), 400),
            (huge.clone().into_bytes(), 413),
        ] {
            let (status, error) =
                send_raw(&app, method.clone(), path, body, "application/json").await;
            assert_eq!(status, expected, "{path}: {error}");
            assert!(error.get("detail").is_some(), "{path}: {error}");
        }
        let (status, error) =
            send_raw(&app, method.clone(), path, b"x".to_vec(), "text/plain").await;
        assert_eq!(status, 415, "{path}: {error}");
    }
    // Well-formed JSON with a wrong shape or an overlong identifier.
    let wrong: [(Method, String, Value); 8] = [
        (Method::POST, "/api/v1/traits/".into(), json!([1])),
        (
            Method::POST,
            "/api/v1/traits/".into(),
            json!({"identity": {"identifier": long}, "trait_key": "k", "trait_value": 1}),
        ),
        (
            Method::PUT,
            "/api/v1/traits/bulk/".into(),
            json!({"not": "a list"}),
        ),
        (
            Method::POST,
            "/api/v1/traits/increment-value/".into(),
            json!({"identifier": "bad", "trait_key": "k", "increment_by": "one"}),
        ),
        (
            Method::POST,
            "/api/v1/traits/increment-value/".into(),
            json!({"identifier": long, "trait_key": "k", "increment_by": 1}),
        ),
        (
            Method::POST,
            "/api/v1/identities/bad/traits/k".into(),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/identities/{long}/traits/k"),
            json!({"trait_value": 1}),
        ),
        (
            Method::POST,
            "/api/v1/identities/bad/traits/k".into(),
            json!([1]),
        ),
    ];
    for (method, path, body) in &wrong {
        let (status, error) = app.send_json(method.clone(), path, KEY, body).await;
        assert_eq!(status, 400, "{path} {body}: {error}");
        assert!(error.is_object(), "{path} {body}: {error}");
    }
    // A bulk write with one bad item writes none of the good ones.
    let bulk = json!([
        {"identity": {"identifier": "bad"}, "trait_key": "good", "trait_value": 1},
        {"identity": {"identifier": "bad"}, "trait_key": "k".repeat(201), "trait_value": 1},
    ]);
    let (status, error) = app
        .send_json(Method::PUT, "/api/v1/traits/bulk/", KEY, &bulk)
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(identity_count(&app).await, before, "nothing was stored");
    // And every route still works with a good body.
    for (method, path, body) in &routes {
        let (status, answer) = app.send_json(method.clone(), path, KEY, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {answer}");
    }
    assert_eq!(
        identity_count(&app).await,
        before + 1,
        "the good writes made `bad`"
    );
}
