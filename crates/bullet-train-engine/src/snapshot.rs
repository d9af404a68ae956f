//! The compiled snapshot: an environment's features, segments and identity overrides, compiled once
//! from a v2 evaluation context or from an environment document, immutable afterwards.
//!
//! Compilation never fails. A segment with a part that cannot be compiled (an invalid regex, an
//! unknown operator or rule type, a non-numeric PERCENTAGE_SPLIT, a MODULO by zero) never matches
//! and is reported as a [`Warning`]; every other part of the environment is unaffected.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use bullet_train_protocol::Value;
use bullet_train_protocol::context::{
    ConditionContext, ConditionValue, EvaluationContext, FeatureContext, Metadata, SegmentRule,
};
use bullet_train_protocol::document::{self, EnvironmentDocument};
use regex::RegexBuilder;
use serde_json_path::JsonPath;

use crate::condition::{Cmp, Condition, InSet, Op, Operand, Path, Property, Slot};
use crate::python::{self, python_str};

/// Largest compiled size of one REGEX condition; larger patterns never match.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A problem found while compiling; the part concerned never matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Name of the segment holding the problem.
    pub segment: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment {:?}: {}", self.segment, self.message)
    }
}

/// A feature state as evaluation uses it: an environment default, or a segment override.
#[derive(Debug)]
pub(crate) struct State {
    /// Multivariate hashing seed.
    pub(crate) key: Box<str>,
    pub(crate) enabled: bool,
    pub(crate) value: Value,
    /// Sorted by priority (stable).
    pub(crate) variants: Vec<Variant>,
    /// Override priority; lower wins; +inf when missing.
    pub(crate) priority: f64,
    /// Shared: a document gives every state of a feature the same metadata (`{"id": ..}`), and
    /// a map per state was most of a large environment's compiled size.
    pub(crate) metadata: Option<Arc<Metadata>>,
}

/// A multivariate variant.
#[derive(Debug)]
pub(crate) struct Variant {
    pub(crate) value: Value,
    pub(crate) weight: f64,
    /// The weight as Python prints the JSON number, for the `SPLIT; weight=` reason.
    pub(crate) weight_text: Box<str>,
    pub(crate) key: Option<Box<str>>,
}

/// A feature: its environment default and the segment overrides that may replace it.
#[derive(Debug)]
pub(crate) struct Feature {
    pub(crate) name: Box<str>,
    pub(crate) id: Option<u64>,
    pub(crate) default: State,
    /// `(segment, override)` indices of the overrides of this feature, in segment order.
    pub(crate) overridden_by: Vec<(u32, u32)>,
}

/// A rule quantifier.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Quantifier {
    All,
    Any,
    None,
}

impl Quantifier {
    pub(crate) fn apply(self, mut items: impl Iterator<Item = bool>) -> bool {
        match self {
            Quantifier::All => items.all(|b| b),
            Quantifier::Any => items.any(|b| b),
            Quantifier::None => !items.any(|b| b),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) quantifier: Quantifier,
    pub(crate) conditions: Vec<Condition>,
    pub(crate) rules: Vec<Rule>,
}

#[derive(Debug)]
pub(crate) struct Override {
    pub(crate) feature: u32,
    pub(crate) state: State,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) key: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) metadata: Option<Metadata>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) overrides: Vec<Override>,
}

/// An identity override from an environment document.
#[derive(Debug)]
pub(crate) struct StoredOverride {
    pub(crate) feature: u32,
    pub(crate) enabled: bool,
    pub(crate) value: Value,
}

