//! The SQL implementation of [`crate::Store`], written once and instantiated per backend by
//! `sql_store!(StoreType, sqlx::Database)`. The store type must have a `read` pool and a `write`
//! [`crate::cache::Writer`] of that database, and a `MIGRATIONS` table in scope where it is invoked. Every statement uses `$N` placeholders, `RETURNING` and
//! `ON CONFLICT`, which SQLite and PostgreSQL both accept; dialect differences live in each backend's
//! migrations.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use bullet_train_protocol::Value;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

use crate::StoreError;

/// Most identities an identity count visits: above it, lists report this many (search narrows them).
pub(crate) const IDENTITY_COUNT_LIMIT: i64 = 10_000;

/// Migrations embedded in the binary, as an sqlx migration source.
#[derive(Debug)]
pub(crate) struct Embedded(pub(crate) &'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<Vec<Migration>, BoxDynError>> + Send + 's>>
    {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A value as stored: its JSON text.
pub(crate) fn value_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A stored value.
pub(crate) fn parse_value(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(anyhow::anyhow!("corrupt stored value {text:?}: {e}")))
}

macro_rules! sql_store {
    ($store:ident, $db:ty) => {
        mod backend {
        use super::$store;
        use std::collections::{HashMap, HashSet};

        use anyhow::Context as _;
        use async_trait::async_trait;
        use bullet_train_protocol::document as doc;
        use bullet_train_protocol::{EnvironmentDocument, Value};
        use sqlx::Row as _;

        use $crate::document::{
            model_rule, multivariate_sort_keys, name_key, normalised_priorities,
            typed_initial_value, validate,
        };
        use $crate::model::*;
        use $crate::random;
        use $crate::sql::{parse_value, value_text};
        use $crate::time::{now_micros, parse_iso};
        use $crate::{Result, ServerKeyUpdate, Store, StoreError};

        type Conn = <$db as sqlx::Database>::Connection;
        type DbRow = <$db as sqlx::Database>::Row;

        $crate::sql_admin::sql_admin_items!($store, $db);

        const ENVIRONMENT_COLUMNS: &str = "id, uuid, project_id, api_key, name, description, \
            allow_client_traits, hide_sensitive_data, hide_disabled_flags, \
            use_identity_composite_key_for_hashing, use_identity_overrides_in_local_eval, \
            updated_at, revision, created_at";
        const STATE_COLUMNS: &str = "id, feature_id, environment_id, feature_segment_id, \
            identity_id, enabled, value, seed, uuid, updated_at";
        const SERVER_KEY_COLUMNS: &str =
            "id, environment_id, key_hash, prefix, name, active, expires_at, created_at";
        const IDENTITY_COLUMNS: &str = "id, environment_id, identifier, uuid, created_at";

        fn environment_row(row: &DbRow) -> Result<Environment> {
            Ok(Environment {
                id: row.try_get("id")?,
                uuid: row.try_get("uuid")?,
                project_id: row.try_get("project_id")?,
                api_key: row.try_get("api_key")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                allow_client_traits: row.try_get("allow_client_traits")?,
                hide_sensitive_data: row.try_get("hide_sensitive_data")?,
                hide_disabled_flags: row.try_get("hide_disabled_flags")?,
                use_identity_composite_key_for_hashing: row
                    .try_get("use_identity_composite_key_for_hashing")?,
                use_identity_overrides_in_local_eval: row
                    .try_get("use_identity_overrides_in_local_eval")?,
                updated_at: row.try_get("updated_at")?,
                revision: row.try_get("revision")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn state_row(row: &DbRow) -> Result<FeatureState> {
            Ok(FeatureState {
                id: row.try_get("id")?,
                feature_id: row.try_get("feature_id")?,
                environment_id: row.try_get("environment_id")?,
                feature_segment_id: row.try_get("feature_segment_id")?,
                identity_id: row.try_get("identity_id")?,
                enabled: row.try_get("enabled")?,
                value: parse_value(row.try_get("value")?)?,
                seed: row.try_get("seed")?,
                uuid: row.try_get("uuid")?,
                multivariate: Vec::new(),
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn server_key_row(row: &DbRow) -> Result<ServerKey> {
            Ok(ServerKey {
                id: row.try_get("id")?,
                environment_id: row.try_get("environment_id")?,
                key_hash: row.try_get("key_hash")?,
                prefix: row.try_get("prefix")?,
                name: row.try_get("name")?,
                active: row.try_get("active")?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
            })
        }

        /// A server-side key as the audit log describes it: never its hash.
        fn server_key_json(key: &ServerKey) -> serde_json::Value {
            serde_json::json!({
                "id": key.id,
                "name": key.name,
                "prefix": key.prefix,
                "active": key.active,
                "expires_at": key.expires_at.map($crate::time::iso),
            })
        }

        fn identity_row(row: &DbRow) -> Result<Identity> {
            Ok(Identity {
                id: row.try_get("id")?,
                environment_id: row.try_get("environment_id")?,
                identifier: row.try_get("identifier")?,
                uuid: row.try_get("uuid")?,
                created_at: row.try_get("created_at")?,
            })
        }

        /// Marks an environment changed: new revision, `updated_at` strictly increasing.
        async fn touch_environment(conn: &mut Conn, environment_id: Id) -> Result<()> {
            sqlx::query(
                "UPDATE environments SET revision = revision + 1, \
                 updated_at = CASE WHEN updated_at >= $1 THEN updated_at + 1 ELSE $1 END \
                 WHERE id = $2",
            )
            .bind(now_micros())
            .bind(environment_id)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn environment_by_id(conn: &mut Conn, id: Id) -> Result<Environment> {
            let row = sqlx::query(&format!(
                "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            environment_row(&row)
        }

        /// Attaches multivariate values to states (queried by the given filter on `feature_states`).
        async fn attach_multivariate(
            conn: &mut Conn,
            states: &mut [FeatureState],
            filter: &str,
            id: Id,
        ) -> Result<()> {
            if states.is_empty() {
                return Ok(());
            }
            let rows = sqlx::query(&format!(
                "SELECT mv.id, mv.feature_state_id, mv.option_id, mv.percentage_allocation, \
                 mv.sort_key, mv.uuid FROM multivariate_values mv \
                 JOIN feature_states fs ON fs.id = mv.feature_state_id \
                 WHERE {filter} ORDER BY mv.sort_key, mv.id"
            ))
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
            let index: HashMap<Id, usize> =
                states.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
            for row in rows {
                let state_id: Id = row.try_get("feature_state_id")?;
                if let Some(&i) = index.get(&state_id) {
                    states[i].multivariate.push(MultivariateValue {
                        id: row.try_get("id")?,
                        option_id: row.try_get("option_id")?,
                        percentage_allocation: row.try_get("percentage_allocation")?,
                        sort_key: row.try_get("sort_key")?,
                        uuid: row.try_get("uuid")?,
                    });
                }
            }
            Ok(())
        }

        /// A trait from a row holding its `id`, `key` and `value`.
        pub(super) fn trait_row(row: &DbRow) -> Result<Trait> {
            Ok(Trait {
                id: row.try_get("id")?,
                key: row.try_get("key")?,
                value: parse_value(row.try_get("value")?)?,
            })
        }

        async fn identity_record(conn: &mut Conn, identity: Identity) -> Result<IdentityRecord> {
            let traits = sqlx::query("SELECT id, key, value FROM traits WHERE identity_id = $1 ORDER BY id")
                .bind(identity.id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(trait_row)
                .collect::<Result<Vec<_>>>()?;
            let overrides = sqlx::query(&format!(
                "SELECT {STATE_COLUMNS} FROM feature_states WHERE identity_id = $1 ORDER BY feature_id"
            ))
            .bind(identity.id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(state_row)
            .collect::<Result<Vec<_>>>()?;
            Ok(IdentityRecord {
                identity,
                traits,
                overrides,
            })
        }

        async fn find_identity(
            conn: &mut Conn,
            environment_id: Id,
            identifier: &str,
        ) -> Result<Option<Identity>> {
            sqlx::query(&format!(
                "SELECT {IDENTITY_COLUMNS} FROM identities WHERE environment_id = $1 AND identifier = $2"
            ))
            .bind(environment_id)
            .bind(identifier)
            .fetch_optional(&mut *conn)
            .await?
            .as_ref()
            .map(identity_row)
            .transpose()
        }

        /// The identity, created when missing (concurrent creators agree on one row).
        async fn upsert_identity(
            conn: &mut Conn,
            environment_id: Id,
            identifier: &str,
            uuid: Option<&str>,
            created_at: Option<Micros>,
        ) -> Result<Identity> {
            if let Some(identity) = find_identity(conn, environment_id, identifier).await? {
                return Ok(identity);
            }
            sqlx::query(
                "INSERT INTO identities (environment_id, identifier, uuid, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (environment_id, identifier) DO NOTHING",
            )
            .bind(environment_id)
            .bind(identifier)
            .bind(uuid.map_or_else(random::uuid_v4, str::to_owned))
            .bind(created_at.unwrap_or_else(now_micros))
            .execute(&mut *conn)
            .await?;
            find_identity(conn, environment_id, identifier)
                .await?
                .ok_or(StoreError::NotFound)
        }

        /// Inserts a feature state and its multivariate values; returns its id.
        #[allow(clippy::too_many_arguments)]
        async fn insert_state(
            conn: &mut Conn,
            feature_id: Id,
            environment_id: Id,
            feature_segment_id: Option<Id>,
            identity_id: Option<Id>,
            enabled: bool,
            value: &Value,
            seed: Option<i64>,
            uuid: Option<&str>,
            multivariate: &[(Id, f64, i64, Option<&str>)],
        ) -> Result<Id> {
            let now = now_micros();
            let id: Id = sqlx::query(
                "INSERT INTO feature_states (feature_id, environment_id, feature_segment_id, \
                 identity_id, enabled, value, seed, uuid, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
            )
            .bind(feature_id)
            .bind(environment_id)
            .bind(feature_segment_id)
            .bind(identity_id)
            .bind(enabled)
            .bind(value_text(value))
            .bind(seed)
            .bind(uuid.map_or_else(random::uuid_v4, str::to_owned))
            .bind(now)
            .fetch_one(&mut *conn)
            .await?
            .try_get("id")?;
            for (option_id, allocation, sort_key, uuid) in multivariate {
                sqlx::query(
                    "INSERT INTO multivariate_values (feature_state_id, option_id, \
                     percentage_allocation, sort_key, uuid) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(option_id)
                .bind(allocation)
                .bind(sort_key)
                .bind(uuid.map_or_else(random::uuid_v4, str::to_owned))
                .execute(&mut *conn)
                .await?;
            }
            Ok(id)
        }

        /// Options of features touched by an import, matched by key, then by value.
        #[derive(Default)]
        struct OptionIndex {
            by_feature: HashMap<Id, Vec<(Id, Value, Option<String>)>>,
        }

        impl OptionIndex {
            async fn resolve(
                &mut self,
                conn: &mut Conn,
                feature_id: Id,
                option: &doc::MultivariateFeatureOption,
                allocation: f64,
            ) -> Result<Id> {
                if !self.by_feature.contains_key(&feature_id) {
                    let rows = sqlx::query(
                        "SELECT id, value, key FROM multivariate_options WHERE feature_id = $1 ORDER BY id",
                    )
                    .bind(feature_id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let options = rows
                        .iter()
                        .map(|row| {
                            Ok((
                                row.try_get("id")?,
                                parse_value(row.try_get("value")?)?,
                                row.try_get("key")?,
                            ))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    self.by_feature.insert(feature_id, options);
                }
                let options = self.by_feature.entry(feature_id).or_default();
                let found = match option.key.as_deref().filter(|k| !k.is_empty()) {
                    Some(key) => options.iter().find(|o| o.2.as_deref() == Some(key)),
                    None => options.iter().find(|o| o.1 == option.value && o.2.is_none()),
                };
                if let Some(found) = found {
                    return Ok(found.0);
                }
                let id: Id = sqlx::query(
                    "INSERT INTO multivariate_options (feature_id, value, \
                     default_percentage_allocation, key, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(feature_id)
                .bind(value_text(&option.value))
                .bind(allocation)
                .bind(option.key.as_deref())
                .bind(now_micros())
                .fetch_one(&mut *conn)
                .await?
                .try_get("id")?;
                options.push((id, option.value.clone(), option.key.clone()));
                Ok(id)
            }
        }

        /// Inserts a document feature state, resolving its multivariate options.
        async fn insert_document_state(
            conn: &mut Conn,
            options: &mut OptionIndex,
            feature_id: Id,
            environment_id: Id,
            feature_segment_id: Option<Id>,
            identity_id: Option<Id>,
            state: &doc::FeatureState,
        ) -> Result<Id> {
            let sort_keys = multivariate_sort_keys(&state.multivariate_feature_state_values);
            let mut multivariate = Vec::new();
            for (mv, sort_key) in state.multivariate_feature_state_values.iter().zip(sort_keys) {
                let option_id = options
                    .resolve(conn, feature_id, &mv.multivariate_feature_option, mv.percentage_allocation)
                    .await?;
                multivariate.push((
                    option_id,
                    mv.percentage_allocation,
                    sort_key,
                    mv.mv_fs_value_uuid.as_deref(),
                ));
            }
            let seed = state.django_id.filter(|id| *id != 0).map(|id| id as i64);
            insert_state(
                conn,
                feature_id,
                environment_id,
                feature_segment_id,
                identity_id,
                state.enabled,
                &state.feature_state_value,
                seed,
                state.featurestate_uuid.as_deref(),
                &multivariate,
            )
            .await
        }

        /// Gives every environment of the project lacking one a default state for the feature.
        async fn create_missing_defaults(
            conn: &mut Conn,
            feature_id: Id,
            project_id: Id,
            skip_environment: Option<Id>,
            enabled: bool,
            value: &Value,
        ) -> Result<()> {
            let environments: Vec<Id> = sqlx::query(
                "SELECT e.id FROM environments e WHERE e.project_id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM feature_states fs WHERE fs.environment_id = e.id \
                 AND fs.feature_id = $2 AND fs.feature_segment_id IS NULL AND fs.identity_id IS NULL)",
            )
            .bind(project_id)
            .bind(feature_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
            for environment_id in environments {
                if Some(environment_id) == skip_environment {
                    continue;
                }
                insert_state(
                    conn,
                    feature_id,
                    environment_id,
                    None,
                    None,
                    enabled,
                    value,
                    Some(random::seed()),
                    None,
                    &[],
                )
                .await?;
                touch_environment(conn, environment_id).await?;
            }
            Ok(())
        }

        async fn import(conn: &mut Conn, document: &EnvironmentDocument) -> Result<ImportOutcome> {
            validate(document)?;
            let now = now_micros();
            let organisation = &document.project.organisation;

            // The environment, its project and organisation.
            let existing = sqlx::query(&format!(
                "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE api_key = $1"
            ))
            .bind(&document.api_key)
            .fetch_optional(&mut *conn)
            .await?
            .as_ref()
            .map(environment_row)
            .transpose()?;
            let (environment_id, project_id, created) = match existing {
                Some(environment) => {
                    sqlx::query(
                        "UPDATE environments SET name = $1, allow_client_traits = $2, \
                         hide_sensitive_data = $3, hide_disabled_flags = $4, \
                         use_identity_composite_key_for_hashing = $5, \
                         use_identity_overrides_in_local_eval = $6 WHERE id = $7",
                    )
                    .bind(&document.name)
                    .bind(document.allow_client_traits)
                    .bind(document.hide_sensitive_data)
                    .bind(document.hide_disabled_flags)
                    .bind(document.use_identity_composite_key_for_hashing)
                    .bind(document.use_identity_overrides_in_local_eval)
                    .bind(environment.id)
                    .execute(&mut *conn)
                    .await?;
                    (environment.id, environment.project_id, false)
                }
                None => {
                    let organisation_id: Option<Id> = sqlx::query(
                        "SELECT id FROM organisations WHERE name = $1 ORDER BY id LIMIT 1",
                    )
                    .bind(&organisation.name)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| row.try_get("id"))
                    .transpose()?;
                    let organisation_id = match organisation_id {
                        Some(id) => id,
                        None => sqlx::query(
                            "INSERT INTO organisations (uuid, name, created_at) VALUES ($1, $2, $3) RETURNING id",
                        )
                        .bind(random::uuid_v4())
                        .bind(&organisation.name)
                        .bind(now)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("id")?,
                    };
                    let project_id: Option<Id> = sqlx::query(
                        "SELECT id FROM projects WHERE organisation_id = $1 AND name = $2 ORDER BY id LIMIT 1",
                    )
                    .bind(organisation_id)
                    .bind(&document.project.name)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(|row| row.try_get("id"))
                    .transpose()?;
                    let project_id = match project_id {
                        Some(id) => id,
                        None => sqlx::query(
                            "INSERT INTO projects (organisation_id, name, created_at, uuid) VALUES ($1, $2, $3, $4) RETURNING id",
                        )
                        .bind(organisation_id)
                        .bind(&document.project.name)
                        .bind(now)
                        .bind(random::uuid_v4())
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("id")?,
                    };
                    let environment_id: Id = sqlx::query(
                        "INSERT INTO environments (project_id, api_key, name, allow_client_traits, \
                         hide_sensitive_data, hide_disabled_flags, use_identity_composite_key_for_hashing, \
                         use_identity_overrides_in_local_eval, updated_at, revision, created_at, uuid) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $9, $10) RETURNING id",
                    )
                    .bind(project_id)
                    .bind(&document.api_key)
                    .bind(&document.name)
                    .bind(document.allow_client_traits)
                    .bind(document.hide_sensitive_data)
                    .bind(document.hide_disabled_flags)
                    .bind(document.use_identity_composite_key_for_hashing)
                    .bind(document.use_identity_overrides_in_local_eval)
                    .bind(now)
                    .bind(random::uuid_v4())
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("id")?;
                    (environment_id, project_id, true)
                }
            };
            sqlx::query(
                "UPDATE projects SET hide_disabled_flags = $1, enable_realtime_updates = $2 WHERE id = $3",
            )
            .bind(document.project.hide_disabled_flags)
            .bind(document.project.enable_realtime_updates)
            .bind(project_id)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE organisations SET persist_trait_data = $1, feature_analytics = $2, \
                 stop_serving_flags = $3 WHERE id = (SELECT organisation_id FROM projects WHERE id = $4)",
            )
            .bind(organisation.persist_trait_data)
            .bind(organisation.feature_analytics)
            .bind(organisation.stop_serving_flags)
            .bind(project_id)
            .execute(&mut *conn)
            .await?;
            let sole_environment: bool = sqlx::query(
                "SELECT COUNT(*) AS n FROM environments WHERE project_id = $1",
            )
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get::<i64, _>("n")?
                == 1;

            // Features: matched by name, ignoring case.
            let mut features: HashMap<String, Id> = HashMap::new();
            for row in sqlx::query("SELECT id, name_key FROM features WHERE project_id = $1")
                .bind(project_id)
                .fetch_all(&mut *conn)
                .await?
            {
                features.insert(row.try_get("name_key")?, row.try_get("id")?);
            }
            let server_key_only: HashSet<u64> = document
                .project
                .server_key_only_feature_ids
                .iter()
                .copied()
                .collect();
            let mut in_document = HashMap::new();
            for state in &document.feature_states {
                let key = name_key(&state.feature.name);
                let feature_type = if !state.multivariate_feature_state_values.is_empty()
                    || state.feature.feature_type == "MULTIVARIATE"
                {
                    "MULTIVARIATE"
                } else {
                    "STANDARD"
                };
                let key_only = server_key_only.contains(&state.feature.id);
                let feature_id = match features.get(&key) {
                    Some(&id) => {
                        sqlx::query(
                            "UPDATE features SET name = $1, type = $2, is_server_key_only = $3 WHERE id = $4",
                        )
                        .bind(&state.feature.name)
                        .bind(feature_type)
                        .bind(key_only)
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                        id
                    }
                    None => {
                        let initial = match &state.feature_state_value {
                            Value::Null => None,
                            Value::String(s) => Some(s.clone()),
                            other => Some(value_text(other)),
                        };
                        let id: Id = sqlx::query(
                            "INSERT INTO features (project_id, name, name_key, type, initial_value, \
                             default_enabled, is_server_key_only, created_at, uuid) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                        )
                        .bind(project_id)
                        .bind(&state.feature.name)
                        .bind(&key)
                        .bind(feature_type)
                        .bind(initial.as_deref())
                        .bind(state.enabled)
                        .bind(key_only)
                        .bind(now)
                        .bind(random::uuid_v4())
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get("id")?;
                        let default = typed_initial_value(initial.as_deref());
                        create_missing_defaults(
                            conn,
                            id,
                            project_id,
                            Some(environment_id),
                            state.enabled,
                            &default,
                        )
                        .await?;
                        features.insert(key.clone(), id);
                        id
                    }
                };
                in_document.insert(key, feature_id);
            }
            // Project features the document does not have: removed when this is the project's only
            // environment; otherwise kept for the other environments.
            for (key, id) in &features {
                if !in_document.contains_key(key) && sole_environment {
                    sqlx::query("DELETE FROM features WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await?;
                }
            }

            // Segments: matched by seed, then by name.
            let mut existing_segments: Vec<(Id, i64, String)> = Vec::new();
            for row in sqlx::query("SELECT id, seed, name FROM segments WHERE project_id = $1 ORDER BY id")
                .bind(project_id)
                .fetch_all(&mut *conn)
                .await?
            {
                existing_segments.push((row.try_get("id")?, row.try_get("seed")?, row.try_get("name")?));
            }
            let mut claimed: HashSet<Id> = HashSet::new();
            let mut segment_ids = Vec::new();
            for segment in &document.project.segments {
                let seed = segment.id as i64;
                let found = existing_segments
                    .iter()
                    .find(|s| s.1 == seed && !claimed.contains(&s.0))
                    .or_else(|| {
                        existing_segments
                            .iter()
                            .find(|s| s.2 == segment.name && !claimed.contains(&s.0))
                    })
                    .map(|s| s.0);
                let rules: Vec<Rule> = segment.rules.iter().map(model_rule).collect();
                let rules = serde_json::to_string(&rules).context("serialising rules")?;
                let id = match found {
                    Some(id) => {
                        sqlx::query("UPDATE segments SET name = $1, seed = $2, rules = $3 WHERE id = $4")
                            .bind(&segment.name)
                            .bind(seed)
                            .bind(&rules)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                        id
                    }
                    None => sqlx::query(
                        "INSERT INTO segments (project_id, name, seed, rules, created_at) \
                         VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    )
                    .bind(project_id)
                    .bind(&segment.name)
                    .bind(seed)
                    .bind(&rules)
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("id")?,
                };
                claimed.insert(id);
                segment_ids.push(id);
            }
            if sole_environment {
                for (id, _, _) in &existing_segments {
                    if !claimed.contains(id) {
                        sqlx::query("DELETE FROM segments WHERE id = $1")
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
            }

            // The environment's own content is replaced.
            sqlx::query("DELETE FROM feature_states WHERE environment_id = $1")
                .bind(environment_id)
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM feature_segments WHERE environment_id = $1")
                .bind(environment_id)
                .execute(&mut *conn)
                .await?;
            let mut options = OptionIndex::default();
            for state in &document.feature_states {
                let feature_id = in_document[&name_key(&state.feature.name)];
                insert_document_state(conn, &mut options, feature_id, environment_id, None, None, state)
                    .await?;
            }
            // Kept project features get their default state in this environment.
            let kept: Vec<(Id, bool, Option<String>)> = sqlx::query(
                "SELECT id, default_enabled, initial_value FROM features WHERE project_id = $1 ORDER BY id",
            )
            .bind(project_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("default_enabled")?, row.try_get("initial_value")?)))
            .collect::<Result<_>>()?;
            let documented: HashSet<Id> = in_document.values().copied().collect();
            for (feature_id, enabled, initial) in kept {
                if !documented.contains(&feature_id) {
                    insert_state(
                        conn,
                        feature_id,
                        environment_id,
                        None,
                        None,
                        enabled,
                        &typed_initial_value(initial.as_deref()),
                        Some(random::seed()),
                        None,
                        &[],
                    )
                    .await?;
                }
            }
            let priorities = normalised_priorities(document);
            for (si, segment) in document.project.segments.iter().enumerate() {
                for state in &segment.feature_states {
                    let key = name_key(&state.feature.name);
                    let feature_id = in_document[&key];
                    let feature_segment_id: Id = sqlx::query(
                        "INSERT INTO feature_segments (feature_id, segment_id, environment_id, priority) \
                         VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(feature_id)
                    .bind(segment_ids[si])
                    .bind(environment_id)
                    .bind(priorities.get(&(si, key)).copied().unwrap_or(0))
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("id")?;
                    insert_document_state(
                        conn,
                        &mut options,
                        feature_id,
                        environment_id,
                        Some(feature_segment_id),
                        None,
                        state,
                    )
                    .await?;
                }
            }
            for identity in &document.identity_overrides {
                let stored = upsert_identity(
                    conn,
                    environment_id,
                    &identity.identifier,
                    identity.identity_uuid.as_deref(),
                    parse_iso(&identity.created_date),
                )
                .await?;
                for state in &identity.identity_features {
                    let Some(&feature_id) = in_document.get(&name_key(&state.feature.name)) else {
                        continue;
                    };
                    insert_document_state(
                        conn,
                        &mut options,
                        feature_id,
                        environment_id,
                        None,
                        Some(stored.id),
                        state,
                    )
                    .await?;
                }
            }
            touch_environment(conn, environment_id).await?;
            Ok(ImportOutcome {
                environment_id,
                project_id,
                created,
            })
        }

        impl $store {
            /// Everything an environment's snapshot is built from; identity overrides when the
            /// environment ships them to SDKs, or always (`all_overrides`, for an export).
            async fn load_environment_data(&self, id: Id, all_overrides: bool) -> Result<EnvironmentData> {

                let mut tx = self.read.begin().await?;
                let conn = &mut *tx;
                let environment = environment_by_id(conn, id).await?;
                let project = load_project(conn, environment.project_id).await?;
                let row = sqlx::query(
                    "SELECT id, uuid, name, persist_trait_data, feature_analytics, stop_serving_flags, \
                     created_at FROM organisations WHERE id = $1",
                )
                .bind(project.organisation_id)
                .fetch_one(&mut *conn)
                .await?;
                let organisation = Organisation {
                    id: row.try_get("id")?,
                    uuid: row.try_get("uuid")?,
                    name: row.try_get("name")?,
                    persist_trait_data: row.try_get("persist_trait_data")?,
                    feature_analytics: row.try_get("feature_analytics")?,
                    stop_serving_flags: row.try_get("stop_serving_flags")?,
                    created_at: row.try_get("created_at")?,
                };
                let features = sqlx::query(&format!(
                    "SELECT {FEATURE_COLUMNS} FROM features WHERE project_id = $1 ORDER BY id"
                ))
                .bind(project.id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(feature_row)
                .collect::<Result<Vec<_>>>()?;
                let options = sqlx::query(
                    "SELECT o.id, o.feature_id, o.value, o.default_percentage_allocation, o.key \
                     FROM multivariate_options o JOIN features f ON f.id = o.feature_id \
                     WHERE f.project_id = $1 ORDER BY o.id",
                )
                .bind(project.id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    Ok(MultivariateOption {
                        id: row.try_get("id")?,
                        feature_id: row.try_get("feature_id")?,
                        value: parse_value(row.try_get("value")?)?,
                        default_percentage_allocation: row.try_get("default_percentage_allocation")?,
                        key: row.try_get("key")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
                let segments = sqlx::query(&format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE project_id = $1 ORDER BY id"
                ))
                .bind(project.id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(segment_row)
                .collect::<Result<Vec<_>>>()?;
                let feature_segments = sqlx::query(
                    "SELECT id, feature_id, segment_id, environment_id, priority FROM feature_segments \
                     WHERE environment_id = $1 ORDER BY priority, id",
                )
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| {
                    Ok(FeatureSegment {
                        id: row.try_get("id")?,
                        feature_id: row.try_get("feature_id")?,
                        segment_id: row.try_get("segment_id")?,
                        environment_id: row.try_get("environment_id")?,
                        priority: row.try_get("priority")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
                let mut states = sqlx::query(&format!(
                    "SELECT {STATE_COLUMNS} FROM feature_states \
                     WHERE environment_id = $1 AND identity_id IS NULL ORDER BY id"
                ))
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(state_row)
                .collect::<Result<Vec<_>>>()?;
                attach_multivariate(
                    conn,
                    &mut states,
                    "fs.environment_id = $1 AND fs.identity_id IS NULL",
                    id,
                )
                .await?;
                let mut identity_overrides = Vec::new();
                if all_overrides || environment.use_identity_overrides_in_local_eval {
                    // From the overrides to their identities: never a walk over all identities.
                    let identities = sqlx::query(&format!(
                        "SELECT {IDENTITY_COLUMNS} FROM identities WHERE id IN \
                         (SELECT identity_id FROM feature_states \
                          WHERE environment_id = $1 AND identity_id IS NOT NULL) ORDER BY id"
                    ))
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(identity_row)
                    .collect::<Result<Vec<_>>>()?;
                    let overrides = sqlx::query(&format!(
                        "SELECT {STATE_COLUMNS} FROM feature_states \
                         WHERE environment_id = $1 AND identity_id IS NOT NULL ORDER BY identity_id, feature_id"
                    ))
                    .bind(id)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(state_row)
                    .collect::<Result<Vec<_>>>()?;
                    let mut by_identity: HashMap<Id, Vec<FeatureState>> = HashMap::new();
                    for state in overrides {
                        by_identity
                            .entry(state.identity_id.unwrap_or_default())
                            .or_default()
                            .push(state);
                    }
                    for identity in identities {
                        let states = by_identity.remove(&identity.id).unwrap_or_default();
                        identity_overrides.push((identity, states));
                    }
                }
                tx.commit().await?;
                Ok(EnvironmentData {
                    organisation,
                    project,
                    environment,
                    features,
                    options,
                    segments,
                    feature_segments,
                    states,
                    identity_overrides,
                })
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn migrate(&self) -> Result<()> {
                let migrator = sqlx::migrate::Migrator::new($crate::sql::Embedded(super::MIGRATIONS))
                    .await
                    .map_err(|e| StoreError::Other(e.into()))?;
                migrator
                    .run(&self.write.pool)
                    .await
                    .map_err(|e| StoreError::Other(e.into()))?;
                $store::migrated(self);
                Ok(())
            }

            async fn pending_migrations(&self) -> Result<Vec<i64>> {
                let applied: Vec<i64> =
                    match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
                        .fetch_all(&self.read)
                        .await
                    {
                        Ok(rows) => rows
                            .iter()
                            .map(|row| row.try_get("version"))
                            .collect::<std::result::Result<_, _>>()?,
                        // No migration table: nothing was ever applied.
                        Err(sqlx::Error::Database(_)) => Vec::new(),
                        Err(e) => return Err(e.into()),
                    };
                Ok(super::MIGRATIONS
                    .iter()
                    .map(|(version, _, _)| *version)
                    .filter(|version| !applied.contains(version))
                    .collect())
            }

            async fn meta(&self, key: &str) -> Result<Option<String>> {
                Ok(sqlx::query("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.read)
                    .await?
                    .map(|row| row.try_get("value"))
                    .transpose()?)
            }

            async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *self.write.acquire().await?)
                .await?;
                Ok(())
            }

            fn identity_generation(&self) -> Option<u64> {
                self.write.cache.quiet_generation()
            }

            async fn change_feed(&self) -> Result<Option<$crate::ChangeFeed>> {
                $store::feed(self).await
            }

            async fn close(&self) {
                $store::retire(self).await;
                // Readers first (on PostgreSQL both are the same pool).
                self.read.close().await;
                self.write.pool.close().await;
            }

            async fn close_idle_connections(&self) -> usize {
                // Bounded: a connection on its way back is waited for by yielding to the task
                // returning it; nothing else uses the pool while the server starts.
                let mut closed = 0;
                for _ in 0..64 {
                    if self.read.size() <= 1 {
                        break;
                    }
                    match self.read.try_acquire() {
                        Some(connection) => {
                            let _ = connection.close().await;
                            closed += 1;
                        }
                        None => tokio::task::yield_now().await,
                    }
                }
                closed
            }

            async fn revisions(&self) -> Result<Vec<(Id, i64)>> {
                sqlx::query("SELECT id, revision FROM environments ORDER BY id")
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(|row| Ok((row.try_get("id")?, row.try_get("revision")?)))
                    .collect()
            }

            async fn read_installation(
                &self,
                sink: tokio::sync::mpsc::Sender<$crate::transfer::Piece>,
            ) -> Result<()> {
                use $crate::transfer::{Batch, Cell, Kind, Piece, BATCH_ROWS, TABLES};
                let stopped = || StoreError::Other(anyhow::anyhow!("the copy's target stopped reading"));
                let mut tx = self.read.begin().await?;
                if let Some(sql) = $store::SNAPSHOT_READ {
                    sqlx::query(sql).execute(&mut *tx).await?;
                }
                for (index, table) in TABLES.iter().enumerate() {
                    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
                    let columns = columns.join(", ");
                    let mut after = i64::MIN;
                    let mut offset = 0_i64;
                    loop {
                        let rows = if table.has_id {
                            sqlx::query(&format!(
                                "SELECT {columns} FROM {} WHERE id > $1 ORDER BY id LIMIT $2",
                                table.name
                            ))
                            .bind(after)
                            .bind(BATCH_ROWS)
                            .fetch_all(&mut *tx)
                            .await?
                        } else {
                            sqlx::query(&format!(
                                "SELECT {columns} FROM {} ORDER BY {} LIMIT $1 OFFSET $2",
                                table.name, table.order
                            ))
                            .bind(BATCH_ROWS)
                            .bind(offset)
                            .fetch_all(&mut *tx)
                            .await?
                        };
                        let mut cells = Vec::with_capacity(rows.len());
                        for row in &rows {
                            let mut out = Vec::with_capacity(table.columns.len());
                            for (i, (_, kind)) in table.columns.iter().enumerate() {
                                out.push(match kind {
                                    Kind::Int => Cell::Int(row.try_get(i)?),
                                    Kind::Text => Cell::Text(row.try_get(i)?),
                                    Kind::Bool => Cell::Bool(row.try_get(i)?),
                                    Kind::Float => Cell::Float(row.try_get(i)?),
                                });
                            }
                            cells.push(out);
                        }
                        let count = cells.len() as i64;
                        if let Some(Cell::Int(Some(id))) = cells.last().and_then(|r| r.first()) {
                            after = *id;
                        }
                        offset += count;
                        if count > 0 {
                            sink.send(Piece::Rows(Batch { table: index, rows: cells }))
                                .await
                                .map_err(|_| stopped())?;
                        }
                        if count < BATCH_ROWS {
                            break;
                        }
                    }
                }
                tx.commit().await?;
                sink.send(Piece::Complete).await.map_err(|_| stopped())?;
                Ok(())
            }

            async fn write_installation(
                &self,
                mut source: tokio::sync::mpsc::Receiver<$crate::transfer::Piece>,
            ) -> Result<$crate::transfer::CopyReport> {
                use $crate::transfer::{not_empty, Cell, CopyReport, Piece, TABLES};
                let mut tx = self.write.begin().await?;
                for table in TABLES.iter().filter(|t| t.name != "meta") {
                    let found = sqlx::query(&format!("SELECT 1 AS one FROM {} LIMIT 1", table.name))
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_some() {
                        return Err(not_empty(table.name));
                    }
                }
                let mut counts = vec![0_u64; TABLES.len()];
                loop {
                    let batch = match source.recv().await {
                        Some(Piece::Rows(batch)) => batch,
                        Some(Piece::Complete) => break,
                        None => {
                            return Err(StoreError::Other(anyhow::anyhow!(
                                "the copy's source stopped before the end; nothing was written"
                            )));
                        }
                    };
                    let table = TABLES.get(batch.table).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown table #{}", batch.table))
                    })?;
                    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
                    for chunk in batch.rows.chunks(100) {
                        let mut sql = format!("INSERT INTO {} ({}) VALUES ", table.name, columns.join(", "));
                        let mut n = 0;
                        for (r, row) in chunk.iter().enumerate() {
                            if row.len() != columns.len() {
                                return Err(StoreError::Invalid(format!("a {} row has {} cells", table.name, row.len())));
                            }
                            sql.push_str(if r == 0 { "(" } else { ", (" });
                            for c in 0..row.len() {
                                n += 1;
                                if c > 0 {
                                    sql.push_str(", ");
                                }
                                sql.push_str(&format!("${n}"));
                            }
                            sql.push(')');
                        }
                        if table.name == "meta" {
                            sql.push_str(" ON CONFLICT (key) DO UPDATE SET value = excluded.value");
                        }
                        let mut query = sqlx::query(&sql);
                        for row in chunk {
                            for cell in row {
                                query = match cell {
                                    Cell::Int(v) => query.bind(*v),
                                    Cell::Text(v) => query.bind(v.clone()),
                                    Cell::Bool(v) => query.bind(*v),
                                    Cell::Float(v) => query.bind(*v),
                                };
                            }
                        }
                        query.execute(&mut *tx).await?;
                    }
                    counts[batch.table] += batch.rows.len() as u64;
                }
                for table in TABLES.iter().filter(|t| t.has_id) {
                    if let Some(sql) = $store::resequence(table.name) {
                        sqlx::query(&sql).execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(CopyReport {
                    tables: TABLES.iter().zip(counts).map(|(t, n)| (t.name, n)).collect(),
                })
            }

            async fn environments(&self) -> Result<Vec<Environment>> {
                sqlx::query(&format!("SELECT {ENVIRONMENT_COLUMNS} FROM environments ORDER BY id"))
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(environment_row)
                    .collect()
            }

            async fn environment_by_key(&self, api_key: &str) -> Result<Environment> {
                let row = sqlx::query(&format!(
                    "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE api_key = $1"
                ))
                .bind(api_key)
                .fetch_one(&self.read)
                .await?;
                environment_row(&row)
            }

            async fn environment_data(&self, id: Id) -> Result<EnvironmentData> {
                self.load_environment_data(id, false).await
            }

            async fn environment_export(&self, id: Id) -> Result<EnvironmentData> {
                self.load_environment_data(id, true).await
            }

            async fn server_keys(&self, environment_id: Option<Id>) -> Result<Vec<ServerKey>> {
                let rows = match environment_id {
                    Some(id) => {
                        sqlx::query(&format!(
                            "SELECT {SERVER_KEY_COLUMNS} FROM server_keys WHERE environment_id = $1 ORDER BY id"
                        ))
                        .bind(id)
                        .fetch_all(&self.read)
                        .await?
                    }
                    None => {
                        sqlx::query(&format!("SELECT {SERVER_KEY_COLUMNS} FROM server_keys ORDER BY id"))
                            .fetch_all(&self.read)
                            .await?
                    }
                };
                rows.iter().map(server_key_row).collect()
            }

            async fn create_server_key(
                &self,
                author: &Author,
                environment_id: Id,
                name: &str,
                key_hash: &str,
                prefix: &str,
                expires_at: Option<Micros>,
            ) -> Result<ServerKey> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO server_keys (environment_id, key_hash, prefix, name, active, expires_at, \
                     created_at) VALUES ($1, $2, $3, $4, TRUE, $5, $6) RETURNING {SERVER_KEY_COLUMNS}"
                ))
                .bind(environment_id)
                .bind(key_hash)
                .bind(prefix)
                .bind(name)
                .bind(expires_at)
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let key = server_key_row(&row)?;
                let (scope, _) = environment_scope(&mut tx, environment_id).await?;
                audit(&mut tx, author, scope, "SERVER_KEY", Some(key.id),
                    &format!("Server-side key created: {}", key.name), None,
                    Some(&server_key_json(&key))).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn update_server_key(
                &self,
                author: &Author,
                environment_id: Id,
                id: Id,
                update: ServerKeyUpdate,
            ) -> Result<ServerKey> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "SELECT {SERVER_KEY_COLUMNS} FROM server_keys WHERE id = $1 AND environment_id = $2"
                ))
                .bind(id)
                .bind(environment_id)
                .fetch_one(&mut *tx)
                .await?;
                let mut key = server_key_row(&row)?;
                let before = server_key_json(&key);
                if let Some(name) = update.name {
                    key.name = name;
                }
                if let Some(active) = update.active {
                    key.active = active;
                }
                if let Some(expires_at) = update.expires_at {
                    key.expires_at = expires_at;
                }
                sqlx::query("UPDATE server_keys SET name = $1, active = $2, expires_at = $3 WHERE id = $4")
                    .bind(&key.name)
                    .bind(key.active)
                    .bind(key.expires_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let (scope, _) = environment_scope(&mut tx, environment_id).await?;
                audit(&mut tx, author, scope, "SERVER_KEY", Some(key.id),
                    &format!("Server-side key updated: {}", key.name), Some(&before),
                    Some(&server_key_json(&key))).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn delete_server_key(&self, author: &Author, environment_id: Id, id: Id) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "DELETE FROM server_keys WHERE id = $1 AND environment_id = $2 \
                     RETURNING {SERVER_KEY_COLUMNS}"
                ))
                .bind(id)
                .bind(environment_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                let key = server_key_row(&row)?;
                let (scope, _) = environment_scope(&mut tx, environment_id).await?;
                audit(&mut tx, author, scope, "SERVER_KEY", Some(key.id),
                    &format!("Server-side key deleted: {}", key.name),
                    Some(&server_key_json(&key)), None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn import_document_by(
                &self,
                author: &Author,
                document: &EnvironmentDocument,
            ) -> Result<ImportOutcome> {
                let mut tx = self.write.begin().await?;
                let existing: Option<Id> = sqlx::query("SELECT id FROM environments WHERE api_key = $1")
                    .bind(&document.api_key)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get("id"))
                    .transpose()?;
                let (before, flags_before) = match existing {
                    Some(id) => (Some(environment_summary(&mut tx, id).await?), describe_defaults(&mut tx, "environment_id", id).await?),
                    None => (None, Vec::new()),
                };
                let outcome = import(&mut tx, document).await?;
                let (scope, _) = environment_scope(&mut tx, outcome.environment_id).await?;
                let summary = environment_summary(&mut tx, outcome.environment_id).await?;
                let flags_after = describe_defaults(&mut tx, "environment_id", outcome.environment_id).await?;
                queue_flag_changes(&mut tx, author, outcome.environment_id, &flags_before, &flags_after).await?;
                let log = if outcome.created {
                    "Environment created from a document"
                } else {
                    "Environment replaced by a document"
                };
                audit(&mut tx, author, scope, "ENVIRONMENT", Some(outcome.environment_id), log,
                    before.as_ref(), Some(&summary)).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn identity(
                &self,
                environment_id: Id,
                identifier: &str,
            ) -> Result<Option<IdentityRecord>> {
                if let Some(record) = self.write.cache.get(environment_id, identifier) {
                    return Ok(Some(record));
                }
                let ticket = self.write.cache.ticket();
                let mut conn = self.read.acquire().await?;
                match find_identity(&mut conn, environment_id, identifier).await? {
                    Some(identity) => {
                        let record = identity_record(&mut conn, identity).await?;
                        self.write.cache.put(ticket, environment_id, &record);
                        Ok(Some(record))
                    }
                    None => Ok(None),
                }
            }

            async fn traits_for_write(
                &self,
                environment_id: Id,
                identifier: &str,
            ) -> Result<Option<Vec<Trait>>> {
                self.current_traits(environment_id, identifier).await
            }

            fn shared(&self) -> bool {
                !$store::sole_writer(self)
            }

            async fn ensure_identity(&self, environment_id: Id, identifier: &str) -> Result<IdentityRecord> {
                if let Some(record) = self.identity(environment_id, identifier).await? {
                    return Ok(record);
                }
                let mut tx = self.write.begin().await?;
                let identity = upsert_identity(&mut tx, environment_id, identifier, None, None).await?;
                let record = identity_record(&mut tx, identity).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn write_traits(
                &self,
                environment_id: Id,
                changes: &[(String, Vec<TraitChange>)],
            ) -> Result<Vec<IdentityRecord>> {
                // Identities are locked in one order (by identifier) and each one before its
                // traits are written, so concurrent writers of the same identities queue instead
                // of deadlocking.
                let mut order: Vec<usize> = (0..changes.len()).collect();
                order.sort_by(|a, b| changes[*a].0.cmp(&changes[*b].0));
                let mut tx = self.write.begin().await?;
                let now = now_micros();
                let mut records: Vec<Option<IdentityRecord>> = vec![None; changes.len()];
                for index in order {
                    let (identifier, identity_changes) = &changes[index];
                    let identity = upsert_identity(&mut tx, environment_id, identifier, None, None).await?;
                    sqlx::query($store::LOCK_IDENTITY)
                        .bind(identity.id)
                        .execute(&mut *tx)
                        .await?;
                    for change in identity_changes {
                        match &change.value {
                            Some(value) => {
                                sqlx::query(
                                    "INSERT INTO traits (identity_id, key, value, created_at) \
                                     VALUES ($1, $2, $3, $4) ON CONFLICT (identity_id, key) \
                                     DO UPDATE SET value = excluded.value WHERE traits.value <> excluded.value",
                                )
                                .bind(identity.id)
                                .bind(&change.key)
                                .bind(value_text(value))
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                            }
                            None => {
                                sqlx::query("DELETE FROM traits WHERE identity_id = $1 AND key = $2")
                                    .bind(identity.id)
                                    .bind(&change.key)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                    }
                    records[index] = Some(identity_record(&mut tx, identity).await?);
                }
                tx.commit().await?;
                Ok(records.into_iter().flatten().collect())
            }

            async fn increment_trait(
                &self,
                environment_id: Id,
                identifier: &str,
                key: &str,
                by: i64,
            ) -> Result<Increment> {
                let mut tx = self.write.begin().await?;
                let identity = upsert_identity(&mut tx, environment_id, identifier, None, None).await?;
                sqlx::query($store::LOCK_IDENTITY)
                    .bind(identity.id)
                    .execute(&mut *tx)
                    .await?;
                let current = sqlx::query("SELECT value FROM traits WHERE identity_id = $1 AND key = $2")
                    .bind(identity.id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| parse_value(row.try_get("value")?))
                    .transpose()?;
                let next = match current {
                    None => by,
                    Some(Value::Int(i)) => match i.checked_add(by) {
                        Some(next) => next,
                        None => return Ok(Increment::NotInteger),
                    },
                    Some(_) => return Ok(Increment::NotInteger),
                };
                sqlx::query(
                    "INSERT INTO traits (identity_id, key, value, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (identity_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(identity.id)
                .bind(key)
                .bind(value_text(&Value::Int(next)))
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Increment::Value(next))
            }

            async fn record_evaluations(
                &self,
                environment_id: Id,
                day: &str,
                counts: &[(Id, i64)],
            ) -> Result<()> {
                if counts.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write.begin_unrelated().await?;
                for (feature_id, count) in counts {
                    sqlx::query(
                        "INSERT INTO flag_analytics (environment_id, feature_id, day, count) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (environment_id, feature_id, day) \
                         DO UPDATE SET count = CASE \
                           WHEN flag_analytics.count > 9223372036854775807 - excluded.count \
                           THEN 9223372036854775807 ELSE flag_analytics.count + excluded.count END",
                    )
                    .bind(environment_id)
                    .bind(feature_id)
                    .bind(day)
                    .bind(count)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn evaluation_counts(
                &self,
                environment_id: Id,
                feature_id: Id,
            ) -> Result<Vec<(String, i64)>> {
                sqlx::query(
                    "SELECT day, count FROM flag_analytics WHERE environment_id = $1 AND feature_id = $2 \
                     ORDER BY day",
                )
                .bind(environment_id)
                .bind(feature_id)
                .fetch_all(&self.read)
                .await?
                .iter()
                .map(|row| Ok((row.try_get("day")?, row.try_get("count")?)))
                .collect()
            }
        }
        }
    };
}

pub(crate) use sql_store;
