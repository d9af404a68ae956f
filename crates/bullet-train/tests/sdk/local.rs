//! Local evaluation against a real server: the same answers as remote evaluation, from the
//! environment document, for the sample and for hundreds of random identities of a rich
//! environment; and the default flag handler before the first document (against a stub that is
//! down until the test says otherwise).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bullet_train::{DefaultFlag, Error, Mode, Reason, Trait, Value};
use serde_json::{Value as Json, json};

use crate::helpers::{BEN, KEY, TestServer, sample, stub};

#[tokio::test]
async fn the_seed_functions_answer_from_the_document() {
    let server = TestServer::sample().await;
    let key = server.server_key(KEY).await;
    let bt = server.builder(&key).local_evaluation(true).build().unwrap();
    assert_eq!(bt.mode(), Mode::Local);
    // Calls made before the first fetch wait for it.
    assert!(bt.has_feature("header").await.unwrap());
    assert!(bt.is_ready());
    assert!(bt.environment_updated_at().is_some());

    assert!(!bt.has_feature("no_such_feature").await.unwrap());
    assert!(bt.has_feature("internal_tools").await.unwrap());
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert_eq!(bt.feature_enabled("dark_mode").await.unwrap(), Some(false));
    assert_eq!(bt.feature_enabled("no_such_feature").await.unwrap(), None);
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(
        bt.get_value("max_items").await.unwrap(),
        Some(Value::from("12.5"))
    );
    assert_eq!(bt.get_value("no_such_feature").await.unwrap(), None);
    // Identity overrides travel in the document.
    assert_eq!(
        bt.feature_enabled_for("dark_mode", BEN).await.unwrap(),
        Some(true)
    );
    assert_eq!(
        bt.get_value_for("dark_mode", BEN).await.unwrap(),
        Some(Value::from("midnight"))
    );

    let flags = bt.get_flags().await.unwrap();
    assert_eq!(flags.len(), 6);
    let header = &flags[0];
    assert_eq!(header.name(), "header");
    assert_eq!((header.id, header.feature.id), (Some(3001), 1));
    assert_eq!(header.reason, Some(Reason::Default));

    // Locally, traits are the ones passed in the call.
    let flags = bt
        .get_identity_flags("pro@example.com", &[Trait::new("plan", "pro")])
        .await
        .unwrap();
    let header = flags.flags.iter().find(|f| f.name() == "header").unwrap();
    assert_eq!(header.value(), &Value::from("Welcome back, power user"));
    assert_eq!(
        header.reason,
        Some(Reason::TargetingMatch {
            segment: "power_users".into()
        })
    );
    let flags = bt.get_flags_for_user(BEN).await.unwrap();
    let dark = flags.iter().find(|f| f.name() == "dark_mode").unwrap();
    assert_eq!(dark.value(), &Value::from("midnight"));

    // Traits still live on the server.
    bt.set_trait("accept-cookies", "true", "local@example.com")
        .await
        .unwrap();
    assert_eq!(
        bt.get_trait("accept-cookies", "local@example.com")
            .await
            .unwrap(),
        Some(Value::from("true"))
    );
}

#[tokio::test]
async fn calls_before_an_unreachable_first_fetch_end_not_ready() {
    // A port with nothing behind it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}/api/v1/", listener.local_addr().unwrap());
    drop(listener);
    let bt = bullet_train::BulletTrain::builder("ser.nothing-here")
        .api(api)
        .local_evaluation(true)
        .retries(0)
        .build()
        .unwrap();
    assert!(matches!(
        bt.feature_enabled("header").await,
        Err(Error::NotReady)
    ));
    assert!(matches!(bt.get_flags().await, Err(Error::NotReady)));
    assert!(!bt.is_ready());
    assert!(matches!(
        bt.wait_until_ready(Duration::from_millis(50)).await,
        Err(Error::NotReady)
    ));
    assert!(bt.refresh().await.unwrap_err().is_unavailable());
}