/// A compiled environment, ready to evaluate any number of identities.
///
/// ```
/// use bullet_train_engine::{Identity, Snapshot};
/// use bullet_train_protocol::{EvaluationContext, Value};
///
/// let context: EvaluationContext = serde_json::from_str(r#"{
///     "environment": {"key": "env", "name": "Production"},
///     "segments": {"1": {"key": "1", "name": "pros", "rules": [{"type": "ALL",
///         "conditions": [{"property": "plan", "operator": "EQUAL", "value": "pro"}]}],
///         "overrides": [{"key": "2", "name": "banner", "enabled": true, "value": "gold"}]}},
///     "features": {"banner": {"key": "1", "name": "banner", "enabled": false, "value": "plain"}}
/// }"#).unwrap();
/// let snapshot = Snapshot::from_context(&context);
/// let plan = Value::from("pro");
/// let traits = [("plan", &plan)];
/// let evaluation = snapshot.evaluate(Some(&Identity::new("ann").with_traits(&traits)));
/// let banner = evaluation.flag("banner").unwrap();
/// assert!(banner.enabled);
/// assert_eq!(banner.value, &Value::from("gold"));
/// assert_eq!(banner.reason.to_string(), "TARGETING_MATCH; segment=pros");
/// ```
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) environment_key: Box<str>,
    pub(crate) environment_name: Box<str>,
    pub(crate) features: Vec<Feature>,
    pub(crate) feature_index: HashMap<Box<str>, u32>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) slots: HashMap<Box<str>, Slot>,
    pub(crate) identity_overrides: HashMap<Box<str>, Vec<StoredOverride>>,
    pub(crate) hide_disabled_flags: bool,
    pub(crate) warnings: Vec<Warning>,
}

impl Snapshot {
    /// Compiles a v2 evaluation context (its identity, if any, is ignored: pass it to `evaluate`).
    pub fn from_context(context: &EvaluationContext) -> Snapshot {
        let mut builder = Builder::new(&context.environment.key, &context.environment.name);
        for feature in context.features.values() {
            let id = metadata_id(feature.metadata.as_ref());
            let state = builder.context_state(feature);
            builder.add_feature(&feature.name, id, state);
        }
        for segment in context.segments.values() {
            let rules = builder.compile_rules(&segment.name, &segment.rules, context_rule);
            let overrides = segment
                .overrides
                .iter()
                .map(|o| (o.name.as_str(), builder.context_state(o)))
                .collect();
            builder.add_segment(
                &segment.key,
                &segment.name,
                non_empty(segment.metadata.clone()),
                rules,
                overrides,
            );
        }
        builder.finish(false)
    }

    /// Compiles an environment document, mapped as the reference SDKs map it to a context
    /// (evaluation.md section 4.3). Identity overrides are indexed by identifier and beat every
    /// segment override.
    pub fn from_document(document: &EnvironmentDocument) -> Snapshot {
        let mut builder = Builder::new(&document.api_key, &document.name);
        for state in &document.feature_states {
            let compiled = builder.document_state(state);
            builder.add_feature(&state.feature.name, Some(state.feature.id), compiled);
        }
        for segment in &document.project.segments {
            let rules = builder.compile_rules(&segment.name, &segment.rules, document_rule);
            let overrides = segment
                .feature_states
                .iter()
                .map(|s| (s.feature.name.as_str(), builder.document_state(s)))
                .collect();
            let mut metadata = Metadata::new();
            metadata.insert("id".into(), segment.id.into());
            metadata.insert("source".into(), "api".into());
            builder.add_segment(
                &segment.id.to_string(),
                &segment.name,
                Some(metadata),
                rules,
                overrides,
            );
        }
        for identity in &document.identity_overrides {
            let overrides: Vec<StoredOverride> = identity
                .identity_features
                .iter()
                .filter_map(|state| {
                    Some(StoredOverride {
                        feature: *builder.feature_index.get(state.feature.name.as_str())?,
                        enabled: state.enabled,
                        value: state.feature_state_value.clone(),
                    })
                })
                .collect();
            if !overrides.is_empty() {
                builder
                    .identity_overrides
                    .insert(identity.identifier.as_str().into(), overrides);
            }
        }
        builder.finish(document.hides_disabled_flags())
    }

