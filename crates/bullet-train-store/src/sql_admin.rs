//! The SQL implementation of [`crate::admin::AdminStore`], expanded inside each backend module by
//! `sql_store!` (so it shares that module's helpers). Every write runs in one transaction with its
//! audit entry, the revision bumps of the environments it changes, and its queued webhook deliveries.

macro_rules! sql_admin_items {
    ($store:ident, $db:ty) => {
        use $crate::admin::*;
        use $crate::events::{StateContext, flag_event, state_json};

        const ORGANISATION_COLUMNS: &str =
            "id, uuid, name, persist_trait_data, feature_analytics, stop_serving_flags, created_at";
        const PROJECT_COLUMNS: &str =
            "id, uuid, organisation_id, name, hide_disabled_flags, enable_realtime_updates, created_at, \
            prevent_flag_defaults, only_allow_lower_case_feature_names, feature_name_regex, \
            stale_flags_limit_days";
        const FEATURE_COLUMNS: &str = "id, uuid, project_id, name, type, description, initial_value, \
            default_enabled, is_server_key_only, created_at";
        const OPTION_COLUMNS: &str = "id, feature_id, value, default_percentage_allocation, key";
        const SEGMENT_COLUMNS: &str =
            "id, project_id, name, description, seed, rules, feature_id, uuid, created_at";
        const FEATURE_SEGMENT_COLUMNS: &str = "id, feature_id, segment_id, environment_id, priority";
        const API_KEY_COLUMNS: &str = "id, organisation_id, prefix, key_hash, name, is_admin, \
            revoked, expires_at, created_at";
        const AUDIT_COLUMNS: &str = "id, created_at, author, organisation_id, project_id, \
            environment_id, related_object_type, related_object_id, related_object_uuid, log, \
            previous_state, new_state, is_system_event";
        const WEBHOOK_COLUMNS: &str =
            "id, environment_id, url, enabled, secret, created_at, updated_at";
        const DELIVERY_COLUMNS: &str = "id, webhook_id, event_type, payload, status, attempts, \
            next_attempt_at, last_status_code, last_error, created_at, delivered_at";

        fn organisation_row(row: &DbRow) -> Result<Organisation> {
            Ok(Organisation {
                id: row.try_get("id")?,
                uuid: row.try_get("uuid")?,
                name: row.try_get("name")?,
                persist_trait_data: row.try_get("persist_trait_data")?,
                feature_analytics: row.try_get("feature_analytics")?,
                stop_serving_flags: row.try_get("stop_serving_flags")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn project_row(row: &DbRow) -> Result<Project> {
            Ok(Project {
                id: row.try_get("id")?,
                uuid: row.try_get("uuid")?,
                organisation_id: row.try_get("organisation_id")?,
                name: row.try_get("name")?,
                hide_disabled_flags: row.try_get("hide_disabled_flags")?,
                enable_realtime_updates: row.try_get("enable_realtime_updates")?,
                prevent_flag_defaults: row.try_get("prevent_flag_defaults")?,
                only_allow_lower_case_feature_names: row.try_get("only_allow_lower_case_feature_names")?,
                feature_name_regex: row.try_get("feature_name_regex")?,
                stale_flags_limit_days: row.try_get("stale_flags_limit_days")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn feature_row(row: &DbRow) -> Result<Feature> {
            Ok(Feature {
                id: row.try_get("id")?,
                uuid: row.try_get("uuid")?,
                project_id: row.try_get("project_id")?,
                name: row.try_get("name")?,
                feature_type: row.try_get("type")?,
                description: row.try_get("description")?,
                initial_value: row.try_get("initial_value")?,
                default_enabled: row.try_get("default_enabled")?,
                is_server_key_only: row.try_get("is_server_key_only")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn option_row(row: &DbRow) -> Result<MultivariateOption> {
            Ok(MultivariateOption {
                id: row.try_get("id")?,
                feature_id: row.try_get("feature_id")?,
                value: parse_value(row.try_get("value")?)?,
                default_percentage_allocation: row.try_get("default_percentage_allocation")?,
                key: row.try_get("key")?,
            })
        }

        fn segment_row(row: &DbRow) -> Result<Segment> {
            let rules: String = row.try_get("rules")?;
            Ok(Segment {
                id: row.try_get("id")?,
                project_id: row.try_get("project_id")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                seed: row.try_get("seed")?,
                rules: serde_json::from_str(&rules).context("corrupt stored segment rules")?,
                feature_id: row.try_get("feature_id")?,
                uuid: row.try_get("uuid")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn feature_segment_row(row: &DbRow) -> Result<FeatureSegment> {
            Ok(FeatureSegment {
                id: row.try_get("id")?,
                feature_id: row.try_get("feature_id")?,
                segment_id: row.try_get("segment_id")?,
                environment_id: row.try_get("environment_id")?,
                priority: row.try_get("priority")?,
            })
        }

        fn api_key_row(row: &DbRow) -> Result<ApiKey> {
            Ok(ApiKey {
                id: row.try_get("id")?,
                organisation_id: row.try_get("organisation_id")?,
                prefix: row.try_get("prefix")?,
                key_hash: row.try_get("key_hash")?,
                name: row.try_get("name")?,
                is_admin: row.try_get("is_admin")?,
                revoked: row.try_get("revoked")?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn json_column(row: &DbRow, column: &str) -> Result<Option<serde_json::Value>> {
            let text: Option<String> = row.try_get(column)?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        }

        fn audit_row(row: &DbRow) -> Result<AuditEntry> {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                created_at: row.try_get("created_at")?,
                author: row.try_get("author")?,
                organisation_id: row.try_get("organisation_id")?,
                project_id: row.try_get("project_id")?,
                environment_id: row.try_get("environment_id")?,
                related_object_type: row.try_get("related_object_type")?,
                related_object_id: row.try_get("related_object_id")?,
                related_object_uuid: row.try_get("related_object_uuid")?,
                log: row.try_get("log")?,
                previous_state: json_column(row, "previous_state")?,
                new_state: json_column(row, "new_state")?,
                is_system_event: row.try_get("is_system_event")?,
            })
        }

        fn webhook_row(row: &DbRow) -> Result<Webhook> {
            Ok(Webhook {
                id: row.try_get("id")?,
                environment_id: row.try_get("environment_id")?,
                url: row.try_get("url")?,
                enabled: row.try_get("enabled")?,
                secret: row.try_get("secret")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn delivery_row(row: &DbRow) -> Result<WebhookDelivery> {
            Ok(WebhookDelivery {
                id: row.try_get("id")?,
                webhook_id: row.try_get("webhook_id")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                status: row.try_get("status")?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: row.try_get("next_attempt_at")?,
                last_status_code: row.try_get("last_status_code")?,
                last_error: row.try_get("last_error")?,
                created_at: row.try_get("created_at")?,
                delivered_at: row.try_get("delivered_at")?,
            })
        }

        /// Where an audit entry belongs.
        #[derive(Debug, Default, Clone, Copy)]
        struct Scope {
            organisation: Option<Id>,
            project: Option<Id>,
            environment: Option<Id>,
        }

        fn to_json<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
            serde_json::to_value(value).ok()
        }

        #[allow(clippy::too_many_arguments)]
        async fn audit(
            conn: &mut Conn,
            author: &Author,
            scope: Scope,
            object_type: &str,
            object_id: Option<Id>,
            log: &str,
            before: Option<&serde_json::Value>,
            after: Option<&serde_json::Value>,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO audit_log (created_at, author, organisation_id, project_id, \
                 environment_id, related_object_type, related_object_id, log, previous_state, \
                 new_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(now_micros())
            .bind(&author.label)
            .bind(scope.organisation)
            .bind(scope.project)
            .bind(scope.environment)
            .bind(object_type)
            .bind(object_id)
            .bind(log)
            .bind(before.map(|v| v.to_string()))
            .bind(after.map(|v| v.to_string()))
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn load_project(conn: &mut Conn, id: Id) -> Result<Project> {
            let row = sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            project_row(&row)
        }

        async fn project_scope(conn: &mut Conn, project: Id) -> Result<Scope> {
            let project = load_project(conn, project).await?;
            Ok(Scope {
                organisation: Some(project.organisation_id),
                project: Some(project.id),
                environment: None,
            })
        }

        async fn environment_scope(conn: &mut Conn, environment: Id) -> Result<(Scope, Environment)> {
            let environment = environment_by_id(conn, environment).await?;
            let mut scope = project_scope(conn, environment.project_id).await?;
            scope.environment = Some(environment.id);
            Ok((scope, environment))
        }

        async fn ids(conn: &mut Conn, sql: &str, id: Id) -> Result<Vec<Id>> {
            sqlx::query(sql)
                .bind(id)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|row| Ok(row.try_get("id")?))
                .collect()
        }

        async fn environments_of_project(conn: &mut Conn, project: Id) -> Result<Vec<Id>> {
            ids(conn, "SELECT id FROM environments WHERE project_id = $1 ORDER BY id", project).await
        }

        async fn environments_of_organisation(conn: &mut Conn, organisation: Id) -> Result<Vec<Id>> {
            ids(
                conn,
                "SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id \
                 WHERE p.organisation_id = $1 ORDER BY e.id",
                organisation,
            )
            .await
        }

        async fn touch_all(conn: &mut Conn, environments: &[Id]) -> Result<()> {
            for id in environments {
                touch_environment(conn, *id).await?;
            }
            Ok(())
        }

        async fn load_feature(conn: &mut Conn, id: Id) -> Result<Feature> {
            let row = sqlx::query(&format!("SELECT {FEATURE_COLUMNS} FROM features WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            feature_row(&row)
        }

        async fn load_options(conn: &mut Conn, feature: Id) -> Result<Vec<MultivariateOption>> {
            sqlx::query(&format!(
                "SELECT {OPTION_COLUMNS} FROM multivariate_options WHERE feature_id = $1 ORDER BY id"
            ))
            .bind(feature)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(option_row)
            .collect()
        }

        async fn load_segment(conn: &mut Conn, id: Id) -> Result<Segment> {
            let row = sqlx::query(&format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            segment_row(&row)
        }

        async fn load_feature_segment(conn: &mut Conn, id: Id) -> Result<FeatureSegment> {
            let row = sqlx::query(&format!(
                "SELECT {FEATURE_SEGMENT_COLUMNS} FROM feature_segments WHERE id = $1"
            ))
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
            feature_segment_row(&row)
        }

        async fn load_state(conn: &mut Conn, id: Id) -> Result<FeatureState> {
            let row = sqlx::query(&format!("SELECT {STATE_COLUMNS} FROM feature_states WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            let mut states = vec![state_row(&row)?];
            attach_multivariate(conn, &mut states, "fs.id = $1", id).await?;
            Ok(states.remove(0))
        }

        /// The state as webhook payloads and audit entries describe it.
        async fn describe_state(conn: &mut Conn, state: &FeatureState) -> Result<serde_json::Value> {
            let feature = load_feature(conn, state.feature_id).await?;
            let project = load_project(conn, feature.project_id).await?;
            let environment = environment_by_id(conn, state.environment_id).await?;
            let segment = match state.feature_segment_id {
                Some(id) => {
                    let fs = load_feature_segment(conn, id).await?;
                    let segment = load_segment(conn, fs.segment_id).await?;
                    Some((segment, fs))
                }
                None => None,
            };
            let identity = match state.identity_id {
                Some(id) => Some(identity_row(
                    &sqlx::query(&format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = $1"))
                        .bind(id)
                        .fetch_one(&mut *conn)
                        .await?,
                )?),
                None => None,
            };
            Ok(state_json(
                state,
                &StateContext {
                    feature: &feature,
                    project: &project,
                    environment: &environment,
                    segment: segment.as_ref().map(|(s, fs)| (s, fs)),
                    identity: identity.as_ref(),
                },
            ))
        }

        /// Queues a flag event for every enabled webhook of the environment.
        async fn queue_flag_event(
            conn: &mut Conn,
            author: &Author,
            environment: Id,
            event_type: &str,
            before: Option<&serde_json::Value>,
            after: Option<&serde_json::Value>,
        ) -> Result<()> {
            let webhooks = ids(
                conn,
                "SELECT id FROM webhooks WHERE environment_id = $1 AND enabled ORDER BY id",
                environment,
            )
            .await?;
            if webhooks.is_empty() {
                return Ok(());
            }
            let now = now_micros();
            let payload = flag_event(event_type, &author.label, now, before, after);
            for webhook in webhooks {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (webhook_id, event_type, payload, status, \
                     attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
                )
                .bind(webhook)
                .bind(event_type)
                .bind(&payload)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// Environment default states as webhook payloads, `(environment, feature name, payload)`:
        /// those where `column` (`feature_id` or `environment_id`) is `id`, in environments with an
        /// enabled webhook (no other environment gets an event, so none is described).
        async fn describe_defaults(
            conn: &mut Conn,
            column: &str,
            id: Id,
        ) -> Result<Vec<(Id, String, serde_json::Value)>> {
            let states = ids(
                conn,
                &format!(
                    "SELECT id FROM feature_states WHERE {column} = $1 AND feature_segment_id IS NULL \
                     AND identity_id IS NULL \
                     AND environment_id IN (SELECT environment_id FROM webhooks WHERE enabled) \
                     ORDER BY id"
                ),
                id,
            )
            .await?;
            let mut described = Vec::with_capacity(states.len());
            for id in states {
                let state = load_state(conn, id).await?;
                let json = describe_state(conn, &state).await?;
                let name = json["feature"]["name"].as_str().unwrap_or_default().to_owned();
                described.push((state.environment_id, name, json));
            }
            Ok(described)
        }

        /// Queues FLAG_UPDATED for each environment default of a feature whose multivariate options
        /// changed (the variants it serves change with them), with its state before and after.
        async fn queue_option_change(
            conn: &mut Conn,
            author: &Author,
            feature: Id,
            before: &[(Id, String, serde_json::Value)],
        ) -> Result<()> {
            let after = describe_defaults(conn, "feature_id", feature).await?;
            for (environment, _, new_state) in &after {
                let previous = before.iter().find(|(e, _, _)| e == environment).map(|(_, _, s)| s);
                queue_flag_event(conn, author, *environment, "FLAG_UPDATED", previous, Some(new_state)).await?;
            }
            Ok(())
        }

        /// What an import's audit entry records of an environment before and after.
        async fn environment_summary(conn: &mut Conn, environment: Id) -> Result<serde_json::Value> {
            let row = sqlx::query(
                "SELECT e.api_key, e.name, \
                 (SELECT COUNT(*) FROM feature_states WHERE environment_id = e.id \
                    AND identity_id IS NULL AND feature_segment_id IS NULL) AS features, \
                 (SELECT COUNT(*) FROM segments WHERE project_id = e.project_id) AS segments, \
                 (SELECT COUNT(*) FROM feature_states WHERE environment_id = e.id \
                    AND identity_id IS NOT NULL) AS identity_overrides \
                 FROM environments e WHERE e.id = $1",
            )
            .bind(environment)
            .fetch_one(&mut *conn)
            .await?;
            Ok(serde_json::json!({
                "api_key": row.try_get::<String, _>("api_key")?,
                "name": row.try_get::<String, _>("name")?,
                "features": row.try_get::<i64, _>("features")?,
                "segments": row.try_get::<i64, _>("segments")?,
                "identity_overrides": row.try_get::<i64, _>("identity_overrides")?,
            }))
        }

        /// Queues the flag events that take an environment from `before` to `after` (both from
        /// [`describe_defaults`]): FLAG_UPDATED for a new flag or one whose enabled state, value or
        /// allocations changed, FLAG_DELETED for a flag that is gone.
        async fn queue_flag_changes(
            conn: &mut Conn,
            author: &Author,
            environment: Id,
            before: &[(Id, String, serde_json::Value)],
            after: &[(Id, String, serde_json::Value)],
        ) -> Result<()> {
            fn served(state: &serde_json::Value) -> (serde_json::Value, serde_json::Value, Vec<serde_json::Value>) {
                let allocations = state["multivariate_feature_state_values"]
                    .as_array()
                    .map(|values| values.iter().map(|v| v["percentage_allocation"].clone()).collect())
                    .unwrap_or_default();
                (state["enabled"].clone(), state["feature_state_value"].clone(), allocations)
            }
            for (_, name, new_state) in after {
                let previous = before.iter().find(|(_, n, _)| n == name).map(|(_, _, s)| s);
                if previous.is_none_or(|p| served(p) != served(new_state)) {
                    queue_flag_event(conn, author, environment, "FLAG_UPDATED", previous, Some(new_state)).await?;
                }
            }
            for (_, name, old_state) in before {
                if !after.iter().any(|(_, n, _)| n == name) {
                    queue_flag_event(conn, author, environment, "FLAG_DELETED", Some(old_state), None).await?;
                }
            }
            Ok(())
        }

        /// The next multivariate walk-order key: after every existing one, so that a new option never
        /// moves identities between existing options.
        async fn next_sort_key(conn: &mut Conn) -> Result<i64> {
            let row = sqlx::query("SELECT COALESCE(MAX(sort_key), 0) + 1 AS next FROM multivariate_values")
                .fetch_one(&mut *conn)
                .await?;
            Ok(row.try_get("next")?)
        }

        /// Renumbers a feature's segment overrides in an environment 0..n, keeping their order.
        async fn renumber_priorities(conn: &mut Conn, feature: Id, environment: Id) -> Result<()> {
            let ordered = sqlx::query(
                "SELECT id FROM feature_segments WHERE feature_id = $1 AND environment_id = $2 \
                 ORDER BY priority, id",
            )
            .bind(feature)
            .bind(environment)
            .fetch_all(&mut *conn)
            .await?;
            for (i, row) in ordered.iter().enumerate() {
                let id: Id = row.try_get("id")?;
                sqlx::query("UPDATE feature_segments SET priority = $1 WHERE id = $2")
                    .bind(i as i64)
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        /// Allocations must name options of the feature, each 0-100, summing to at most 100.
        async fn check_allocations(conn: &mut Conn, feature: Id, allocations: &[Allocation]) -> Result<()> {
            let options = load_options(conn, feature).await?;
            let mut seen = HashSet::new();
            for a in allocations {
                if !options.iter().any(|o| o.id == a.option_id) {
                    return Err(StoreError::Invalid(format!(
                        "multivariate option {} does not belong to this feature",
                        a.option_id
                    )));
                }
                if !seen.insert(a.option_id) {
                    return Err(StoreError::Invalid(format!(
                        "multivariate option {} is allocated twice",
                        a.option_id
                    )));
                }
                if !(0.0..=100.0).contains(&a.percentage) {
                    return Err(StoreError::Invalid("percentage_allocation must be 0-100".into()));
                }
            }
            let total: f64 = allocations.iter().map(|a| a.percentage).sum();
            if total > 100.0 + 1e-9 {
                return Err(StoreError::Invalid(
                    "Invalid percentage allocation: total must not exceed 100".into(),
                ));
            }
            Ok(())
        }

        /// Replaces a state's allocations, keeping the walk-order key of options it already had.
        async fn replace_allocations(conn: &mut Conn, state: Id, allocations: &[Allocation]) -> Result<()> {
            let mut keys: HashMap<Id, (i64, String)> = HashMap::new();
            for row in sqlx::query(
                "SELECT option_id, sort_key, uuid FROM multivariate_values WHERE feature_state_id = $1",
            )
            .bind(state)
            .fetch_all(&mut *conn)
            .await?
            {
                keys.insert(row.try_get("option_id")?, (row.try_get("sort_key")?, row.try_get("uuid")?));
            }
            sqlx::query("DELETE FROM multivariate_values WHERE feature_state_id = $1")
                .bind(state)
                .execute(&mut *conn)
                .await?;
            for a in allocations {
                let (sort_key, uuid) = match keys.get(&a.option_id) {
                    Some((k, u)) => (*k, u.clone()),
                    None => (next_sort_key(conn).await?, random::uuid_v4()),
                };
                sqlx::query(
                    "INSERT INTO multivariate_values (feature_state_id, option_id, \
                     percentage_allocation, sort_key, uuid) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(state)
                .bind(a.option_id)
                .bind(a.percentage)
                .bind(sort_key)
                .bind(uuid)
                .execute(&mut *conn)
                .await?;
            }
            Ok(())
        }

        /// The default state of a feature in an environment, from the feature's defaults.
        /// An environment's default state of a feature: the feature's defaults, or disabled and
        /// without a value when `with_defaults` is false (`prevent_flag_defaults`).
        async fn insert_default_state(
            conn: &mut Conn,
            feature: &Feature,
            options: &[MultivariateOption],
            environment: Id,
            with_defaults: bool,
        ) -> Result<Id> {
            let base = next_sort_key(conn).await?;
            let multivariate: Vec<(Id, f64, i64, Option<&str>)> = options
                .iter()
                .enumerate()
                .map(|(i, option)| (option.id, option.default_percentage_allocation, base + i as i64, None))
                .collect();
            insert_state(
                conn,
                feature.id,
                environment,
                None,
                None,
                with_defaults && feature.default_enabled,
                &if with_defaults {
                    typed_initial_value(feature.initial_value.as_deref())
                } else {
                    Value::Null
                },
                Some(random::seed()),
                None,
                &multivariate,
            )
            .await
        }

        /// Deletes states (already described as `before`), queuing FLAG_DELETED events.
        async fn delete_states_with_events(
            conn: &mut Conn,
            author: &Author,
            filter: &str,
            id: Id,
        ) -> Result<()> {
            let states = sqlx::query(&format!("SELECT id FROM feature_states WHERE {filter}"))
                .bind(id)
                .fetch_all(&mut *conn)
                .await?;
            for row in states {
                let state = load_state(conn, row.try_get("id")?).await?;
                let before = describe_state(conn, &state).await?;
                queue_flag_event(conn, author, state.environment_id, "FLAG_DELETED", Some(&before), None)
                    .await?;
            }
            Ok(())
        }

        /// A page's LIMIT and OFFSET (everything when no page is asked for).
        fn limit_offset(page: Option<Page>) -> (i64, i64) {
            match page {
                Some(p) => (p.size as i64, p.offset()),
                None => (i64::MAX, 0),
            }
        }

        /// A bound argument of a dynamically built query.
        enum Arg {
            Int(i64),
            Text(String),
        }

        /// Links a segment to a feature in an environment at a priority (or last).
        async fn link_segment(tx: &mut Conn, author: &Author, new: &NewFeatureSegment) -> Result<FeatureSegment> {
            let (scope, environment) = environment_scope(tx, new.environment_id).await?;
            let feature = load_feature(tx, new.feature_id).await?;
            let segment = load_segment(tx, new.segment_id).await?;
            if feature.project_id != environment.project_id || segment.project_id != environment.project_id {
                return Err(StoreError::Invalid("feature, segment and environment must belong to one project".into()));
            }
            let existing: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM feature_segments WHERE feature_id = $1 AND environment_id = $2",
            )
            .bind(feature.id)
            .bind(environment.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            let priority = match new.priority {
                Some(p) => {
                    let p = p.clamp(0, existing);
                    sqlx::query(
                        "UPDATE feature_segments SET priority = priority + 1 WHERE feature_id = $1 \
                         AND environment_id = $2 AND priority >= $3",
                    )
                    .bind(feature.id)
                    .bind(environment.id)
                    .bind(p)
                    .execute(&mut *tx)
                    .await?;
                    p
                }
                None => existing,
            };
            let row = sqlx::query(&format!(
                "INSERT INTO feature_segments (feature_id, segment_id, environment_id, priority) \
                 VALUES ($1, $2, $3, $4) RETURNING {FEATURE_SEGMENT_COLUMNS}"
            ))
            .bind(feature.id)
            .bind(segment.id)
            .bind(environment.id)
            .bind(priority)
            .fetch_one(&mut *tx)
            .await?;
            let fs = feature_segment_row(&row)?;
            renumber_priorities(tx, feature.id, environment.id).await?;
            touch_environment(tx, environment.id).await?;
            audit(tx, author, scope, "FEATURE_SEGMENT", Some(fs.id),
                &format!("Segment override of {} added for feature: {}", segment.name, feature.name),
                None, to_json(&fs).as_ref()).await?;
            load_feature_segment(tx, fs.id).await
        }

        /// Creates a segment or identity override state.
        async fn new_override_state(tx: &mut Conn, author: &Author, new: &NewState) -> Result<FeatureState> {
            let (scope, environment) = environment_scope(tx, new.environment_id).await?;
            let feature = load_feature(tx, new.feature_id).await?;
            if feature.project_id != environment.project_id {
                return Err(StoreError::Invalid("the feature belongs to another project".into()));
            }
            let (feature_segment, identity) = match new.target {
                StateTarget::FeatureSegment(id) => {
                    let fs = load_feature_segment(tx, id).await?;
                    if fs.feature_id != feature.id || fs.environment_id != environment.id {
                        return Err(StoreError::Invalid("the feature segment is for another feature or environment".into()));
                    }
                    (Some(id), None)
                }
                StateTarget::Identity(id) => {
                    let found = sqlx::query("SELECT id FROM identities WHERE id = $1 AND environment_id = $2")
                        .bind(id)
                        .bind(environment.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if found.is_none() {
                        return Err(StoreError::NotFound);
                    }
                    (None, Some(id))
                }
            };
            check_allocations(tx, feature.id, &new.multivariate).await?;
            let seed = if identity.is_some() { None } else { Some(random::seed()) };
            let state_id = insert_state(tx, feature.id, environment.id, feature_segment, identity,
                new.enabled, &new.value, seed, None, &[]).await?;
            replace_allocations(tx, state_id, &new.multivariate).await?;
            touch_environment(tx, environment.id).await?;
            let state = load_state(tx, state_id).await?;
            let after = describe_state(tx, &state).await?;
            queue_flag_event(tx, author, environment.id, "FLAG_UPDATED", None, Some(&after)).await?;
            let what = if identity.is_some() { "Identity override" } else { "Segment override" };
            audit(tx, author, scope, "FEATURE_STATE", Some(state_id),
                &format!("{what} created for feature: {}", feature.name), None, Some(&after)).await?;
            Ok(state)
        }

        #[async_trait]
        impl AdminStore for $store {
            async fn organisations(&self) -> Result<Vec<Organisation>> {
                sqlx::query(&format!("SELECT {ORGANISATION_COLUMNS} FROM organisations ORDER BY id"))
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(organisation_row)
                    .collect()
            }

            async fn organisation(&self, id: Id) -> Result<Organisation> {
                let row = sqlx::query(&format!(
                    "SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = $1"
                ))
                .bind(id)
                .fetch_one(&self.read)
                .await?;
                organisation_row(&row)
            }

            async fn create_organisation(&self, author: &Author, new: &NewOrganisation) -> Result<Organisation> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO organisations (uuid, name, created_at) VALUES ($1, $2, $3) \
                     RETURNING {ORGANISATION_COLUMNS}"
                ))
                .bind(random::uuid_v4())
                .bind(&new.name)
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let organisation = organisation_row(&row)?;
                let scope = Scope { organisation: Some(organisation.id), ..Scope::default() };
                audit(&mut tx, author, scope, "ORGANISATION", Some(organisation.id),
                    &format!("Organisation created: {}", organisation.name), None, to_json(&organisation).as_ref()).await?;
                tx.commit().await?;
                Ok(organisation)
            }

            async fn update_organisation(
                &self,
                author: &Author,
                id: Id,
                update: &OrganisationUpdate,
            ) -> Result<Change<Organisation>> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!("SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let before = organisation_row(&row)?;
                let mut after = before.clone();
                if let Some(name) = &update.name { after.name = name.clone(); }
                if let Some(v) = update.persist_trait_data { after.persist_trait_data = v; }
                if let Some(v) = update.feature_analytics { after.feature_analytics = v; }
                if let Some(v) = update.stop_serving_flags { after.stop_serving_flags = v; }
                sqlx::query(
                    "UPDATE organisations SET name = $1, persist_trait_data = $2, feature_analytics = $3, \
                     stop_serving_flags = $4 WHERE id = $5",
                )
                .bind(&after.name)
                .bind(after.persist_trait_data)
                .bind(after.feature_analytics)
                .bind(after.stop_serving_flags)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let environments = environments_of_organisation(&mut tx, id).await?;
                touch_all(&mut tx, &environments).await?;
                let scope = Scope { organisation: Some(id), ..Scope::default() };
                audit(&mut tx, author, scope, "ORGANISATION", Some(id),
                    &format!("Organisation updated: {}", after.name), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: after, environments })
            }

            async fn delete_organisation(&self, author: &Author, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!("SELECT {ORGANISATION_COLUMNS} FROM organisations WHERE id = $1"))
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?;
                let before = organisation_row(&row)?;
                let environments = environments_of_organisation(&mut tx, id).await?;
                sqlx::query("DELETE FROM organisations WHERE id = $1").bind(id).execute(&mut *tx).await?;
                // Its log goes with it: SQLite may give its id to the next organisation, which must
                // not inherit the history. The deletion itself is kept in the installation's log.
                sqlx::query("DELETE FROM audit_log WHERE organisation_id = $1").bind(id).execute(&mut *tx).await?;
                audit(&mut tx, author, Scope::default(), "ORGANISATION", Some(id),
                    &format!("Organisation deleted: {}", before.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments })
            }

            async fn api_keys(&self, organisation: Id) -> Result<Vec<ApiKey>> {
                sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM organisation_api_keys WHERE organisation_id = $1 ORDER BY id"
                ))
                .bind(organisation)
                .fetch_all(&self.read)
                .await?
                .iter()
                .map(api_key_row)
                .collect()
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
                sqlx::query(&format!("SELECT {API_KEY_COLUMNS} FROM organisation_api_keys WHERE prefix = $1"))
                    .bind(prefix)
                    .fetch_optional(&self.read)
                    .await?
                    .as_ref()
                    .map(api_key_row)
                    .transpose()
            }

            async fn create_api_key(&self, author: &Author, organisation: Id, new: &NewApiKey) -> Result<ApiKey> {
                let mut tx = self.write.begin().await?;
                sqlx::query("SELECT id FROM organisations WHERE id = $1").bind(organisation).fetch_one(&mut *tx).await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO organisation_api_keys (organisation_id, prefix, key_hash, name, is_admin, \
                     revoked, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7) \
                     RETURNING {API_KEY_COLUMNS}"
                ))
                .bind(organisation)
                .bind(&new.prefix)
                .bind(&new.key_hash)
                .bind(&new.name)
                .bind(new.is_admin)
                .bind(new.expires_at)
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let key = api_key_row(&row)?;
                let scope = Scope { organisation: Some(organisation), ..Scope::default() };
                audit(&mut tx, author, scope, "API_KEY", Some(key.id),
                    &format!("API key created: {} ({})", key.name, key.prefix), None, to_json(&key).as_ref()).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn update_api_key(
                &self,
                author: &Author,
                organisation: Id,
                prefix: &str,
                update: &ApiKeyUpdate,
            ) -> Result<ApiKey> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM organisation_api_keys WHERE prefix = $1 AND organisation_id = $2"
                ))
                .bind(prefix)
                .bind(organisation)
                .fetch_one(&mut *tx)
                .await?;
                let before = api_key_row(&row)?;
                let mut after = before.clone();
                if let Some(name) = &update.name { after.name = name.clone(); }
                if let Some(revoked) = update.revoked { after.revoked = revoked; }
                if let Some(expires) = update.expires_at { after.expires_at = expires; }
                sqlx::query("UPDATE organisation_api_keys SET name = $1, revoked = $2, expires_at = $3 WHERE id = $4")
                    .bind(&after.name)
                    .bind(after.revoked)
                    .bind(after.expires_at)
                    .bind(after.id)
                    .execute(&mut *tx)
                    .await?;
                let scope = Scope { organisation: Some(organisation), ..Scope::default() };
                audit(&mut tx, author, scope, "API_KEY", Some(after.id),
                    &format!("API key updated: {} ({})", after.name, after.prefix), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn delete_api_key(&self, author: &Author, organisation: Id, prefix: &str) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let row = sqlx::query(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM organisation_api_keys WHERE prefix = $1 AND organisation_id = $2"
                ))
                .bind(prefix)
                .bind(organisation)
                .fetch_one(&mut *tx)
                .await?;
                let before = api_key_row(&row)?;
                sqlx::query("DELETE FROM organisation_api_keys WHERE id = $1").bind(before.id).execute(&mut *tx).await?;
                let scope = Scope { organisation: Some(organisation), ..Scope::default() };
                audit(&mut tx, author, scope, "API_KEY", Some(before.id),
                    &format!("API key deleted: {} ({})", before.name, before.prefix), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn projects(&self, organisation: Option<Id>) -> Result<Vec<Project>> {
                let rows = match organisation {
                    Some(id) => sqlx::query(&format!(
                        "SELECT {PROJECT_COLUMNS} FROM projects WHERE organisation_id = $1 ORDER BY id"
                    ))
                    .bind(id)
                    .fetch_all(&self.read)
                    .await?,
                    None => sqlx::query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY id"))
                        .fetch_all(&self.read)
                        .await?,
                };
                rows.iter().map(project_row).collect()
            }

            async fn project(&self, id: Id) -> Result<Project> {
                let mut conn = self.read.acquire().await?;
                load_project(&mut conn, id).await
            }

            async fn create_project(&self, author: &Author, new: &NewProject) -> Result<Project> {
                let mut tx = self.write.begin().await?;
                sqlx::query("SELECT id FROM organisations WHERE id = $1").bind(new.organisation_id).fetch_one(&mut *tx).await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO projects (organisation_id, name, hide_disabled_flags, enable_realtime_updates, \
                     created_at, uuid, prevent_flag_defaults, only_allow_lower_case_feature_names, \
                     feature_name_regex, stale_flags_limit_days) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {PROJECT_COLUMNS}"
                ))
                .bind(new.organisation_id)
                .bind(&new.name)
                .bind(new.hide_disabled_flags)
                .bind(new.enable_realtime_updates)
                .bind(now_micros())
                .bind(random::uuid_v4())
                .bind(new.settings.prevent_flag_defaults)
                .bind(new.settings.only_allow_lower_case_feature_names)
                .bind(new.settings.feature_name_regex.as_deref())
                .bind(new.settings.stale_flags_limit_days)
                .fetch_one(&mut *tx)
                .await?;
                let project = project_row(&row)?;
                let scope = Scope { organisation: Some(project.organisation_id), project: Some(project.id), environment: None };
                audit(&mut tx, author, scope, "PROJECT", Some(project.id),
                    &format!("Project created: {}", project.name), None, to_json(&project).as_ref()).await?;
                tx.commit().await?;
                Ok(project)
            }

            async fn update_project(&self, author: &Author, id: Id, update: &ProjectUpdate) -> Result<Change<Project>> {
                let mut tx = self.write.begin().await?;
                let before = load_project(&mut tx, id).await?;
                let mut after = before.clone();
                if let Some(name) = &update.name { after.name = name.clone(); }
                if let Some(v) = update.hide_disabled_flags { after.hide_disabled_flags = v; }
                if let Some(v) = update.enable_realtime_updates { after.enable_realtime_updates = v; }
                if let Some(v) = update.prevent_flag_defaults { after.prevent_flag_defaults = v; }
                if let Some(v) = update.only_allow_lower_case_feature_names { after.only_allow_lower_case_feature_names = v; }
                if let Some(v) = &update.feature_name_regex { after.feature_name_regex = v.clone(); }
                if let Some(v) = update.stale_flags_limit_days { after.stale_flags_limit_days = v; }
                sqlx::query("UPDATE projects SET name = $1, hide_disabled_flags = $2, enable_realtime_updates = $3, \
                     prevent_flag_defaults = $4, only_allow_lower_case_feature_names = $5, \
                     feature_name_regex = $6, stale_flags_limit_days = $7 WHERE id = $8")
                    .bind(&after.name)
                    .bind(after.hide_disabled_flags)
                    .bind(after.enable_realtime_updates)
                    .bind(after.prevent_flag_defaults)
                    .bind(after.only_allow_lower_case_feature_names)
                    .bind(after.feature_name_regex.as_deref())
                    .bind(after.stale_flags_limit_days)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let environments = environments_of_project(&mut tx, id).await?;
                touch_all(&mut tx, &environments).await?;
                let scope = Scope { organisation: Some(after.organisation_id), project: Some(id), environment: None };
                audit(&mut tx, author, scope, "PROJECT", Some(id),
                    &format!("Project updated: {}", after.name), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: after, environments })
            }

            async fn delete_project(&self, author: &Author, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let before = load_project(&mut tx, id).await?;
                let environments = environments_of_project(&mut tx, id).await?;
                sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await?;
                // Its entries stay in the organisation's log but no longer name its id (or those of
                // its environments), which SQLite may give to a new project.
                sqlx::query("UPDATE audit_log SET project_id = NULL, environment_id = NULL WHERE project_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let scope = Scope { organisation: Some(before.organisation_id), project: None, environment: None };
                audit(&mut tx, author, scope, "PROJECT", Some(id),
                    &format!("Project deleted: {}", before.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments })
            }

            async fn environment(&self, id: Id) -> Result<Environment> {
                let mut conn = self.read.acquire().await?;
                environment_by_id(&mut conn, id).await
            }

            async fn project_environments(&self, project: Id) -> Result<Vec<Environment>> {
                sqlx::query(&format!(
                    "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE project_id = $1 ORDER BY id"
                ))
                .bind(project)
                .fetch_all(&self.read)
                .await?
                .iter()
                .map(environment_row)
                .collect()
            }

            async fn create_environment(&self, author: &Author, new: &NewEnvironment) -> Result<Environment> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, new.project_id).await?;
                let s = &new.settings;
                let now = now_micros();
                let id: Id = sqlx::query(
                    "INSERT INTO environments (project_id, api_key, name, description, allow_client_traits, \
                     hide_sensitive_data, hide_disabled_flags, use_identity_composite_key_for_hashing, \
                     use_identity_overrides_in_local_eval, updated_at, revision, created_at, uuid) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $10, $11) RETURNING id",
                )
                .bind(new.project_id)
                .bind(random::client_key())
                .bind(&new.name)
                .bind(new.description.as_deref())
                .bind(s.allow_client_traits.unwrap_or(true))
                .bind(s.hide_sensitive_data.unwrap_or(false))
                .bind(s.hide_disabled_flags.flatten())
                .bind(s.use_identity_composite_key_for_hashing.unwrap_or(true))
                .bind(s.use_identity_overrides_in_local_eval.unwrap_or(true))
                .bind(now)
                .bind(random::uuid_v4())
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                let features = sqlx::query(&format!("SELECT {FEATURE_COLUMNS} FROM features WHERE project_id = $1 ORDER BY id"))
                    .bind(new.project_id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(feature_row)
                    .collect::<Result<Vec<_>>>()?;
                for feature in &features {
                    let options = load_options(&mut tx, feature.id).await?;
                    insert_default_state(&mut tx, feature, &options, id, true).await?;
                }
                let environment = environment_by_id(&mut tx, id).await?;
                let scope = Scope { environment: Some(id), ..scope };
                audit(&mut tx, author, scope, "ENVIRONMENT", Some(id),
                    &format!("Environment created: {}", environment.name), None, to_json(&environment).as_ref()).await?;
                tx.commit().await?;
                Ok(environment)
            }

            async fn update_environment(&self, author: &Author, id: Id, update: &EnvironmentUpdate) -> Result<Environment> {
                let mut tx = self.write.begin().await?;
                let (scope, before) = environment_scope(&mut tx, id).await?;
                let mut after = before.clone();
                if let Some(v) = &update.name { after.name = v.clone(); }
                if let Some(v) = &update.description { after.description = v.clone(); }
                if let Some(v) = update.allow_client_traits { after.allow_client_traits = v; }
                if let Some(v) = update.hide_sensitive_data { after.hide_sensitive_data = v; }
                if let Some(v) = update.hide_disabled_flags { after.hide_disabled_flags = v; }
                if let Some(v) = update.use_identity_composite_key_for_hashing { after.use_identity_composite_key_for_hashing = v; }
                if let Some(v) = update.use_identity_overrides_in_local_eval { after.use_identity_overrides_in_local_eval = v; }
                sqlx::query(
                    "UPDATE environments SET name = $1, description = $2, allow_client_traits = $3, \
                     hide_sensitive_data = $4, hide_disabled_flags = $5, use_identity_composite_key_for_hashing = $6, \
                     use_identity_overrides_in_local_eval = $7 WHERE id = $8",
                )
                .bind(&after.name)
                .bind(after.description.as_deref())
                .bind(after.allow_client_traits)
                .bind(after.hide_sensitive_data)
                .bind(after.hide_disabled_flags)
                .bind(after.use_identity_composite_key_for_hashing)
                .bind(after.use_identity_overrides_in_local_eval)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                touch_environment(&mut tx, id).await?;
                let after = environment_by_id(&mut tx, id).await?;
                audit(&mut tx, author, scope, "ENVIRONMENT", Some(id),
                    &format!("Environment updated: {}", after.name), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn delete_environment(&self, author: &Author, id: Id) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let (scope, before) = environment_scope(&mut tx, id).await?;
                sqlx::query("DELETE FROM environments WHERE id = $1").bind(id).execute(&mut *tx).await?;
                // As for a project: the entries stay, detached from an id SQLite may reuse.
                sqlx::query("UPDATE audit_log SET environment_id = NULL WHERE environment_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let scope = Scope { environment: None, ..scope };
                audit(&mut tx, author, scope, "ENVIRONMENT", Some(id),
                    &format!("Environment deleted: {}", before.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn clone_environment(&self, author: &Author, id: Id, name: &str) -> Result<Environment> {
                let mut tx = self.write.begin().await?;
                let (scope, source) = environment_scope(&mut tx, id).await?;
                let now = now_micros();
                let clone_id: Id = sqlx::query(
                    "INSERT INTO environments (project_id, api_key, name, description, allow_client_traits, \
                     hide_sensitive_data, hide_disabled_flags, use_identity_composite_key_for_hashing, \
                     use_identity_overrides_in_local_eval, updated_at, revision, created_at, uuid) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $10, $11) RETURNING id",
                )
                .bind(source.project_id)
                .bind(random::client_key())
                .bind(name)
                .bind(source.description.as_deref())
                .bind(source.allow_client_traits)
                .bind(source.hide_sensitive_data)
                .bind(source.hide_disabled_flags)
                .bind(source.use_identity_composite_key_for_hashing)
                .bind(source.use_identity_overrides_in_local_eval)
                .bind(now)
                .bind(random::uuid_v4())
                .fetch_one(&mut *tx)
                .await?
                .try_get("id")?;
                let mut states = sqlx::query(&format!(
                    "SELECT {STATE_COLUMNS} FROM feature_states WHERE environment_id = $1 AND identity_id IS NULL ORDER BY id"
                ))
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(state_row)
                .collect::<Result<Vec<_>>>()?;
                attach_multivariate(&mut tx, &mut states, "fs.environment_id = $1 AND fs.identity_id IS NULL", id).await?;
                for state in &states {
                    let feature_segment = match state.feature_segment_id {
                        Some(fs_id) => {
                            let fs = load_feature_segment(&mut tx, fs_id).await?;
                            let new_id: Id = sqlx::query(
                                "INSERT INTO feature_segments (feature_id, segment_id, environment_id, priority) \
                                 VALUES ($1, $2, $3, $4) RETURNING id",
                            )
                            .bind(fs.feature_id)
                            .bind(fs.segment_id)
                            .bind(clone_id)
                            .bind(fs.priority)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("id")?;
                            Some(new_id)
                        }
                        None => None,
                    };
                    let multivariate: Vec<(Id, f64, i64, Option<&str>)> = state
                        .multivariate
                        .iter()
                        .map(|v| (v.option_id, v.percentage_allocation, v.sort_key, None))
                        .collect();
                    insert_state(&mut tx, state.feature_id, clone_id, feature_segment, None, state.enabled,
                        &state.value, state.seed, None, &multivariate).await?;
                }
                let environment = environment_by_id(&mut tx, clone_id).await?;
                let scope = Scope { environment: Some(clone_id), ..scope };
                audit(&mut tx, author, scope, "ENVIRONMENT", Some(clone_id),
                    &format!("Environment created: {} (clone of {})", environment.name, source.name), None, to_json(&environment).as_ref()).await?;
                tx.commit().await?;
                Ok(environment)
            }

            async fn features(&self, project: Id, query: &FeatureQuery) -> Result<Paged<FeatureRecord>> {
                let mut conn = self.read.acquire().await?;
                let pattern = format!("%{}%", escape_like(&query.search.as_deref().unwrap_or("").to_lowercase()));
                let total: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM features WHERE project_id = $1 AND name_key LIKE $2 ESCAPE '\\'",
                )
                .bind(project)
                .bind(&pattern)
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
                let (limit, offset) = limit_offset(query.page);
                let features = sqlx::query(&format!(
                    "SELECT {FEATURE_COLUMNS} FROM features WHERE project_id = $1 AND name_key LIKE $2 \
                     ESCAPE '\\' ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(project)
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(feature_row)
                .collect::<Result<Vec<_>>>()?;
                let mut items = Vec::with_capacity(features.len());
                for feature in features {
                    let options = load_options(&mut conn, feature.id).await?;
                    items.push(FeatureRecord { feature, options });
                }
                Ok(Paged { items, total: total as u64 })
            }

            async fn feature(&self, project: Id, id: Id) -> Result<FeatureRecord> {
                let mut conn = self.read.acquire().await?;
                let feature = load_feature(&mut conn, id).await?;
                if feature.project_id != project {
                    return Err(StoreError::NotFound);
                }
                let options = load_options(&mut conn, id).await?;
                Ok(FeatureRecord { feature, options })
            }

            async fn create_feature(&self, author: &Author, project: Id, new: &NewFeature) -> Result<Change<FeatureRecord>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                let defaults: f64 = new.options.iter().map(|o| o.default_percentage_allocation).sum();
                if defaults > 100.0 + 1e-9 {
                    return Err(StoreError::Invalid("Invalid percentage allocation: total must not exceed 100".into()));
                }
                let feature_type = if new.options.is_empty() { "STANDARD" } else { "MULTIVARIATE" };
                let row = sqlx::query(&format!(
                    "INSERT INTO features (project_id, name, name_key, type, description, initial_value, \
                     default_enabled, is_server_key_only, created_at, uuid) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {FEATURE_COLUMNS}"
                ))
                .bind(project)
                .bind(&new.name)
                .bind(name_key(&new.name))
                .bind(feature_type)
                .bind(new.description.as_deref())
                .bind(new.initial_value.as_deref())
                .bind(new.default_enabled)
                .bind(new.is_server_key_only)
                .bind(now_micros())
                .bind(random::uuid_v4())
                .fetch_one(&mut *tx)
                .await?;
                let feature = feature_row(&row)?;
                for option in &new.options {
                    sqlx::query(
                        "INSERT INTO multivariate_options (feature_id, value, default_percentage_allocation, key, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(feature.id)
                    .bind(value_text(&option.value))
                    .bind(option.default_percentage_allocation)
                    .bind(option.key.as_deref())
                    .bind(now_micros())
                    .execute(&mut *tx)
                    .await?;
                }
                let options = load_options(&mut tx, feature.id).await?;
                let environments = environments_of_project(&mut tx, project).await?;
                let with_defaults = !load_project(&mut tx, project).await?.prevent_flag_defaults;
                for environment in &environments {
                    let state_id = insert_default_state(&mut tx, &feature, &options, *environment, with_defaults).await?;
                    let state = load_state(&mut tx, state_id).await?;
                    let after = describe_state(&mut tx, &state).await?;
                    queue_flag_event(&mut tx, author, *environment, "FLAG_UPDATED", None, Some(&after)).await?;
                }
                touch_all(&mut tx, &environments).await?;
                let record = FeatureRecord { feature, options };
                audit(&mut tx, author, scope, "FEATURE", Some(record.feature.id),
                    &format!("New Flag / Remote Config created: {}", record.feature.name), None,
                    to_json(&record.feature).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: record, environments })
            }

            async fn update_feature(&self, author: &Author, project: Id, id: Id, update: &FeatureUpdate) -> Result<Change<FeatureRecord>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                let before = load_feature(&mut tx, id).await?;
                if before.project_id != project {
                    return Err(StoreError::NotFound);
                }
                let mut after = before.clone();
                if let Some(v) = &update.name { after.name = v.clone(); }
                if let Some(v) = &update.description { after.description = v.clone(); }
                if let Some(v) = &update.initial_value { after.initial_value = v.clone(); }
                if let Some(v) = update.default_enabled { after.default_enabled = v; }
                if let Some(v) = update.is_server_key_only { after.is_server_key_only = v; }
                sqlx::query(
                    "UPDATE features SET name = $1, name_key = $2, description = $3, initial_value = $4, \
                     default_enabled = $5, is_server_key_only = $6 WHERE id = $7",
                )
                .bind(&after.name)
                .bind(name_key(&after.name))
                .bind(after.description.as_deref())
                .bind(after.initial_value.as_deref())
                .bind(after.default_enabled)
                .bind(after.is_server_key_only)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let environments = environments_of_project(&mut tx, project).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "FEATURE", Some(id),
                    &format!("Flag / Remote Config updated: {}", after.name),
                    to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                let options = load_options(&mut tx, id).await?;
                tx.commit().await?;
                Ok(Change { value: FeatureRecord { feature: after, options }, environments })
            }

            async fn delete_feature(&self, author: &Author, project: Id, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                let before = load_feature(&mut tx, id).await?;
                if before.project_id != project {
                    return Err(StoreError::NotFound);
                }
                delete_states_with_events(&mut tx, author, "feature_id = $1 AND feature_segment_id IS NULL AND identity_id IS NULL", id).await?;
                let environments = environments_of_project(&mut tx, project).await?;
                sqlx::query("DELETE FROM features WHERE id = $1").bind(id).execute(&mut *tx).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "FEATURE", Some(id),
                    &format!("Flag / Remote Config deleted: {}", before.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments })
            }

            async fn create_option(&self, author: &Author, feature: Id, new: &NewOption) -> Result<Change<MultivariateOption>> {
                let mut tx = self.write.begin().await?;
                let record = load_feature(&mut tx, feature).await?;
                let scope = project_scope(&mut tx, record.project_id).await?;
                let existing = load_options(&mut tx, feature).await?;
                let defaults: f64 = existing.iter().map(|o| o.default_percentage_allocation).sum::<f64>()
                    + new.default_percentage_allocation;
                if defaults > 100.0 + 1e-9 {
                    return Err(StoreError::Invalid("Invalid percentage allocation: total must not exceed 100".into()));
                }
                let row = sqlx::query(&format!(
                    "INSERT INTO multivariate_options (feature_id, value, default_percentage_allocation, key, created_at) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING {OPTION_COLUMNS}"
                ))
                .bind(feature)
                .bind(value_text(&new.value))
                .bind(new.default_percentage_allocation)
                .bind(new.key.as_deref())
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let option = option_row(&row)?;
                let described = describe_defaults(&mut tx, "feature_id", feature).await?;
                sqlx::query("UPDATE features SET type = 'MULTIVARIATE' WHERE id = $1").bind(feature).execute(&mut *tx).await?;
                // Every environment default gets the option at its default allocation.
                let defaults = sqlx::query(
                    "SELECT id FROM feature_states WHERE feature_id = $1 AND feature_segment_id IS NULL AND identity_id IS NULL",
                )
                .bind(feature)
                .fetch_all(&mut *tx)
                .await?;
                for row in defaults {
                    let state: Id = row.try_get("id")?;
                    let sort_key = next_sort_key(&mut tx).await?;
                    sqlx::query(
                        "INSERT INTO multivariate_values (feature_state_id, option_id, percentage_allocation, sort_key, uuid) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(state)
                    .bind(option.id)
                    .bind(option.default_percentage_allocation)
                    .bind(sort_key)
                    .bind(random::uuid_v4())
                    .execute(&mut *tx)
                    .await?;
                }
                queue_option_change(&mut tx, author, feature, &described).await?;
                let environments = environments_of_project(&mut tx, record.project_id).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "MULTIVARIATE_OPTION", Some(option.id),
                    &format!("Multivariate option created for feature: {}", record.name), None, to_json(&option).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: option, environments })
            }

            async fn update_option(&self, author: &Author, feature: Id, id: Id, update: &NewOption) -> Result<Change<MultivariateOption>> {
                let mut tx = self.write.begin().await?;
                let record = load_feature(&mut tx, feature).await?;
                let scope = project_scope(&mut tx, record.project_id).await?;
                let options = load_options(&mut tx, feature).await?;
                let before = options.iter().find(|o| o.id == id).cloned().ok_or(StoreError::NotFound)?;
                let defaults: f64 = options.iter().filter(|o| o.id != id).map(|o| o.default_percentage_allocation).sum::<f64>()
                    + update.default_percentage_allocation;
                if defaults > 100.0 + 1e-9 {
                    return Err(StoreError::Invalid("Invalid percentage allocation: total must not exceed 100".into()));
                }
                let described = describe_defaults(&mut tx, "feature_id", feature).await?;
                let row = sqlx::query(&format!(
                    "UPDATE multivariate_options SET value = $1, default_percentage_allocation = $2, key = $3 \
                     WHERE id = $4 RETURNING {OPTION_COLUMNS}"
                ))
                .bind(value_text(&update.value))
                .bind(update.default_percentage_allocation)
                .bind(update.key.as_deref())
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let after = option_row(&row)?;
                queue_option_change(&mut tx, author, feature, &described).await?;
                let environments = environments_of_project(&mut tx, record.project_id).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "MULTIVARIATE_OPTION", Some(id),
                    &format!("Multivariate option updated for feature: {}", record.name),
                    to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: after, environments })
            }

            async fn delete_option(&self, author: &Author, feature: Id, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let record = load_feature(&mut tx, feature).await?;
                let scope = project_scope(&mut tx, record.project_id).await?;
                let options = load_options(&mut tx, feature).await?;
                let before = options.iter().find(|o| o.id == id).cloned().ok_or(StoreError::NotFound)?;
                let described = describe_defaults(&mut tx, "feature_id", feature).await?;
                sqlx::query("DELETE FROM multivariate_options WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if options.len() == 1 {
                    sqlx::query("UPDATE features SET type = 'STANDARD' WHERE id = $1").bind(feature).execute(&mut *tx).await?;
                }
                queue_option_change(&mut tx, author, feature, &described).await?;
                let environments = environments_of_project(&mut tx, record.project_id).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "MULTIVARIATE_OPTION", Some(id),
                    &format!("Multivariate option deleted for feature: {}", record.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments })
            }

            async fn feature_states(&self, environment: Id, query: &StateQuery) -> Result<Paged<FeatureState>> {
                let mut conn = self.read.acquire().await?;
                // Every kind reads through a partial index on `environment_id`, never the
                // environment's identity overrides when it asks for shared states.
                let kind = match query.kind {
                    StateKind::Shared => "identity_id IS NULL",
                    StateKind::Defaults => "identity_id IS NULL AND feature_segment_id IS NULL",
                    StateKind::SegmentOverrides => "identity_id IS NULL AND feature_segment_id IS NOT NULL",
                    StateKind::IdentityOverrides => "identity_id IS NOT NULL",
                };
                let mut conditions = vec![format!("environment_id = $1 AND {kind}")];
                let mut args: Vec<Arg> = Vec::new();
                if let Some(feature) = query.feature {
                    args.push(Arg::Int(feature));
                    conditions.push(format!("feature_id = ${}", args.len() + 1));
                }
                if let Some(name) = &query.feature_name {
                    args.push(Arg::Text(name.clone()));
                    conditions.push(format!(
                        "feature_id IN (SELECT f.id FROM features f JOIN environments e \
                         ON e.project_id = f.project_id WHERE e.id = $1 AND f.name = ${})",
                        args.len() + 1
                    ));
                }
                if let Some(feature_segment) = query.feature_segment {
                    args.push(Arg::Int(feature_segment));
                    conditions.push(format!("feature_segment_id = ${}", args.len() + 1));
                }
                let filter = conditions.join(" AND ");
                let count_sql = format!("SELECT COUNT(*) AS n FROM feature_states WHERE {filter}");
                let mut count = sqlx::query(&count_sql).bind(environment);
                for a in &args {
                    count = match a { Arg::Int(i) => count.bind(*i), Arg::Text(t) => count.bind(t.clone()) };
                }
                let total: i64 = count.fetch_one(&mut *conn).await?.try_get("n")?;
                let (limit, offset) = limit_offset(query.page);
                let list_sql = format!(
                    "SELECT {STATE_COLUMNS} FROM feature_states WHERE {filter} \
                     ORDER BY feature_id, id LIMIT ${} OFFSET ${}",
                    args.len() + 2,
                    args.len() + 3
                );
                let mut list = sqlx::query(&list_sql).bind(environment);
                for a in &args {
                    list = match a { Arg::Int(i) => list.bind(*i), Arg::Text(t) => list.bind(t.clone()) };
                }
                let mut states = list
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(state_row)
                    .collect::<Result<Vec<_>>>()?;
                let values = if query.kind == StateKind::IdentityOverrides {
                    "fs.environment_id = $1 AND fs.identity_id IS NOT NULL"
                } else {
                    "fs.environment_id = $1 AND fs.identity_id IS NULL"
                };
                attach_multivariate(&mut conn, &mut states, values, environment).await?;
                Ok(Paged { items: states, total: total as u64 })
            }

            async fn override_counts(&self, environment: Id) -> Result<HashMap<Id, OverrideCounts>> {
                let mut conn = self.read.acquire().await?;
                let mut counts: HashMap<Id, OverrideCounts> = HashMap::new();
                for (identities, kind) in [
                    (false, "identity_id IS NULL AND feature_segment_id IS NOT NULL"),
                    (true, "identity_id IS NOT NULL"),
                ] {
                    let rows = sqlx::query(&format!(
                        "SELECT feature_id, COUNT(*) AS n FROM feature_states \
                         WHERE environment_id = $1 AND {kind} GROUP BY feature_id"
                    ))
                    .bind(environment)
                    .fetch_all(&mut *conn)
                    .await?;
                    for row in rows {
                        let entry = counts.entry(row.try_get("feature_id")?).or_default();
                        let n = row.try_get::<i64, _>("n")? as u64;
                        if identities {
                            entry.identities = n;
                        } else {
                            entry.segments = n;
                        }
                    }
                }
                Ok(counts)
            }

            async fn feature_state(&self, id: Id) -> Result<FeatureState> {
                let mut conn = self.read.acquire().await?;
                load_state(&mut conn, id).await
            }

            async fn create_feature_state(&self, author: &Author, new: &NewState) -> Result<Change<FeatureState>> {
                let mut tx = self.write.begin().await?;
                let state = new_override_state(&mut tx, author, new).await?;
                tx.commit().await?;
                Ok(Change { value: state, environments: vec![new.environment_id] })
            }

            async fn update_feature_state(&self, author: &Author, id: Id, update: &StateUpdate) -> Result<Change<FeatureState>> {
                let mut tx = self.write.begin().await?;
                let before_state = load_state(&mut tx, id).await?;
                let (scope, _) = environment_scope(&mut tx, before_state.environment_id).await?;
                let before = describe_state(&mut tx, &before_state).await?;
                let enabled = update.enabled.unwrap_or(before_state.enabled);
                let value = update.value.clone().unwrap_or_else(|| before_state.value.clone());
                sqlx::query("UPDATE feature_states SET enabled = $1, value = $2, updated_at = $3 WHERE id = $4")
                    .bind(enabled)
                    .bind(value_text(&value))
                    .bind(now_micros())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(allocations) = &update.multivariate {
                    check_allocations(&mut tx, before_state.feature_id, allocations).await?;
                    replace_allocations(&mut tx, id, allocations).await?;
                }
                touch_environment(&mut tx, before_state.environment_id).await?;
                let state = load_state(&mut tx, id).await?;
                let after = describe_state(&mut tx, &state).await?;
                queue_flag_event(&mut tx, author, state.environment_id, "FLAG_UPDATED", Some(&before), Some(&after)).await?;
                let feature_name = after["feature"]["name"].as_str().unwrap_or("").to_owned();
                audit(&mut tx, author, scope, "FEATURE_STATE", Some(id),
                    &format!("Flag state / Remote Config value updated for feature: {feature_name}"),
                    Some(&before), Some(&after)).await?;
                tx.commit().await?;
                Ok(Change { value: state, environments: vec![before_state.environment_id] })
            }

            async fn delete_feature_state(&self, author: &Author, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let state = load_state(&mut tx, id).await?;
                if state.feature_segment_id.is_none() && state.identity_id.is_none() {
                    return Err(StoreError::Invalid("an environment default state cannot be deleted".into()));
                }
                let (scope, _) = environment_scope(&mut tx, state.environment_id).await?;
                let before = describe_state(&mut tx, &state).await?;
                sqlx::query("DELETE FROM feature_states WHERE id = $1").bind(id).execute(&mut *tx).await?;
                if let Some(fs) = state.feature_segment_id {
                    sqlx::query("DELETE FROM feature_segments WHERE id = $1").bind(fs).execute(&mut *tx).await?;
                    renumber_priorities(&mut tx, state.feature_id, state.environment_id).await?;
                }
                queue_flag_event(&mut tx, author, state.environment_id, "FLAG_DELETED", Some(&before), None).await?;
                touch_environment(&mut tx, state.environment_id).await?;
                let feature_name = before["feature"]["name"].as_str().unwrap_or("").to_owned();
                audit(&mut tx, author, scope, "FEATURE_STATE", Some(id),
                    &format!("Override deleted for feature: {feature_name}"), Some(&before), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments: vec![state.environment_id] })
            }

            async fn segments(&self, project: Id, query: &SegmentQuery) -> Result<Paged<Segment>> {
                let mut conn = self.read.acquire().await?;
                let pattern = format!("%{}%", escape_like(&query.search.as_deref().unwrap_or("").to_lowercase()));
                let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM segments WHERE project_id = $1 AND lower(name) LIKE $2 ESCAPE '\\'")
                    .bind(project)
                    .bind(&pattern)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                let (limit, offset) = limit_offset(query.page);
                let items = sqlx::query(&format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE project_id = $1 AND lower(name) LIKE $2 \
                     ESCAPE '\\' ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(project)
                .bind(&pattern)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(segment_row)
                .collect::<Result<Vec<_>>>()?;
                Ok(Paged { items, total: total as u64 })
            }

            async fn segment(&self, project: Id, id: Id) -> Result<Segment> {
                let mut conn = self.read.acquire().await?;
                let segment = load_segment(&mut conn, id).await?;
                if segment.project_id != project {
                    return Err(StoreError::NotFound);
                }
                Ok(segment)
            }

            async fn create_segment(&self, author: &Author, project: Id, new: &NewSegment) -> Result<Change<Segment>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                if let Some(feature) = new.feature_id
                    && load_feature(&mut tx, feature).await?.project_id != project
                {
                    return Err(StoreError::Invalid("the feature belongs to another project".into()));
                }
                let rules = serde_json::to_string(&new.rules).context("serialising rules")?;
                let row = sqlx::query(&format!(
                    "INSERT INTO segments (project_id, name, description, seed, rules, feature_id, uuid, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SEGMENT_COLUMNS}"
                ))
                .bind(project)
                .bind(&new.name)
                .bind(new.description.as_deref())
                .bind(random::seed())
                .bind(&rules)
                .bind(new.feature_id)
                .bind(random::uuid_v4())
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let segment = segment_row(&row)?;
                let environments = environments_of_project(&mut tx, project).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "SEGMENT", Some(segment.id),
                    &format!("Segment created: {}", segment.name), None, to_json(&segment).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: segment, environments })
            }

            async fn update_segment(&self, author: &Author, project: Id, id: Id, update: &NewSegment) -> Result<Change<Segment>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                let before = load_segment(&mut tx, id).await?;
                if before.project_id != project {
                    return Err(StoreError::NotFound);
                }
                if let Some(feature) = update.feature_id
                    && load_feature(&mut tx, feature).await?.project_id != project
                {
                    return Err(StoreError::Invalid("the feature belongs to another project".into()));
                }
                let rules = serde_json::to_string(&update.rules).context("serialising rules")?;
                sqlx::query("UPDATE segments SET name = $1, description = $2, rules = $3, feature_id = $4 WHERE id = $5")
                    .bind(&update.name)
                    .bind(update.description.as_deref())
                    .bind(&rules)
                    .bind(update.feature_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let after = load_segment(&mut tx, id).await?;
                let environments = environments_of_project(&mut tx, project).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "SEGMENT", Some(id),
                    &format!("Segment updated: {}", after.name), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(Change { value: after, environments })
            }

            async fn delete_segment(&self, author: &Author, project: Id, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let scope = project_scope(&mut tx, project).await?;
                let before = load_segment(&mut tx, id).await?;
                if before.project_id != project {
                    return Err(StoreError::NotFound);
                }
                delete_states_with_events(&mut tx, author,
                    "feature_segment_id IN (SELECT id FROM feature_segments WHERE segment_id = $1)", id).await?;
                sqlx::query("DELETE FROM segments WHERE id = $1").bind(id).execute(&mut *tx).await?;
                let environments = environments_of_project(&mut tx, project).await?;
                touch_all(&mut tx, &environments).await?;
                audit(&mut tx, author, scope, "SEGMENT", Some(id),
                    &format!("Segment deleted: {}", before.name), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments })
            }

            async fn feature_segments(&self, environment: Id, feature: Option<Id>) -> Result<Vec<FeatureSegment>> {
                let rows = match feature {
                    Some(feature) => sqlx::query(&format!(
                        "SELECT {FEATURE_SEGMENT_COLUMNS} FROM feature_segments WHERE environment_id = $1 \
                         AND feature_id = $2 ORDER BY priority, id"
                    ))
                    .bind(environment)
                    .bind(feature)
                    .fetch_all(&self.read)
                    .await?,
                    None => sqlx::query(&format!(
                        "SELECT {FEATURE_SEGMENT_COLUMNS} FROM feature_segments WHERE environment_id = $1 \
                         ORDER BY feature_id, priority, id"
                    ))
                    .bind(environment)
                    .fetch_all(&self.read)
                    .await?,
                };
                rows.iter().map(feature_segment_row).collect()
            }

            async fn feature_segment(&self, id: Id) -> Result<FeatureSegment> {
                let mut conn = self.read.acquire().await?;
                load_feature_segment(&mut conn, id).await
            }

            async fn create_feature_segment(&self, author: &Author, new: &NewFeatureSegment) -> Result<Change<FeatureSegment>> {
                let mut tx = self.write.begin().await?;
                let fs = link_segment(&mut tx, author, new).await?;
                tx.commit().await?;
                Ok(Change { value: fs.clone(), environments: vec![fs.environment_id] })
            }

            async fn create_segment_override(&self, author: &Author, link: &NewFeatureSegment, enabled: bool, value: &Value, multivariate: &[Allocation]) -> Result<Change<(FeatureSegment, FeatureState)>> {
                let mut tx = self.write.begin().await?;
                let fs = link_segment(&mut tx, author, link).await?;
                let state = new_override_state(&mut tx, author, &NewState {
                    feature_id: link.feature_id,
                    environment_id: link.environment_id,
                    target: StateTarget::FeatureSegment(fs.id),
                    enabled,
                    value: value.clone(),
                    multivariate: multivariate.to_vec(),
                }).await?;
                let fs = load_feature_segment(&mut tx, fs.id).await?;
                tx.commit().await?;
                Ok(Change { value: (fs, state), environments: vec![link.environment_id] })
            }

            async fn delete_feature_segment(&self, author: &Author, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let fs = load_feature_segment(&mut tx, id).await?;
                let (scope, _) = environment_scope(&mut tx, fs.environment_id).await?;
                delete_states_with_events(&mut tx, author, "feature_segment_id = $1", id).await?;
                sqlx::query("DELETE FROM feature_segments WHERE id = $1").bind(id).execute(&mut *tx).await?;
                renumber_priorities(&mut tx, fs.feature_id, fs.environment_id).await?;
                touch_environment(&mut tx, fs.environment_id).await?;
                audit(&mut tx, author, scope, "FEATURE_SEGMENT", Some(id),
                    "Segment override removed", to_json(&fs).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments: vec![fs.environment_id] })
            }

            async fn update_priorities(&self, author: &Author, priorities: &[(Id, i64)]) -> Result<Change<Vec<FeatureSegment>>> {
                let mut tx = self.write.begin().await?;
                let mut groups: Vec<(Id, Id)> = Vec::new();
                let mut befores = Vec::new();
                for (id, priority) in priorities {
                    let fs = load_feature_segment(&mut tx, *id).await?;
                    befores.push(fs.clone());
                    // Moving onto a taken priority pushes the holder (and those after it) down.
                    sqlx::query(
                        "UPDATE feature_segments SET priority = priority + 1 WHERE feature_id = $1 \
                         AND environment_id = $2 AND priority >= $3 AND id <> $4",
                    )
                    .bind(fs.feature_id)
                    .bind(fs.environment_id)
                    .bind(*priority)
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE feature_segments SET priority = $1 WHERE id = $2")
                        .bind(*priority)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                    if !groups.contains(&(fs.feature_id, fs.environment_id)) {
                        groups.push((fs.feature_id, fs.environment_id));
                    }
                }
                let mut environments = Vec::new();
                for (feature, environment) in &groups {
                    renumber_priorities(&mut tx, *feature, *environment).await?;
                    touch_environment(&mut tx, *environment).await?;
                    if !environments.contains(environment) {
                        environments.push(*environment);
                    }
                }
                let mut after = Vec::new();
                for (id, _) in priorities {
                    after.push(load_feature_segment(&mut tx, *id).await?);
                }
                if let Some(environment) = environments.first() {
                    let (scope, _) = environment_scope(&mut tx, *environment).await?;
                    audit(&mut tx, author, scope, "FEATURE_SEGMENT", None, "Segment override priorities updated",
                        to_json(&befores).as_ref(), to_json(&after).as_ref()).await?;
                }
                tx.commit().await?;
                Ok(Change { value: after, environments })
            }

            async fn identities(&self, environment: Id, query: &IdentityQuery) -> Result<Paged<Identity>> {
                let mut conn = self.read.acquire().await?;
                let (filter, argument) = match (&query.search, query.exact) {
                    (Some(search), true) => ("identifier = $2", search.clone()),
                    (Some(search), false) => ("lower(identifier) LIKE $2", format!("{}%", escape_like(&search.to_lowercase()))),
                    (None, _) => ("$2 = $2", String::new()),
                };
                let escape = if query.search.is_some() && !query.exact { " ESCAPE '\\'" } else { "" };
                // A bounded count: it never walks more than IDENTITY_COUNT_LIMIT identities, or
                // than the page asked for (plus one, so a later page is announced) when that is
                // further: the page's own OFFSET walks as many.
                let (limit, offset) = limit_offset(query.page);
                let bound = match query.page {
                    Some(_) => $crate::sql::IDENTITY_COUNT_LIMIT.max(offset.saturating_add(limit).saturating_add(1)),
                    None => $crate::sql::IDENTITY_COUNT_LIMIT,
                };
                let total: i64 = sqlx::query(&format!(
                    "SELECT COUNT(*) AS n FROM (SELECT 1 FROM identities \
                     WHERE environment_id = $1 AND {filter}{escape} LIMIT $3) AS counted"
                ))
                .bind(environment)
                .bind(&argument)
                .bind(bound)
                .fetch_one(&mut *conn)
                .await?
                .try_get("n")?;
                let items = sqlx::query(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE environment_id = $1 AND {filter}{escape} \
                     ORDER BY id LIMIT $3 OFFSET $4"
                ))
                .bind(environment)
                .bind(&argument)
                .bind(limit)
                .bind(offset)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(identity_row)
                .collect::<Result<Vec<_>>>()?;
                Ok(Paged { items, total: total as u64 })
            }

            async fn identity_by_id(&self, environment: Id, id: Id) -> Result<IdentityRecord> {
                let mut conn = self.read.acquire().await?;
                let row = sqlx::query(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = $1 AND environment_id = $2"
                ))
                .bind(id)
                .bind(environment)
                .fetch_one(&mut *conn)
                .await?;
                let identity = identity_row(&row)?;
                let mut record = identity_record(&mut conn, identity).await?;
                attach_multivariate(&mut conn, &mut record.overrides, "fs.identity_id = $1", id).await?;
                Ok(record)
            }

            async fn create_identity(&self, author: &Author, environment: Id, identifier: &str) -> Result<Identity> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let row = sqlx::query(&format!(
                    "INSERT INTO identities (environment_id, identifier, uuid, created_at) VALUES ($1, $2, $3, $4) \
                     RETURNING {IDENTITY_COLUMNS}"
                ))
                .bind(environment)
                .bind(identifier)
                .bind(random::uuid_v4())
                .bind(now_micros())
                .fetch_one(&mut *tx)
                .await?;
                let identity = identity_row(&row)?;
                audit(&mut tx, author, scope, "IDENTITY", Some(identity.id),
                    &format!("Identity created: {identifier}"), None, to_json(&identity).as_ref()).await?;
                tx.commit().await?;
                Ok(identity)
            }

            async fn delete_identity(&self, author: &Author, environment: Id, id: Id) -> Result<Change<()>> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let row = sqlx::query(&format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE id = $1 AND environment_id = $2"
                ))
                .bind(id)
                .bind(environment)
                .fetch_one(&mut *tx)
                .await?;
                let identity = identity_row(&row)?;
                delete_states_with_events(&mut tx, author, "identity_id = $1", id).await?;
                sqlx::query("DELETE FROM identities WHERE id = $1").bind(id).execute(&mut *tx).await?;
                touch_environment(&mut tx, environment).await?;
                audit(&mut tx, author, scope, "IDENTITY", Some(id),
                    &format!("Identity deleted: {}", identity.identifier), to_json(&identity).as_ref(), None).await?;
                tx.commit().await?;
                Ok(Change { value: (), environments: vec![environment] })
            }

            async fn set_identity_trait(
                &self,
                author: &Author,
                environment: Id,
                identity: Id,
                key: &str,
                value: Option<&Value>,
            ) -> Result<Option<Trait>> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                sqlx::query("SELECT id FROM identities WHERE id = $1 AND environment_id = $2")
                    .bind(identity)
                    .bind(environment)
                    .fetch_one(&mut *tx)
                    .await?;
                let previous = sqlx::query("SELECT id, key, value FROM traits WHERE identity_id = $1 AND key = $2")
                    .bind(identity)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?
                    .as_ref()
                    .map(trait_row)
                    .transpose()?;
                let stored = match value {
                    Some(value) => {
                        let row = sqlx::query(
                            "INSERT INTO traits (identity_id, key, value, created_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT (identity_id, key) DO UPDATE SET value = excluded.value \
                             RETURNING id, key, value",
                        )
                        .bind(identity)
                        .bind(key)
                        .bind(value_text(value))
                        .bind(now_micros())
                        .fetch_one(&mut *tx)
                        .await?;
                        Some(trait_row(&row)?)
                    }
                    None => {
                        let done = sqlx::query("DELETE FROM traits WHERE identity_id = $1 AND key = $2")
                            .bind(identity)
                            .bind(key)
                            .execute(&mut *tx)
                            .await?;
                        if done.rows_affected() == 0 {
                            return Err(StoreError::NotFound);
                        }
                        None
                    }
                };
                audit(&mut tx, author, scope, "TRAIT", stored.as_ref().or(previous.as_ref()).map(|t| t.id),
                    &format!("Trait {} of identity {identity}", if stored.is_some() { "set" } else { "deleted" }),
                    previous.as_ref().and_then(to_json).as_ref(), stored.as_ref().and_then(to_json).as_ref()).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn delete_traits_matching(&self, author: &Author, environment: Id, key: &str) -> Result<u64> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let done = sqlx::query(
                    "DELETE FROM traits WHERE key = $1 AND identity_id IN \
                     (SELECT id FROM identities WHERE environment_id = $2)",
                )
                .bind(key)
                .bind(environment)
                .execute(&mut *tx)
                .await?;
                audit(&mut tx, author, scope, "TRAIT", None,
                    &format!("Trait {key} deleted from {} identities", done.rows_affected()), None, None).await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn audit_log(&self, filter: &AuditFilter, page: Page) -> Result<Paged<AuditEntry>> {
                let mut conditions: Vec<String> = Vec::new();
                let mut args: Vec<Arg> = Vec::new();
                fn add(conditions: &mut Vec<String>, args: &mut Vec<Arg>, template: &str, arg: Arg) {
                    args.push(arg);
                    conditions.push(template.replace('?', &format!("${}", args.len())));
                }
                if let Some(o) = filter.organisation { add(&mut conditions, &mut args, "organisation_id = ?", Arg::Int(o)); }
                if let Some(p) = filter.project { add(&mut conditions, &mut args, "project_id = ?", Arg::Int(p)); }
                if !filter.environments.is_empty() {
                    let mut list = Vec::new();
                    for e in &filter.environments {
                        args.push(Arg::Int(*e));
                        list.push(format!("${}", args.len()));
                    }
                    conditions.push(format!("environment_id IN ({})", list.join(", ")));
                }
                if let Some(s) = &filter.search {
                    let pattern = format!("%{}%", escape_like(&s.to_lowercase()));
                    add(&mut conditions, &mut args, "lower(log) LIKE ? ESCAPE '\\'", Arg::Text(pattern));
                }
                if let Some(t) = &filter.object_type { add(&mut conditions, &mut args, "related_object_type = ?", Arg::Text(t.clone())); }
                if let Some(t) = filter.since { add(&mut conditions, &mut args, "created_at >= ?", Arg::Int(t)); }
                if let Some(t) = filter.until { add(&mut conditions, &mut args, "created_at <= ?", Arg::Int(t)); }
                let filter_sql = if conditions.is_empty() { "TRUE".to_owned() } else { conditions.join(" AND ") };
                let mut conn = self.read.acquire().await?;
                let count_sql = format!("SELECT COUNT(*) AS n FROM audit_log WHERE {filter_sql}");
                let mut count = sqlx::query(&count_sql);
                for a in &args {
                    count = match a { Arg::Int(i) => count.bind(*i), Arg::Text(t) => count.bind(t.clone()) };
                }
                let total: i64 = count.fetch_one(&mut *conn).await?.try_get("n")?;
                let list_sql = format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE {filter_sql} ORDER BY id DESC LIMIT ${} OFFSET ${}",
                    args.len() + 1,
                    args.len() + 2
                );
                let mut list = sqlx::query(&list_sql);
                for a in &args {
                    list = match a { Arg::Int(i) => list.bind(*i), Arg::Text(t) => list.bind(t.clone()) };
                }
                let items = list
                    .bind(page.size as i64)
                    .bind(page.offset())
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(audit_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Paged { items, total: total as u64 })
            }

            async fn webhooks(&self, environment: Id) -> Result<Vec<Webhook>> {
                sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE environment_id = $1 ORDER BY id"))
                    .bind(environment)
                    .fetch_all(&self.read)
                    .await?
                    .iter()
                    .map(webhook_row)
                    .collect()
            }

            async fn create_webhook(&self, author: &Author, environment: Id, new: &NewWebhook) -> Result<Webhook> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let now = now_micros();
                let row = sqlx::query(&format!(
                    "INSERT INTO webhooks (environment_id, url, enabled, secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING {WEBHOOK_COLUMNS}"
                ))
                .bind(environment)
                .bind(&new.url)
                .bind(new.enabled)
                .bind(new.secret.as_deref())
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let webhook = webhook_row(&row)?;
                audit(&mut tx, author, scope, "WEBHOOK", Some(webhook.id),
                    &format!("Webhook created: {}", webhook.url), None, to_json(&webhook).as_ref()).await?;
                tx.commit().await?;
                Ok(webhook)
            }

            async fn update_webhook(&self, author: &Author, environment: Id, id: Id, update: &NewWebhook) -> Result<Webhook> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let before = webhook_row(
                    &sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND environment_id = $2"))
                        .bind(id)
                        .bind(environment)
                        .fetch_one(&mut *tx)
                        .await?,
                )?;
                let row = sqlx::query(&format!(
                    "UPDATE webhooks SET url = $1, enabled = $2, secret = $3, updated_at = $4 WHERE id = $5 \
                     RETURNING {WEBHOOK_COLUMNS}"
                ))
                .bind(&update.url)
                .bind(update.enabled)
                .bind(update.secret.as_deref())
                .bind(now_micros())
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let after = webhook_row(&row)?;
                audit(&mut tx, author, scope, "WEBHOOK", Some(id),
                    &format!("Webhook updated: {}", after.url), to_json(&before).as_ref(), to_json(&after).as_ref()).await?;
                tx.commit().await?;
                Ok(after)
            }

            async fn delete_webhook(&self, author: &Author, environment: Id, id: Id) -> Result<()> {
                let mut tx = self.write.begin().await?;
                let (scope, _) = environment_scope(&mut tx, environment).await?;
                let before = webhook_row(
                    &sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND environment_id = $2"))
                        .bind(id)
                        .bind(environment)
                        .fetch_one(&mut *tx)
                        .await?,
                )?;
                sqlx::query("DELETE FROM webhooks WHERE id = $1").bind(id).execute(&mut *tx).await?;
                audit(&mut tx, author, scope, "WEBHOOK", Some(id),
                    &format!("Webhook deleted: {}", before.url), to_json(&before).as_ref(), None).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn webhook_deliveries(&self, webhook: Id, page: Page) -> Result<Paged<WebhookDelivery>> {
                let mut conn = self.read.acquire().await?;
                let total: i64 = sqlx::query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = $1")
                    .bind(webhook)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                let items = sqlx::query(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC \
                     LIMIT $2 OFFSET $3"
                ))
                .bind(webhook)
                .bind(page.size as i64)
                .bind(page.offset())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(delivery_row)
                .collect::<Result<Vec<_>>>()?;
                Ok(Paged { items, total: total as u64 })
            }

            async fn due_deliveries(&self, now: Micros, lease_until: Micros, limit: i64) -> Result<Vec<(WebhookDelivery, Webhook)>> {
                let mut conn = self.write.acquire().await?;
                // Claimed by moving their next attempt to the end of the lease, in one statement:
                // a concurrent claimer (another replica) re-checks `next_attempt_at` on the locked
                // rows and skips them.
                let mut deliveries = sqlx::query(&format!(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2 \
                     WHERE status = 'pending' AND next_attempt_at <= $1 AND id IN \
                     (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                      ORDER BY next_attempt_at, id LIMIT $3) \
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .bind(now)
                .bind(lease_until)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(delivery_row)
                .collect::<Result<Vec<_>>>()?;
                deliveries.sort_by_key(|d| d.id);
                let mut out = Vec::with_capacity(deliveries.len());
                for delivery in deliveries {
                    let webhook = webhook_row(
                        &sqlx::query(&format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"))
                            .bind(delivery.webhook_id)
                            .fetch_one(&mut *conn)
                            .await?,
                    )?;
                    out.push((delivery, webhook));
                }
                Ok(out)
            }

            async fn next_delivery_at(&self) -> Result<Option<Micros>> {
                Ok(sqlx::query("SELECT MIN(next_attempt_at) AS at FROM webhook_deliveries WHERE status = 'pending'")
                    .fetch_one(&self.read)
                    .await?
                    .try_get("at")?)
            }

            async fn record_attempt(&self, id: Id, attempt: &DeliveryAttempt) -> Result<()> {
                let now = now_micros();
                let status = if attempt.delivered {
                    "delivered"
                } else if attempt.retry_at.is_some() {
                    "pending"
                } else {
                    "failed"
                };
                sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
                     next_attempt_at = $2, last_status_code = $3, last_error = $4, delivered_at = $5 WHERE id = $6",
                )
                .bind(status)
                .bind(attempt.retry_at.unwrap_or(now))
                .bind(attempt.status_code)
                .bind(attempt.error.as_deref())
                .bind(attempt.delivered.then_some(now))
                .bind(id)
                .execute(&mut *self.write.acquire().await?)
                .await?;
                Ok(())
            }
        }

        /// Escapes `%`, `_` and `\` for a LIKE pattern (with `ESCAPE '\'`).
        fn escape_like(text: &str) -> String {
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        }
    };
}

pub(crate) use sql_admin_items;
