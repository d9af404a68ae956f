//! An environment's in-memory snapshot: the compiled engine snapshot plus every response piece that
//! can be prepared once per change: the `flags/` bodies (one for client keys, one for server keys), the
//! environment document, and for every feature state the JSON fragments identity responses are
//! stitched from. The SDK read path serves from here and never reads environment data from the store.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::http::HeaderValue;
use bullet_train_engine::{Evaluation, Flag, Source};
use bullet_train_protocol::Value;
use bullet_train_store::document::to_document;
use bullet_train_store::model::{EnvironmentData, Feature, FeatureState, Id, Micros};
use bullet_train_store::time::iso_z;
use bytes::Bytes;

/// Which kind of SDK key a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyKind {
    Client,
    Server,
}

/// The JSON of one feature state, split around the parts that vary per response. The feature
/// object between `head` and the value is its feature's (kept once per feature, not per state).
#[derive(Debug)]
pub(crate) struct StateJson {
    /// `{"id":..`
    head: Box<str>,
    /// The control value.
    value: Box<str>,
    /// Variant values, in the engine's walk order.
    variants: Vec<Box<str>>,
    /// `,"environment":..,"identity":..,"feature_segment":..,"enabled":..`
    tail: Box<str>,
}

impl StateJson {
    /// Appends the flag object; identity responses add `variant`.
    fn write(
        &self,
        out: &mut String,
        feature_json: &str,
        variant_position: Option<usize>,
        variant: Option<Option<&str>>,
    ) {
        out.push_str(&self.head);
        out.push_str(",\"feature\":");
        out.push_str(feature_json);
        out.push_str(",\"feature_state_value\":");
        match variant_position.and_then(|i| self.variants.get(i)) {
            Some(v) => out.push_str(v),
            None => out.push_str(&self.value),
        }
        out.push_str(&self.tail);
        if let Some(variant) = variant {
            out.push_str(",\"variant\":");
            push_json(out, &variant);
        }
        out.push('}');
    }
}

/// What the server knows about one feature of the snapshot (indexed by engine position).
#[derive(Debug)]
pub(crate) struct FeatureInfo {
    pub(crate) id: Id,
    pub(crate) name: String,
    pub(crate) server_key_only: bool,
    /// The serialized `feature` object.
    feature_json: Box<str>,
    default: StateJson,
    /// Segment overrides by (segment position, override position) in the engine snapshot, sorted
    /// (a feature has a few; a map per feature cost more memory than the states themselves).
    overrides: Vec<((usize, usize), StateJson)>,
    /// The control value and option values, for `flags/{id}/multivariate-options/`.
    pub(crate) control_value: Value,
    pub(crate) option_values: Vec<Value>,
}

/// A matched segment as legacy responses describe it.
#[derive(Debug)]
pub(crate) struct SegmentInfo {
    pub(crate) id: Id,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
}

#[derive(Debug)]
pub(crate) struct EnvSnapshot {
    pub(crate) environment_id: Id,
    pub(crate) revision: i64,
    pub(crate) updated_at: Micros,
    pub(crate) allow_client_traits: bool,
    pub(crate) hide_sensitive_data: bool,
    /// Whether identities hash by composite key (otherwise by their stored id).
    pub(crate) use_composite_key: bool,
    pub(crate) persist_trait_data: bool,
    pub(crate) stop_serving_flags: bool,
    pub(crate) engine: bullet_train_engine::Snapshot,
    /// `X-Flagsmith-Document-Updated-At`: float seconds.
    pub(crate) updated_at_header: HeaderValue,
    /// `Last-Modified` of the environment document (the second of `updated_at`).
    pub(crate) last_modified: HeaderValue,
    /// The second before: what `Last-Modified` says while the second of `updated_at` is not over.
    pub(crate) last_modified_early: HeaderValue,
    /// Whole seconds of `updated_at`, for `If-Modified-Since`.
    pub(crate) last_modified_secs: u64,
    pub(crate) document: Bytes,
    flags_client: Bytes,
    flags_server: Bytes,
    /// Each feature's environment-default flag object (`None` when hidden as disabled).
    single_flags: Vec<Option<Bytes>>,
    pub(crate) features: Vec<FeatureInfo>,
    by_lower_name: HashMap<String, usize>,
    by_id: HashMap<Id, usize>,
    pub(crate) segments: Vec<SegmentInfo>,
}