    /// Problems found while compiling.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// The environment's client key.
    pub fn environment_key(&self) -> &str {
        &self.environment_key
    }

    /// The environment's name.
    pub fn environment_name(&self) -> &str {
        &self.environment_name
    }

    /// Number of features.
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Position of the feature named `name` (exact match), in input order.
    pub fn feature_position(&self, name: &str) -> Option<usize> {
        self.feature_index.get(name).map(|i| *i as usize)
    }

    /// Name of the feature at `position` (the inverse of [`Snapshot::feature_position`]).
    pub fn feature_name(&self, position: usize) -> Option<&str> {
        self.features.get(position).map(|f| &*f.name)
    }

    /// Whether disabled flags are left out of evaluations.
    pub fn hides_disabled_flags(&self) -> bool {
        self.hide_disabled_flags
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn slot_of(&self, name: &str) -> Option<Slot> {
        self.slots.get(name).copied()
    }
}

fn non_empty(metadata: Option<Metadata>) -> Option<Metadata> {
    metadata.filter(|m| !m.is_empty())
}

fn metadata_id(metadata: Option<&Metadata>) -> Option<u64> {
    metadata?.get("id")?.as_u64()
}

/// A rule in either input format, seen through the same accessors.
struct RuleView<'a> {
    rule_type: &'a str,
    conditions: Vec<(&'a str, &'a str, Operand_<'a>)>,
    rules: Vec<RuleView<'a>>,
}

/// A condition operand in either input format.
enum Operand_<'a> {
    Text(&'a str),
    List(&'a [Value]),
    Scalar(&'a Value),
    Null,
}

fn context_rule(rule: &SegmentRule) -> RuleView<'_> {
    RuleView {
        rule_type: &rule.rule_type,
        conditions: rule
            .conditions
            .iter()
            .map(|c: &ConditionContext| {
                let operand = match &c.value {
                    None => Operand_::Null,
                    Some(ConditionValue::Text(t)) => Operand_::Text(t),
                    Some(ConditionValue::List(l)) => Operand_::List(l),
                    Some(ConditionValue::Scalar(v)) => Operand_::Scalar(v),
                };
                (c.property.as_str(), c.operator.as_str(), operand)
            })
            .collect(),
        rules: rule.rules.iter().map(context_rule).collect(),
    }
}

fn document_rule(rule: &document::Rule) -> RuleView<'_> {
    RuleView {
        rule_type: &rule.rule_type,
        conditions: rule
            .conditions
            .iter()
            .map(|c| {
                let operand = match &c.value {
                    None => Operand_::Null,
                    Some(t) => Operand_::Text(t),
                };
                (
                    c.property.as_deref().unwrap_or(""),
                    c.operator.as_str(),
                    operand,
                )
            })
            .collect(),
        rules: rule.rules.iter().map(document_rule).collect(),
    }
}

/// A UUID's 128-bit integer value (hyphens ignored).
fn uuid_to_u128(uuid: &str) -> Option<u128> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// Accumulates compiled parts; interns trait names into slots.
struct Builder {
    environment_key: Box<str>,
    environment_name: Box<str>,
    features: Vec<Feature>,
    feature_index: HashMap<Box<str>, u32>,
    segments: Vec<Segment>,
    slots: HashMap<Box<str>, Slot>,
    identity_overrides: HashMap<Box<str>, Vec<StoredOverride>>,
    warnings: Vec<Warning>,
    /// How many of `warnings` disable their segment (the rest only make one condition false).
    disabling: usize,
    /// The metadata shared by every state of a document feature, by feature id.
    feature_metadata: HashMap<u64, Arc<Metadata>>,
}

impl Builder {
    fn new(environment_key: &str, environment_name: &str) -> Builder {
        Builder {
            environment_key: environment_key.into(),
            environment_name: environment_name.into(),
            features: Vec::new(),
            feature_index: HashMap::new(),
            segments: Vec::new(),
            slots: HashMap::new(),
            identity_overrides: HashMap::new(),
            warnings: Vec::new(),
            disabling: 0,
            feature_metadata: HashMap::new(),
        }
    }

