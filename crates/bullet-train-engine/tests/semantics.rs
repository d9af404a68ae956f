//! Semantics the shared corpus does not pin (evaluation.md section 5), checked against the reference
//! engine's documented behaviour, plus property tests of the hash and of evaluation.

use bullet_train_engine::{Identity, IdentityOverride, Snapshot, hashed_percentage};
use bullet_train_protocol::{EnvironmentDocument, EvaluationContext, Value};
use proptest::prelude::*;
use serde_json::json;

const ENV: &str = "env-key";

/// A context with one segment holding `rules`, overriding feature `f`.
fn segment_context(rules: serde_json::Value) -> EvaluationContext {
    serde_json::from_value(json!({
        "environment": {"key": ENV, "name": "Production"},
        "segments": {"7": {"key": "seg", "name": "target", "rules": rules,
            "overrides": [{"key": "o", "name": "f", "enabled": true, "value": "on"}]}},
        "features": {"f": {"key": "1", "name": "f", "enabled": false, "value": "off"}},
    }))
    .unwrap()
}

/// Traits as a JSON object, for building identities.
fn traits_of(traits: &serde_json::Value) -> Vec<(String, Value)> {
    traits
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::from_value(v.clone()).unwrap()))
        .collect()
}

/// Whether `identifier` with `traits` is in a segment made of one ALL rule over `conditions`.
fn in_segment_as(
    identifier: &str,
    conditions: serde_json::Value,
    traits: serde_json::Value,
) -> bool {
    let snapshot = Snapshot::from_context(&segment_context(
        json!([{"type": "ALL", "conditions": conditions}]),
    ));
    let owned = traits_of(&traits);
    let traits: Vec<(&str, &Value)> = owned.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let identity = Identity::new(identifier).with_traits(&traits);
    let evaluation = snapshot.evaluate(Some(&identity));
    evaluation.segment_names().any(|s| s == "target")
}

fn in_segment(condition: serde_json::Value, traits: serde_json::Value) -> bool {
    in_segment_as("user", json!([condition]), traits)
}

fn cond(property: &str, operator: &str, value: &str) -> serde_json::Value {
    json!({"property": property, "operator": operator, "value": value})
}

#[test]
fn numeric_strings_are_coerced_before_comparison() {
    // "12345" becomes the integer 12345: CONTAINS is only defined on strings.
    assert!(!in_segment(
        cond("t", "CONTAINS", "234"),
        json!({"t": "12345"})
    ));
    assert!(in_segment(
        cond("t", "CONTAINS", "234"),
        json!({"t": "x12345"})
    ));
    // "007" is 7, which prints as "7".
    assert!(!in_segment(cond("t", "REGEX", "007"), json!({"t": "007"})));
    assert!(in_segment(cond("t", "EQUAL", "7"), json!({"t": "007"})));
    assert!(in_segment(
        cond("t", "GREATER_THAN", "10"),
        json!({"t": "11"})
    ));
    assert!(in_segment(cond("t", "EQUAL", "1.5"), json!({"t": "1.50"})));
    // Only plain decimals coerce: "+5" stays text and compares as text.
    assert!(in_segment(cond("t", "EQUAL", "+5"), json!({"t": "+5"})));
    assert!(!in_segment(cond("t", "EQUAL", "5"), json!({"t": "+5"})));
    assert!(in_segment(cond("t", "CONTAINS", "e"), json!({"t": "1e3"})));
}

#[test]
fn operands_are_read_as_the_context_value_type() {
    // int: Python int() accepts whitespace and underscores but not "1.0".
    assert!(in_segment(cond("t", "EQUAL", " 1_0 "), json!({"t": 10})));
    assert!(!in_segment(cond("t", "EQUAL", "1.0"), json!({"t": 1})));
    // A failed conversion is false for every operator, NOT_EQUAL included.
    assert!(!in_segment(cond("t", "NOT_EQUAL", "abc"), json!({"t": 30})));
    // bool: anything but False/false is true.
    assert!(in_segment(cond("t", "EQUAL", "1"), json!({"t": true})));
    assert!(in_segment(cond("t", "EQUAL", "FALSE"), json!({"t": true})));
    assert!(!in_segment(cond("t", "EQUAL", "0"), json!({"t": false})));
    assert!(in_segment(
        cond("t", "GREATER_THAN", "false"),
        json!({"t": true})
    ));
    // float: IEEE, so NaN is unequal to everything.
    assert!(in_segment(cond("t", "NOT_EQUAL", "nan"), json!({"t": 1.5})));
    assert!(!in_segment(cond("t", "EQUAL", "nan"), json!({"t": 1.5})));
    assert!(in_segment(cond("t", "LESS_THAN", "1e3"), json!({"t": 2.5})));
    // Integers beyond 64 bits compare numerically.
    assert!(in_segment(
        cond(
            "t",
            "GREATER_THAN",
            "99999999999999999999999999999999999999999"
        ),
        json!({"t": "100000000000000000000000000000000000000000"})
    ));
    // Strings compare by code point.
    assert!(in_segment(cond("t", "LESS_THAN", "b"), json!({"t": "a"})));
    assert!(in_segment(
        cond("t", "GREATER_THAN", "Z"),
        json!({"t": "a"})
    ));
}

