//! Per-evaluation cost of the engine, side by side with the `flagsmith-flag-engine` crate on the same
//! inputs (the same v2 evaluation-context JSON, parsed by each crate).
//!
//! Scenarios:
//! - (a) environment flags, no identity: 50 features, no segments;
//! - (b) one identity with 5 traits against 50 features, 15 segments of 15 conditions each, and segment
//!   overrides on most features (40 per segment, 600 in all);
//! - (c) one identity against a 1,000-feature environment (20 segments of 5 conditions, 100 overrides
//!   per segment).
//!
//! Our side evaluates a snapshot compiled beforehand (compile cost is reported separately); the other
//! side gets the complete context, identity included, built beforehand, so that only evaluation is
//! timed on both. Run with `cargo bench -p bullet-train-engine --bench evaluate`; `scripts/bench-engine`
//! turns the results into `docs/benchmarks/engine.md`.

use std::hint::black_box;
use std::time::Duration;

use bullet_train_engine::{Identity, Snapshot};
use bullet_train_protocol::{EvaluationContext, Value};
use criterion::{Criterion, criterion_group, criterion_main};
use flagsmith_flag_engine::engine::get_evaluation_result;
use flagsmith_flag_engine::engine_eval::context::EngineEvaluationContext;
use serde_json::{Value as Json, json};

const ENV_KEY: &str = "bench-environment";
const IDENTIFIER: &str = "user-4242";

/// The 5 traits of the benchmark identity.
fn traits_json() -> Json {
    json!({"plan": "pro", "age": 34, "country": "GB", "app_version": "2.3.1", "beta": true})
}

fn feature(i: usize, multivariate: bool) -> Json {
    let mut f = json!({
        "key": format!("{}", 1000 + i), "name": format!("feature_{i:04}"), "enabled": !i.is_multiple_of(3),
        "value": if i.is_multiple_of(2) { json!(format!("value-{i}")) } else { json!(i) },
        "metadata": {"id": i},
    });
    if multivariate {
        f["variants"] = json!([
            {"value": "red", "weight": 30, "priority": 1, "key": "red"},
            {"value": "green", "weight": 30, "priority": 2, "key": "green"},
            {"value": "blue", "weight": 20, "priority": 3, "key": "blue"},
        ]);
    }
    f
}

/// Fifteen conditions over the five traits (and one absent trait); the last one decides the match.
fn heavy_conditions(s: usize) -> Vec<Json> {
    let c = |property: &str, operator: &str, value: String| json!({"property": property, "operator": operator, "value": value});
    vec![
        c("plan", "EQUAL", "pro".into()),
        c("age", "GREATER_THAN", format!("{}", 10 + s)),
        c("country", "IN", "GB,FR,DE,ES,IT,NL".into()),
        c(
            "app_version",
            "GREATER_THAN_INCLUSIVE",
            format!("2.{}.0:semver", s % 3),
        ),
        c("beta", "EQUAL", "true".into()),
        c("age", "LESS_THAN", format!("{}", 90 - s)),
        c("plan", "NOT_EQUAL", "free".into()),
        c("country", "REGEX", "[A-Z]{2}".into()),
        c("plan", "CONTAINS", "ro".into()),
        c("age", "MODULO", "2|0".into()),
        c("email", "IS_NOT_SET", String::new()),
        c("plan", "IS_SET", String::new()),
        c("country", "NOT_CONTAINS", "X".into()),
        c("age", "GREATER_THAN_INCLUSIVE", "30".into()),
        if s.is_multiple_of(2) {
            c("age", "LESS_THAN_INCLUSIVE", "40".into())
        } else {
            c("plan", "EQUAL", "team".into())
        },
    ]
}

fn light_conditions(s: usize) -> Vec<Json> {
    let c = |property: &str, operator: &str, value: String| json!({"property": property, "operator": operator, "value": value});
    vec![
        c("plan", "EQUAL", "pro".into()),
        c("age", "GREATER_THAN", format!("{}", s)),
        c("country", "IN", "GB,FR".into()),
        c("beta", "EQUAL", "true".into()),
        c(
            "age",
            "LESS_THAN",
            if s.is_multiple_of(2) {
                "50".into()
            } else {
                "20".into()
            },
        ),
    ]
}

/// A context with `features` features (every 10th multivariate) and `segments` segments, each with
/// one ALL rule over `conditions(s)` and overrides of `overrides_per_segment` features.
fn context(
    features: usize,
    segments: usize,
    overrides_per_segment: usize,
    conditions: fn(usize) -> Vec<Json>,
    with_identity: bool,
) -> Json {
    let features_json: serde_json::Map<String, Json> = (0..features)
        .map(|i| (format!("feature_{i:04}"), feature(i, i % 10 == 5)))
        .collect();
    let segments_json: serde_json::Map<String, Json> = (0..segments)
        .map(|s| {
            let overrides: Vec<Json> = (0..overrides_per_segment)
                .map(|j| {
                    let i = (s * 3 + j) % features;
                    let mut o = feature(i, false);
                    o["key"] = json!(format!("{}", 50_000 + s * 1000 + j));
                    o["enabled"] = json!(true);
                    o["value"] = json!(format!("segment-{s}"));
                    o["priority"] = json!(s);
                    o
                })
                .collect();
            let segment = json!({"key": format!("{}", 100 + s), "name": format!("segment_{s:02}"),
                "rules": [{"type": "ALL", "conditions": conditions(s)}], "overrides": overrides});
            (format!("{}", 100 + s), segment)
        })
        .collect();
    let mut ctx = json!({
        "environment": {"key": ENV_KEY, "name": "Benchmark"},
        "features": features_json,
        "segments": segments_json,
    });
    if with_identity {
        ctx["identity"] = json!({"identifier": IDENTIFIER, "key": format!("{ENV_KEY}_{IDENTIFIER}"),
            "traits": traits_json()});
    }
    ctx
}