    /// Compiles a document feature state (an environment default or a segment override): seed
    /// `django_id or featurestate_uuid`, variants ordered by id (or UUID as a 128-bit integer),
    /// weights printed as Python floats, metadata shared by the feature's states.
    fn document_state(&mut self, state: &document::FeatureState) -> State {
        let key = match state.django_id.filter(|id| *id != 0) {
            Some(id) => id.to_string(),
            None => state
                .featurestate_uuid
                .as_deref()
                .unwrap_or("")
                .to_ascii_lowercase(),
        };
        let mut variants: Vec<(u128, Variant)> = state
            .multivariate_feature_state_values
            .iter()
            .map(|mv| {
                let order = match mv.id {
                    Some(id) => u128::from(id),
                    None => mv
                        .mv_fs_value_uuid
                        .as_deref()
                        .and_then(uuid_to_u128)
                        .unwrap_or(u128::MAX),
                };
                let variant = Variant {
                    value: mv.multivariate_feature_option.value.clone(),
                    weight: mv.percentage_allocation,
                    weight_text: python::float_to_string(mv.percentage_allocation).into(),
                    key: mv
                        .multivariate_feature_option
                        .key
                        .as_deref()
                        .map(Into::into),
                };
                (order, variant)
            })
            .collect();
        variants.sort_by_key(|(order, _)| *order);
        let priority = state
            .feature_segment
            .as_ref()
            .and_then(|fs| fs.priority)
            .map_or(f64::INFINITY, |p| p as f64);
        let metadata = self
            .feature_metadata
            .entry(state.feature.id)
            .or_insert_with(|| {
                let mut metadata = Metadata::new();
                metadata.insert("id".into(), state.feature.id.into());
                Arc::new(metadata)
            })
            .clone();
        State {
            key: key.into(),
            enabled: state.enabled,
            value: state.feature_state_value.clone(),
            variants: variants.into_iter().map(|(_, v)| v).collect(),
            priority,
            metadata: Some(metadata),
        }
    }

    fn add_feature(&mut self, name: &str, id: Option<u64>, default: State) {
        let index = self.features.len() as u32;
        // A later feature with the same name replaces the earlier one, as a JSON object would.
        if let Some(existing) = self.feature_index.get(name) {
            self.features[*existing as usize].default = default;
            return;
        }
        self.feature_index.insert(name.into(), index);
        self.features.push(Feature {
            name: name.into(),
            id,
            default,
            overridden_by: Vec::new(),
        });
    }

    fn add_segment(
        &mut self,
        key: &str,
        name: &str,
        metadata: Option<Metadata>,
        rules: Vec<Rule>,
        overrides: Vec<(&str, State)>,
    ) {
        let segment_index = self.segments.len() as u32;
        let mut compiled = Vec::new();
        for (feature_name, state) in overrides {
            // Overrides of features absent from the environment are ignored.
            let Some(&feature) = self.feature_index.get(feature_name) else {
                continue;
            };
            self.features[feature as usize]
                .overridden_by
                .push((segment_index, compiled.len() as u32));
            compiled.push(Override { feature, state });
        }
        self.segments.push(Segment {
            key: key.into(),
            name: name.into(),
            metadata,
            rules,
            overrides: compiled,
        });
    }