#[test]
fn missing_values_fail_every_operator_but_is_not_set() {
    for op in [
        "EQUAL",
        "NOT_EQUAL",
        "CONTAINS",
        "NOT_CONTAINS",
        "REGEX",
        "IN",
        "MODULO",
    ] {
        assert!(!in_segment(cond("missing", op, "x"), json!({})), "{op}");
    }
    assert!(in_segment(cond("missing", "IS_NOT_SET", ""), json!({})));
    assert!(!in_segment(cond("missing", "IS_SET", ""), json!({})));
    // A null trait is absent.
    assert!(in_segment(cond("t", "IS_NOT_SET", ""), json!({"t": null})));
    // An empty property reads nothing, even if a trait named "" exists.
    assert!(!in_segment(cond("", "EQUAL", "x"), json!({"": "x"})));
}

#[test]
fn contains_and_not_contains_need_strings() {
    assert!(in_segment(
        cond("t", "NOT_CONTAINS", "x"),
        json!({"t": "abc"})
    ));
    assert!(!in_segment(cond("t", "NOT_CONTAINS", "x"), json!({"t": 5})));
    assert!(!in_segment(cond("t", "CONTAINS", "1"), json!({"t": 1})));
    assert!(in_segment(cond("t", "CONTAINS", ""), json!({"t": "abc"})));
}

#[test]
fn regex_is_a_match_anchored_at_the_start_only() {
    assert!(
        in_segment(cond("t", "REGEX", "ab"), json!({"t": "abc"})),
        "not fullmatch"
    );
    assert!(
        !in_segment(cond("t", "REGEX", "b"), json!({"t": "abc"})),
        "not search"
    );
    assert!(
        in_segment(cond("t", "REGEX", "abc$"), json!({"t": "abc\n"})),
        "Python $"
    );
    assert!(!in_segment(
        cond("t", "REGEX", r"abc\Z"),
        json!({"t": "abc\n"})
    ));
    assert!(in_segment(cond("t", "REGEX", "True"), json!({"t": true})));
    assert!(in_segment(cond("t", "REGEX", r"1\.5"), json!({"t": 1.5})));
}

#[test]
fn unsupported_or_invalid_regexes_never_match_and_warn() {
    for pattern in ["(?=a)a", r"(a)\1", "(unclosed"] {
        let context =
            segment_context(json!([{"type": "ALL", "conditions": [cond("t", "REGEX", pattern)]}]));
        let snapshot = Snapshot::from_context(&context);
        assert_eq!(snapshot.warnings().len(), 1, "{pattern}");
        assert!(!in_segment(cond("t", "REGEX", pattern), json!({"t": "aa"})));
    }
}

#[test]
fn an_unbalanced_parenthesis_cannot_escape_the_start_anchor() {
    // Spliced into `\A(?:...)` unchecked, `x)|(y` would match any text containing a "y".
    let pattern = "x)|(y";
    let snapshot = Snapshot::from_context(&segment_context(json!([{"type": "ALL", "conditions": [
            cond("t", "REGEX", pattern)]}])));
    assert_eq!(snapshot.warnings().len(), 1);
    assert!(!in_segment(cond("t", "REGEX", pattern), json!({"t": "zy"})));
    assert!(!in_segment(cond("t", "REGEX", pattern), json!({"t": "x"})));
}

/// Whether a segment made of one rule matches an identity with trait `t` = "a".
fn rule_matches_anyone(rule: serde_json::Value) -> (bool, usize) {
    let snapshot = Snapshot::from_context(&segment_context(json!([rule])));
    let a = Value::from("a");
    let traits = [("t", &a)];
    let identity = Identity::new("u").with_traits(&traits);
    let matched = snapshot.evaluate(Some(&identity)).segment_names().count() == 1;
    (matched, snapshot.warnings().len())
}