struct Scenario {
    name: &'static str,
    json: Json,
    with_identity: bool,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "a_environment_flags",
            json: context(50, 0, 0, light_conditions, false),
            with_identity: false,
        },
        Scenario {
            name: "b_identity_heavy",
            json: context(50, 15, 40, heavy_conditions, true),
            with_identity: true,
        },
        Scenario {
            name: "c_identity_1000_features",
            json: context(1000, 20, 100, light_conditions, true),
            with_identity: true,
        },
    ]
}

fn bench(c: &mut Criterion) {
    let traits: Vec<(String, Value)> = traits_json()
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
        .collect();
    let trait_refs: Vec<(&str, &Value)> = traits.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let identity = Identity::new(IDENTIFIER).with_traits(&trait_refs);

    for scenario in scenarios() {
        let ours: EvaluationContext = serde_json::from_value(scenario.json.clone()).unwrap();
        let theirs: EngineEvaluationContext =
            serde_json::from_value(scenario.json.clone()).unwrap();
        let snapshot = Snapshot::from_context(&ours);
        assert!(snapshot.warnings().is_empty(), "{:?}", snapshot.warnings());
        let subject = scenario.with_identity.then_some(&identity);
        // Both engines must see the same segments match before their speed is compared.
        let our_segments: Vec<String> = snapshot
            .evaluate(subject)
            .segment_names()
            .map(str::to_owned)
            .collect();
        let their_segments: Vec<String> = get_evaluation_result(&theirs)
            .segments
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(our_segments, their_segments, "{}", scenario.name);
        // And the same flags: enabled, value and reason of every feature. That engine follows
        // engine 11.x, which says `STATIC` where the corpus we conform to (engine-test-data
        // v3.9.0) says `DEFAULT` for a feature no segment overrides (evaluation.md section 7).
        let flags_of = |flags: Json| -> Vec<(Json, Json, Json, Json)> {
            let mut out: Vec<(Json, Json, Json, Json)> = flags
                .as_object()
                .unwrap()
                .values()
                .map(|f| {
                    (
                        f["name"].clone(),
                        f["enabled"].clone(),
                        f["value"].clone(),
                        match f["reason"].as_str() {
                            Some("STATIC") => json!("DEFAULT"),
                            _ => f["reason"].clone(),
                        },
                    )
                })
                .collect();
            out.sort_by_key(|f| f.0.to_string());
            out
        };
        let our_flags = serde_json::to_value(snapshot.evaluate(subject).to_result().flags).unwrap();
        let their_flags = serde_json::to_value(get_evaluation_result(&theirs).flags).unwrap();
        assert_eq!(
            flags_of(our_flags),
            flags_of(their_flags),
            "{}",
            scenario.name
        );

        let mut group = c.benchmark_group(scenario.name);
        group.bench_function("bullet-train", |b| {
            b.iter(|| {
                black_box(snapshot.evaluate(black_box(subject)))
                    .flags()
                    .len()
            })
        });
        // The same, ending in an owned result like the other engine's (names, values and
        // reasons copied out of the snapshot).
        group.bench_function("bullet-train-owned", |b| {
            b.iter(|| {
                black_box(snapshot.evaluate(black_box(subject)))
                    .to_result()
                    .flags
                    .len()
            })
        });
        group.bench_function("flagsmith-flag-engine", |b| {
            b.iter(|| get_evaluation_result(black_box(&theirs)).flags.len())
        });
        group.bench_function("bullet-train-compile", |b| {
            b.iter(|| Snapshot::from_context(black_box(&ours)).feature_count())
        });
        group.finish();
    }

    // The SDK's hot path: one flag with no segment rules, for a named identity.
    let json = context(50, 15, 40, heavy_conditions, false);
    let mut ctx: EvaluationContext = serde_json::from_value(json).unwrap();
    ctx.features.insert(
        "plain".into(),
        serde_json::from_value(json!({"key": "9", "name": "plain", "enabled": true, "value": 1}))
            .unwrap(),
    );
    let snapshot = Snapshot::from_context(&ctx);
    let mut group = c.benchmark_group("d_single_flag");
    group.bench_function("bullet-train", |b| {
        b.iter(|| {
            snapshot
                .evaluate_feature(black_box("plain"), Some(black_box(&identity)))
                .map(|f| f.enabled)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