    fn context_state(&mut self, feature: &FeatureContext) -> State {
        let mut variants: Vec<(f64, Variant)> = feature
            .variants
            .iter()
            .map(|v| {
                let weight = v.weight.as_f64().unwrap_or(0.0);
                let weight_text = if v.weight.is_f64() {
                    python::float_to_string(weight)
                } else {
                    v.weight.to_string()
                };
                let variant = Variant {
                    value: v.value.clone(),
                    weight,
                    weight_text: weight_text.into(),
                    key: v.key.as_deref().map(Into::into),
                };
                (v.priority.unwrap_or(f64::INFINITY), variant)
            })
            .collect();
        variants.sort_by(|a, b| a.0.total_cmp(&b.0));
        State {
            key: feature.key.as_str().into(),
            enabled: feature.enabled,
            value: feature.value.clone(),
            variants: variants.into_iter().map(|(_, v)| v).collect(),
            priority: feature.priority.unwrap_or(f64::INFINITY),
            metadata: non_empty(feature.metadata.clone()).map(Arc::new),
        }
    }

    /// Compiles a segment's rules. If any part of them cannot be compiled (an invalid regex, an
    /// unknown rule type, a MODULO by zero, IN without a value: shapes on which the reference
    /// engine raises), the segment gets no rules, so it never matches: a broken condition read as
    /// false would make a NONE rule match everyone. Shapes the reference defines as a false
    /// condition (an unknown operator, a non-numeric PERCENTAGE_SPLIT) stay false conditions.
    fn compile_rules<R>(
        &mut self,
        segment: &str,
        rules: &[R],
        view: fn(&R) -> RuleView<'_>,
    ) -> Vec<Rule> {
        let disabling = self.disabling;
        let compiled: Vec<Rule> = rules
            .iter()
            .map(|r| self.compile_rule(segment, &view(r)))
            .collect();
        if self.disabling == disabling {
            compiled
        } else {
            Vec::new()
        }
    }

    fn compile_rule(&mut self, segment: &str, rule: &RuleView<'_>) -> Rule {
        let quantifier = match rule.rule_type {
            "ALL" => Quantifier::All,
            "ANY" => Quantifier::Any,
            "NONE" => Quantifier::None,
            other => {
                // The warning disables the whole segment (`compile_rules`): any quantifier will do.
                self.warn(segment, format!("unknown rule type {other:?}"));
                Quantifier::All
            }
        };
        Rule {
            quantifier,
            conditions: rule
                .conditions
                .iter()
                .map(|(property, operator, operand)| {
                    self.compile_condition(segment, property, operator, operand)
                })
                .collect(),
            rules: rule
                .rules
                .iter()
                .map(|r| self.compile_rule(segment, r))
                .collect(),
        }
    }

    fn compile_condition(
        &mut self,
        segment: &str,
        property: &str,
        operator: &str,
        operand: &Operand_<'_>,
    ) -> Condition {
        // Every operand but an IN list is read as text; a null operand acts as Python's "None".
        let text: String = match operand {
            Operand_::Text(t) => (*t).to_owned(),
            Operand_::Scalar(v) => python_str(v),
            Operand_::List(items) => serde_json::to_string(items).unwrap_or_default(),
            Operand_::Null => "None".to_owned(),
        };
        let op = match operator {
            "EQUAL" => Op::Compare(Cmp::Eq, Box::new(Operand::new(&text))),
            "NOT_EQUAL" => Op::Compare(Cmp::Ne, Box::new(Operand::new(&text))),
            "GREATER_THAN" => Op::Compare(Cmp::Gt, Box::new(Operand::new(&text))),
            "GREATER_THAN_INCLUSIVE" => Op::Compare(Cmp::Ge, Box::new(Operand::new(&text))),
            "LESS_THAN" => Op::Compare(Cmp::Lt, Box::new(Operand::new(&text))),
            "LESS_THAN_INCLUSIVE" => Op::Compare(Cmp::Le, Box::new(Operand::new(&text))),
            "CONTAINS" => Op::Contains(Box::new(Operand::new(&text))),
            "NOT_CONTAINS" => Op::NotContains(text.as_str().into()),
            "IS_SET" => Op::IsSet,
            "IS_NOT_SET" => Op::IsNotSet,
            "REGEX" => self.compile_regex(segment, &text),
            "MODULO" => self.compile_modulo(segment, &text),
            "PERCENTAGE_SPLIT" => match python::parse_float(&text) {
                Some(threshold) => Op::PercentageSplit(threshold),
                None if matches!(operand, Operand_::Null) => {
                    self.warn(
                        segment,
                        "PERCENTAGE_SPLIT condition without a value".to_owned(),
                    );
                    Op::Never
                }
                None => {
                    self.note(
                        segment,
                        format!("PERCENTAGE_SPLIT value {text:?} is not a number"),
                    );
                    Op::Never
                }
            },
            "IN" => match operand {
                Operand_::List(items) => Op::In(InSet::new(items.iter().map(python_str).collect())),
                Operand_::Null => {
                    self.warn(segment, "IN condition without a value".to_owned());
                    Op::Never
                }
                _ => Op::In(InSet::new(in_items(&text))),
            },
            other => {
                self.note(segment, format!("unknown operator {other:?}"));
                Op::Never
            }
        };
        let property = self.compile_property(property);
        Condition { property, op }
    }

