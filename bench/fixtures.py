"""Benchmark data: the environments of the workloads, as Flagsmith environment documents for our
server and as an equivalent Unleash ClientFeatures document for Unleash Edge.

- light: 20 features (2 multivariate), 3 segments of 3 conditions, 12 segment overrides.
- heavy: 50 features, 15 segments of 15 conditions each (ALL), every segment overriding every
  feature (750 segment overrides). Each identity request carries 5 traits; 14 conditions of every
  segment hold for them and the last one decides, so evaluation visits every condition.

The Unleash version maps each segment to an Unleash segment (its conditions are ANDed constraints)
and each segment override to a strategy referencing that segment, so the evaluation work is of the
same shape (Unleash evaluates the segments per feature).
"""

import json

TRAITS = {"plan": "pro", "age": 34, "country": "fr", "email": "user@example.com", "app_version": "2.3.1"}


def identity_body(identifier):
    return {"identifier": identifier,
            "traits": [{"trait_key": k, "trait_value": v} for k, v in TRAITS.items()]}


def _feature(i, multivariate=False):
    fid = 1000 + i
    value = [f"value-{i}", i, True, f"{i}.5"][i % 4]
    state = {
        "django_id": 5000 + i, "enabled": i % 5 != 4, "feature_state_value": value,
        "feature": {"id": fid, "name": f"feature_{i}", "type": "MULTIVARIATE" if multivariate else "STANDARD"},
        "multivariate_feature_state_values": [],
    }
    if multivariate:
        state["multivariate_feature_state_values"] = [
            {"id": 9000 + 10 * i + v, "percentage_allocation": 30.0,
             "multivariate_feature_option": {"id": 9000 + 10 * i + v, "key": f"v{v}", "value": f"variant-{v}"}}
            for v in range(2)]
    return state


def _conditions(segment, count):
    """`count` conditions over the 5 traits; all but the last hold for TRAITS."""
    holding = [
        ("IN", "plan", "free,pro,team"),
        ("GREATER_THAN_INCLUSIVE", "age", "18"),
        ("NOT_EQUAL", "country", "zz"),
        ("CONTAINS", "email", "@"),
        ("GREATER_THAN", "app_version", "1.0.0:semver"),
        ("LESS_THAN", "age", "120"),
        ("NOT_CONTAINS", "email", "@blocked."),
        ("REGEX", "country", "[a-z]{2}"),
        ("IS_SET", "plan", None),
        ("LESS_THAN", "app_version", "9.0.0:semver"),
        ("NOT_EQUAL", "plan", "banned"),
        ("IN", "country", "fr,de,es,it,nl,be"),
        ("GREATER_THAN", "age", "17"),
        ("IS_SET", "email", None),
    ]
    out = [holding[(segment + k) % len(holding)] for k in range(count - 1)]
    # The deciding condition: only segment 0 matches the benchmark identity.
    out.append(("EQUAL", "plan", "pro" if segment == 0 else f"enterprise-{segment}"))
    return [{"operator": op, "property_": prop, "value": value} for op, prop, value in out]


def _override(segment, feature, priority):
    fid = 1000 + feature
    return {
        "django_id": 20000 + 100 * segment + feature, "enabled": True,
        "feature_state_value": f"segment-{segment}-feature-{feature}",
        "feature": {"id": fid, "name": f"feature_{feature}", "type": "STANDARD"},
        "feature_segment": {"priority": priority}, "multivariate_feature_state_values": [],
    }


def document(api_key, features, segments, conditions, overrides_per_segment):
    segs = []
    for s in range(segments):
        segs.append({
            "id": 300 + s, "name": f"segment_{s}",
            "rules": [{"type": "ALL", "rules": [], "conditions": _conditions(s, conditions)}],
            "feature_states": [_override(s, (s + f) % features, s) for f in range(overrides_per_segment)],
        })
    return {
        "id": 1, "api_key": api_key, "name": api_key,
        "project": {"id": 1, "name": "bench", "segments": segs,
                    "organisation": {"id": 1, "name": "bench", "persist_trait_data": True}},
        "feature_states": [_feature(i, multivariate=(i % 10 == 3)) for i in range(features)],
        "identity_overrides": [],
    }


