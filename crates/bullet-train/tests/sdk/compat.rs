//! Behaviour against other Flagsmith-compatible servers, whose answers differ from ours in ways the
//! wire protocol allows: a small HTTP server in the test answers as Flagsmith Core, the Edge API
//! and old Bullet Train servers do (wire-protocol.md sections 2.2, 2.8 and 6), and records what the
//! SDK sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bullet_train::{BulletTrain, Error, Value};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

#[derive(Clone, Default)]
struct Stub {
    /// Requests seen, per path.
    hits: Arc<Mutex<HashMap<&'static str, usize>>>,
    /// Headers of the last request.
    headers: Arc<Mutex<HeaderMap>>,
    /// How many requests to answer 503 first, per path.
    failures: Arc<Mutex<HashMap<&'static str, usize>>>,
    /// How many requests to leave unanswered first (a hung server), per path.
    hangs: Arc<Mutex<HashMap<&'static str, usize>>>,
    analytics: Option<mpsc::UnboundedSender<Json>>,
}

impl Stub {
    /// Records the request; `true` when it should fail.
    fn hit(&self, path: &'static str, headers: &HeaderMap) -> bool {
        *self.hits.lock().unwrap().entry(path).or_default() += 1;
        *self.headers.lock().unwrap() = headers.clone();
        let mut failures = self.failures.lock().unwrap();
        match failures.get_mut(path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Never answers when this request of `path` is one to leave hanging.
    async fn maybe_hang(&self, path: &'static str) {
        let hang = match self.hangs.lock().unwrap().get_mut(path) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if hang {
            std::future::pending::<()>().await;
        }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn flag(name: &str, enabled: bool, value: Json) -> Json {
    json!({
        "id": 1, "enabled": enabled, "environment": 1, "feature_state_value": value,
        "feature": {"id": 10, "name": name, "type": "STANDARD"}
    })
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "0")],
        "busy",
    )
        .into_response()
}

/// `flags/` as the Edge API answers: a list, or one flag, or its 404 shape.
async fn flags(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if stub.hit("flags", &headers) {
        return unavailable();
    }
    stub.maybe_hang("flags").await;
    match query.get("feature").map(String::as_str) {
        None => axum::Json(json!([flag("header", true, json!("edge"))])).into_response(),
        Some("header") => axum::Json(flag("header", true, json!("edge"))).into_response(),
        Some(name) => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"status": "not_found", "message": format!("feature '{name}' not found")}),
            ),
        )
            .into_response(),
    }
}

/// `identities/` as a 2019 Bullet Train server answers: `feature` ignored, no identifier.
async fn identities(State(stub): State<Stub>, headers: HeaderMap) -> Response {
    stub.hit("identities-get", &headers);
    axum::Json(json!({
        "flags": [flag("header", false, json!("old")), flag("font_size", true, json!(11))],
        "traits": [{"trait_key": "plan", "trait_value": "pro"}]
    }))
    .into_response()
}

async fn identify(State(stub): State<Stub>, headers: HeaderMap) -> Response {
    let failing = stub.hit("identities-post", &headers);
    stub.maybe_hang("identities-post").await;
    if failing {
        return unavailable();
    }
    axum::Json(json!({"identifier": "u", "flags": [], "traits": []})).into_response()
}

async fn analytics(State(stub): State<Stub>, headers: HeaderMap, body: axum::Json<Json>) {
    stub.hit("analytics", &headers);
    if let Some(tx) = &stub.analytics {
        let _ = tx.send(body.0);
    }
}

fn document(overrides: Json) -> Json {
    json!({
        "id": 1, "api_key": "EdgeClientKey", "name": "edge",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "project": {"id": 1, "name": "p", "segments": [], "organisation": {"id": 1, "name": "o"}},
        "feature_states": [{
            "django_id": 1, "enabled": false, "feature_state_value": "default",
            "feature": {"id": 10, "name": "header", "type": "STANDARD"},
            "multivariate_feature_state_values": []
        }],
        "identity_overrides": overrides,
    })
}

fn identity_override(identifier: &str, value: &str) -> Json {
    json!({
        "identifier": identifier, "environment_api_key": "EdgeClientKey", "created_date": "2026-01-01T00:00:00",
        "identity_features": [{
            "django_id": 2, "enabled": true, "feature_state_value": value,
            "feature": {"id": 10, "name": "header", "type": "STANDARD"},
            "multivariate_feature_state_values": []
        }]
    })
}

/// The Edge API's paginated document: identity overrides continue on the `Link: rel="next"` pages.
async fn environment_document(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    stub.hit("document", &headers);
    if query.get("page_id").is_some_and(|p| p == "p2") && stub.hit("document-p2", &headers) {
        return unavailable();
    }
    match query.get("page_id").map(String::as_str) {
        None => (
            [(header::LINK, "<?page_id=p2>; rel=\"next\"")],
            axum::Json(document(json!([identity_override("first", "page one")]))),
        )
            .into_response(),
        Some("p2") => (
            [(
                header::LINK,
                "</api/v1/environment-document/?page_id=p3>; rel=\"next\"",
            )],
            axum::Json(document(json!([identity_override("second", "page two")]))),
        )
            .into_response(),
        Some(_) => {
            axum::Json(document(json!([identity_override("third", "page three")]))).into_response()
        }
    }
}

