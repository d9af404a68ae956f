//! The store conformance suite: every scenario runs against each backend through the `Store` trait.

use std::sync::Arc;

use bullet_train_protocol::{EnvironmentDocument, Value};
use bullet_train_store::document::to_document;
use bullet_train_store::model::{Increment, TraitChange};
use bullet_train_store::{ServerKeyUpdate, SqliteStore, Store, StoreError};
use serde_json::json;

/// A fresh, migrated SQLite store in a temporary directory (kept alive by the returned guard).
async fn sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), dir)
}

/// Declares one test per backend running `$body` with `store: Arc<dyn Store>`.
macro_rules! store_test {
    ($name:ident, |$store:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let ($store, _guard) = super::sqlite().await;
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
    let env = store
        .import_document(&sample())
        .await
        .unwrap()
        .environment_id;
    let key = store
        .create_server_key(env, "ci", "abc123", "ser.AbC", None)
        .await
        .unwrap();
    assert!(key.active);
    let updated = store
        .update_server_key(
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
            .create_server_key(env, "dup", "abc123", "ser.X", None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_server_key(env, key.id).await.unwrap();
    assert!(matches!(
        store.delete_server_key(env, key.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.server_keys(None).await.unwrap().is_empty());
});

store_test!(evaluation_counts_accumulate_per_day, |store| {
    let env = store
        .import_document(&sample())
        .await
        .unwrap()
        .environment_id;
    let feature = store.environment_data(env).await.unwrap().features[0].id;
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
