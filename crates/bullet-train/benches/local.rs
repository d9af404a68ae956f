//! Cost of `feature_enabled_for` in local mode (no request: the snapshot is evaluated in-process),
//! next to a `HashMap` lookup of a precomputed answer as the floor, in the same run. Run with
//! `scripts/bench-sdk`, which writes docs/benchmarks/sdk.md.

use std::collections::HashMap;
use std::hint::black_box;

use bullet_train::{BulletTrain, Trait};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;

fn local(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    // Never driven: the client answers from the document it starts with, with no background work.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let bt = BulletTrain::builder("ser.bench")
        .api("http://127.0.0.1:9/api/v1/")
        .local_evaluation(true)
        .offline_document_file(path)
        .analytics(true)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("feature_enabled_for");
    // The floor: a precomputed answer per feature name, looked up.
    let floor: HashMap<&str, bool> =
        [("header", true), ("max_items", true), ("checkout", true)].into();
    group.bench_function("baseline_hashmap_lookup", |b| {
        b.iter(|| floor.get(black_box("max_items")).copied())
    });
    for (name, feature, user) in [
        ("plain_flag", "max_items", "user-42"),
        ("multivariate_flag", "checkout", "user-42"),
        ("identity_override", "dark_mode", "ben@bullet-train.io"),
        ("segment_overrides", "header", "user-42"),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                bt.feature_enabled_for(black_box(feature), black_box(user))
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
        });
    }
    group.finish();
    let traits = [Trait::new("plan", "pro"), Trait::new("logins", 120)];
    let mut group = c.benchmark_group("get_identity_flags");
    group.bench_function("6_features_2_traits", |b| {
        b.iter(|| {
            bt.get_identity_flags(black_box("user-42"), &traits)
                .now_or_never()
                .unwrap()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, local);
criterion_main!(benches);