#[test]
fn a_segment_with_a_rule_that_cannot_compile_never_matches() {
    // Read as a false condition, each of these would make its NONE rule (and so the segment) match
    // every identity. The whole segment is disabled instead, with a warning.
    for broken in [
        cond("t", "REGEX", "(unclosed"),
        cond("t", "REGEX", "(?=a)a"),
        cond("t", "MODULO", "0|0"),
        json!({"property": "t", "operator": "IN", "value": null}),
        json!({"property": "", "operator": "PERCENTAGE_SPLIT", "value": null}),
    ] {
        let rule = json!({"type": "NONE", "conditions": [broken]});
        assert_eq!(rule_matches_anyone(rule.clone()), (false, 1), "{rule}");
        // Nested under a matching rule, it disables the segment just the same.
        let nested = json!({"type": "ALL", "conditions": [cond("t", "EQUAL", "a")],
            "rules": [rule]});
        assert_eq!(rule_matches_anyone(nested.clone()), (false, 1), "{nested}");
    }
    // An unknown rule type with nothing in it would otherwise be vacuously true.
    assert_eq!(rule_matches_anyone(json!({"type": "SOME"})), (false, 1));
    // A well-formed NONE rule still matches: the guard only applies to broken segments.
    assert_eq!(
        rule_matches_anyone(json!({"type": "NONE", "conditions": [cond("t", "EQUAL", "b")]})),
        (true, 0)
    );
    // A malformed MODULO operand is ordinary data for the reference engine: just a false condition.
    assert_eq!(
        rule_matches_anyone(json!({"type": "NONE", "conditions": [cond("t", "MODULO", "x|y")]})),
        (true, 0)
    );
}

#[test]
fn conditions_the_reference_defines_as_false_stay_false_conditions() {
    // The reference engine answers false for an operator it does not know and (v2) for a
    // PERCENTAGE_SPLIT whose value is not a number; it does not raise. So these are false
    // conditions, reported with a warning, and the rest of the segment still counts.
    for odd in [
        cond("t", "STARTS_WITH", "a"),
        cond("", "PERCENTAGE_SPLIT", "half"),
    ] {
        // NONE of a false condition matches everyone.
        let none = json!({"type": "NONE", "conditions": [odd.clone()]});
        assert_eq!(rule_matches_anyone(none.clone()), (true, 1), "{none}");
        // ANY of it and a true condition matches through the true one.
        let any = json!({"type": "ANY", "conditions": [odd.clone(), cond("t", "EQUAL", "a")]});
        assert_eq!(rule_matches_anyone(any.clone()), (true, 1), "{any}");
        // ALL of it and a true condition does not match.
        let all = json!({"type": "ALL", "conditions": [cond("t", "EQUAL", "a"), odd.clone()]});
        assert_eq!(rule_matches_anyone(all.clone()), (false, 1), "{all}");
    }
}

#[test]
fn pathological_regex_evaluates_in_linear_time() {
    // Catastrophic for a backtracking engine; linear here, so this returns.
    let subject = format!("{}!", "a".repeat(50_000));
    assert!(!in_segment(
        cond("t", "REGEX", "(a+)+$"),
        json!({ "t": subject })
    ));
    assert!(!in_segment(
        cond("t", "REGEX", "(a|aa)+$"),
        json!({ "t": subject })
    ));
}

#[test]
fn modulo_is_floored_and_accepts_bools() {
    assert!(in_segment(cond("t", "MODULO", "2|1"), json!({"t": -3})));
    assert!(in_segment(cond("t", "MODULO", "-2|-1"), json!({"t": 3})));
    assert!(in_segment(cond("t", "MODULO", "2|1"), json!({"t": true})));
    assert!(in_segment(
        cond("t", "MODULO", "2.5|0.5"),
        json!({"t": "3"})
    ));
    assert!(!in_segment(cond("t", "MODULO", "2|1"), json!({"t": "abc"})));
    for operand in ["0|0", "2", "2|1|0", "", "a|1"] {
        assert!(
            !in_segment(cond("t", "MODULO", operand), json!({"t": 4})),
            "{operand}"
        );
    }
}

