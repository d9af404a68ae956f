//! Evaluation: segments matched in order, the winning override per feature (lower priority number
//! wins, the first segment wins a tie), identity overrides above everything, then multivariate
//! selection. Semantics: evaluation.md section 1.1.
//!
//! Results borrow from the snapshot (and from caller-supplied identity overrides): an evaluation
//! allocates its list of flags and little else.

use std::fmt;

use bullet_train_protocol::Value;
use bullet_train_protocol::context::Metadata;
use bullet_train_protocol::result::{EvaluationResult, FlagResult, SegmentResult};

use crate::hashing::percentage_of_pieces;
use crate::scope::{KeyPieces, Scope, key_pieces};
use crate::snapshot::{Feature, Rule, Segment, Snapshot, State, Variant};

/// Name of the pseudo-segment reported for identity overrides, as the reference mapper names it.
pub const IDENTITY_OVERRIDES: &str = "identity_overrides";

/// The identity flags are evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The identifier.
    pub identifier: &'a str,
    /// Explicit hashing key; `None` (or empty) means `<environment key>_<identifier>`.
    pub key: Option<&'a str>,
    /// Traits, in order; a later duplicate wins; a null value is absent.
    pub traits: &'a [(&'a str, &'a Value)],
    /// The identity's overrides. `None` uses the snapshot's (from the environment document).
    pub overrides: Option<&'a [IdentityOverride<'a>]>,
}

impl<'a> Identity<'a> {
    /// An identity with no traits, hashed by its composite key.
    pub fn new(identifier: &'a str) -> Identity<'a> {
        Identity {
            identifier,
            key: None,
            traits: &[],
            overrides: None,
        }
    }

    /// Sets an explicit hashing key.
    pub fn with_key(mut self, key: &'a str) -> Identity<'a> {
        self.key = Some(key);
        self
    }

    /// Sets the traits.
    pub fn with_traits(mut self, traits: &'a [(&'a str, &'a Value)]) -> Identity<'a> {
        self.traits = traits;
        self
    }

    /// Sets the identity overrides, replacing those of the snapshot.
    pub fn with_overrides(mut self, overrides: &'a [IdentityOverride<'a>]) -> Identity<'a> {
        self.overrides = Some(overrides);
        self
    }
}

/// An identity override: a fixed state of one feature for one identity.
#[derive(Debug, Clone, Copy)]
pub struct IdentityOverride<'a> {
    /// Feature name.
    pub feature: &'a str,
    /// Whether the flag is on.
    pub enabled: bool,
    /// The value.
    pub value: &'a Value,
}

/// Why a flag has its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    /// The environment default.
    Default,
    /// A segment override (or, with segment `identity_overrides`, an identity override).
    TargetingMatch {
        /// Name of the segment.
        segment: &'a str,
    },
    /// A multivariate variant was chosen.
    Split {
        /// The variant's weight as printed by the reference engine.
        weight: &'a str,
    },
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Default => f.write_str("DEFAULT"),
            Reason::TargetingMatch { segment } => write!(f, "TARGETING_MATCH; segment={segment}"),
            Reason::Split { weight } => write!(f, "SPLIT; weight={weight}"),
        }
    }
}

/// Which feature state a flag came from, as positions in the compiled input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The environment default.
    Default,
    /// An override of a segment: `segment` is the segment's position, `position` the override's
    /// position among that segment's overrides of features present in the environment.
    Segment {
        /// Segment position.
        segment: usize,
        /// Override position within the segment.
        position: usize,
    },
    /// An identity override: its position in [`Identity::overrides`] or in the document's list.
    Identity {
        /// Override position.
        position: usize,
    },
}

