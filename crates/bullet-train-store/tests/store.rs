//! The store conformance suite: every scenario runs against each backend through the `Store` trait.

use std::sync::Arc;

use bullet_train_protocol::{EnvironmentDocument, Value};
use bullet_train_store::document::to_document;
use bullet_train_store::model::{Increment, TraitChange};
use bullet_train_store::testing::TestDatabase;
use bullet_train_store::{PgStore, ServerKeyUpdate, SqliteStore, Store, StoreError};
use serde_json::json;

/// A fresh, migrated store of each backend (the database lives as long as the returned guard).
/// On PostgreSQL, once the store holds the sole-writer lease: taking it empties the identity cache,
/// which must not happen in the middle of a test.
async fn open(database: TestDatabase) -> (Arc<dyn Store>, TestDatabase) {
    let store: Arc<dyn Store> = if database.is_postgres() {
        let store = PgStore::connect(database.url()).await.unwrap();
        let mut sole = store.sole_writer_changes();
        store.migrate().await.unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            sole.wait_for(|sole| *sole),
        )
        .await
        .expect("never became the sole writer")
        .unwrap();
        Arc::new(store)
    } else {
        let store = SqliteStore::connect(database.url()).await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    };
    (store, database)
}

/// Declares one test per backend running `$body` with `store: Arc<dyn Store>`.
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let ($store, _guard) = super::open(TestDatabase::sqlite()).await;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let ($store, _guard) = super::open(TestDatabase::postgres().await).await;
                $body
            }
        }
    };
}

fn sample() -> EnvironmentDocument {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/environment.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The document with installation-specific ids replaced by names, so that an import and its export
/// compare equal when they carry the same content and seeds.
fn normalise(document: &EnvironmentDocument) -> serde_json::Value {
    let names: std::collections::HashMap<u64, String> = document
        .feature_states
        .iter()
        .map(|s| (s.feature.id, s.feature.name.clone()))
        .collect();
    let mut v = serde_json::to_value(document).unwrap();
    v["id"] = json!(0);
    v["updated_at"] = json!(null);
    v["project"]["id"] = json!(0);
    v["project"]["organisation"]["id"] = json!(0);
    let mut key_only: Vec<String> = document
        .project
        .server_key_only_feature_ids
        .iter()
        .map(|id| names[id].clone())
        .collect();
    key_only.sort();
    v["project"]["server_key_only_feature_ids"] = json!(key_only);
    fn states(list: &mut serde_json::Value) {
        for state in list.as_array_mut().unwrap() {
            state["feature"]["id"] = json!(0);
            for mv in state["multivariate_feature_state_values"]
                .as_array_mut()
                .unwrap()
            {
                mv["multivariate_feature_option"]["id"] = json!(0);
            }
        }
    }
    states(&mut v["feature_states"]);
    for segment in v["project"]["segments"].as_array_mut().unwrap() {
        states(&mut segment["feature_states"]);
    }
    for identity in v["identity_overrides"].as_array_mut().unwrap() {
        identity["django_id"] = json!(0);
        states(&mut identity["identity_features"]);
    }
    v
}

async fn export(store: &Arc<dyn Store>, environment_id: i64) -> EnvironmentDocument {
    to_document(&store.environment_data(environment_id).await.unwrap())
}

store_test!(migrations_run_once_and_meta_persists, |store| {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.meta("k").await.unwrap(), None);
    store.set_meta("k", "v1").await.unwrap();
    store.set_meta("k", "v2").await.unwrap();
    assert_eq!(store.meta("k").await.unwrap().as_deref(), Some("v2"));
});

/// Eight reads of environment `id` at once.
async fn read_together(store: &Arc<dyn Store>, id: i64) {
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        reads.spawn(async move { store.environment_data(id).await });
    }
    while let Some(data) = reads.join_next().await {
        assert_eq!(data.unwrap().unwrap().environment.id, id);
    }
}

store_test!(idle_connections_close_down_to_one_and_reopen, |store| {
    let outcome = store.import_document(&sample()).await.unwrap();
    let id = outcome.environment_id;
    // Reads started together open several connections, unless each happened to finish before
    // the next began (a busy machine's scheduling): then they are tried together again.
    let mut closed = 0;
    for _ in 0..100 {
        read_together(&store, id).await;
        closed = store.close_idle_connections().await;
        if closed > 0 {
            break;
        }
    }
    assert!(
        closed >= 1,
        "concurrent reads never opened a second connection"
    );
    assert_eq!(store.close_idle_connections().await, 0, "one is left");
    // The pool opens connections again when needed, for reads and writes alike.
    read_together(&store, id).await;
    store.set_meta("after", "closing").await.unwrap();
    assert_eq!(
        store.meta("after").await.unwrap().as_deref(),
        Some("closing")
    );
});

store_test!(import_then_export_round_trips, |store| {
    let document = sample();
    let outcome = store.import_document(&document).await.unwrap();
    assert!(outcome.created);
    let exported = export(&store, outcome.environment_id).await;
    assert_eq!(normalise(&exported), normalise(&document));
    // The export is itself importable, and importing it again changes nothing.
    let again = store.import_document(&exported).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.environment_id, outcome.environment_id);
    assert_eq!(
        normalise(&export(&store, outcome.environment_id).await),
        normalise(&document)
    );
    let environment = store.environment_by_key(&document.api_key).await.unwrap();
    assert!(environment.revision >= 2, "each import bumps the revision");
});

store_test!(reimport_replaces_the_whole_environment, |store| {
    let mut document = sample();
    let outcome = store.import_document(&document).await.unwrap();
    let before = store.environment_by_key(&document.api_key).await.unwrap();
    document
        .feature_states
        .retain(|s| s.feature.name != "max_items");
    document.feature_states[0].feature_state_value = Value::from("changed");
    document.project.segments.remove(2);
    document.identity_overrides.clear();
    store.import_document(&document).await.unwrap();
    let exported = export(&store, outcome.environment_id).await;
    assert_eq!(normalise(&exported), normalise(&document));
    let after = store.environment_by_key(&document.api_key).await.unwrap();
    assert!(after.updated_at > before.updated_at);
    assert!(after.revision > before.revision);
});

