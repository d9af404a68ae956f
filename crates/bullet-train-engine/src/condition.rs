//! Segment conditions: compiled once (operands parsed to every type they may be compared as, regexes
//! and IN sets built, JSONPaths parsed and common paths resolved to direct lookups), then matched
//! against an evaluation scope. Semantics: evaluation.md sections 2.2-2.6.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;

use bullet_train_protocol::Value;
use regex::Regex;
use serde_json_path::JsonPath;

use crate::hashing::percentage_of_pieces;
use crate::python::{self, Coerced, Int};
use crate::scope::Scope;

/// Index of a trait name in the snapshot's slot table.
pub(crate) type Slot = u32;

/// A context value after coercion: what operators compare.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(Int),
    Float(f64),
    Bool(bool),
}

impl<'a> Val<'a> {
    /// Coerces a borrowed string the way the reference engine does.
    pub(crate) fn from_str(s: &'a str) -> Val<'a> {
        match python::coerce(s) {
            Coerced::Int(i) => Val::Int(i),
            Coerced::Float(f) => Val::Float(f),
            Coerced::Text => Val::Str(Cow::Borrowed(s)),
        }
    }

    /// Coerces an owned string.
    fn from_string(s: String) -> Val<'a> {
        match python::coerce(&s) {
            Coerced::Int(i) => Val::Int(i),
            Coerced::Float(f) => Val::Float(f),
            Coerced::Text => Val::Str(Cow::Owned(s)),
        }
    }

    /// A trait value as a context value; null is absent.
    pub(crate) fn from_value(v: &'a Value) -> Option<Val<'a>> {
        match v {
            Value::Null => None,
            Value::Bool(b) => Some(Val::Bool(*b)),
            Value::Int(i) => Some(Val::Int(Int::Small(i128::from(*i)))),
            Value::Float(f) => Some(Val::Float(*f)),
            Value::String(s) => Some(Val::from_str(s)),
        }
    }

    /// A JSONPath node as a context value; null, objects and arrays are absent.
    fn from_json(v: &serde_json::Value) -> Option<Val<'a>> {
        match v {
            serde_json::Value::Bool(b) => Some(Val::Bool(*b)),
            serde_json::Value::Number(n) => Some(match n.as_i64() {
                Some(i) => Val::Int(Int::Small(i128::from(i))),
                None => match n.as_u64() {
                    Some(u) => Val::Int(Int::Small(i128::from(u))),
                    None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
            }),
            serde_json::Value::String(s) => Some(Val::from_string(s.clone())),
            _ => None,
        }
    }

    /// Python `str()` of the value.
    fn py_str(&self) -> Cow<'_, str> {
        match self {
            Val::Str(s) => Cow::Borrowed(s),
            Val::Int(i) => {
                let mut out = String::new();
                i.write_str(&mut out);
                Cow::Owned(out)
            }
            Val::Float(f) => Cow::Owned(python::float_to_string(*f)),
            Val::Bool(true) => Cow::Borrowed("True"),
            Val::Bool(false) => Cow::Borrowed("False"),
        }
    }
}

/// Where a condition reads its value from.
#[derive(Debug)]
pub(crate) enum Property {
    /// No property: PERCENTAGE_SPLIT hashes the raw identity key; every other operator sees "absent".
    Empty,
    /// A plain trait name.
    Trait(Slot),
    /// A `$.` property: the trait literally named so, else the path.
    Path { literal: Slot, path: Path },
}

/// A valid JSONPath, with the common ones resolved at compile time.
#[derive(Debug)]
pub(crate) enum Path {
    Identifier,
    Key,
    EnvironmentKey,
    EnvironmentName,
    Trait(Slot),
    Generic(Box<JsonPath>),
}

/// A comparison operator of the typed family.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cmp {
    fn holds(self, ordering: Option<Ordering>) -> bool {
        match (self, ordering) {
            // IEEE: NaN is unequal to everything, so NOT_EQUAL holds.
            (Cmp::Ne, None) => true,
            (_, None) => false,
            (Cmp::Eq, Some(o)) => o == Ordering::Equal,
            (Cmp::Ne, Some(o)) => o != Ordering::Equal,
            (Cmp::Gt, Some(o)) => o == Ordering::Greater,
            (Cmp::Ge, Some(o)) => o != Ordering::Less,
            (Cmp::Lt, Some(o)) => o == Ordering::Less,
            (Cmp::Le, Some(o)) => o != Ordering::Greater,
        }
    }
}

/// A condition operand parsed, at compile time, to each type the context value may have.
#[derive(Debug)]
pub(crate) struct Operand {
    text: Box<str>,
    int: Option<Int>,
    float: Option<f64>,
    /// Python's cast to bool: everything but `False`/`false` is true.
    boolean: bool,
    /// `Some` when the text ends in `:semver`; the inner `None` when the version is invalid.
    semver: Option<Option<semver::Version>>,
}

impl Operand {
    pub(crate) fn new(text: &str) -> Operand {
        let semver = text
            .strip_suffix(":semver")
            .map(|version| semver::Version::parse(version).ok());
        Operand {
            text: text.into(),
            int: python::parse_int(text),
            float: python::parse_float(text),
            boolean: !matches!(text, "False" | "false"),
            semver,
        }
    }
}

/// The candidate set of an IN condition.
#[derive(Debug)]
pub(crate) enum InSet {
    Few(Vec<Box<str>>),
    Many(HashSet<Box<str>>),
}

impl InSet {
    pub(crate) fn new(items: Vec<String>) -> InSet {
        if items.len() <= 8 {
            InSet::Few(items.into_iter().map(String::into_boxed_str).collect())
        } else {
            InSet::Many(items.into_iter().map(String::into_boxed_str).collect())
        }
    }