#[test]
fn in_splits_without_trimming_and_matches_strings_and_ints_only() {
    assert!(in_segment(cond("t", "IN", "a, b"), json!({"t": " b"})));
    assert!(!in_segment(cond("t", "IN", "a, b"), json!({"t": "b"})));
    assert!(in_segment(cond("t", "IN", "4,5"), json!({"t": 5})));
    assert!(in_segment(cond("t", "IN", "4,5"), json!({"t": "5"})));
    assert!(
        !in_segment(cond("t", "IN", "1.5"), json!({"t": "1.5"})),
        "coerced to float"
    );
    assert!(!in_segment(cond("t", "IN", "True"), json!({"t": true})));
    assert!(in_segment(cond("t", "IN", ""), json!({"t": ""})));
    assert!(in_segment(
        cond("t", "IN", r#"["a b", "c"]"#),
        json!({"t": "a b"})
    ));
    // Identifiers that look numeric never match their own text.
    assert!(!in_segment_as(
        "007",
        json!([cond("$.identity.identifier", "IN", "007")]),
        json!({})
    ));
    let many: Vec<String> = (0..100).map(|i| format!("user-{i}")).collect();
    assert!(in_segment_as(
        "user-42",
        json!([cond("$.identity.identifier", "IN", &many.join(","))]),
        json!({})
    ));
}

#[test]
fn semver_compares_by_precedence_and_ignores_build_metadata() {
    assert!(in_segment(
        cond("v", "EQUAL", "1.0.0:semver"),
        json!({"v": "1.0.0+b1"})
    ));
    assert!(in_segment(
        cond("v", "LESS_THAN", "1.0.0:semver"),
        json!({"v": "1.0.0-alpha"})
    ));
    assert!(in_segment(
        cond("v", "LESS_THAN", "1.0.0-beta:semver"),
        json!({"v": "1.0.0-alpha.9"})
    ));
    assert!(in_segment(
        cond("v", "GREATER_THAN", "1.0.0-alpha.2:semver"),
        json!({"v": "1.0.0-alpha.10"})
    ));
    assert!(!in_segment(
        cond("v", "EQUAL", "1.0:semver"),
        json!({"v": "1.0"})
    ));
    assert!(!in_segment(
        cond("v", "GREATER_THAN", "1.0.0:semver"),
        json!({"v": "01.2.3"})
    ));
    assert!(!in_segment(
        cond("v", "CONTAINS", "1.0.0:semver"),
        json!({"v": "1.0.0"})
    ));
    // Only the comparison family reads :semver; NOT_CONTAINS treats it as text.
    assert!(in_segment(
        cond("v", "NOT_CONTAINS", "1.0.0:semver"),
        json!({"v": "1.0.0"})
    ));
}

#[test]
fn a_literal_trait_beats_the_jsonpath_it_looks_like() {
    let traits = json!({"$.identity.identifier": "from-trait"});
    assert!(in_segment_as(
        "someone",
        json!([cond("$.identity.identifier", "EQUAL", "from-trait")]),
        traits.clone()
    ));
    assert!(!in_segment_as(
        "someone",
        json!([cond("$.identity.identifier", "EQUAL", "someone")]),
        traits
    ));
    assert!(in_segment_as(
        "someone",
        json!([cond("$.identity.identifier", "EQUAL", "someone")]),
        json!({})
    ));
}

#[test]
fn jsonpaths_resolve_against_identity_and_environment() {
    assert!(in_segment(
        cond("$.identity.key", "EQUAL", &format!("{ENV}_user")),
        json!({})
    ));
    assert!(in_segment(
        cond("$.environment.name", "EQUAL", "Production"),
        json!({})
    ));
    assert!(in_segment(
        cond("$.environment.key", "EQUAL", ENV),
        json!({})
    ));
    assert!(in_segment(
        cond(r#"$.identity.traits["a b"]"#, "EQUAL", "x"),
        json!({"a b": "x"})
    ));
    assert!(in_segment(
        cond("$.identity.traits.plan", "EQUAL", "pro"),
        json!({"plan": "pro"})
    ));
    // Generic paths go through the JSONPath engine.
    assert!(in_segment(
        cond("$..identifier", "EQUAL", "user"),
        json!({})
    ));
    assert!(in_segment(
        cond("$.identity.traits[?@ == 'pro']", "EQUAL", "pro"),
        json!({"plan": "pro"})
    ));
    // Objects and arrays are not values.
    assert!(in_segment(
        cond("$.identity.traits", "IS_NOT_SET", ""),
        json!({"plan": "pro"})
    ));
    // Not a valid JSONPath: a trait name.
    assert!(in_segment(
        cond("$.a b", "EQUAL", "x"),
        json!({"$.a b": "x"})
    ));
}

#[test]
fn nested_rules_take_their_parent_quantifier() {
    let any_rule = json!([{"type": "ANY", "conditions": [cond("a", "EQUAL", "1")],
        "rules": [{"type": "ALL", "conditions": [cond("b", "EQUAL", "1")]}]}]);
    let snapshot = Snapshot::from_context(&segment_context(any_rule));
    let yes = Value::Int(1);
    let no = Value::Int(0);
    let both = [("a", &no), ("b", &yes)];
    let identity = Identity::new("u").with_traits(&both);
    // ANY over a false condition group is false, whatever the sub-rules.
    assert_eq!(
        snapshot.evaluate(Some(&identity)).segment_names().count(),
        0
    );
    // A rule with neither conditions nor sub-rules is true; a segment with no rules never matches.
    let empty_rule = Snapshot::from_context(&segment_context(json!([{"type": "NONE"}])));
    assert_eq!(
        empty_rule.evaluate(Some(&identity)).segment_names().count(),
        1
    );
    let no_rules = Snapshot::from_context(&segment_context(json!([])));
    assert_eq!(
        no_rules.evaluate(Some(&identity)).segment_names().count(),
        0
    );
}

#[test]
fn unknown_operators_and_rule_types_never_match_and_warn() {
    let context =
        segment_context(json!([{"type": "ALL", "conditions": [cond("a", "STARTS_WITH", "x")]}]));
    let snapshot = Snapshot::from_context(&context);
    assert_eq!(snapshot.warnings().len(), 1);
    assert!(!in_segment(
        cond("a", "STARTS_WITH", "x"),
        json!({"a": "xy"})
    ));
    let context =
        segment_context(json!([{"type": "SOME", "conditions": [cond("a", "EQUAL", "x")]}]));
    let snapshot = Snapshot::from_context(&context);
    assert_eq!(snapshot.warnings()[0].segment, "target");
    let x = Value::from("x");
    let traits = [("a", &x)];
    assert_eq!(
        snapshot
            .evaluate(Some(&Identity::new("u").with_traits(&traits)))
            .segment_names()
            .count(),
        0
    );
}

/// A context with segment "seg" doing a PERCENTAGE_SPLIT at `threshold` on the identity key.
fn split_at(threshold: f64) -> Snapshot {
    Snapshot::from_context(&segment_context(json!([{"type": "ALL", "conditions": [
        {"property": "", "operator": "PERCENTAGE_SPLIT", "value": threshold.to_string()}]}])))
}

#[test]
fn percentage_split_is_inclusive_and_rehashes_at_one_hundred() {
    let identity = Identity::new("u").with_key("user_6393");
    // MD5 of "seg,user_6393" gives exactly 100; the rehash of the doubled list gives 86.667.
    assert_eq!(hashed_percentage(&["seg", "user_6393"]), 86.66733346669334);
    assert_eq!(
        split_at(86.66733346669334)
            .evaluate(Some(&identity))
            .segment_names()
            .count(),
        1
    );
    assert_eq!(
        split_at(86.6673334666933)
            .evaluate(Some(&identity))
            .segment_names()
            .count(),
        0
    );
    // Without an identity there is no key to hash.
    assert_eq!(split_at(100.0).evaluate(None).segment_names().count(), 0);
    // On a trait, the trait's text is hashed; a missing trait is false.
    let p = hashed_percentage(&["seg", "42"]);
    let snapshot = Snapshot::from_context(&segment_context(json!([{"type": "ALL", "conditions": [
        {"property": "n", "operator": "PERCENTAGE_SPLIT", "value": p.to_string()}]}])));
    let n = Value::Int(42);
    let traits = [("n", &n)];
    assert_eq!(
        snapshot
            .evaluate(Some(&Identity::new("u").with_traits(&traits)))
            .segment_names()
            .count(),
        1
    );
    assert_eq!(
        snapshot
            .evaluate(Some(&Identity::new("u")))
            .segment_names()
            .count(),
        0
    );
}

/// A multivariate feature keyed "mv" with the given variant weights (JSON numbers).
fn multivariate(weights: &[serde_json::Value]) -> Snapshot {
    let variants: Vec<serde_json::Value> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| json!({"value": format!("v{i}"), "weight": w, "priority": i, "key": format!("k{i}")}))
        .collect();
    Snapshot::from_context(&serde_json::from_value(json!({
        "environment": {"key": ENV, "name": "e"},
        "features": {"f": {"key": "mv", "name": "f", "enabled": true, "value": "control", "variants": variants}},
    })).unwrap())
}

#[test]
fn multivariate_bands_are_closed_below_and_open_above() {
    let identity = Identity::new("alice");
    let p = hashed_percentage(&["mv", &format!("{ENV}_alice")]);
    // A first band ending exactly at p does not hold p: the next band does.
    let snapshot = multivariate(&[json!(p), json!(10)]);
    let evaluation = snapshot.evaluate(Some(&identity));
    let flag = evaluation.flag("f").unwrap();
    assert_eq!(flag.variant, Some("k1"));
    assert_eq!(flag.reason.to_string(), "SPLIT; weight=10");
    // Weights that do not reach p leave the control value, reported as "control".
    let snapshot = multivariate(&[json!(p / 2.0)]);
    let evaluation = snapshot.evaluate(Some(&identity));
    let flag = evaluation.flag("f").unwrap();
    assert_eq!(
        (flag.value, flag.variant),
        (&Value::from("control"), Some("control"))
    );
    assert_eq!(flag.reason.to_string(), "DEFAULT");
    // Without an identity: the control value and no variant.
    let snapshot = multivariate(&[json!(100.0)]);
    let evaluation = snapshot.evaluate(None);
    let flag = evaluation.flag("f").unwrap();
    assert_eq!((flag.value, flag.variant), (&Value::from("control"), None));
    // Weight text keeps the JSON number's form.
    let evaluation = snapshot.evaluate(Some(&identity));
    assert_eq!(
        evaluation.flag("f").unwrap().reason.to_string(),
        "SPLIT; weight=100.0"
    );
}

#[test]
fn lower_priority_wins_and_the_first_segment_wins_a_tie() {
    let overrides = |value: &str, priority: Option<i32>| {
        let mut o = json!({"key": value, "name": "f", "enabled": true, "value": value});
        if let Some(p) = priority {
            o["priority"] = json!(p);
        }
        json!([o])
    };
    let always = json!([{"type": "ALL", "conditions": [cond("x", "IS_NOT_SET", "")]}]);
    let build = |a: Option<i32>, b: Option<i32>| {
        Snapshot::from_context(&serde_json::from_value(json!({
            "environment": {"key": ENV, "name": "e"},
            "segments": {
                "1": {"key": "1", "name": "first", "rules": always, "overrides": overrides("a", a)},
                "2": {"key": "2", "name": "second", "rules": always, "overrides": overrides("b", b)},
            },
            "features": {"f": {"key": "f", "name": "f", "enabled": false, "value": "default"}},
        })).unwrap())
    };
    let winner = |a, b| {
        let snapshot = build(a, b);
        let evaluation = snapshot.evaluate(Some(&Identity::new("u")));
        let flag = *evaluation.flag("f").unwrap();
        (flag.value.clone(), flag.reason.to_string())
    };
    assert_eq!(winner(Some(1), Some(0)).0, Value::from("b"));
    assert_eq!(winner(Some(0), Some(1)).0, Value::from("a"));
    assert_eq!(
        winner(Some(3), Some(3)),
        (Value::from("a"), "TARGETING_MATCH; segment=first".into())
    );
    assert_eq!(
        winner(None, None).0,
        Value::from("a"),
        "missing priority never displaces"
    );
    assert_eq!(winner(None, Some(5)).0, Value::from("b"));
    assert_eq!(winner(Some(5), None).0, Value::from("a"));
}

fn document(extra: serde_json::Value) -> EnvironmentDocument {
    let mut doc = json!({
        "id": 1, "api_key": ENV, "name": "Production",
        "project": {"id": 1, "name": "p", "hide_disabled_flags": false, "organisation": {"id": 1, "name": "o"},
            "segments": [{"id": 9, "name": "pros", "rules": [{"type": "ALL", "rules": [],
                "conditions": [{"operator": "EQUAL", "property_": "plan", "value": "pro"}]}],
                "feature_states": [{"feature": {"id": 1, "name": "banner"}, "enabled": true, "django_id": 5,
                    "feature_state_value": "segment", "feature_segment": {"priority": 0},
                    "multivariate_feature_state_values": []}]}]},
        "feature_states": [
            {"feature": {"id": 1, "name": "banner"}, "enabled": true, "django_id": 1, "feature_state_value": "default",
             "multivariate_feature_state_values": []},
            {"feature": {"id": 2, "name": "off"}, "enabled": false, "django_id": 2, "feature_state_value": null,
             "multivariate_feature_state_values": []}],
        "identity_overrides": [{"identifier": "vip", "environment_api_key": ENV, "created_date": "2024-01-01T00:00:00Z",
            "identity_features": [{"feature": {"id": 1, "name": "banner"}, "enabled": false, "django_id": null,
                "featurestate_uuid": "a", "feature_state_value": "identity", "multivariate_feature_state_values": []}]}],
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    serde_json::from_value(doc).unwrap()
}

#[test]
fn identity_overrides_beat_segments() {
    let snapshot = Snapshot::from_document(&document(json!({})));
    let pro = Value::from("pro");
    let traits = [("plan", &pro)];
    let vip = Identity::new("vip").with_traits(&traits);
    let evaluation = snapshot.evaluate(Some(&vip));
    let banner = evaluation.flag("banner").unwrap();
    assert_eq!(
        (banner.enabled, banner.value),
        (false, &Value::from("identity"))
    );
    assert_eq!(
        banner.reason.to_string(),
        "TARGETING_MATCH; segment=identity_overrides"
    );
    let other = Identity::new("other").with_traits(&traits);
    assert_eq!(
        snapshot
            .evaluate(Some(&other))
            .flag("banner")
            .unwrap()
            .value,
        &Value::from("segment")
    );
    // Overrides given by the caller replace the document's.
    let value = Value::from("given");
    let given = [IdentityOverride {
        feature: "banner",
        enabled: true,
        value: &value,
    }];
    let with_given = Identity::new("vip").with_overrides(&given);
    assert_eq!(
        snapshot
            .evaluate(Some(&with_given))
            .flag("banner")
            .unwrap()
            .value,
        &value
    );
    let none = Identity::new("vip").with_overrides(&[]);
    assert_eq!(
        snapshot.evaluate(Some(&none)).flag("banner").unwrap().value,
        &Value::from("default")
    );
}

#[test]
fn hide_disabled_flags_comes_from_the_environment_then_the_project() {
    let shown = Snapshot::from_document(&document(json!({})));
    assert_eq!(shown.environment_flags().flags().len(), 2);
    let hidden = Snapshot::from_document(&document(json!({"hide_disabled_flags": true})));
    assert_eq!(hidden.environment_flags().flags().len(), 1);
    assert!(hidden.evaluate_feature("off", None).is_none());
    assert_eq!(hidden.evaluate(Some(&Identity::new("u"))).flags().len(), 1);
    let mut project_level = document(json!({}));
    project_level.project.hide_disabled_flags = true;
    assert_eq!(
        Snapshot::from_document(&project_level)
            .environment_flags()
            .flags()
            .len(),
        1
    );
    project_level.hide_disabled_flags = Some(false);
    assert_eq!(
        Snapshot::from_document(&project_level)
            .environment_flags()
            .flags()
            .len(),
        2
    );
}

#[test]
fn documents_print_weights_as_python_floats_and_order_variants_by_id() {
    let mut doc = document(json!({}));
    let mv = |id: u64, value: &str, weight: f64| {
        serde_json::from_value(json!({"id": id, "percentage_allocation": weight,
            "multivariate_feature_option": {"value": value}}))
        .unwrap()
    };
    // Listed out of order: id 2 must come first.
    doc.feature_states[0].multivariate_feature_state_values =
        vec![mv(7, "second", 50.0), mv(2, "first", 50.0)];
    let snapshot = Snapshot::from_document(&doc);
    let p = hashed_percentage(&["1", &format!("{ENV}_someone")]);
    let evaluation = snapshot.evaluate(Some(&Identity::new("someone")));
    let flag = evaluation.flag("banner").unwrap();
    assert_eq!(
        flag.value,
        &Value::from(if p < 50.0 { "first" } else { "second" })
    );
    assert_eq!(flag.reason.to_string(), "SPLIT; weight=50.0");
}

// Property tests.

fn identity_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_@.-]{1,24}"
}

proptest! {
    #[test]
    fn hash_is_in_range_and_stable(a in ".{0,16}", b in ".{0,40}") {
        let p = hashed_percentage(&[&a, &b]);
        prop_assert!((0.0..100.0).contains(&p));
        prop_assert_eq!(p, hashed_percentage(&[&a, &b]));
    }

    #[test]
    fn raising_a_split_threshold_never_drops_an_identity(id in identity_strategy(), low in 0.0f64..100.0, delta in 0.0f64..100.0) {
        let identity = Identity::new(&id);
        let high = (low + delta).min(100.0);
        let in_low = split_at(low).evaluate(Some(&identity)).segment_names().count() == 1;
        let in_high = split_at(high).evaluate(Some(&identity)).segment_names().count() == 1;
        prop_assert!(!in_low || in_high);
    }

    #[test]
    fn single_feature_evaluation_agrees_with_full_evaluation(
        id in identity_strategy(),
        plan in prop::sample::select(vec!["free", "pro", "team", "12", "1.5"]),
        age in prop::option::of(0i64..100),
    ) {
        let snapshot = Snapshot::from_document(&document(json!({})));
        let plan = Value::from(plan);
        let age = age.map(Value::Int).unwrap_or(Value::Null);
        let traits = [("plan", &plan), ("age", &age)];
        let identity = Identity::new(&id).with_traits(&traits);
        let full = snapshot.evaluate(Some(&identity));
        for flag in full.flags() {
            let single = snapshot.evaluate_feature(flag.name, Some(&identity)).unwrap();
            prop_assert_eq!((single.enabled, single.value, single.reason), (flag.enabled, flag.value, flag.reason));
        }
    }

    #[test]
    fn arbitrary_conditions_never_panic(
        op in prop::sample::select(vec!["EQUAL", "NOT_EQUAL", "GREATER_THAN", "LESS_THAN_INCLUSIVE", "CONTAINS",
            "NOT_CONTAINS", "REGEX", "MODULO", "IN", "PERCENTAGE_SPLIT", "IS_SET", "BOGUS"]),
        property in prop::sample::select(vec!["t", "", "$.identity.traits.t", "$[", "$..*", "$.identity.key"]),
        operand in ".{0,12}",
        trait_text in ".{0,12}",
    ) {
        let condition = json!({"property": property, "operator": op, "value": operand});
        let _ = in_segment(condition, json!({"t": trait_text}));
    }
}

/// A JSON scalar of any kind a document or trait may hold, odd ones included.
fn scalar() -> BoxedStrategy<serde_json::Value> {
    prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        prop::num::f64::NORMAL.prop_map(serde_json::Value::from),
        ".{0,10}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "1.0.0:semver",
            "2|0",
            "0|0",
            "a,b",
            "[\"a\"]",
            "(x",
            "007",
            ""
        ])
        .prop_map(serde_json::Value::from),
    ]
    .boxed()
}