    fn compile_regex(&mut self, segment: &str, pattern: &str) -> Op {
        let translated = translate_python_regex(pattern);
        // The pattern must parse on its own: an unbalanced `)` would otherwise close the anchoring
        // group early (`x)|(y` would become `\A(?:x)|(y)`, whose second branch is unanchored).
        if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&translated) {
            self.warn(segment, format!("REGEX {pattern:?} is not valid: {e}"));
            return Op::Never;
        }
        match RegexBuilder::new(&format!(r"\A(?:{translated})"))
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(re) => Op::Regex(Box::new(re)),
            Err(e) => {
                self.warn(segment, format!("REGEX {pattern:?} is not supported: {e}"));
                Op::Never
            }
        }
    }

    fn compile_modulo(&mut self, segment: &str, text: &str) -> Op {
        let parsed = text.split_once('|').and_then(|(divisor, remainder)| {
            if remainder.contains('|') {
                return None;
            }
            Some((
                python::parse_float(divisor)?,
                python::parse_float(remainder)?,
            ))
        });
        match parsed {
            Some((divisor, remainder)) if divisor != 0.0 => Op::Modulo { divisor, remainder },
            Some(_) => {
                self.warn(segment, format!("MODULO {text:?} divides by zero"));
                Op::Never
            }
            // An empty or malformed operand is ordinary data in the corpus; it simply never matches.
            None => Op::Never,
        }
    }

    fn compile_property(&mut self, property: &str) -> Property {
        if property.is_empty() {
            return Property::Empty;
        }
        let literal = self.intern(property);
        if !property.starts_with("$.") {
            return Property::Trait(literal);
        }
        match JsonPath::parse(property) {
            Err(_) => Property::Trait(literal),
            Ok(path) => {
                let path = match self.direct_path(property) {
                    Some(direct) => direct,
                    None => Path::Generic(Box::new(path)),
                };
                Property::Path { literal, path }
            }
        }
    }

    /// Resolves the common paths (already known to be valid) to direct lookups.
    fn direct_path(&mut self, property: &str) -> Option<Path> {
        match property {
            "$.identity.identifier" => return Some(Path::Identifier),
            "$.identity.key" => return Some(Path::Key),
            "$.environment.key" => return Some(Path::EnvironmentKey),
            "$.environment.name" => return Some(Path::EnvironmentName),
            _ => {}
        }
        let rest = property.strip_prefix("$.identity.traits")?;
        let name = if let Some(shorthand) = rest.strip_prefix('.') {
            let valid = shorthand
                .chars()
                .all(|c| c == '_' || c.is_ascii_alphanumeric() || !c.is_ascii())
                && !shorthand.starts_with(|c: char| c.is_ascii_digit());
            valid.then_some(shorthand)?
        } else {
            let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
            let quote = inner.chars().next().filter(|q| *q == '\'' || *q == '"')?;
            let name = inner.strip_prefix(quote)?.strip_suffix(quote)?;
            (!name.contains(quote) && !name.contains('\\')).then_some(name)?
        };
        Some(Path::Trait(self.intern(name)))
    }

    fn intern(&mut self, name: &str) -> Slot {
        let next = self.slots.len() as Slot;
        *self.slots.entry(name.into()).or_insert(next)
    }

    /// Records a problem that disables the whole segment.
    fn warn(&mut self, segment: &str, message: String) {
        self.disabling += 1;
        self.note(segment, message);
    }

    /// Records a problem that only makes its own condition false, as in the reference engine.
    fn note(&mut self, segment: &str, message: String) {
        self.warnings.push(Warning {
            segment: segment.to_owned(),
            message,
        });
    }

    fn finish(self, hide_disabled_flags: bool) -> Snapshot {
        Snapshot {
            environment_key: self.environment_key,
            environment_name: self.environment_name,
            features: self.features,
            feature_index: self.feature_index,
            segments: self.segments,
            slots: self.slots,
            identity_overrides: self.identity_overrides,
            hide_disabled_flags,
            warnings: self.warnings,
        }
    }
}