/// `environment-document/`: 503 until `up`, then the sample.
async fn document_when_up(State(up): State<Arc<AtomicBool>>) -> Response {
    if up.load(Ordering::SeqCst) {
        axum::Json(sample()).into_response()
    } else {
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }
}

#[tokio::test]
async fn the_default_flag_handler_answers_before_the_first_document_and_for_missing_features() {
    let up = Arc::new(AtomicBool::new(false));
    let api = stub(
        Router::new()
            .route("/api/v1/environment-document/", get(document_when_up))
            .with_state(up.clone()),
    )
    .await;
    let bt = bullet_train::BulletTrain::builder("ser.stub")
        .api(api)
        .local_evaluation(true)
        .realtime(false)
        .retries(0)
        .default_flag_handler(|name| match name {
            "header" | "beta_banner" => Some(DefaultFlag::new(true, "from the handler")),
            _ => None,
        })
        .build()
        .unwrap();
    // Calls wait for the first fetch, which fails: the handler answers for what it knows.
    assert_eq!(bt.feature_enabled("header").await.unwrap(), Some(true));
    assert!(!bt.is_ready());
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("from the handler"))
    );
    assert_eq!(
        bt.get_value_for("header", BEN).await.unwrap(),
        Some(Value::from("from the handler"))
    );
    assert_eq!(
        bt.feature_enabled_for("beta_banner", BEN).await.unwrap(),
        Some(true)
    );
    // What it does not know is still an error, and has_feature never asks it.
    assert!(matches!(
        bt.get_value("font_size").await,
        Err(Error::NotReady)
    ));
    assert!(matches!(
        bt.has_feature("header").await,
        Err(Error::NotReady)
    ));
    assert!(matches!(bt.get_flags().await, Err(Error::NotReady)));
    assert!(matches!(
        bt.get_identity_flags(BEN, &[]).await,
        Err(Error::NotReady)
    ));

    // The server comes back (the background retry may get there first).
    up.store(true, Ordering::SeqCst);
    bt.refresh().await.unwrap();
    assert!(bt.is_ready());
    // The document answers for its features, the handler only for missing ones.
    assert_eq!(
        bt.get_value("header").await.unwrap(),
        Some(Value::from("Welcome to Bullet Train"))
    );
    assert_eq!(
        bt.get_value("font_size").await.unwrap(),
        Some(Value::Int(12))
    );
    assert_eq!(
        bt.get_value("beta_banner").await.unwrap(),
        Some(Value::from("from the handler"))
    );
    assert_eq!(
        bt.feature_enabled_for("beta_banner", BEN).await.unwrap(),
        Some(true)
    );
    assert_eq!(bt.get_value("other").await.unwrap(), None);
    assert!(!bt.has_feature("beta_banner").await.unwrap());
    assert!(
        bt.get_flags()
            .await
            .unwrap()
            .iter()
            .all(|f| f.name() != "beta_banner" && !f.is_default)
    );
    let flags = bt.get_identity_flags(BEN, &[]).await.unwrap();
    let banner = flags.get_flag("beta_banner").unwrap();
    assert!(banner.is_default && banner.enabled);
    assert_eq!(banner.value(), &Value::from("from the handler"));
    assert!(!flags.get_flag("dark_mode").unwrap().is_default);
}