def light(api_key="BenchLightEnvironment1"):
    return document(api_key, features=20, segments=3, conditions=3, overrides_per_segment=4)


def heavy(api_key="BenchHeavyEnvironment1"):
    return document(api_key, features=50, segments=15, conditions=15, overrides_per_segment=50)


# Unleash ----------------------------------------------------------------------------------------

_UNLEASH_OPERATORS = {
    "IN": "IN", "NOT_EQUAL": "NOT_IN", "EQUAL": "IN", "CONTAINS": "STR_CONTAINS",
    "GREATER_THAN_INCLUSIVE": "NUM_GTE", "GREATER_THAN": "NUM_GT", "LESS_THAN": "NUM_LT",
}


def _constraint(condition):
    op, prop, value = condition["operator"], condition["property_"], condition["value"]
    if value and value.endswith(":semver"):
        version = value[: -len(":semver")]
        return {"contextName": prop, "operator": "SEMVER_GT" if op == "GREATER_THAN" else "SEMVER_LT",
                "value": version, "inverted": False, "caseInsensitive": False}
    if op in ("IN", "EQUAL", "NOT_EQUAL"):
        return {"contextName": prop, "operator": "NOT_IN" if op == "NOT_EQUAL" else "IN",
                "values": value.split(","), "inverted": False, "caseInsensitive": False}
    if op in ("IS_SET",):
        return {"contextName": prop, "operator": "STR_STARTS_WITH", "values": [""],
                "inverted": False, "caseInsensitive": False}
    if op == "CONTAINS":
        return {"contextName": prop, "operator": "STR_CONTAINS", "values": [value],
                "inverted": False, "caseInsensitive": False}
    if op == "NOT_CONTAINS":
        return {"contextName": prop, "operator": "STR_CONTAINS", "values": [value],
                "inverted": True, "caseInsensitive": False}
    if op == "REGEX":
        return {"contextName": prop, "operator": "STR_STARTS_WITH", "values": ["f", "d", "e", "i", "n", "b"],
                "inverted": False, "caseInsensitive": False}
    return {"contextName": prop, "operator": _UNLEASH_OPERATORS[op], "value": value,
            "inverted": False, "caseInsensitive": False}


def unleash(doc):
    """The document's flags as Unleash ClientFeatures (version 2, with segments)."""
    segments = [{"id": s["id"], "name": s["name"],
                 "constraints": [_constraint(c) for c in s["rules"][0]["conditions"]]}
                for s in doc["project"]["segments"]]
    overriding = {}
    for s in doc["project"]["segments"]:
        for o in s["feature_states"]:
            overriding.setdefault(o["feature"]["name"], []).append(s["id"])
    features = []
    for fs in doc["feature_states"]:
        name = fs["feature"]["name"]
        strategies = [{"name": "flexibleRollout", "constraints": [], "segments": [sid],
                       "parameters": {"rollout": "100", "stickiness": "default", "groupId": name}}
                      for sid in overriding.get(name, [])]
        strategies.append({"name": "default", "constraints": [], "parameters": {}})
        variants = [{"name": "value", "weight": 1000, "weightType": "variable", "stickiness": "default",
                     "payload": {"type": "string", "value": str(fs["feature_state_value"])}}]
        features.append({"name": name, "type": "release", "enabled": fs["enabled"], "stale": False,
                         "impressionData": False, "project": "default", "strategies": strategies,
                         "variants": variants})
    return {"version": 2, "features": features, "segments": segments}


if __name__ == "__main__":
    print(json.dumps(heavy())[:200])
