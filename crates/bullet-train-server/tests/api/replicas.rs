//! Several replicas on one PostgreSQL database (always PostgreSQL, whatever the test backend):
//! writes through one reach the others' snapshots, `flags/` and streams; a replica cut off from the
//! database keeps serving and catches up; concurrent trait writes through both lose nothing; identity
//! answers a replica keeps in memory follow the other's writes; a replica alone on the database is
//! its sole writer until another one starts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bullet_train_server::Limits;
use bullet_train_store::testing::TestDatabase;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{
    KEY, TestApp, admin_call, admin_ok, flag_map, next_block, sample, updated_at,
};

/// Two replicas on a fresh PostgreSQL database; the second reaches it through `via` when given.
async fn replicas(via: Option<&Proxy>) -> (TestApp, TestApp) {
    replicas_with(via, Limits::default()).await.0
}

/// [`replicas`] with `limits`, and the database's URL.
async fn replicas_with(via: Option<&Proxy>, limits: Limits) -> ((TestApp, TestApp), String) {
    let database = TestDatabase::postgres().await;
    let url = database.url().to_owned();
    let first = TestApp::on(&url, limits, Some(database)).await;
    let second_url = match via {
        Some(proxy) => proxy.url_for(&url),
        None => url.clone(),
    };
    let second = TestApp::on(&second_url, limits, None).await;
    ((first, second), url)
}

/// An open event stream of the sample environment, past its first event.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp) -> Stream {
        let response = app
            .request(Method::GET, &format!("/sse/environments/{KEY}/stream"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut stream = Stream {
            response,
            buffer: String::new(),
        };
        stream.next().await;
        stream
    }

    /// The next `updated_at` event (keep-alives skipped).
    async fn next(&mut self) -> f64 {
        loop {
            let block = next_block(&mut self.response, &mut self.buffer).await;
            if !block.starts_with(':') {
                return updated_at(&block);
            }
        }
    }
}

async fn flags(app: &TestApp) -> std::collections::BTreeMap<String, (bool, Value)> {
    let (status, body) = app.get_json("/api/v1/flags/", KEY).await;
    assert_eq!(status, 200, "{body}");
    flag_map(&body)
}

/// Sets the environment default of `feature` through the admin API of `app`.
async fn set_state(app: &TestApp, feature: &str, value: Value) {
    let page = admin_ok(
        app,
        Method::GET,
        &format!("/api/v1/environments/{KEY}/featurestates/?feature_name={feature}"),
        None,
    )
    .await;
    let id = &page["results"][0]["id"];
    let (status, _) = admin_call(
        app,
        Method::PATCH,
        &format!("/api/v1/environments/{KEY}/featurestates/{id}/"),
        Some(json!({"enabled": true, "feature_state_value": value})),
    )
    .await;
    assert_eq!(status, 200);
}