/// The evaluated flag of one feature.
#[derive(Debug, Clone, Copy)]
pub struct Flag<'a> {
    /// Feature name.
    pub name: &'a str,
    /// Feature id, when the input carried one (document `feature.id`, context `metadata.id`).
    pub feature_id: Option<u64>,
    /// Position of the feature in the snapshot.
    pub feature_position: usize,
    /// Whether the flag is on.
    pub enabled: bool,
    /// The served value.
    pub value: &'a Value,
    /// Position of the chosen variant among the winning state's variants (sorted by priority).
    pub variant_position: Option<usize>,
    /// Variant key; `Some("control")` for a multivariate flag that fell on the control value.
    pub variant: Option<&'a str>,
    /// Why.
    pub reason: Reason<'a>,
    /// Which state won.
    pub source: Source,
    metadata: Option<&'a Metadata>,
}

impl<'a> Flag<'a> {
    /// The metadata of the winning feature context, when non-empty.
    pub fn metadata(&self) -> Option<&'a Metadata> {
        self.metadata
    }
}

/// The flags of every feature (in input order) and the matched segments (in input order).
#[derive(Debug)]
pub struct Evaluation<'a> {
    snapshot: &'a Snapshot,
    flags: Vec<Flag<'a>>,
    segments: Vec<u32>,
}

impl<'a> Evaluation<'a> {
    /// The flags, in feature order (disabled ones left out when the snapshot hides them).
    pub fn flags(&self) -> &[Flag<'a>] {
        &self.flags
    }

