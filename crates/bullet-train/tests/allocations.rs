//! The local-evaluation hot path allocates nothing: `feature_enabled_for` on flags without segment
//! rules (plain, multivariate, identity-overridden), with analytics counting on. Counted with dhat's
//! global allocator; this binary holds this one test so nothing else allocates meanwhile.

use bullet_train::BulletTrain;
use futures_util::FutureExt;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn feature_enabled_for_does_not_allocate_in_local_mode() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    // A runtime that is never driven: the background refresher is spawned but never runs, so the
    // client answers from the offline document it starts with.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    let bt = BulletTrain::builder("ser.allocation-test")
        .api("http://127.0.0.1:9/api/v1/")
        .local_evaluation(true)
        .offline_document_file(path)
        .analytics(true)
        .build()
        .unwrap();
    let call = |feature: &str, user: &str| {
        bt.feature_enabled_for(feature, user)
            .now_or_never()
            .expect("local evaluation never waits")
            .unwrap()
    };
    // Warm up (lazy statics, thread-locals).
    call("max_items", "warm-up");

    // The profiler writes its report when dropped: into the target directory, not the source tree.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(concat!(env!("CARGO_TARGET_TMPDIR"), "/dhat-heap.json"))
        .build();
    let before = dhat::HeapStats::get();
    let users: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    let setup = dhat::HeapStats::get();
    assert!(setup.total_blocks > before.total_blocks, "dhat is counting");
    // dhat counts every thread of the process, and the test harness's own thread may allocate
    // while the machine is loaded: a window is measured again (up to three times) when it saw
    // allocations. An allocation on the evaluation path would show in every window (400 calls).
    let mut allocated = u64::MAX;
    for _ in 0..3 {
        let start = dhat::HeapStats::get();
        for user in &users {
            assert_eq!(call("max_items", user), Some(true));
            assert_eq!(call("checkout", user), Some(true));
            assert_eq!(call("internal_tools", user), Some(true));
            assert_eq!(call("no_such_feature", user), None);
        }
        assert_eq!(call("dark_mode", "ben@bullet-train.io"), Some(true));
        allocated = dhat::HeapStats::get().total_blocks - start.total_blocks;
        if allocated == 0 {
            break;
        }
    }
    dhat::assert_eq!(allocated, 0);
}