/// Segment rules nested up to three deep, with any operator, property and operand.
fn rules() -> impl Strategy<Value = serde_json::Value> {
    let condition = (
        prop::sample::select(vec![
            "EQUAL",
            "NOT_EQUAL",
            "GREATER_THAN",
            "GREATER_THAN_INCLUSIVE",
            "LESS_THAN",
            "LESS_THAN_INCLUSIVE",
            "CONTAINS",
            "NOT_CONTAINS",
            "REGEX",
            "MODULO",
            "IN",
            "PERCENTAGE_SPLIT",
            "IS_SET",
            "IS_NOT_SET",
            "BOGUS",
            "",
        ]),
        prop::sample::select(vec![
            "t",
            "n",
            "",
            "$.identity.traits.t",
            "$.identity.identifier",
            "$[",
            "$..*",
            "$.x.y",
        ]),
        scalar(),
    )
        .prop_map(
            |(op, property, value)| json!({"operator": op, "property_": property, "value": value}),
        );
    let kind = prop::sample::select(vec!["ALL", "ANY", "NONE", "XOR"]);
    let leaf = (kind.clone(), prop::collection::vec(condition.clone(), 0..4)).prop_map(
        |(kind, conditions)| json!({"type": kind, "conditions": conditions, "rules": []}),
    );
    leaf.prop_recursive(3, 12, 3, move |inner| {
        (
            kind.clone(),
            prop::collection::vec(condition.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(kind, conditions, rules)| {
                json!({"type": kind, "conditions": conditions, "rules": rules})
            })
    })
}

/// A feature state of one of four features, with any value and any multivariate weights.
fn state(segment: bool) -> impl Strategy<Value = serde_json::Value> {
    (
        0u32..4,
        any::<bool>(),
        scalar(),
        prop::collection::vec(
            prop::sample::select(vec![-10.0, 0.0, 33.3, 50.0, 100.0, 150.0, 1e300]),
            0..3,
        ),
        prop::option::of(prop::sample::select(vec![-1i64, 0, 3, i64::from(u32::MAX)])),
    )
        .prop_map(move |(feature, enabled, value, weights, priority)| {
            let values: Vec<serde_json::Value> = weights
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    json!({"id": 100 + i, "percentage_allocation": w,
                        "multivariate_feature_option": {"id": 100 + i, "value": format!("v{i}")}})
                })
                .collect();
            let mut state = json!({"feature": {"id": feature + 1, "name": format!("f{feature}")},
                "enabled": enabled, "django_id": feature, "feature_state_value": value,
                "multivariate_feature_state_values": values});
            if segment {
                state["feature_segment"] = json!({"priority": priority});
            }
            state
        })
}