/// Bytes holding exactly `body` (a serializer's buffer has up to twice the room it needs).
pub(crate) fn frozen(body: impl Into<Vec<u8>>) -> Bytes {
    let mut body = body.into();
    body.shrink_to_fit();
    Bytes::from(body)
}

/// Appends `value` as JSON.
pub(crate) fn push_json<T: serde::Serialize + ?Sized>(out: &mut String, value: &T) {
    // Serializing plain data into a String cannot fail.
    out.push_str(&serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()));
}

/// Float seconds as Flagsmith writes `updated_at` outside documents: `1700000000.123456`.
pub(crate) fn float_seconds(micros: Micros) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

fn feature_json(feature: &Feature, hide: bool) -> String {
    let mut out = String::from("{\"id\":");
    let _ = write!(out, "{}", feature.id);
    out.push_str(",\"name\":");
    push_json(&mut out, &feature.name);
    if hide {
        out.push_str(",\"created_date\":null,\"description\":null,\"initial_value\":null,\"default_enabled\":null");
    } else {
        out.push_str(",\"created_date\":");
        push_json(&mut out, &iso_z(feature.created_at));
        out.push_str(",\"description\":");
        push_json(&mut out, &feature.description);
        out.push_str(",\"initial_value\":");
        push_json(&mut out, &feature.initial_value);
        out.push_str(",\"default_enabled\":");
        push_json(&mut out, &feature.default_enabled);
    }
    out.push_str(",\"type\":");
    push_json(&mut out, &feature.feature_type);
    let _ = write!(out, ",\"project\":{}}}", feature.project_id);
    out
}

/// The fragments of a state. `options` maps option ids to their values.
fn state_json(
    state: &FeatureState,
    environment_id: Id,
    feature_segment_id: Option<Id>,
    options: &HashMap<Id, &Value>,
    hide: bool,
) -> StateJson {
    let mut head = String::from("{\"id\":");
    if hide {
        head.push_str("null");
    } else {
        let _ = write!(head, "{}", state.id);
    }
    let mut value = String::new();
    push_json(&mut value, &state.value);
    let mut multivariate: Vec<_> = state.multivariate.iter().collect();
    multivariate.sort_by_key(|v| v.sort_key);
    let variants = multivariate
        .iter()
        .map(|v| {
            let mut out = String::new();
            push_json(
                &mut out,
                options.get(&v.option_id).copied().unwrap_or(&Value::Null),
            );
            out.into_boxed_str()
        })
        .collect();
    let id_or_null = |id: Option<Id>| match (hide, id) {
        (false, Some(id)) => id.to_string(),
        _ => "null".to_owned(),
    };
    let tail = format!(
        ",\"environment\":{},\"identity\":{},\"feature_segment\":{},\"enabled\":{}",
        id_or_null(Some(environment_id)),
        id_or_null(state.identity_id),
        id_or_null(feature_segment_id),
        state.enabled
    );
    StateJson {
        head: head.into(),
        value: value.into(),
        variants,
        tail: tail.into(),
    }
}

