//! The v2 evaluation result (evaluation.md section 4.2).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::Value;
use crate::context::Metadata;

/// Flags by name, and the segments that matched, in context order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EvaluationResult {
    /// One entry per feature.
    pub flags: IndexMap<String, FlagResult>,
    /// Matched segments.
    pub segments: Vec<SegmentResult>,
}

/// The outcome for one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagResult {
    /// Feature name.
    pub name: String,
    /// Whether the flag is on.
    pub enabled: bool,
    /// The served value.
    #[serde(default)]
    pub value: Value,
    /// `DEFAULT`, `TARGETING_MATCH; segment=<name>` or `SPLIT; weight=<w>`.
    pub reason: String,
    /// Variant key, `"control"`, or null for non-multivariate features.
    #[serde(default)]
    pub variant: Option<String>,
    /// The feature context's metadata, when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// A matched segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentResult {
    /// Segment name.
    pub name: String,
    /// The segment's metadata, when non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}
