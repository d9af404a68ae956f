//! Keeping a local-evaluation client current: changes arrive through the real-time stream, polling
//! catches what the stream cannot, a server that goes away leaves the client serving its last
//! document until it comes back, and polls are conditional (`If-Modified-Since`, checked against a
//! stub that records it) only when that cannot hide a change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bullet_train::{BulletTrain, Value};
use serde_json::{Value as Json, json};

use crate::helpers::{KEY, TestServer, next_update, sample, stub};

/// Long enough that only the stream can explain an update.
const NO_POLLING: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn an_admin_change_reaches_a_local_client_through_the_stream_within_a_second() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .refresh_interval(NO_POLLING)
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    let mut updates = bt.updates();
    // Whether the stream is connected yet or not does not matter: a stream that connects after
    // the change opens with the newer `updated_at`.
    for round in 0..3 {
        let value = json!(format!("round {round}"));
        let written = Instant::now();
        server
            .set_state(KEY, "dark_mode", true, value.clone())
            .await;
        next_update(&mut updates, Duration::from_secs(1)).await;
        let latency = written.elapsed();
        eprintln!("change visible to the local client after {latency:?}");
        assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(true));
        assert_eq!(
            bt.get_value("dark_mode").await.unwrap(),
            Some(Value::from(format!("round {round}")))
        );
        server.set_state(KEY, "dark_mode", false, value).await;
        next_update(&mut updates, Duration::from_secs(1)).await;
        assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    }
}

#[tokio::test]
async fn polling_picks_up_changes_without_the_stream() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .realtime(false)
        .refresh_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    let mut updates = bt.updates();
    server.set_state(KEY, "font_size", true, json!(20)).await;
    next_update(&mut updates, Duration::from_secs(10)).await;
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(20))
    );
    // An unchanged document is not installed again (the poll gets 304 or the same document).
    assert!(!bt.refresh().await.unwrap());
    assert!(!updates.has_changed().unwrap());
}

#[tokio::test]
async fn a_vanished_server_leaves_the_last_document_serving_until_it_returns() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server
        .builder(&key)
        .local_evaluation(true)
        .refresh_interval(NO_POLLING)
        .retries(0)
        .build()
        .unwrap();
    bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
    let mut updates = bt.updates();

    let stopped = server.stop().await;
    // Refreshing fails, and nothing is lost.
    let error = bt.refresh().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(bt.is_ready());
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(bt.get_flags().await.unwrap().len(), 6);
    // Trait calls need the server.
    assert!(bt.get_trait("x", "y").await.unwrap_err().is_unavailable());

    // Back on the same port with the same data; a change made now reaches the client through
    // the reconnected stream.
    let server = stopped.restart().await;
    server.set_state(KEY, "font_size", true, json!(42)).await;
    next_update(&mut updates, Duration::from_secs(30)).await;
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(42))
    );
    assert!(!bt.refresh().await.unwrap(), "the client is current again");
}

/// An `environment-document/` that records each request's `If-Modified-Since` and answers 304
/// when it equals the current `Last-Modified`, else the document with `Last-Modified` and `Date`.
#[derive(Clone)]
struct DocumentStub {
    /// `If-Modified-Since` of each request, in order.
    seen: Arc<Mutex<Vec<Option<String>>>>,
    /// The next answer: the document, its `Last-Modified` and the `Date` of the response.
    answer: Arc<Mutex<(Json, String, String)>>,
}

impl DocumentStub {
    fn new(last_modified: &str, date: &str) -> DocumentStub {
        DocumentStub {
            seen: Arc::default(),
            answer: Arc::new(Mutex::new((
                sample(),
                last_modified.to_owned(),
                date.to_owned(),
            ))),
        }
    }

    fn seen(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }

    /// A local client of the stub that fetches only when told to (and once at start).
    async fn client(&self) -> BulletTrain {
        let app = Router::new()
            .route("/api/v1/environment-document/", get(document))
            .with_state(self.clone());
        let bt = BulletTrain::builder("ser.stub")
            .api(stub(app).await)
            .local_evaluation(true)
            .realtime(false)
            .refresh_interval(NO_POLLING)
            .build()
            .unwrap();
        bt.wait_until_ready(Duration::from_secs(10)).await.unwrap();
        bt
    }
}

async fn document(State(stub): State<DocumentStub>, headers: HeaderMap) -> Response {
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .map(|v| v.to_str().unwrap().to_owned());
    stub.seen.lock().unwrap().push(since.clone());
    let (document, modified, date) = stub.answer.lock().unwrap().clone();
    if since.as_deref() == Some(modified.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    (
        [(header::LAST_MODIFIED, modified), (header::DATE, date)],
        axum::Json(document),
    )
        .into_response()
}

const MIDNIGHT: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const A_MINUTE_LATER: &str = "Thu, 01 Jan 2026 00:01:00 GMT";
const A_MINUTE_EARLIER: &str = "Wed, 31 Dec 2025 23:59:00 GMT";

#[tokio::test]
async fn a_304_keeps_the_document_and_reports_no_change() {
    // Served a minute after its last change: safe to ask "changed since?" next time.
    let stub = DocumentStub::new(MIDNIGHT, A_MINUTE_LATER);
    let bt = stub.client().await;
    let updates = bt.updates();

    assert!(!bt.refresh().await.unwrap(), "a 304 is no change");
    assert_eq!(stub.seen(), [None, Some(MIDNIGHT.to_owned())]);
    assert!(!updates.has_changed().unwrap());
    assert!(bt.is_ready());
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    // The validator survives the 304.
    assert!(!bt.refresh().await.unwrap());
    assert_eq!(stub.seen()[2].as_deref(), Some(MIDNIGHT));

    // A change on the server: the same question now gets the new document.
    {
        let mut answer = stub.answer.lock().unwrap();
        let (document, modified, date) = &mut *answer;
        document["updated_at"] = json!("2026-01-01T00:05:00+00:00");
        document["feature_states"][0]["feature_state_value"] = json!("Changed");
        *modified = "Thu, 01 Jan 2026 00:05:00 GMT".to_owned();
        *date = "Thu, 01 Jan 2026 00:06:00 GMT".to_owned();
    }
    assert!(bt.refresh().await.unwrap());
    assert_eq!(stub.seen()[3].as_deref(), Some(MIDNIGHT));
    assert!(updates.has_changed().unwrap());
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("Changed"))
    );
    assert!(!bt.refresh().await.unwrap());
    assert_eq!(
        stub.seen()[4].as_deref(),
        Some("Thu, 01 Jan 2026 00:05:00 GMT")
    );
}

#[tokio::test]
async fn if_modified_since_is_left_out_unless_the_answer_came_a_later_second() {
    // Served in the second of its last change: another change in that second would not move
    // Last-Modified, so asking "changed since?" could hide it.
    let stub = DocumentStub::new(MIDNIGHT, MIDNIGHT);
    let bt = stub.client().await;
    let updates = bt.updates();
    stub.answer.lock().unwrap().2 = A_MINUTE_EARLIER.to_owned();
    assert!(!bt.refresh().await.unwrap(), "the same document");
    // A Date before Last-Modified (a skewed clock) proves nothing either.
    stub.answer.lock().unwrap().2 = A_MINUTE_LATER.to_owned();
    assert!(!bt.refresh().await.unwrap());
    assert_eq!(stub.seen(), [None, None, None]);
    // Only after an answer from a later second is the next poll conditional.
    assert!(!bt.refresh().await.unwrap());
    assert_eq!(stub.seen()[3].as_deref(), Some(MIDNIGHT));
    assert!(!updates.has_changed().unwrap());
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
}