async fn start(stub: Stub) -> String {
    let app = Router::new()
        .route("/api/v1/flags/", get(flags))
        .route("/api/v1/identities/", get(identities).post(identify))
        .route("/api/v1/analytics/flags/", post(analytics))
        .route("/api/v1/environment-document/", get(environment_document))
        .with_state(stub);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn requests_carry_the_key_the_user_agent_and_custom_headers() {
    let stub = Stub::default();
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("EdgeClientKey")
        .api(api)
        .header("x-proxy-key", "secret")
        .build()
        .unwrap();
    bt.get_flags().await.unwrap();
    let headers = stub.headers.lock().unwrap().clone();
    assert_eq!(headers["x-environment-key"], "EdgeClientKey");
    assert_eq!(headers["x-proxy-key"], "secret");
    assert!(
        headers[header::USER_AGENT]
            .to_str()
            .unwrap()
            .starts_with("bullet-train-rust-sdk/")
    );
}

#[tokio::test]
async fn idempotent_requests_are_retried_and_others_are_not() {
    let stub = Stub::default();
    stub.failures
        .lock()
        .unwrap()
        .extend([("flags", 2), ("identities-post", 1)]);
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("EdgeClientKey")
        .api(api)
        .retries(3)
        .retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(bt.get_flags().await.unwrap().len(), 1);
    assert_eq!(stub.hits("flags"), 3, "two 503s, then success");

    match bt.get_identity_flags("u", &[]).await {
        Err(Error::Status { status: 503, .. }) => {}
        other => panic!("expected the 503, got {other:?}"),
    }
    assert_eq!(
        stub.hits("identities-post"),
        1,
        "POST is not retried after an answer"
    );

    stub.failures.lock().unwrap().insert("flags", 5);
    let once = BulletTrain::builder("EdgeClientKey")
        .api(bt.api_url().unwrap())
        .retries(0)
        .build()
        .unwrap();
    assert!(matches!(
        once.get_flags().await,
        Err(Error::Status { status: 503, .. })
    ));
}

#[tokio::test]
async fn reads_that_time_out_are_retried_and_writes_are_not() {
    let stub = Stub::default();
    stub.hangs
        .lock()
        .unwrap()
        .extend([("flags", 1), ("identities-post", 1)]);
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("EdgeClientKey")
        .api(api)
        .request_timeout(Duration::from_millis(300))
        .retries(2)
        .retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    // The first GET hangs past the timeout; the retry is answered.
    assert_eq!(bt.get_flags().await.unwrap().len(), 1);
    assert_eq!(stub.hits("flags"), 2);
    // A POST that timed out may have been applied: it is not sent again.
    match bt.get_identity_flags("u", &[]).await {
        Err(Error::Transport { .. }) => {}
        other => panic!("expected the timeout, got {other:?}"),
    }
    assert_eq!(stub.hits("identities-post"), 1);
}

#[tokio::test]
async fn edge_and_bullet_train_answer_shapes_are_understood() {
    let stub = Stub::default();
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("EdgeClientKey")
        .api(api)
        .build()
        .unwrap();
    // The Edge API's 404 for an unknown feature.
    assert_eq!(bt.feature_enabled("missing").await.unwrap(), None);
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("edge"))
    );
    // A server that ignores `feature=` and wraps flags in an object.
    assert_eq!(
        bt.feature_enabled_for("header", "u").await.unwrap(),
        Some(false)
    );
    assert_eq!(
        bt.get_value_for("font_size", "u").await.unwrap(),
        Some(Value::Int(11))
    );
    assert_eq!(bt.get_value_for("missing", "u").await.unwrap(), None);
    assert_eq!(
        bt.get_trait("plan", "u").await.unwrap(),
        Some(Value::from("pro"))
    );
    assert_eq!(bt.get_flags_for_user("u").await.unwrap().len(), 2);
}

#[tokio::test]
async fn paginated_documents_are_followed_to_the_last_page() {
    let stub = Stub::default();
    // The second page fails once: it is retried like the first.
    stub.failures.lock().unwrap().insert("document-p2", 1);
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("ser.edge")
        .api(api)
        .local_evaluation(true)
        .realtime(false)
        .retry_backoff(Duration::from_millis(1))
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(stub.hits("document"), 4, "three pages, the second twice");
    assert_eq!(stub.hits("document-p2"), 2);
    for (identity, value) in [
        ("first", "page one"),
        ("second", "page two"),
        ("third", "page three"),
    ] {
        assert_eq!(
            bt.get_value_for("header", identity).await.unwrap(),
            Some(Value::from(value)),
            "{identity}"
        );
    }
    assert_eq!(
        bt.get_value_for("header", "nobody").await.unwrap(),
        Some(Value::from("default"))
    );
}

#[tokio::test]
async fn analytics_are_flushed_in_the_background() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stub = Stub {
        analytics: Some(tx),
        ..Stub::default()
    };
    let api = start(stub.clone()).await;
    let bt = BulletTrain::builder("EdgeClientKey")
        .api(api)
        .analytics(true)
        .analytics_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    bt.feature_enabled("header").await.unwrap();
    bt.get_value("header").await.unwrap();
    // The two counts may straddle a flush.
    let mut sent = 0;
    let mut posts = 0;
    while sent < 2 {
        let body = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("no analytics sent")
            .unwrap();
        let counts = body.as_object().unwrap();
        assert_eq!(counts.keys().collect::<Vec<_>>(), ["header"], "{body}");
        sent += counts["header"].as_u64().unwrap();
        posts += 1;
    }
    assert_eq!(sent, 2);
    // Nothing new to send: no empty posts.
    bt.flush_analytics().await.unwrap();
    assert_eq!(stub.hits("analytics"), posts);
}