/// A deterministic pseudo-random sequence (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An environment with plain and multivariate features, segments over several operators, and
/// segment overrides with priorities.
fn rich_document() -> Json {
    let mut features = Vec::new();
    for i in 0..12u64 {
        let multivariate = i % 3 == 0;
        let variants: Vec<Json> = if multivariate {
            (0..3)
                .map(|v| {
                    let allocation = [20.0, 30.0, 25.0][v as usize];
                    json!({
                        "id": 100 * i + v,
                        "percentage_allocation": allocation,
                        "multivariate_feature_option": {
                            "id": 100 * i + v, "key": format!("f{i}-v{v}"), "value": format!("variant-{v}")
                        }
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        features.push(json!({
            "django_id": 5000 + i,
            "enabled": i % 4 != 1,
            "feature_state_value": if i % 2 == 0 { json!(format!("value-{i}")) } else { json!(i) },
            "feature": {"id": 900 + i, "name": format!("feature_{i}"),
                        "type": if multivariate { "MULTIVARIATE" } else { "STANDARD" }},
            "multivariate_feature_state_values": variants,
        }));
    }
    let condition = |operator: &str, property: &str, value: &str| json!({"operator": operator, "property_": property, "value": value});
    let segments = vec![
        (
            "adults",
            vec![condition("GREATER_THAN_INCLUSIVE", "age", "18")],
            vec![(1, 2, true)],
        ),
        (
            "europe",
            vec![condition("IN", "country", "fr,de,es,it")],
            vec![(2, 1, false), (3, 3, true)],
        ),
        (
            "gmail",
            vec![condition("REGEX", "email", ".*@gmail\\.com")],
            vec![(4, 0, true)],
        ),
        (
            "beta",
            vec![condition("PERCENTAGE_SPLIT", "", "40")],
            vec![(1, 1, false), (6, 5, true)],
        ),
        (
            "v2",
            vec![condition("GREATER_THAN", "app_version", "2.1.0:semver")],
            vec![(7, 0, true)],
        ),
        (
            "even",
            vec![condition("MODULO", "logins", "2|0")],
            vec![(8, 4, true), (0, 2, false)],
        ),
        (
            "named",
            vec![condition("CONTAINS", "name", "an")],
            vec![(9, 6, true)],
        ),
        (
            "no_plan",
            vec![condition("IS_NOT_SET", "plan", "")],
            vec![(10, 7, false)],
        ),
    ];
    let segments: Vec<Json> = segments
        .into_iter()
        .enumerate()
        .map(|(s, (name, conditions, overrides))| {
            let states: Vec<Json> = overrides
                .into_iter()
                .map(|(feature, priority, enabled): (u64, i64, bool)| {
                    json!({
                        "django_id": 7000 + 10 * s as u64 + feature,
                        "enabled": enabled,
                        "feature_state_value": format!("{name}-override"),
                        "feature": {"id": 900 + feature, "name": format!("feature_{feature}"), "type": "STANDARD"},
                        "feature_segment": {"priority": priority},
                        "multivariate_feature_state_values": [],
                    })
                })
                .collect();
            json!({
                "id": 300 + s, "name": name,
                "rules": [{"type": "ALL", "rules": [{"type": "ANY", "rules": [], "conditions": conditions}], "conditions": []}],
                "feature_states": states,
            })
        })
        .collect();
    json!({
        "id": 77, "api_key": "RichEnvironmentKey0001", "name": "rich",
        "project": {"id": 88, "name": "rich", "segments": segments,
                    "organisation": {"id": 99, "name": "rich", "persist_trait_data": true}},
        "feature_states": features,
        "identity_overrides": [],
    })
}

fn random_traits(rng: &mut Rng) -> Vec<Trait> {
    let mut traits = Vec::new();
    if rng.below(3) > 0 {
        traits.push(Trait::new("age", rng.below(40) as i64 + 5));
    }
    if rng.below(2) == 0 {
        let country = ["fr", "de", "us", "jp", "es"][rng.below(5) as usize];
        traits.push(Trait::new("country", country));
    }
    if rng.below(2) == 0 {
        let domain = ["gmail.com", "example.com", "gmail.co"][rng.below(3) as usize];
        traits.push(Trait::new(
            "email",
            format!("user{}@{domain}", rng.below(1000)),
        ));
    }
    if rng.below(2) == 0 {
        let version = ["1.9.0", "2.1.0", "2.1.1", "10.0.0"][rng.below(4) as usize];
        traits.push(Trait::new("app_version", version));
    }
    if rng.below(2) == 0 {
        traits.push(Trait::new("logins", rng.below(50) as i64));
    }
    if rng.below(2) == 0 {
        traits.push(Trait::new(
            "name",
            ["anna", "bob", "dan", "eve"][rng.below(4) as usize],
        ));
    }
    if rng.below(3) == 0 {
        traits.push(Trait::new("plan", "free"));
    }
    if rng.below(4) == 0 {
        traits.push(Trait::new("score", rng.below(1000) as f64 / 7.0));
    }
    traits
}

#[tokio::test]
async fn local_and_remote_evaluation_agree_for_hundreds_of_identities() {
    let server = TestServer::empty().await;
    let document = rich_document();
    server.import(&document).await;
    let client_key = document["api_key"].as_str().unwrap();
    let server_key = server.server_key(client_key).await;
    let remote = server.builder(client_key).build().unwrap();
    let local = server
        .builder(&server_key)
        .local_evaluation(true)
        .build()
        .unwrap();
    local
        .wait_until_ready(Duration::from_secs(10))
        .await
        .unwrap();

    let summary = |flags: &[bullet_train::Flag]| -> Vec<(String, bool, Value, Option<String>)> {
        flags
            .iter()
            .map(|f| {
                (
                    f.name().to_owned(),
                    f.enabled,
                    f.value().clone(),
                    f.variant.clone(),
                )
            })
            .collect()
    };
    let environment_flags = remote.get_flags().await.unwrap();
    assert_eq!(
        summary(&environment_flags),
        summary(&local.get_flags().await.unwrap())
    );
    // Without a user, the single-flag functions read environment flags too: segments (such as
    // `no_plan`, which holds for anyone without a `plan` trait) only apply to identities.
    for flag in &environment_flags {
        let name = flag.name();
        for client in [&remote, &local] {
            assert_eq!(
                client.feature_enabled(name).await.unwrap(),
                Some(flag.enabled),
                "{name}"
            );
            assert_eq!(
                client.get_value(name).await.unwrap().as_ref(),
                Some(flag.value()),
                "{name}"
            );
        }
    }
    assert_eq!(
        local.feature_enabled("feature_10").await.unwrap(),
        Some(true)
    );

    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut segment_hits = 0;
    let mut variants = std::collections::BTreeSet::new();
    for i in 0..300 {
        let identifier = format!("identity-{i}-{}", rng.below(1_000_000));
        let traits = random_traits(&mut rng);
        let from_server = remote
            .get_transient_identity_flags(&identifier, &traits)
            .await
            .unwrap();
        let in_process = local
            .get_identity_flags(&identifier, &traits)
            .await
            .unwrap();
        assert_eq!(
            summary(&from_server.flags),
            summary(&in_process.flags),
            "{identifier} with {traits:?}"
        );
        segment_hits += in_process
            .flags
            .iter()
            .filter(|f| matches!(f.reason, Some(Reason::TargetingMatch { .. })))
            .count();
        variants.extend(in_process.flags.iter().filter_map(|f| f.variant.clone()));
        // The single-flag functions agree too (no traits: stored traits are not known locally,
        // and these identities are transient on the server).
        if i % 10 == 0 {
            for name in ["feature_0", "feature_3", "feature_6"] {
                assert_eq!(
                    remote.get_value_for(name, &identifier).await.unwrap(),
                    local.get_value_for(name, &identifier).await.unwrap(),
                    "{name} for {identifier}"
                );
            }
        }
    }
    // The comparison exercised segments and every kind of variant.
    assert!(
        segment_hits > 300,
        "only {segment_hits} segment overrides matched"
    );
    assert!(variants.contains("control"));
    assert!(
        variants.iter().filter(|v| v.starts_with('f')).count() >= 9,
        "{variants:?}"
    );
}