/// A whole document: features, segments with rules and overrides, and identity overrides.
fn any_document() -> impl Strategy<Value = serde_json::Value> {
    let segment = (rules(), prop::collection::vec(state(true), 0..3), 0u32..1000).prop_map(
        |(rules, states, id)| json!({"id": id, "name": format!("s{id}"), "rules": [rules], "feature_states": states}),
    );
    (
        prop::collection::vec(state(false), 0..5),
        prop::collection::vec(segment, 0..4),
        prop::collection::vec(state(false), 0..2),
        any::<bool>(),
    )
        .prop_map(|(states, segments, overrides, hide)| {
            json!({"id": 1, "api_key": ENV, "name": "Production",
                "project": {"id": 1, "name": "p", "hide_disabled_flags": hide,
                    "organisation": {"id": 1, "name": "o"}, "segments": segments},
                "feature_states": states,
                "identity_overrides": [{"identifier": "vip", "environment_api_key": ENV,
                    "identity_features": overrides}]})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_documents_compile_and_evaluate_without_panicking(
        document in any_document(),
        identifier in prop::sample::select(vec!["vip", "user", ""]),
        t in scalar(),
        n in scalar(),
    ) {
        // Every one of these shapes is a document the tolerant reader takes.
        let document: EnvironmentDocument = serde_json::from_value(document).unwrap();
        let snapshot = Snapshot::from_document(&document);
        let t: Value = serde_json::from_value(t).unwrap();
        let n: Value = serde_json::from_value(n).unwrap();
        let traits = [("t", &t), ("n", &n)];
        let identity = Identity::new(identifier).with_traits(&traits);
        for subject in [None, Some(&identity)] {
            let evaluation = snapshot.evaluate(subject);
            // Each feature is answered at most once.
            let mut names: Vec<&str> = evaluation.flags().iter().map(|f| f.name).collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            prop_assert_eq!(names.len(), count);
            prop_assert!(count <= snapshot.feature_count());
        }
    }
}