store_test!(invalid_imports_change_nothing, |store| {
    let document = sample();
    let outcome = store.import_document(&document).await.unwrap();
    let before = normalise(&export(&store, outcome.environment_id).await);
    let mut duplicate = document.clone();
    duplicate
        .feature_states
        .push(duplicate.feature_states[0].clone());
    duplicate.feature_states[6].feature.name = "HEADER".into();
    assert!(matches!(
        store.import_document(&duplicate).await,
        Err(StoreError::Invalid(_))
    ));
    let mut unknown = document.clone();
    unknown.project.segments[0].feature_states[0].feature.name = "nope".into();
    assert!(matches!(
        store.import_document(&unknown).await,
        Err(StoreError::Invalid(_))
    ));
    let mut overallocated = document.clone();
    overallocated.feature_states[3].multivariate_feature_state_values[0].percentage_allocation =
        80.0;
    assert!(matches!(
        store.import_document(&overallocated).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        normalise(&export(&store, outcome.environment_id).await),
        before
    );
});

store_test!(a_second_environment_shares_project_features, |store| {
    let production = sample();
    let first = store.import_document(&production).await.unwrap();
    let mut staging = sample();
    staging.api_key = "QuickStartEnvironment2".into();
    staging.name = "Staging".into();
    staging.identity_overrides.clear();
    let mut extra = staging.feature_states[0].clone();
    extra.feature.name = "staging_only".into();
    extra.feature.id = 99;
    extra.feature_state_value = Value::from("7");
    extra.enabled = false;
    extra.django_id = Some(9999);
    staging.feature_states.push(extra);
    let second = store.import_document(&staging).await.unwrap();
    assert_eq!(second.project_id, first.project_id);
    assert!(second.created);
    // Production gets a default state for the new feature, from its initial value.
    let exported = export(&store, first.environment_id).await;
    let added = exported
        .feature_states
        .iter()
        .find(|s| s.feature.name == "staging_only")
        .unwrap();
    assert_eq!(
        (added.enabled, &added.feature_state_value),
        (false, &Value::Int(7))
    );
    // Re-importing production without it keeps the feature (staging still uses it).
    store.import_document(&production).await.unwrap();
    let exported = export(&store, second.environment_id).await;
    assert!(
        exported
            .feature_states
            .iter()
            .any(|s| s.feature.name == "staging_only")
    );
});

store_test!(identities_and_traits, |store| {
    let outcome = store.import_document(&sample()).await.unwrap();
    let env = outcome.environment_id;
    assert!(store.identity(env, "ann").await.unwrap().is_none());
    let created = store.ensure_identity(env, "ann").await.unwrap();
    assert_eq!(
        store.ensure_identity(env, "ann").await.unwrap().identity.id,
        created.identity.id
    );
    let set = |key: &str, value: Option<Value>| TraitChange {
        key: key.into(),
        value,
    };
    let records = store
        .write_traits(
            env,
            &[(
                "ann".into(),
                vec![
                    set("plan", Some(Value::from("pro"))),
                    set("age", Some(Value::Int(30))),
                ],
            )],
        )
        .await
        .unwrap();
    let traits: Vec<(String, Value)> = records[0]
        .traits
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    assert_eq!(
        traits,
        vec![
            ("plan".into(), Value::from("pro")),
            ("age".into(), Value::Int(30))
        ]
    );
    let records = store
        .write_traits(
            env,
            &[(
                "ann".into(),
                vec![set("plan", None), set("age", Some(Value::Float(30.5)))],
            )],
        )
        .await
        .unwrap();
    let traits: Vec<(String, Value)> = records[0]
        .traits
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    assert_eq!(traits, vec![("age".into(), Value::Float(30.5))]);
    assert!(matches!(
        store.increment_trait(env, "ann", "age", 1).await.unwrap(),
        Increment::NotInteger
    ));
    assert_eq!(
        store
            .increment_trait(env, "bob", "visits", 2)
            .await
            .unwrap(),
        Increment::Value(2)
    );
    assert_eq!(
        store
            .increment_trait(env, "bob", "visits", 3)
            .await
            .unwrap(),
        Increment::Value(5)
    );
    // The imported identity override is attached to its identity.
    let ben = store
        .identity(env, "ben@bullet-train.io")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ben.overrides.len(), 1);
    assert_eq!(ben.overrides[0].value, Value::from("midnight"));
});