/// IN candidates from text: a JSON list when the text starts with `[` and parses as one, otherwise
/// the comma-separated items, untrimmed.
fn in_items(text: &str) -> Vec<String> {
    if text.starts_with('[')
        && let Ok(items) = serde_json::from_str::<Vec<Value>>(text)
    {
        return items.iter().map(python_str).collect();
    }
    text.split(',').map(str::to_owned).collect()
}

/// Rewrites the Python `re` constructs that the `regex` crate spells differently: `\Z` (end of text)
/// and `$` outside character classes, which in Python also matches before one final newline.
/// Patterns with inline flags keep their `$` as written.
fn translate_python_regex(pattern: &str) -> String {
    let rewrite_dollar = !has_multiline_flag(pattern);
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('Z') if !in_class => out.push_str(r"\z"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            // Python has no nested classes or set operations: `[`, `&` and `~` inside a class are
            // literal there, so escape them for the `regex` crate.
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '[' => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in both dialects.
                let rest = chars.as_str();
                let skip = if rest.starts_with("^]") {
                    2
                } else if rest.starts_with(']') {
                    1
                } else {
                    0
                };
                for _ in 0..skip {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && rewrite_dollar => out.push_str(r"(?:\n?\z)"),
            other => out.push(other),
        }
    }
    out
}

/// Whether an inline flag group (`(?m)`, `(?im:...)`) turns on multi-line mode.
fn has_multiline_flag(pattern: &str) -> bool {
    pattern.match_indices("(?").any(|(i, _)| {
        pattern[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .any(|c| c == 'm')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_items_follow_the_reference() {
        assert_eq!(in_items("a, b"), vec!["a", " b"]);
        assert_eq!(in_items(""), vec![""]);
        assert_eq!(
            in_items(r#"["x", 1, 1.0, true, null]"#),
            vec!["x", "1", "1.0", "True", "None"]
        );
        assert_eq!(in_items("[foo,bar]"), vec!["[foo", "bar]"]);
    }

    #[test]
    fn python_regex_constructs_are_translated() {
        assert_eq!(translate_python_regex(r"ab$"), r"ab(?:\n?\z)");
        assert_eq!(translate_python_regex(r"[$]\Z"), r"[$]\z");
        assert_eq!(translate_python_regex(r"\$"), r"\$");
        assert_eq!(translate_python_regex(r"(?m)a$"), r"(?m)a$");
        assert_eq!(translate_python_regex(r"[]$]x$"), r"[]$]x(?:\n?\z)");
        assert_eq!(translate_python_regex(r"(?:a)$"), r"(?:a)(?:\n?\z)");
        assert_eq!(translate_python_regex(r"[a&&b~~[]"), r"[a\&\&b\~\~\[]");
    }
}