/// Renames the environment through `app` (a change that touches no identity, trait or feature
/// state) and waits for `stream`, on another replica, to announce it: every notification committed
/// before has then been handled there too (PostgreSQL delivers them in commit order).
async fn settle(app: &TestApp, stream: &mut Stream) {
    static ROUND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = format!("settled {}", ROUND.fetch_add(1, Ordering::Relaxed));
    let (status, _) = admin_call(
        app,
        Method::PATCH,
        &format!("/api/v1/environments/{KEY}/"),
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the other replica announced nothing");
}

/// The `colour` trait of identity `ann` as `app` answers it, through GET and POST `identities/`.
async fn colour(app: &TestApp) -> Value {
    let (status, body) = app
        .get_json("/api/v1/identities/?identifier=ann", KEY)
        .await;
    assert_eq!(status, 200, "{body}");
    let got = body["traits"][0]["trait_value"].clone();
    let (status, body) = app
        .post_json("/api/v1/identities/", KEY, &json!({"identifier": "ann"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["traits"][0]["trait_value"], got, "GET and POST agree");
    got
}

async fn set_colour(app: &TestApp, value: &str) {
    let body =
        json!({"identifier": "ann", "traits": [{"trait_key": "colour", "trait_value": value}]});
    let (status, answer) = app.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["traits"][0]["trait_value"], json!(value));
}

#[tokio::test]
async fn identity_answers_kept_by_a_replica_follow_the_others_writes() {
    let (a, b) = replicas(None).await;
    a.import(&sample()).await;
    let mut on_b = Stream::open_when_served(&b).await;
    let mut on_a = Stream::open(&a).await;
    set_colour(&b, "red").await;
    // Asked again and again, B answers from memory...
    for _ in 0..3 {
        assert_eq!(colour(&b).await, json!("red"));
    }
    // ...until A writes: once B has heard of it, B answers A's value.
    set_colour(&a, "blue").await;
    settle(&a, &mut on_b).await;
    assert_eq!(colour(&b).await, json!("blue"));
    // The same the other way, through an identity A had kept.
    assert_eq!(colour(&a).await, json!("blue"));
    set_colour(&b, "green").await;
    // A replica reads its own writes at once.
    assert_eq!(colour(&b).await, json!("green"));
    settle(&b, &mut on_a).await;
    assert_eq!(colour(&a).await, json!("green"));
    // Deleting the trait through A (a null value) reaches B as well.
    let body =
        json!({"identifier": "ann", "traits": [{"trait_key": "colour", "trait_value": null}]});
    let (status, _) = a.post_json("/api/v1/identities/", KEY, &body).await;
    assert_eq!(status, 200);
    settle(&a, &mut on_b).await;
    assert_eq!(colour(&b).await, Value::Null);
}

#[tokio::test]
async fn a_change_whose_notification_was_lost_is_found_by_the_revision_check() {
    let ((a, b), url) = replicas_with(
        None,
        Limits {
            sync_interval: Duration::from_millis(200),
            ..Limits::default()
        },
    )
    .await;
    a.import(&sample()).await;
    let mut on_b = Stream::open_when_served(&b).await;
    assert!(flags(&b).await["header"].0);
    // The feed stays connected, but this change announces nothing.
    bullet_train_store::testing::change_without_notification(&url, KEY, "header").await;
    // Both replicas find it at their next revision check, and B's streams hear of it.
    tokio::time::timeout(Duration::from_secs(10), on_b.next())
        .await
        .expect("B found the change");
    assert!(!flags(&b).await["header"].0);
    let (status, _) = wait_for_flag(&a, "header", false).await;
    assert_eq!(status, 200);
}

/// Polls A's `flags/` every 10 ms, for at most 10 s, until `feature` is `enabled`.
async fn wait_for_flag(app: &TestApp, feature: &str, enabled: bool) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    loop {
        ticks.tick().await;
        let (status, body) = app.get_json("/api/v1/flags/", KEY).await;
        if flag_map(&body)[feature].0 == enabled {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "{feature} never became {enabled}"
        );
    }
}

#[tokio::test]
async fn a_value_repeated_right_after_another_replicas_change_is_stored() {
    let (a, b) = replicas(None).await;
    a.import(&sample()).await;
    let mut on_b = Stream::open_when_served(&b).await;
    let mut on_a = Stream::open(&a).await;
    for _ in 0..5 {
        // B knows ann's colour is red...
        set_colour(&b, "red").await;
        assert_eq!(colour(&b).await, json!("red"));
        // ...A changes it, and at once (before B can have heard of it) B is told "red" again:
        // that is a write B must make, not a value it already holds.
        set_colour(&a, "blue").await;
        set_colour(&b, "red").await;
        settle(&a, &mut on_b).await;
        settle(&b, &mut on_a).await;
        assert_eq!(colour(&a).await, json!("red"));
        assert_eq!(colour(&b).await, json!("red"));
    }
}

/// Whether `app` reports itself the database's sole writer (`/health/database`).
async fn sole_writer(app: &TestApp) -> bool {
    let (status, body) = app.get_json("/health/database", KEY).await;
    assert_eq!(status, 200, "{body}");
    body["sole_writer"].as_bool().expect("sole_writer reported")
}

/// Polls `/health/database` every 10 ms, for at most 10 s, until `sole_writer` is `expected`.
async fn wait_for_sole_writer(app: &TestApp, expected: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sole_writer(app).await != expected {
        assert!(
            Instant::now() < deadline,
            "sole_writer never became {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_replica_alone_decides_from_memory_until_another_one_starts_and_again_after() {
    let database = TestDatabase::postgres().await;
    let url = database.url().to_owned();
    let a = TestApp::on(&url, Limits::default(), Some(database)).await;
    a.import(&sample()).await;
    wait_for_sole_writer(&a, true).await;
    // A keeps ann, red, in memory and trusts it.
    set_colour(&a, "red").await;
    assert_eq!(colour(&a).await, json!("red"));

    // B starts; its first write waits until A has stopped trusting its memory.
    let b = TestApp::on(&url, Limits::default(), None).await;
    let mut on_a = Stream::open(&a).await;
    set_colour(&b, "blue").await;
    assert!(!sole_writer(&a).await, "A stepped down before B wrote");
    assert!(!sole_writer(&b).await);
    // "red" again through A, before it can have heard of B's write: a write, not a value held.
    set_colour(&a, "red").await;
    settle(&b, &mut on_a).await;
    assert_eq!(colour(&a).await, json!("red"));
    assert_eq!(colour(&b).await, json!("red"));

    // B stops: A is alone again, and what it answers from memory is what the database holds.
    set_colour(&b, "green").await;
    b.stop().await;
    wait_for_sole_writer(&a, true).await;
    assert_eq!(colour(&a).await, json!("green"));
    set_colour(&a, "red").await;
    assert_eq!(colour(&a).await, json!("red"));
}

#[tokio::test]
async fn a_write_through_one_replica_reaches_the_other_within_a_second() {
    let (a, b) = replicas(None).await;
    a.import(&sample()).await;
    // The import through A reaches B: the environment, its keys and its flags.
    let mut waited = Stream::open_when_served(&b).await;
    assert_eq!(flags(&b).await, flags(&a).await);

    for round in 0..3 {
        let written = Instant::now();
        set_state(&a, "font_size", json!(20 + round)).await;
        let announced = tokio::time::timeout(Duration::from_secs(1), waited.next())
            .await
            .expect("the other replica's stream heard nothing within a second");
        eprintln!(
            "replica B announced the change after {:?}",
            written.elapsed()
        );
        assert!(announced > 0.0);
        assert_eq!(flags(&b).await["font_size"], (true, json!(20 + round)));
    }

    // Server-side keys made through A work on B; revoked ones stop.
    let key = a.server_key(KEY).await;
    let (status, _) = wait_for_status(&b, "/api/v1/environment-document/", &key, 200).await;
    assert_eq!(status, 200);
    let keys = admin_ok(
        &a,
        Method::GET,
        &format!("/api/v1/environments/{KEY}/api-keys/"),
        None,
    )
    .await;
    let id = &keys[0]["id"];
    a.admin(
        Method::DELETE,
        &format!("/api/v1/environments/{KEY}/api-keys/{id}/"),
    )
    .send()
    .await
    .unwrap();
    let (status, _) = wait_for_status(&b, "/api/v1/environment-document/", &key, 403).await;
    assert_eq!(status, 403);

    // Deleting the environment through A ends it on B.
    a.admin(Method::DELETE, &format!("/api/v1/environments/{KEY}/"))
        .send()
        .await
        .unwrap();
    let (status, _) = wait_for_status(&b, "/api/v1/flags/", KEY, 403).await;
    assert_eq!(status, 403);
}

impl Stream {
    /// Opens B's stream once B serves the environment (it learns of the import asynchronously).
    async fn open_when_served(app: &TestApp) -> Stream {
        wait_for_status(app, "/api/v1/flags/", KEY, 200).await;
        Stream::open(app).await
    }
}

/// Polls an SDK GET every 10 ms until it answers `status`, for at most 10 s; returns the last
/// answer. (The HTTP API is the only view a test has of whether another replica has an
/// environment; once it has, its event stream is waited on instead.)
async fn wait_for_status(app: &TestApp, path: &str, key: &str, status: u16) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    loop {
        ticks.tick().await;
        let answer = app.get_json(path, key).await;
        if answer.0 == status || Instant::now() > deadline {
            return answer;
        }
    }
}

/// A TCP proxy to PostgreSQL that can cut every connection through it, and refuse new ones, until
/// restored: a replica's view of a database outage.
struct Proxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, _) = watch::channel(true);
        let watcher = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut state = watcher.subscribe();
                if !*state.borrow_and_update() {
                    continue; // dropped: refused
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    fn url_for(&self, database_url: &str) -> String {
        let mut url = Url::parse(database_url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }

    fn cut(&self) {
        self.up.send_replace(false);
    }

    fn restore(&self) {
        self.up.send_replace(true);
    }
}

fn postgres_addr() -> SocketAddr {
    let url = std::env::var("BULLET_TRAIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| bullet_train_store::testing::DEFAULT_POSTGRES_URL.to_owned());
    let url = Url::parse(&url).unwrap();
    let host = url.host_str().unwrap();
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_replica_cut_off_from_the_database_keeps_serving_and_catches_up() {
    let proxy = Proxy::start(postgres_addr()).await;
    let (a, b) = replicas(Some(&proxy)).await;
    a.import(&sample()).await;
    let mut stream = Stream::open_when_served(&b).await;
    let before = flags(&b).await;
    // An identity B keeps in memory.
    set_colour(&b, "red").await;
    assert_eq!(colour(&b).await, json!("red"));

    proxy.cut();
    // B keeps answering from its snapshots.
    assert_eq!(flags(&b).await, before);
    let (status, _) = b.get_json("/api/v1/flags/?feature=header", KEY).await;
    assert_eq!(status, 200);
    // Health: the process serves; the database check says what is wrong.
    let health = b.request(Method::GET, "/health").send().await.unwrap();
    assert_eq!(health.status(), 200);
    let database = b
        .request(Method::GET, "/health/database")
        .send()
        .await
        .unwrap();
    assert_eq!(database.status(), 503);
    // What needs the database fails fast and clearly.
    let (status, body) = b.get_json("/api/v1/identities/?identifier=x", KEY).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("Database"));

    // Changes B cannot hear of now.
    set_state(&a, "font_size", json!(77)).await;
    set_colour(&a, "blue").await;
    let mut document = sample();
    document["api_key"] = json!("SecondEnvironmentKey01");
    a.import(&document).await;
    assert_eq!(flags(&b).await, before);

    proxy.restore();
    // B reconnects and catches up: the stream announces it, flags/ has it, the new environment too.
    stream.next().await;
    assert_eq!(flags(&b).await["font_size"], (true, json!(77)));
    assert_eq!(colour(&b).await, json!("blue"), "what B kept was dropped");
    let (status, _) = wait_for_status(&b, "/api/v1/flags/", "SecondEnvironmentKey01", 200).await;
    assert_eq!(status, 200);
    let (status, _) = b.get_json("/api/v1/identities/?identifier=x", KEY).await;
    assert_eq!(status, 200);
    let database = b
        .request(Method::GET, "/health/database")
        .send()
        .await
        .unwrap();
    assert_eq!(database.status(), 200);
}

#[tokio::test]
async fn concurrent_trait_writes_through_two_replicas_lose_nothing() {
    let (a, b) = replicas(None).await;
    a.import(&sample()).await;
    let mut stream = Stream::open_when_served(&b).await;
    let apps = Arc::new([a, b]);
    let failed = Arc::new(AtomicBool::new(false));
    const WRITERS: usize = 12;
    const ROUNDS: usize = 15;
    const IDENTITIES: [&str; 3] = ["shared-1", "shared-2", "shared-3"];
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let apps = apps.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let app = &apps[(writer + round) % 2];
                let identifier = IDENTITIES[(writer + round) % IDENTITIES.len()];
                // Each writer owns one trait key and writes increasing values to every identity.
                let body = json!({"identifier": identifier, "traits": [
                    {"trait_key": format!("writer-{writer}"), "trait_value": round},
                    {"trait_key": "last-writer", "trait_value": writer},
                ]});
                let (status, answer) = app.post_json("/api/v1/identities/", KEY, &body).await;
                if status != 200 {
                    failed.store(true, Ordering::Relaxed);
                    panic!("identities/ answered {status}: {answer}");
                }
                let body = json!({"identifier": "counter", "trait_key": "hits", "increment_by": 1});
                let (status, answer) = app
                    .post_json("/api/v1/traits/increment-value/", KEY, &body)
                    .await;
                if status != 200 {
                    failed.store(true, Ordering::Relaxed);
                    panic!("increment-value/ answered {status}: {answer}");
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(!failed.load(Ordering::Relaxed));
    let [a, b] = Arc::into_inner(apps).unwrap();
    // Once B has heard of every write, B answers with all of them.
    settle(&a, &mut stream).await;
    // Every acknowledged write is there: each writer's last value on each identity it wrote.
    for identifier in IDENTITIES {
        let (status, identity) = b
            .get_json(&format!("/api/v1/identities/?identifier={identifier}"), KEY)
            .await;
        assert_eq!(status, 200);
        let traits: std::collections::HashMap<String, Value> =
            crate::helpers::traits_of(&identity).into_iter().collect();
        for writer in 0..WRITERS {
            let last = (0..ROUNDS)
                .filter(|round| IDENTITIES[(writer + round) % IDENTITIES.len()] == identifier)
                .max();
            if let Some(last) = last {
                assert_eq!(
                    traits.get(&format!("writer-{writer}")),
                    Some(&json!(last)),
                    "{identifier}: writer {writer}"
                );
            }
        }
    }
    let (_, counter) = a
        .get_json("/api/v1/identities/?identifier=counter", KEY)
        .await;
    assert_eq!(
        counter["traits"][0]["trait_value"],
        json!(WRITERS * ROUNDS),
        "every increment counted"
    );
}