store_test!(server_keys_are_stored_hashed_and_revocable, |store| {
    use bullet_train_store::model::{AuditFilter, Author, Page};

    let author = Author {
        label: "key admin".into(),
    };
    let env = store
        .import_document(&sample())
        .await
        .unwrap()
        .environment_id;
    let key = store
        .create_server_key(&author, env, "ci", "abc123", "ser.AbC", None)
        .await
        .unwrap();
    assert!(key.active);
    let updated = store
        .update_server_key(
            &author,
            env,
            key.id,
            ServerKeyUpdate {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!updated.active);
    assert_eq!(store.server_keys(Some(env)).await.unwrap(), vec![updated]);
    assert!(matches!(
        store
            .create_server_key(&author, env, "dup", "abc123", "ser.X", None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_server_key(&author, env, key.id).await.unwrap();
    assert!(matches!(
        store.delete_server_key(&author, env, key.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.server_keys(None).await.unwrap().is_empty());

    // The import and every key change are in the audit log (newest first), never with the hash.
    let log = store
        .audit_log(
            &AuditFilter {
                environments: vec![env],
                ..Default::default()
            },
            Page {
                number: 1,
                size: 10,
            },
        )
        .await
        .unwrap();
    let entries: Vec<(&str, &str, &str)> = log
        .items
        .iter()
        .map(|e| {
            (
                e.author.as_str(),
                e.related_object_type.as_str(),
                e.log.as_str(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("key admin", "SERVER_KEY", "Server-side key deleted: ci"),
            ("key admin", "SERVER_KEY", "Server-side key updated: ci"),
            ("key admin", "SERVER_KEY", "Server-side key created: ci"),
            (
                "bullet-train",
                "ENVIRONMENT",
                "Environment created from a document"
            ),
        ]
    );
    let update = &log.items[1];
    assert_eq!(
        update.previous_state.as_ref().unwrap()["active"],
        json!(true)
    );
    assert_eq!(update.new_state.as_ref().unwrap()["active"], json!(false));
    assert_eq!(
        update.new_state.as_ref().unwrap()["prefix"],
        json!("ser.AbC")
    );
    for entry in &log.items {
        let states = format!("{:?} {:?}", entry.previous_state, entry.new_state);
        assert!(!states.contains("abc123"), "{states}");
    }
});

/// Imports the sample: its environment's id and its first feature's id.
async fn sample_environment_and_feature(store: &Arc<dyn Store>) -> (i64, i64) {
    let env = store
        .import_document(&sample())
        .await
        .unwrap()
        .environment_id;
    (
        env,
        store.environment_data(env).await.unwrap().features[0].id,
    )
}

store_test!(evaluation_counts_accumulate_per_day, |store| {
    let (env, feature) = sample_environment_and_feature(&store).await;
    store
        .record_evaluations(env, "2026-01-01", &[(feature, 3)])
        .await
        .unwrap();
    store
        .record_evaluations(env, "2026-01-01", &[(feature, 4)])
        .await
        .unwrap();
    store
        .record_evaluations(env, "2026-01-02", &[(feature, 1)])
        .await
        .unwrap();
    assert_eq!(
        store.evaluation_counts(env, feature).await.unwrap(),
        vec![("2026-01-01".into(), 7), ("2026-01-02".into(), 1)]
    );
});

store_test!(evaluation_counts_leave_kept_identities_valid, |store| {
    let (env, feature) = sample_environment_and_feature(&store).await;
    // PostgreSQL keeps identities only while a change feed follows the database.
    let _feed = store.change_feed().await.unwrap();
    store.ensure_identity(env, "ann").await.unwrap();
    let kept = store.identity_generation().expect("identities are kept");
    // SDKs report evaluation counts every few seconds: that must not drop kept identities...
    store
        .record_evaluations(env, "2026-01-01", &[(feature, 3)])
        .await
        .unwrap();
    assert_eq!(store.identity_generation(), Some(kept));
    // ...while any identity write does.
    let colour = TraitChange {
        key: "colour".into(),
        value: Some(Value::from("red")),
    };
    store
        .write_traits(env, &[("ann".to_owned(), vec![colour])])
        .await
        .unwrap();
    assert_ne!(store.identity_generation(), Some(kept));
});

mod admin {
    use super::*;
    use bullet_train_store::admin::*;
    use bullet_train_store::model::*;

    fn author() -> Author {
        Author {
            label: "test".into(),
        }
    }

    /// An organisation, a project with two environments, and a multivariate feature.
    async fn setup(store: &Arc<dyn Store>) -> (Project, Environment, Environment, FeatureRecord) {
        let a = author();
        let org = store
            .create_organisation(
                &a,
                &NewOrganisation {
                    name: "Acme".into(),
                },
            )
            .await
            .unwrap();
        let project = store
            .create_project(
                &a,
                &NewProject {
                    organisation_id: org.id,
                    name: "Web".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let new_env = |name: &str| NewEnvironment {
            project_id: project.id,
            name: name.into(),
            ..Default::default()
        };
        let prod = store
            .create_environment(&a, &new_env("Production"))
            .await
            .unwrap();
        let feature = store
            .create_feature(
                &a,
                project.id,
                &NewFeature {
                    name: "checkout".into(),
                    initial_value: Some("classic".into()),
                    default_enabled: true,
                    options: vec![
                        NewOption {
                            value: Value::from("express"),
                            default_percentage_allocation: 30.0,
                            key: Some("express".into()),
                        },
                        NewOption {
                            value: Value::from("one_page"),
                            default_percentage_allocation: 20.0,
                            key: None,
                        },
                    ],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // An environment created after the feature still gets its state.
        let staging = store
            .create_environment(&a, &new_env("Staging"))
            .await
            .unwrap();
        (project, prod, staging, feature.value)
    }

    /// An ALL rule holding when trait `plan` equals `value`.
    fn plan_is(value: &str) -> Rule {
        Rule {
            rule_type: "ALL".into(),
            rules: vec![],
            conditions: vec![Condition {
                operator: "EQUAL".into(),
                property: "plan".into(),
                value: Some(value.into()),
                description: None,
            }],
        }
    }

    /// Creates a segment of `rules` in `project`.
    async fn new_segment(
        store: &Arc<dyn Store>,
        project: Id,
        name: &str,
        rules: Vec<Rule>,
    ) -> Segment {
        store
            .create_segment(
                &author(),
                project,
                &NewSegment {
                    name: name.into(),
                    rules,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .value
    }

    store_test!(features_have_a_state_in_every_environment, |store| {
        let (project, prod, staging, feature) = setup(&store).await;
        assert_eq!(feature.feature.feature_type, "MULTIVARIATE");
        assert_eq!(prod.api_key.len(), 22);
        for env in [&prod, &staging] {
            let states = store
                .feature_states(env.id, &StateQuery::default())
                .await
                .unwrap()
                .items;
            assert_eq!(states.len(), 1);
            assert_eq!(states[0].value, Value::from("classic"));
            assert!(states[0].enabled);
            let allocations: Vec<f64> = states[0]
                .multivariate
                .iter()
                .map(|v| v.percentage_allocation)
                .collect();
            assert_eq!(allocations, vec![30.0, 20.0]);
        }
        // Names are unique per project, ignoring case.
        let duplicate = store
            .create_feature(
                &author(),
                project.id,
                &NewFeature {
                    name: "CHECKOUT".into(),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))));
        let listed = store
            .features(
                project.id,
                &FeatureQuery {
                    search: Some("CHECK".into()),
                    page: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.total, 1);
        // The document of each environment carries the feature.
        let document = export(&store, staging.id).await;
        assert_eq!(
            document.feature_states[0]
                .multivariate_feature_state_values
                .len(),
            2
        );
    });

    store_test!(state_updates_are_checked_and_audited, |store| {
        let (_, prod, _, feature) = setup(&store).await;
        let state = store
            .feature_states(prod.id, &StateQuery::default())
            .await
            .unwrap()
            .items
            .remove(0);
        let before = store.environment(prod.id).await.unwrap();
        let over = StateUpdate {
            multivariate: Some(vec![
                Allocation {
                    option_id: feature.options[0].id,
                    percentage: 80.0,
                },
                Allocation {
                    option_id: feature.options[1].id,
                    percentage: 30.0,
                },
            ]),
            ..Default::default()
        };
        assert!(matches!(
            store.update_feature_state(&author(), state.id, &over).await,
            Err(StoreError::Invalid(_))
        ));
        let unchanged = store.feature_state(state.id).await.unwrap();
        assert_eq!(unchanged, state, "a refused update changes nothing");
        let update = StateUpdate {
            enabled: Some(false),
            value: Some(Value::Int(7)),
            multivariate: Some(vec![Allocation {
                option_id: feature.options[1].id,
                percentage: 50.0,
            }]),
        };
        let changed = store
            .update_feature_state(&author(), state.id, &update)
            .await
            .unwrap();
        assert_eq!(changed.environments, vec![prod.id]);
        assert_eq!(
            (changed.value.enabled, &changed.value.value),
            (false, &Value::Int(7))
        );
        assert_eq!(changed.value.multivariate.len(), 1);
        // The option keeps its walk-order key across the update.
        let kept = state
            .multivariate
            .iter()
            .find(|v| v.option_id == feature.options[1].id)
            .unwrap();
        assert_eq!(changed.value.multivariate[0].sort_key, kept.sort_key);
        let after = store.environment(prod.id).await.unwrap();
        assert!(after.revision > before.revision && after.updated_at > before.updated_at);
        let log = store
            .audit_log(
                &AuditFilter {
                    environments: vec![prod.id],
                    ..Default::default()
                },
                Page {
                    number: 1,
                    size: 10,
                },
            )
            .await
            .unwrap();
        let entry = &log.items[0];
        assert_eq!(entry.author, "test");
        assert_eq!(entry.related_object_type, "FEATURE_STATE");
        assert_eq!(
            entry.previous_state.as_ref().unwrap()["feature_state_value"],
            json!("classic")
        );
        assert_eq!(
            entry.new_state.as_ref().unwrap()["feature_state_value"],
            json!(7)
        );
        assert_eq!(entry.new_state.as_ref().unwrap()["enabled"], json!(false));
    });

    store_test!(segment_overrides_keep_consecutive_priorities, |store| {
        let (project, prod, _, feature) = setup(&store).await;
        let a = author();
        let mut segments = Vec::new();
        for name in ["a", "b", "c"] {
            segments.push(new_segment(&store, project.id, name, vec![plan_is(name)]).await);
        }
        let link = |segment: &Segment, priority: Option<i64>| NewFeatureSegment {
            feature_id: feature.feature.id,
            segment_id: segment.id,
            environment_id: prod.id,
            priority,
        };
        let a_fs = store
            .create_feature_segment(&a, &link(&segments[0], None))
            .await
            .unwrap()
            .value;
        let b_fs = store
            .create_feature_segment(&a, &link(&segments[1], None))
            .await
            .unwrap()
            .value;
        let c_fs = store
            .create_feature_segment(&a, &link(&segments[2], Some(0)))
            .await
            .unwrap()
            .value;
        let order = |list: Vec<FeatureSegment>| -> Vec<(Id, i64)> {
            list.iter().map(|f| (f.segment_id, f.priority)).collect()
        };
        let listed = store
            .feature_segments(prod.id, Some(feature.feature.id))
            .await
            .unwrap();
        assert_eq!(
            order(listed),
            vec![
                (segments[2].id, 0),
                (segments[0].id, 1),
                (segments[1].id, 2)
            ]
        );
        store.update_priorities(&a, &[(b_fs.id, 0)]).await.unwrap();
        let listed = store
            .feature_segments(prod.id, Some(feature.feature.id))
            .await
            .unwrap();
        assert_eq!(
            order(listed),
            vec![
                (segments[1].id, 0),
                (segments[2].id, 1),
                (segments[0].id, 2)
            ]
        );
        assert!(matches!(
            store
                .create_feature_segment(&a, &link(&segments[0], None))
                .await,
            Err(StoreError::Conflict(_))
        ));
        // A state for the override, then its removal.
        let state = store
            .create_feature_state(
                &a,
                &NewState {
                    feature_id: feature.feature.id,
                    environment_id: prod.id,
                    target: StateTarget::FeatureSegment(c_fs.id),
                    enabled: true,
                    value: Value::from("segment"),
                    multivariate: vec![],
                },
            )
            .await
            .unwrap()
            .value;
        let document = export(&store, prod.id).await;
        let overridden: Vec<&str> = document
            .project
            .segments
            .iter()
            .filter(|s| !s.feature_states.is_empty())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(overridden, vec!["c"]);
        store.delete_feature_state(&a, state.id).await.unwrap();
        let listed = store
            .feature_segments(prod.id, Some(feature.feature.id))
            .await
            .unwrap();
        assert_eq!(
            order(listed),
            vec![(segments[1].id, 0), (segments[0].id, 1)]
        );
        store.delete_feature_segment(&a, a_fs.id).await.unwrap();
        let listed = store
            .feature_segments(prod.id, Some(feature.feature.id))
            .await
            .unwrap();
        assert_eq!(order(listed), vec![(segments[1].id, 0)]);
        // Deleting a segment removes its overrides.
        store
            .delete_segment(&a, project.id, segments[1].id)
            .await
            .unwrap();
        assert!(
            store
                .feature_segments(prod.id, None)
                .await
                .unwrap()
                .is_empty()
        );
    });

    store_test!(identity_overrides_and_webhook_queue, |store| {
        let (_, prod, _, feature) = setup(&store).await;
        let a = author();
        let webhook = store
            .create_webhook(
                &a,
                prod.id,
                &NewWebhook {
                    url: "http://127.0.0.1:1/hook".into(),
                    enabled: true,
                    secret: Some("s".into()),
                },
            )
            .await
            .unwrap();
        let identity = store.create_identity(&a, prod.id, "ann").await.unwrap();
        assert!(matches!(
            store.create_identity(&a, prod.id, "ann").await,
            Err(StoreError::Conflict(_))
        ));
        let state = store
            .create_feature_state(
                &a,
                &NewState {
                    feature_id: feature.feature.id,
                    environment_id: prod.id,
                    target: StateTarget::Identity(identity.id),
                    enabled: false,
                    value: Value::from("mine"),
                    multivariate: vec![],
                },
            )
            .await
            .unwrap()
            .value;
        let record = store.identity_by_id(prod.id, identity.id).await.unwrap();
        assert_eq!(record.overrides.len(), 1);
        let document = export(&store, prod.id).await;
        assert_eq!(document.identity_overrides[0].identifier, "ann");
        store.delete_feature_state(&a, state.id).await.unwrap();
        // Two flag events are queued for the webhook, oldest first, with their payloads.
        let now = bullet_train_store::time::now_micros() + 1;
        let due = store
            .due_deliveries(now, now + 60_000_000, 10)
            .await
            .unwrap();
        // Claimed: nobody else gets them during the lease.
        assert!(
            store
                .due_deliveries(now, now + 60_000_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let events: Vec<String> = due.iter().map(|(d, _)| d.event_type.clone()).collect();
        assert_eq!(events, vec!["FLAG_UPDATED", "FLAG_DELETED"]);
        let payload: serde_json::Value = serde_json::from_str(&due[0].0.payload).unwrap();
        assert_eq!(payload["data"]["new_state"]["identity_identifier"], "ann");
        assert_eq!(payload["data"]["previous_state"], serde_json::Value::Null);
        assert_eq!(payload["data"]["changed_by"], "test");
        assert_eq!(due[0].1.secret.as_deref(), Some("s"));
        store
            .record_attempt(
                due[0].0.id,
                &DeliveryAttempt {
                    status_code: Some(200),
                    error: None,
                    delivered: true,
                    retry_at: None,
                },
            )
            .await
            .unwrap();
        let page = store
            .webhook_deliveries(
                webhook.id,
                Page {
                    number: 1,
                    size: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.total, 2);
        let delivered = page.items.iter().find(|d| d.id == due[0].0.id).unwrap();
        assert_eq!(
            (delivered.status.as_str(), delivered.attempts),
            ("delivered", 1)
        );
        // Identities list with prefix and exact search.
        store.create_identity(&a, prod.id, "annabel").await.unwrap();
        store.create_identity(&a, prod.id, "bob_1").await.unwrap();
        let search = |s: &str, exact: bool| IdentityQuery {
            search: Some(s.into()),
            exact,
            page: None,
        };
        assert_eq!(
            store
                .identities(prod.id, &search("ANN", false))
                .await
                .unwrap()
                .total,
            2
        );
        assert_eq!(
            store
                .identities(prod.id, &search("ann", true))
                .await
                .unwrap()
                .total,
            1
        );
        assert_eq!(
            store
                .identities(prod.id, &search("bob%", false))
                .await
                .unwrap()
                .total,
            0
        );
        let page = store
            .identities(
                prod.id,
                &IdentityQuery {
                    page: Some(Page { number: 2, size: 2 }),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!((page.total, page.items.len()), (3, 1));
    });

    store_test!(
        feature_states_are_filtered_counted_and_paged_by_kind,
        |store| {
            let (project, prod, staging, checkout) = setup(&store).await;
            let a = author();
            let checkout = checkout.feature.id;
            let banner = store
                .create_feature(
                    &a,
                    project.id,
                    &NewFeature {
                        name: "banner".into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
                .value
                .feature
                .id;
            let segment = new_segment(&store, project.id, "beta", vec![plan_is("beta")]).await;
            let link = store
                .create_feature_segment(
                    &a,
                    &NewFeatureSegment {
                        feature_id: checkout,
                        segment_id: segment.id,
                        environment_id: prod.id,
                        priority: None,
                    },
                )
                .await
                .unwrap()
                .value;
            let state = |feature: Id, target: StateTarget| NewState {
                feature_id: feature,
                environment_id: prod.id,
                target,
                enabled: true,
                value: Value::from("x"),
                multivariate: vec![],
            };
            store
                .create_feature_state(&a, &state(checkout, StateTarget::FeatureSegment(link.id)))
                .await
                .unwrap();
            for name in ["ann", "bob", "cy"] {
                let identity = store.create_identity(&a, prod.id, name).await.unwrap();
                store
                    .create_feature_state(&a, &state(checkout, StateTarget::Identity(identity.id)))
                    .await
                    .unwrap();
            }
            let dan = store.create_identity(&a, prod.id, "dan").await.unwrap();
            store
                .create_feature_state(&a, &state(banner, StateTarget::Identity(dan.id)))
                .await
                .unwrap();
            let list = |query: StateQuery| {
                let store = store.clone();
                async move {
                    let page = store.feature_states(prod.id, &query).await.unwrap();
                    let kinds: Vec<(Id, bool, bool)> = page
                        .items
                        .iter()
                        .map(|s| {
                            (
                                s.feature_id,
                                s.feature_segment_id.is_some(),
                                s.identity_id.is_some(),
                            )
                        })
                        .collect();
                    (page.total, kinds)
                }
            };
            let of = |kind: StateKind| StateQuery {
                kind,
                ..Default::default()
            };
            // Ordered by feature, then state.
            assert_eq!(
                list(of(StateKind::Shared)).await,
                (
                    3,
                    vec![
                        (checkout, false, false),
                        (checkout, true, false),
                        (banner, false, false)
                    ]
                )
            );
            assert_eq!(
                list(of(StateKind::Defaults)).await,
                (2, vec![(checkout, false, false), (banner, false, false)])
            );
            assert_eq!(
                list(of(StateKind::SegmentOverrides)).await,
                (1, vec![(checkout, true, false)])
            );
            assert_eq!(list(of(StateKind::IdentityOverrides)).await.0, 4);
            // The page is cut in the database; the total counts every match.
            let second = StateQuery {
                kind: StateKind::IdentityOverrides,
                page: Some(Page { number: 2, size: 3 }),
                ..Default::default()
            };
            assert_eq!(list(second).await, (4, vec![(banner, false, true)]));
            let by_name = |name: &str| StateQuery {
                kind: StateKind::IdentityOverrides,
                feature_name: Some(name.into()),
                ..Default::default()
            };
            assert_eq!(list(by_name("checkout")).await.0, 3);
            assert_eq!(list(by_name("nothing")).await, (0, vec![]));
            let by_feature = StateQuery {
                feature: Some(banner),
                ..Default::default()
            };
            assert_eq!(list(by_feature).await, (1, vec![(banner, false, false)]));
            let by_link = StateQuery {
                feature_segment: Some(link.id),
                ..Default::default()
            };
            assert_eq!(list(by_link).await, (1, vec![(checkout, true, false)]));
            // Another environment's states are not listed.
            assert_eq!(
                store
                    .feature_states(staging.id, &of(StateKind::IdentityOverrides))
                    .await
                    .unwrap()
                    .total,
                0
            );
            let counts = store.override_counts(prod.id).await.unwrap();
            assert_eq!(
                counts.get(&checkout),
                Some(&OverrideCounts {
                    segments: 1,
                    identities: 3
                })
            );
            assert_eq!(
                counts.get(&banner),
                Some(&OverrideCounts {
                    segments: 0,
                    identities: 1
                })
            );
            assert!(store.override_counts(staging.id).await.unwrap().is_empty());
        }
    );

    store_test!(
        a_deleted_organisations_history_never_reaches_its_successor,
        |store| {
            // SQLite may hand a deleted row's id to the next row: a new organisation, project or
            // environment must not inherit the log of the one it replaces.
            let (project, prod, _, _) = setup(&store).await;
            let a = author();
            let log_of = |filter: AuditFilter| {
                let store = store.clone();
                async move {
                    store
                        .audit_log(
                            &filter,
                            Page {
                                number: 1,
                                size: 999,
                            },
                        )
                        .await
                        .unwrap()
                        .items
                }
            };
            store
                .create_identity(&a, prod.id, "secret@old.example")
                .await
                .unwrap();
            store.delete_environment(&a, prod.id).await.unwrap();
            let orphaned = log_of(AuditFilter {
                environments: vec![prod.id],
                ..Default::default()
            })
            .await;
            assert!(orphaned.is_empty(), "{orphaned:?}");
            let organisation = store.project(project.id).await.unwrap().organisation_id;
            store.delete_project(&a, project.id).await.unwrap();
            let orphaned = log_of(AuditFilter {
                project: Some(project.id),
                ..Default::default()
            })
            .await;
            assert!(orphaned.is_empty(), "{orphaned:?}");
            // The organisation's own log still tells what happened, without the ids.
            let kept = log_of(AuditFilter {
                organisation: Some(organisation),
                ..Default::default()
            })
            .await;
            assert!(kept.iter().any(|e| e.log.contains("secret@old.example")));
            assert!(kept.iter().any(|e| e.log.starts_with("Project deleted")));
            store.delete_organisation(&a, organisation).await.unwrap();
            let successor = store
                .create_organisation(
                    &a,
                    &NewOrganisation {
                        name: "Beta".into(),
                    },
                )
                .await
                .unwrap();
            let inherited = log_of(AuditFilter {
                organisation: Some(successor.id),
                ..Default::default()
            })
            .await;
            assert!(
                inherited
                    .iter()
                    .all(|e| !e.log.contains("secret@old.example")
                        && !e.log.starts_with("Project deleted")),
                "{inherited:?}"
            );
            // The deletion itself is in the installation's log.
            let everything = log_of(AuditFilter::default()).await;
            assert!(
                everything
                    .iter()
                    .any(|e| e.log.starts_with("Organisation deleted: Acme"))
            );
        }
    );

    store_test!(deleting_a_project_removes_its_environments, |store| {
        let (project, prod, staging, _) = setup(&store).await;
        let clone = store
            .clone_environment(&author(), prod.id, "Copy")
            .await
            .unwrap();
        assert_eq!(
            store
                .feature_states(clone.id, &StateQuery::default())
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        let change = store.delete_project(&author(), project.id).await.unwrap();
        assert_eq!(change.environments, vec![prod.id, staging.id, clone.id]);
        assert!(store.environments().await.unwrap().is_empty());
        assert!(matches!(
            store.project(project.id).await,
            Err(StoreError::NotFound)
        ));
    });

    store_test!(every_admin_object_reads_back_what_was_written, |store| {
        let (project, prod, staging, checkout) = setup(&store).await;
        let a = author();
        let organisation = project.organisation_id;
        // Organisations and projects.
        assert_eq!(store.organisations().await.unwrap().len(), 1);
        let renamed = store
            .update_organisation(
                &a,
                organisation,
                &OrganisationUpdate {
                    name: Some("Acme Ltd".into()),
                    persist_trait_data: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .value;
        assert_eq!(store.organisation(organisation).await.unwrap(), renamed);
        assert_eq!(
            (renamed.name.as_str(), renamed.persist_trait_data),
            ("Acme Ltd", false)
        );
        let updated = store
            .update_project(
                &a,
                project.id,
                &ProjectUpdate {
                    hide_disabled_flags: Some(true),
                    feature_name_regex: Some(Some("^[a-z_]+$".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .value;
        assert!(updated.hide_disabled_flags);
        assert_eq!(
            store.projects(Some(organisation)).await.unwrap(),
            vec![updated]
        );
        assert!(
            store
                .projects(Some(organisation + 1000))
                .await
                .unwrap()
                .is_empty()
        );
        // Environments.
        let environment = store
            .update_environment(
                &a,
                staging.id,
                &EnvironmentUpdate {
                    description: Some(Some("pre-production".into())),
                    allow_client_traits: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(environment.description.as_deref(), Some("pre-production"));
        assert!(!environment.allow_client_traits);
        let names: Vec<String> = store
            .project_environments(project.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["Production", "Staging"]);
        // Every environment's revision moves with its changes.
        let before: Vec<(Id, i64)> = store.revisions().await.unwrap();
        let feature = store
            .update_feature(
                &a,
                project.id,
                checkout.feature.id,
                &FeatureUpdate {
                    description: Some(Some("the checkout flow".into())),
                    default_enabled: Some(false),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .value;
        assert_eq!(
            store
                .feature(project.id, checkout.feature.id)
                .await
                .unwrap(),
            feature
        );
        assert_eq!(
            feature.feature.description.as_deref(),
            Some("the checkout flow")
        );
        // Multivariate options: add, change, remove.
        let option = store
            .create_option(
                &a,
                checkout.feature.id,
                &NewOption {
                    value: Value::from("modal"),
                    default_percentage_allocation: 10.0,
                    key: Some("modal".into()),
                },
            )
            .await
            .unwrap()
            .value;
        let changed = store
            .update_option(
                &a,
                checkout.feature.id,
                option.id,
                &NewOption {
                    value: Value::from("drawer"),
                    default_percentage_allocation: 15.0,
                    key: Some("drawer".into()),
                },
            )
            .await
            .unwrap()
            .value;
        assert_eq!(
            (changed.value.clone(), changed.default_percentage_allocation),
            (Value::from("drawer"), 15.0)
        );
        // Over 100% in all is refused and changes nothing.
        assert!(matches!(
            store
                .update_option(
                    &a,
                    checkout.feature.id,
                    option.id,
                    &NewOption {
                        value: Value::from("drawer"),
                        default_percentage_allocation: 90.0,
                        key: None,
                    },
                )
                .await,
            Err(StoreError::Invalid(_))
        ));
        let options = |store: Arc<dyn Store>| async move {
            store
                .feature(project.id, checkout.feature.id)
                .await
                .unwrap()
                .options
                .into_iter()
                .map(|o| o.default_percentage_allocation)
                .collect::<Vec<f64>>()
        };
        assert_eq!(options(store.clone()).await, vec![30.0, 20.0, 15.0]);
        store
            .delete_option(&a, checkout.feature.id, option.id)
            .await
            .unwrap();
        assert_eq!(options(store.clone()).await, vec![30.0, 20.0]);
        let after: Vec<(Id, i64)> = store.revisions().await.unwrap();
        for ((id, old), (same, new)) in before.iter().zip(&after) {
            assert_eq!(id, same);
            assert!(new > old, "environment {id}: revision {old} -> {new}");
        }
        // Segments, and a segment override made in one call.
        let segment = new_segment(&store, project.id, "pros", vec![plan_is("pro")]).await;
        let rewritten = store
            .update_segment(
                &a,
                project.id,
                segment.id,
                &NewSegment {
                    name: "teams".into(),
                    rules: vec![plan_is("team")],
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .value;
        assert_eq!(
            store.segment(project.id, segment.id).await.unwrap(),
            rewritten
        );
        assert_eq!(
            rewritten.rules[0].conditions[0].value.as_deref(),
            Some("team")
        );
        let found = store
            .segments(
                project.id,
                &SegmentQuery {
                    search: Some("TEA".into()),
                    page: None,
                },
            )
            .await
            .unwrap();
        assert_eq!((found.total, found.items[0].id), (1, segment.id));
        let (link, state) = store
            .create_segment_override(
                &a,
                &NewFeatureSegment {
                    feature_id: checkout.feature.id,
                    segment_id: segment.id,
                    environment_id: prod.id,
                    priority: None,
                },
                true,
                &Value::from("teams-only"),
                &[],
            )
            .await
            .unwrap()
            .value;
        assert_eq!(store.feature_segment(link.id).await.unwrap(), link);
        assert_eq!(state.feature_segment_id, Some(link.id));
        let exported = store.environment_export(prod.id).await.unwrap();
        assert!(
            exported
                .states
                .iter()
                .any(|s| s.value == Value::from("teams-only"))
        );
        // Identities: a trait set, changed, deleted; a trait removed everywhere; the identity removed.
        let ann = store.create_identity(&a, prod.id, "ann").await.unwrap();
        let bob = store.create_identity(&a, prod.id, "bob").await.unwrap();
        for identity in [&ann, &bob] {
            store
                .set_identity_trait(&a, prod.id, identity.id, "plan", Some(&Value::from("team")))
                .await
                .unwrap();
        }
        let set = store
            .set_identity_trait(&a, prod.id, ann.id, "seats", Some(&Value::Int(3)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (set.key.as_str(), set.value.clone()),
            ("seats", Value::Int(3))
        );
        assert_eq!(
            store
                .set_identity_trait(&a, prod.id, ann.id, "seats", None)
                .await
                .unwrap(),
            None
        );
        let traits = |id: Id| {
            let store = store.clone();
            async move {
                let mut keys: Vec<String> = store
                    .identity_by_id(prod.id, id)
                    .await
                    .unwrap()
                    .traits
                    .into_iter()
                    .map(|t| t.key)
                    .collect();
                keys.sort();
                keys
            }
        };
        assert_eq!(traits(ann.id).await, vec!["plan"]);
        assert_eq!(
            store
                .delete_traits_matching(&a, prod.id, "plan")
                .await
                .unwrap(),
            2
        );
        assert!(traits(ann.id).await.is_empty() && traits(bob.id).await.is_empty());
        store.delete_identity(&a, prod.id, bob.id).await.unwrap();
        assert!(matches!(
            store.identity_by_id(prod.id, bob.id).await,
            Err(StoreError::NotFound)
        ));
        // Webhooks: listed, changed, due, deleted.
        let hook = store
            .create_webhook(
                &a,
                prod.id,
                &NewWebhook {
                    url: "http://127.0.0.1:1/a".into(),
                    enabled: true,
                    secret: None,
                },
            )
            .await
            .unwrap();
        let moved = store
            .update_webhook(
                &a,
                prod.id,
                hook.id,
                &NewWebhook {
                    url: "http://127.0.0.1:1/b".into(),
                    enabled: false,
                    secret: Some("s".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(store.webhooks(prod.id).await.unwrap(), vec![moved.clone()]);
        assert!(!moved.enabled);
        // A disabled webhook queues nothing; an enabled one is due after a flag change.
        assert_eq!(store.next_delivery_at().await.unwrap(), None);
        store
            .update_webhook(
                &a,
                prod.id,
                hook.id,
                &NewWebhook {
                    url: "http://127.0.0.1:1/b".into(),
                    enabled: true,
                    secret: None,
                },
            )
            .await
            .unwrap();
        store
            .delete_feature(&a, project.id, checkout.feature.id)
            .await
            .unwrap();
        assert!(store.next_delivery_at().await.unwrap().is_some());
        assert!(matches!(
            store.feature(project.id, checkout.feature.id).await,
            Err(StoreError::NotFound)
        ));
        store.delete_webhook(&a, prod.id, hook.id).await.unwrap();
        assert!(store.webhooks(prod.id).await.unwrap().is_empty());
        // API keys of the organisation, and the schema is complete.
        assert!(store.api_keys(organisation).await.unwrap().is_empty());
        assert!(store.pending_migrations().await.unwrap().is_empty());
    });

    store_test!(api_keys_by_prefix, |store| {
        let org = store
            .create_organisation(&author(), &NewOrganisation { name: "o".into() })
            .await
            .unwrap();
        let new = NewApiKey {
            name: "ci".into(),
            prefix: "AbCd1234".into(),
            key_hash: "h".into(),
            is_admin: true,
            expires_at: None,
        };
        let key = store.create_api_key(&author(), org.id, &new).await.unwrap();
        assert_eq!(
            store.api_key_by_prefix("AbCd1234").await.unwrap(),
            Some(key.clone())
        );
        let revoked = store
            .update_api_key(
                &author(),
                org.id,
                "AbCd1234",
                &ApiKeyUpdate {
                    revoked: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(revoked.revoked);
        store
            .delete_api_key(&author(), org.id, "AbCd1234")
            .await
            .unwrap();
        assert_eq!(store.api_key_by_prefix("AbCd1234").await.unwrap(), None);
    });
}

/// A connection to the PostgreSQL database at `url` named as servers of releases without the
/// sole-writer lease name theirs: while it is open, no store takes the lease.
async fn earlier_release_connection(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection as _;
    use std::str::FromStr as _;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .unwrap()
        .application_name("bullet-train");
    sqlx::PgConnection::connect_with(&options).await.unwrap()
}

/// Identity `ann`'s `colour` trait set to `value`, as [`Store::write_traits`] takes it.
fn colour(value: &str) -> Vec<(String, Vec<TraitChange>)> {
    vec![(
        "ann".to_owned(),
        vec![TraitChange {
            key: "colour".into(),
            value: Some(Value::from(value)),
        }],
    )]
}

/// PostgreSQL, two stores on one database (two replicas): one keeps identities in memory only while
/// it follows the change feed, and the feed brings it the other's writes.
#[tokio::test]
async fn postgres_identities_kept_in_memory_follow_the_change_feed() {
    let database = TestDatabase::postgres().await;
    // Neither store takes the sole-writer lease (tested below) while this is connected.
    let _earlier = earlier_release_connection(database.url()).await;
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(database.url()).await.unwrap());
    a.migrate().await.unwrap();
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(database.url()).await.unwrap());
    let env = a.import_document(&sample()).await.unwrap().environment_id;
    let stored = |record: Option<bullet_train_store::model::IdentityRecord>| {
        record.unwrap().traits[0].value.clone()
    };
    a.write_traits(env, &colour("red")).await.unwrap();

    // Without a feed nothing is kept: every read is the database's.
    assert_eq!(b.identity_generation(), None);
    b.identity(env, "ann").await.unwrap();
    a.write_traits(env, &colour("green")).await.unwrap();
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("green")
    );

    let mut feed = b.change_feed().await.unwrap().unwrap();
    let generation = b
        .identity_generation()
        .expect("kept while the feed follows");
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("green")
    );
    a.write_traits(env, &colour("blue")).await.unwrap();
    // Until the feed is read, B answers from memory...
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("green")
    );
    // ...but never decides whether a write is needed from it: "green" now would be a change.
    assert!(b.shared());
    assert_eq!(
        b.traits_for_write(env, "ann").await.unwrap().unwrap()[0].value,
        Value::from("blue")
    );
    assert_eq!(b.traits_for_write(env, "nobody").await.unwrap(), None);
    // ...and the notification of A's commit drops what it kept.
    let change = tokio::time::timeout(std::time::Duration::from_secs(10), feed.next())
        .await
        .expect("the feed reported nothing");
    assert_eq!(change.unwrap(), bullet_train_store::Change::Identities);
    assert_ne!(b.identity_generation(), Some(generation));
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("blue")
    );

    // B's own writes are read back at once, feed or not.
    b.write_traits(env, &colour("grey")).await.unwrap();
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("grey")
    );

    // Once the feed is gone, B reads the database again.
    drop(feed);
    assert_eq!(b.identity_generation(), None);
    a.write_traits(env, &colour("black")).await.unwrap();
    assert_eq!(
        stored(b.identity(env, "ann").await.unwrap()),
        Value::from("black")
    );
}

/// PostgreSQL: a store alone on its database becomes its sole writer (it may then decide trait
/// writes from memory); another store's first write waits until it has stepped down; a store that
/// vanishes without stepping down (a crash) delays the others' writes until its lease runs out,
/// and never blocks them.
#[tokio::test]
async fn postgres_a_store_alone_on_its_database_is_its_sole_writer() {
    use std::time::Duration;
    let database = TestDatabase::postgres().await;
    let a = PgStore::connect(database.url()).await.unwrap();
    a.migrate().await.unwrap();
    let mut a_mode = a.sole_writer_changes();
    // A keeps identities in memory while it has a feed. The feed is not read: another store's
    // request to step down, which arrives through it, stays unheard, so A steps down only at its
    // next tick and B's write is seen to wait for that.
    let feed = a.change_feed().await.unwrap().unwrap();
    let sole = |mode: &mut tokio::sync::watch::Receiver<bool>| {
        let mode = mode.clone();
        async move {
            let mut mode = mode;
            tokio::time::timeout(Duration::from_secs(10), mode.wait_for(|sole| *sole))
                .await
                .expect("never became the sole writer")
                .unwrap();
        }
    };
    sole(&mut a_mode).await;
    assert!(!a.shared());
    let env = a.import_document(&sample()).await.unwrap().environment_id;
    a.write_traits(env, &colour("red")).await.unwrap();

    let b = PgStore::connect(database.url()).await.unwrap();
    b.write_traits(env, &colour("blue")).await.unwrap();
    assert!(a.shared(), "A stepped down before B wrote");
    assert_eq!(
        a.traits_for_write(env, "ann").await.unwrap().unwrap()[0].value,
        Value::from("blue")
    );

    // B leaves cleanly: A is alone again.
    b.close().await;
    sole(&mut a_mode).await;

    // A vanishes holding the lease: C's write waits for the lease to run out, then succeeds.
    drop(feed);
    drop(a);
    let c = PgStore::connect(database.url()).await.unwrap();
    c.write_traits(env, &colour("green")).await.unwrap();
    assert_eq!(
        c.identity(env, "ann").await.unwrap().unwrap().traits[0].value,
        Value::from("green")
    );
}

/// PostgreSQL: while a server of an earlier release, which knows nothing of the sole-writer lease,
/// is connected to the database (its connections are named plain `bullet-train`), no replica takes
/// the lease; once it is gone, one does.
#[tokio::test]
async fn postgres_no_sole_writer_while_a_server_of_an_earlier_release_is_connected() {
    use sqlx::Connection as _;
    use std::time::Duration;
    let database = TestDatabase::postgres().await;
    let earlier = earlier_release_connection(database.url()).await;
    let a = PgStore::connect(database.url()).await.unwrap();
    a.migrate().await.unwrap();
    let _feed = a.change_feed().await.unwrap().unwrap();
    let mut mode = a.sole_writer_changes();
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), mode.changed())
            .await
            .expect("no tick")
            .unwrap();
        assert!(!*mode.borrow_and_update(), "took the lease");
        assert!(a.shared());
    }
    earlier.close().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), mode.wait_for(|sole| *sole))
        .await
        .expect("never became the sole writer")
        .unwrap();
    assert!(!a.shared());
}

/// Counts, from `watch`, the requests waiting for the advisory lock that every write transaction
/// shares and that taking the sole-writer lease holds exclusively (`lease.rs`), until there are
/// `n` (at most ten seconds).
async fn lock_waiters(watch: &mut sqlx::PgConnection, n: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 7310 \
             AND objid = 1 AND NOT granted",
        )
        .fetch_one(&mut *watch)
        .await
        .unwrap();
        if waiting == n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting} waiting, not {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Identity `ann`'s stored `colour`, read from the database by `watch`.
async fn stored_colour(watch: &mut sqlx::PgConnection) -> String {
    sqlx::query_scalar(
        "SELECT t.value FROM traits t JOIN identities i ON i.id = t.identity_id \
         WHERE i.identifier = 'ann' AND t.key = 'colour'",
    )
    .fetch_one(watch)
    .await
    .unwrap()
}

/// PostgreSQL: the lease holder's own writes pass the fence too. Should another replica hold a
/// valid lease (the holder's ran out while it was paused, say), the holder's write waits for that
/// lease to end rather than commit on the strength of what the holder believed.
#[tokio::test]
async fn postgres_the_holders_own_write_waits_while_another_lease_is_valid() {
    use sqlx::Connection as _;
    use std::time::Duration;
    let database = TestDatabase::postgres().await;
    let a = Arc::new(PgStore::connect(database.url()).await.unwrap());
    let mut mode = a.sole_writer_changes();
    a.migrate().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), mode.wait_for(|sole| *sole))
        .await
        .expect("never became the sole writer")
        .unwrap();
    let env = a.import_document(&sample()).await.unwrap().environment_id;
    a.write_traits(env, &colour("red")).await.unwrap();

    let connect = || sqlx::PgConnection::connect(database.url());
    let (mut t1, mut t2, mut watch) = (
        connect().await.unwrap(),
        connect().await.unwrap(),
        connect().await.unwrap(),
    );
    // T1 takes the lock exclusively and hands the lease to another replica (not yet committed).
    let mut tx1 = t1.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7310, 1)")
        .execute(&mut *tx1)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sole_writer SET replica = -42, until = clock_timestamp() + INTERVAL '1 hour'",
    )
    .execute(&mut *tx1)
    .await
    .unwrap();
    // A's write reaches the fence and waits for the lock...
    let write = tokio::spawn({
        let a = a.clone();
        async move { a.write_traits(env, &colour("blue")).await }
    });
    lock_waiters(&mut watch, 1).await;
    // ...with T2 queued behind it for the lock, exclusively.
    let queued = tokio::spawn(async move {
        sqlx::query("BEGIN").execute(&mut t2).await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(7310, 1)")
            .execute(&mut t2)
            .await
            .unwrap();
        t2
    });
    lock_waiters(&mut watch, 2).await;
    // The other lease is committed: A, first in the queue, reads it and gives way; T2 gets the
    // lock once A's transaction has ended.
    tx1.commit().await.unwrap();
    let mut t2 = queued.await.unwrap();
    assert!(!write.is_finished());
    assert!(stored_colour(&mut watch).await.contains("red"));
    // A tries again and waits behind T2, which ends the other lease.
    lock_waiters(&mut watch, 1).await;
    sqlx::query("UPDATE sole_writer SET replica = NULL, until = NULL")
        .execute(&mut t2)
        .await
        .unwrap();
    sqlx::query("COMMIT").execute(&mut t2).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), write)
        .await
        .expect("the write never went through")
        .unwrap()
        .unwrap();
    assert!(stored_colour(&mut watch).await.contains("blue"));
}

store_test!(
    identity_pages_past_the_counted_ten_thousand_stay_reachable,
    |store| {
        use bullet_train_store::admin::IdentityQuery;
        use bullet_train_store::model::Page;

        let env = store
            .import_document(&sample())
            .await
            .unwrap()
            .environment_id;
        let identities: Vec<(String, Vec<TraitChange>)> = (0..10_050)
            .map(|i| (format!("user-{i:05}"), Vec::new()))
            .collect();
        store.write_traits(env, &identities).await.unwrap();
        let page = |number| IdentityQuery {
            search: None,
            exact: false,
            page: Some(Page { number, size: 1000 }),
        };
        // The count stops at 10,000...
        let first = store.identities(env, &page(1)).await.unwrap();
        assert_eq!((first.items.len(), first.total), (1000, 10_000));
        // ...but a page beyond it counts as far as it reaches, so it exists and ends the list (the
        // sample's own identity, with overrides, comes first).
        let last = store.identities(env, &page(11)).await.unwrap();
        assert_eq!((last.items.len(), last.total), (51, 10_051));
        assert_eq!(last.items[50].identifier, "user-10049");
        let tenth = store.identities(env, &page(10)).await.unwrap();
        assert_eq!(tenth.items.len(), 1000);
        assert!(
            tenth.total > 10_000,
            "page 11 is announced: {}",
            tenth.total
        );
    }
);

store_test!(
    traits_for_write_answer_many_concurrent_requests_each_their_own,
    |store| {
        let env = store
            .import_document(&sample())
            .await
            .unwrap()
            .environment_id;
        // Identities 0..50 with one trait each (its number), 50..60 with none, 60..70 absent.
        let with_traits: Vec<(String, Vec<TraitChange>)> = (0..50)
            .map(|i| {
                (
                    format!("user-{i}"),
                    vec![TraitChange {
                        key: "n".into(),
                        value: Some(Value::Int(i)),
                    }],
                )
            })
            .chain((50..60).map(|i| (format!("user-{i}"), Vec::new())))
            .collect();
        store.write_traits(env, &with_traits).await.unwrap();
        let reads = (0..70).map(|i| {
            let store = store.clone();
            async move {
                (
                    i,
                    store
                        .traits_for_write(env, &format!("user-{i}"))
                        .await
                        .unwrap(),
                )
            }
        });
        for (i, traits) in futures_util::future::join_all(reads).await {
            match i {
                0..50 => {
                    let traits = traits.expect("stored");
                    assert_eq!(traits.len(), 1, "user-{i}");
                    assert_eq!(traits[0].value, Value::Int(i), "user-{i}");
                }
                50..60 => assert_eq!(traits, Some(Vec::new()), "user-{i}"),
                _ => assert_eq!(traits, None, "user-{i}"),
            }
        }
    }
);