    /// The flag of the feature named `name`.
    pub fn flag(&self, name: &str) -> Option<&Flag<'a>> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Names of the matched segments, in segment order.
    pub fn segment_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.segments
            .iter()
            .map(|s| &*self.snapshot.segments[*s as usize].name)
    }

    /// Positions of the matched segments.
    pub fn segment_positions(&self) -> impl Iterator<Item = usize> + '_ {
        self.segments.iter().map(|s| *s as usize)
    }

    /// The result in the reference engine's format.
    pub fn to_result(&self) -> EvaluationResult {
        EvaluationResult {
            flags: self
                .flags
                .iter()
                .map(|f| {
                    let result = FlagResult {
                        name: f.name.to_owned(),
                        enabled: f.enabled,
                        value: f.value.clone(),
                        reason: f.reason.to_string(),
                        variant: f.variant.map(str::to_owned),
                        metadata: f.metadata.cloned(),
                    };
                    (f.name.to_owned(), result)
                })
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|s| {
                    let segment = &self.snapshot.segments[*s as usize];
                    SegmentResult {
                        name: segment.name.to_string(),
                        metadata: segment.metadata.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// The state chosen for a feature during segment evaluation.
#[derive(Clone, Copy)]
struct Chosen {
    priority: f64,
    segment: u32,
    position: u32,
}

impl Snapshot {
    /// Evaluates every feature for `identity` (or for no identity: segments on `$.environment` may
    /// still match; multivariate features serve their control value).
    pub fn evaluate<'a>(&'a self, identity: Option<&Identity<'a>>) -> Evaluation<'a> {
        let scope = Scope::new(self, identity);
        let mut segments = Vec::new();
        let mut chosen: Vec<Option<Chosen>> = Vec::new();
        for (si, segment) in self.segments.iter().enumerate() {
            if !segment_matches(segment, &scope) {
                continue;
            }
            segments.push(si as u32);
            if segment.overrides.is_empty() {
                continue;
            }
            if chosen.is_empty() {
                chosen.resize(self.features.len(), None);
            }
            for (oi, o) in segment.overrides.iter().enumerate() {
                let slot = &mut chosen[o.feature as usize];
                if slot.is_none_or(|c| o.state.priority < c.priority) {
                    *slot = Some(Chosen {
                        priority: o.state.priority,
                        segment: si as u32,
                        position: oi as u32,
                    });
                }
            }
        }
        let key = scope.identity_key();
        let overrides = identity.map(|i| self.overrides_of(i));
        let mut flags = Vec::with_capacity(self.features.len());
        for (fi, feature) in self.features.iter().enumerate() {
            let flag = match overrides.as_ref().and_then(|o| o.find(fi)) {
                Some(flag) => flag,
                None => {
                    let winner = chosen.get(fi).copied().flatten();
                    self.state_flag(fi, feature, winner, key)
                }
            };
            if self.shows(&flag) {
                flags.push(flag);
            }
        }
        Evaluation {
            snapshot: self,
            flags,
            segments,
        }
    }

    /// The environment defaults with no identity and no segments: what `flags/` serves and what SDKs
    /// report as environment flags.
    pub fn environment_flags(&self) -> Evaluation<'_> {
        let flags = self
            .features
            .iter()
            .enumerate()
            .map(|(fi, feature)| self.state_flag(fi, feature, None, None))
            .filter(|flag| self.shows(flag))
            .collect();
        Evaluation {
            snapshot: self,
            flags,
            segments: Vec::new(),
        }
    }

    /// The environment default of the one feature named `name` (no identity, no segments), as in
    /// [`Snapshot::environment_flags`]. `None` when there is no such feature (or it is disabled and
    /// hidden).
    pub fn environment_flag(&self, name: &str) -> Option<Flag<'_>> {
        let fi = *self.feature_index.get(name)? as usize;
        let flag = self.state_flag(fi, &self.features[fi], None, None);
        self.shows(&flag).then_some(flag)
    }

    /// Evaluates the one feature named `name` for `identity`, evaluating only the segments that
    /// override it (with no identity, segments are still evaluated, as in a v2 evaluation context
    /// without one; SDK environment flags use [`Snapshot::environment_flag`]). `None` when there is
    /// no such feature (or it is disabled and hidden).
    pub fn evaluate_feature<'a>(
        &'a self,
        name: &str,
        identity: Option<&Identity<'a>>,
    ) -> Option<Flag<'a>> {
        let fi = *self.feature_index.get(name)? as usize;
        let feature = &self.features[fi];
        let overridden = identity.and_then(|i| self.overrides_of(i).find(fi));
        let flag = match overridden {
            Some(flag) => flag,
            None => {
                let mut winner: Option<Chosen> = None;
                let mut scope: Option<Scope<'a>> = None;
                for &(si, oi) in &feature.overridden_by {
                    let segment = &self.segments[si as usize];
                    let priority = segment.overrides[oi as usize].state.priority;
                    // Segments come in order, so a tie never displaces: skip the rules when the
                    // override could not win anyway.
                    if winner.is_some_and(|w| priority >= w.priority) {
                        continue;
                    }
                    let scope = scope.get_or_insert_with(|| Scope::new(self, identity));
                    if segment_matches(segment, scope) {
                        winner = Some(Chosen {
                            priority,
                            segment: si,
                            position: oi,
                        });
                    }
                }
                let key = identity.map(|i| key_pieces(&self.environment_key, i));
                self.state_flag(fi, feature, winner, key)
            }
        };
        self.shows(&flag).then_some(flag)
    }

    /// Whether `flag` is served: disabled flags are hidden when the environment says so.
    fn shows(&self, flag: &Flag<'_>) -> bool {
        flag.enabled || !self.hide_disabled_flags
    }

    /// The flag built from the default or from the chosen segment override.
    fn state_flag<'a>(
        &'a self,
        fi: usize,
        feature: &'a Feature,
        winner: Option<Chosen>,
        key: Option<KeyPieces<'_>>,
    ) -> Flag<'a> {
        let (state, reason, source): (&State, Reason<'a>, Source) = match winner {
            None => (&feature.default, Reason::Default, Source::Default),
            Some(c) => {
                let segment = &self.segments[c.segment as usize];
                (
                    &segment.overrides[c.position as usize].state,
                    Reason::TargetingMatch {
                        segment: &segment.name,
                    },
                    Source::Segment {
                        segment: c.segment as usize,
                        position: c.position as usize,
                    },
                )
            }
        };
        let mut flag = Flag {
            name: &feature.name,
            feature_id: feature.id,
            feature_position: fi,
            enabled: state.enabled,
            value: &state.value,
            variant_position: None,
            variant: None,
            reason,
            source,
            metadata: state.metadata.as_deref(),
        };
        if let Some(key) = key
            && !state.variants.is_empty()
        {
            flag.variant = Some("control");
            if let Some((position, variant)) = choose_variant(state, key) {
                flag.value = &variant.value;
                flag.variant = variant.key.as_deref();
                flag.variant_position = Some(position);
                flag.reason = Reason::Split {
                    weight: &variant.weight_text,
                };
            }
        }
        flag
    }

    /// The identity overrides that apply to `identity`.
    fn overrides_of<'a>(&'a self, identity: &Identity<'a>) -> Overrides<'a> {
        match identity.overrides {
            Some(given) => Overrides::Given(self, given),
            None => match self.identity_overrides.get(identity.identifier) {
                Some(stored) => Overrides::Stored(self, stored),
                None => Overrides::None,
            },
        }
    }
}