impl EnvSnapshot {
    /// Builds the snapshot of an environment from its stored data.
    pub(crate) fn build(data: &EnvironmentData) -> EnvSnapshot {
        let environment = &data.environment;
        let hide = environment.hide_sensitive_data;
        let document = to_document(data);
        let engine = bullet_train_engine::Snapshot::from_document(&document);
        for warning in engine.warnings() {
            tracing::warn!(environment = %environment.api_key, %warning, "segment rule never matches");
        }
        let features_by_id: HashMap<Id, &Feature> =
            data.features.iter().map(|f| (f.id, f)).collect();
        let states_by_uuid: HashMap<&str, &FeatureState> =
            data.states.iter().map(|s| (s.uuid.as_str(), s)).collect();
        let options: HashMap<Id, &Value> = data.options.iter().map(|o| (o.id, &o.value)).collect();
        let segments_by_seed: HashMap<i64, &bullet_train_store::model::Segment> =
            data.segments.iter().map(|s| (s.seed, s)).collect();

        // Features in engine order (the document's order), each with its default state.
        let mut features = Vec::with_capacity(document.feature_states.len());
        for doc_state in &document.feature_states {
            let Some(feature) = features_by_id.get(&(doc_state.feature.id as Id)) else {
                continue;
            };
            let Some(state) = doc_state
                .featurestate_uuid
                .as_deref()
                .and_then(|uuid| states_by_uuid.get(uuid))
            else {
                continue;
            };
            let fjson = feature_json(feature, hide);
            let default = state_json(state, environment.id, None, &options, hide);
            let mut multivariate: Vec<_> = state.multivariate.iter().collect();
            multivariate.sort_by_key(|v| v.sort_key);
            features.push(FeatureInfo {
                id: feature.id,
                name: feature.name.clone(),
                server_key_only: feature.is_server_key_only,
                feature_json: fjson.into(),
                default,
                overrides: Vec::new(),
                control_value: state.value.clone(),
                option_values: multivariate
                    .iter()
                    .filter_map(|v| options.get(&v.option_id).map(|v| (*v).clone()))
                    .collect(),
            });
        }
        // Segment overrides, keyed as the engine reports them.
        let mut segments = Vec::new();
        for (si, doc_segment) in document.project.segments.iter().enumerate() {
            let stored = segments_by_seed.get(&(doc_segment.id as i64));
            segments.push(SegmentInfo {
                id: stored.map_or(0, |s| s.id),
                name: doc_segment.name.clone(),
                description: stored.and_then(|s| s.description.clone()),
            });
            for (oi, doc_state) in doc_segment.feature_states.iter().enumerate() {
                let Some(position) = engine.feature_position(&doc_state.feature.name) else {
                    continue;
                };
                let Some(state) = doc_state
                    .featurestate_uuid
                    .as_deref()
                    .and_then(|uuid| states_by_uuid.get(uuid))
                else {
                    continue;
                };
                let info = &mut features[position];
                let json = state_json(
                    state,
                    environment.id,
                    state.feature_segment_id,
                    &options,
                    hide,
                );
                info.overrides.push(((si, oi), json));
            }
        }
        for feature in &mut features {
            feature.overrides.sort_by_key(|(key, _)| *key);
            feature.overrides.shrink_to_fit();
        }
        let by_lower_name = features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_lowercase(), i))
            .collect();
        let by_id = features
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id, i))
            .collect();
        let updated_at_header = HeaderValue::from_str(&float_seconds(environment.updated_at))
            .unwrap_or(HeaderValue::from_static("0.0"));
        let last_modified_secs = environment.updated_at.max(0) as u64 / 1_000_000;
        let http_date = |secs: u64| {
            HeaderValue::from_str(&httpdate::fmt_http_date(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
            ))
            .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
        };
        let last_modified = http_date(last_modified_secs);
        let last_modified_early = http_date(last_modified_secs.saturating_sub(1));
        let document_bytes = frozen(serde_json::to_vec(&document).unwrap_or_default());

        let mut snapshot = EnvSnapshot {
            environment_id: environment.id,
            revision: environment.revision,
            updated_at: environment.updated_at,
            allow_client_traits: environment.allow_client_traits,
            hide_sensitive_data: hide,
            use_composite_key: environment.use_identity_composite_key_for_hashing,
            persist_trait_data: data.organisation.persist_trait_data,
            stop_serving_flags: data.organisation.stop_serving_flags,
            engine,
            updated_at_header,
            last_modified,
            last_modified_early,
            last_modified_secs,
            document: document_bytes,
            flags_client: Bytes::new(),
            flags_server: Bytes::new(),
            single_flags: Vec::new(),
            features,
            by_lower_name,
            by_id,
            segments,
        };
        let environment_flags = snapshot.engine.environment_flags();
        let client = snapshot.write_flags(&environment_flags, KeyKind::Client, None, false);
        let server = snapshot.write_flags(&environment_flags, KeyKind::Server, None, false);
        let mut single_flags = vec![None; snapshot.features.len()];
        for flag in environment_flags.flags() {
            let mut out = String::new();
            snapshot.write_flag(&mut out, flag, &[], false, false);
            single_flags[flag.feature_position] = Some(frozen(out));
        }
        drop(environment_flags);
        snapshot.single_flags = single_flags;
        snapshot.flags_client = frozen(client);
        snapshot.flags_server = frozen(server);
        snapshot
    }

    /// The pre-serialized `flags/` body for a key kind.
    pub(crate) fn flags_body(&self, kind: KeyKind) -> Bytes {
        match kind {
            KeyKind::Client => self.flags_client.clone(),
            KeyKind::Server => self.flags_server.clone(),
        }
    }

    /// The environment-default flag object of the feature at `position`, if served.
    pub(crate) fn single_flag(&self, position: usize) -> Option<Bytes> {
        self.single_flags.get(position).cloned().flatten()
    }

    /// Whether a key of this kind may see the feature at engine position `position`.
    pub(crate) fn visible(&self, position: usize, kind: KeyKind) -> bool {
        kind == KeyKind::Server || !self.features[position].server_key_only
    }

    /// Position of a feature by name, ignoring case (as `flags/?feature=` matches).
    pub(crate) fn position_ignoring_case(&self, name: &str) -> Option<usize> {
        self.by_lower_name.get(&name.to_lowercase()).copied()
    }

    /// Position of a feature by id.
    pub(crate) fn position_of_id(&self, id: Id) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    /// Appends one flag object. `identity_overrides` resolves `Source::Identity` positions;
    /// `with_variant` adds the `variant` key (identity responses); `control_only` serves the control
    /// value of multivariate flags (the legacy per-identity route does).
    pub(crate) fn write_flag(
        &self,
        out: &mut String,
        flag: &Flag<'_>,
        identity_overrides: &[StateJson],
        with_variant: bool,
        control_only: bool,
    ) {
        let info = &self.features[flag.feature_position];
        let state = match flag.source {
            Source::Default => Some(&info.default),
            Source::Segment { segment, position } => info
                .overrides
                .binary_search_by_key(&(segment, position), |(key, _)| *key)
                .ok()
                .map(|i| &info.overrides[i].1),
            Source::Identity { position } => identity_overrides.get(position),
        };
        let state = state.unwrap_or(&info.default);
        let variant_position = if control_only {
            None
        } else {
            flag.variant_position
        };
        let variant = if control_only { None } else { flag.variant };
        state.write(
            out,
            &info.feature_json,
            variant_position,
            with_variant.then_some(variant),
        );
    }

    /// A JSON array of the evaluation's flags that `kind` may see.
    pub(crate) fn write_flags(
        &self,
        evaluation: &Evaluation<'_>,
        kind: KeyKind,
        identity_overrides: Option<&[StateJson]>,
        with_variant: bool,
    ) -> String {
        let mut out = String::with_capacity(256 * evaluation.flags().len() + 2);
        self.append_flags(&mut out, evaluation, kind, identity_overrides, with_variant);
        out
    }

    /// Appends the JSON array of the evaluation's flags that `kind` may see to `out`.
    pub(crate) fn append_flags(
        &self,
        out: &mut String,
        evaluation: &Evaluation<'_>,
        kind: KeyKind,
        identity_overrides: Option<&[StateJson]>,
        with_variant: bool,
    ) {
        out.push('[');
        let mut first = true;
        for flag in evaluation.flags() {
            if !self.visible(flag.feature_position, kind) {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            self.write_flag(
                out,
                flag,
                identity_overrides.unwrap_or(&[]),
                with_variant,
                false,
            );
        }
        out.push(']');
    }

    /// Fragments for an identity's override states (in the order given to the engine).
    pub(crate) fn identity_override_json(&self, overrides: &[&FeatureState]) -> Vec<StateJson> {
        let no_options = HashMap::new();
        overrides
            .iter()
            .map(|state| {
                state_json(
                    state,
                    self.environment_id,
                    None,
                    &no_options,
                    self.hide_sensitive_data,
                )
            })
            .collect()
    }
}