    fn contains(&self, s: &str) -> bool {
        match self {
            InSet::Few(items) => items.iter().any(|i| &**i == s),
            InSet::Many(items) => items.contains(s),
        }
    }
}

/// A compiled operator with its operand.
#[derive(Debug)]
pub(crate) enum Op {
    Compare(Cmp, Box<Operand>),
    Contains(Box<Operand>),
    NotContains(Box<str>),
    Regex(Box<Regex>),
    Modulo {
        divisor: f64,
        remainder: f64,
    },
    In(InSet),
    IsSet,
    IsNotSet,
    PercentageSplit(f64),
    /// A condition that cannot match (unknown operator, invalid operand).
    Never,
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) struct Condition {
    pub(crate) property: Property,
    pub(crate) op: Op,
}

impl Condition {
    /// Whether the condition holds in `scope`, for the segment hashed as `segment_key`.
    pub(crate) fn matches(&self, scope: &Scope<'_>, segment_key: &str) -> bool {
        if let Op::PercentageSplit(threshold) = self.op {
            return match &self.property {
                Property::Empty => match scope.identity_key() {
                    Some(key) => percentage_of_pieces(&[&[segment_key], key.pieces()]) <= threshold,
                    None => false,
                },
                property => match scope.value_of(property) {
                    Some(v) => percentage_of_pieces(&[&[segment_key], &[&v.py_str()]]) <= threshold,
                    None => false,
                },
            };
        }
        let value = match &self.property {
            Property::Empty => None,
            property => scope.value_of(property),
        };
        match (&self.op, value) {
            (Op::IsSet, v) => v.is_some(),
            (Op::IsNotSet, v) => v.is_none(),
            (_, None) => false,
            (Op::Compare(cmp, operand), Some(v)) => compare(*cmp, operand, &v),
            (Op::Contains(operand), Some(Val::Str(s))) => {
                operand.semver.is_none() && s.contains(&*operand.text)
            }
            (Op::Contains(_), Some(_)) => false,
            (Op::NotContains(text), Some(Val::Str(s))) => !s.contains(&**text),
            (Op::NotContains(_), Some(_)) => false,
            (Op::Regex(re), Some(v)) => re.is_match(&v.py_str()),
            (Op::Modulo { divisor, remainder }, Some(v)) => {
                let dividend = match v {
                    Val::Int(i) => i.to_f64(),
                    Val::Float(f) => f,
                    Val::Bool(b) => f64::from(u8::from(b)),
                    Val::Str(_) => return false,
                };
                floored_mod(dividend, *divisor) == Some(*remainder)
            }
            (Op::In(set), Some(Val::Str(s))) => set.contains(&s),
            (Op::In(set), Some(Val::Int(i))) => {
                let mut text = String::new();
                i.write_str(&mut text);
                set.contains(&text)
            }
            (Op::In(_), Some(_)) => false,
            (Op::PercentageSplit(_) | Op::Never, Some(_)) => false,
        }
    }
}

/// The typed comparison family: the operand is read as the context value's type.
fn compare(cmp: Cmp, operand: &Operand, v: &Val<'_>) -> bool {
    match v {
        Val::Str(s) => match &operand.semver {
            Some(Some(condition_version)) => match semver::Version::parse(s) {
                Ok(version) => cmp.holds(Some(version.cmp_precedence(condition_version))),
                Err(_) => false,
            },
            Some(None) => false,
            None => cmp.holds(Some((**s).cmp(&*operand.text))),
        },
        Val::Int(i) => match &operand.int {
            Some(o) => cmp.holds(Some(i.cmp(o))),
            None => false,
        },
        Val::Float(f) => match operand.float {
            Some(o) => cmp.holds(f.partial_cmp(&o)),
            None => false,
        },
        Val::Bool(b) => cmp.holds(Some(b.cmp(&operand.boolean))),
    }
}

/// Python's float `%`: the result takes the divisor's sign. `None` for a zero divisor (Python raises).
fn floored_mod(a: f64, b: f64) -> Option<f64> {
    if b == 0.0 {
        return None;
    }
    let m = a % b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            return Some(m + b);
        }
        return Some(m);
    }
    Some(0.0_f64.copysign(b))
}

impl Scope<'_> {
    /// Resolves a property to its coerced value, or `None` when absent.
    pub(crate) fn value_of(&self, property: &Property) -> Option<Val<'_>> {
        match property {
            Property::Empty => None,
            Property::Trait(slot) => self.trait_value(*slot),
            Property::Path { literal, path } => {
                if let Some(v) = self.trait_value(*literal) {
                    return Some(v);
                }
                match path {
                    Path::Identifier => self.identifier().map(Val::from_str),
                    Path::Key => self.identity_key_text().map(Val::from_str),
                    Path::EnvironmentKey => Some(Val::from_str(self.environment_key())),
                    Path::EnvironmentName => Some(Val::from_str(self.environment_name())),
                    Path::Trait(slot) => self.trait_value(*slot),
                    Path::Generic(path) => {
                        let context = self.json_context();
                        path.query(context).first().and_then(Val::from_json)
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floored_modulo_takes_the_divisor_sign() {
        assert_eq!(floored_mod(-3.0, 2.0), Some(1.0));
        assert_eq!(floored_mod(3.0, -2.0), Some(-1.0));
        assert_eq!(floored_mod(7.5, 2.0), Some(1.5));
        assert_eq!(floored_mod(4.0, 2.0), Some(0.0));
        assert_eq!(floored_mod(1.0, 0.0), None);
    }
}