/// Identity overrides from the caller or from the snapshot's document.
enum Overrides<'a> {
    None,
    Given(&'a Snapshot, &'a [IdentityOverride<'a>]),
    Stored(&'a Snapshot, &'a [crate::snapshot::StoredOverride]),
}

impl<'a> Overrides<'a> {
    /// The flag for feature `fi` if an identity override covers it.
    fn find(&self, fi: usize) -> Option<Flag<'a>> {
        let (snapshot, position, enabled, value) = match self {
            Overrides::None => return None,
            Overrides::Given(snapshot, given) => {
                let name = &*snapshot.features[fi].name;
                // The last override of a feature wins, as a later dictionary entry would.
                let (position, o) = given
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(_, o)| o.feature == name)?;
                (*snapshot, position, o.enabled, o.value)
            }
            Overrides::Stored(snapshot, stored) => {
                let (position, o) = stored
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(_, o)| o.feature as usize == fi)?;
                (*snapshot, position, o.enabled, &o.value)
            }
        };
        let feature = &snapshot.features[fi];
        Some(Flag {
            name: &feature.name,
            feature_id: feature.id,
            feature_position: fi,
            enabled,
            value,
            variant_position: None,
            variant: None,
            reason: Reason::TargetingMatch {
                segment: IDENTITY_OVERRIDES,
            },
            source: Source::Identity { position },
            metadata: feature.default.metadata.as_deref(),
        })
    }
}

/// The variant whose band `[start, start + weight)` holds the identity's percentage.
fn choose_variant<'s>(state: &'s State, key: KeyPieces<'_>) -> Option<(usize, &'s Variant)> {
    let percentage = percentage_of_pieces(&[&[&state.key], key.pieces()]);
    let mut start = 0.0;
    for (i, variant) in state.variants.iter().enumerate() {
        let limit = start + variant.weight;
        if start <= percentage && percentage < limit {
            return Some((i, variant));
        }
        start = limit;
    }
    None
}

/// A segment matches when it has rules and every rule matches.
fn segment_matches(segment: &Segment, scope: &Scope<'_>) -> bool {
    !segment.rules.is_empty()
        && segment
            .rules
            .iter()
            .all(|rule| rule_matches(rule, scope, &segment.key))
}

/// A rule matches when its quantifier holds over its conditions (true when there are none) and over
/// its sub-rules (true when there are none).
fn rule_matches(rule: &Rule, scope: &Scope<'_>, segment_key: &str) -> bool {
    let conditions = rule.conditions.is_empty()
        || rule.quantifier.apply(
            rule.conditions
                .iter()
                .map(|c| c.matches(scope, segment_key)),
        );
    conditions
        && (rule.rules.is_empty()
            || rule.quantifier.apply(
                rule.rules
                    .iter()
                    .map(|r| rule_matches(r, scope, segment_key)),
            ))
}
