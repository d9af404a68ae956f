"""Checks the current Flagsmith Python SDK (flagsmith 6.x from PyPI) against a Bullet Train server.

Usage: flagsmith_sdk.py <mode>, with BT_URL, BT_KEY (client key) and BT_SERVER_KEY set.
Modes:
  remote     remote evaluation of environment and identity flags, transient traits
  agreement  local evaluation (environment document) agrees with remote evaluation for 300 identities
  offline    offline mode from an exported document (BT_DOCUMENT: its path) agrees with remote
  realtime   local evaluation with realtime updates: prints READY, then waits until the flag
             "banner" changes through the SSE stream and prints UPDATED
Exits non-zero on the first failed check."""

import os
import random
import sys
import time

from flagsmith import Flagsmith
from flagsmith.offline_handlers import LocalFileHandler

URL = os.environ["BT_URL"] + "/api/v1/"
KEY = os.environ["BT_KEY"]
SERVER_KEY = os.environ.get("BT_SERVER_KEY", "")


def flag_values(flags):
    return {f.feature_name: (f.enabled, f.value) for f in flags.all_flags()}


def remote():
    sdk = Flagsmith(environment_key=KEY, api_url=URL)
    env = sdk.get_environment_flags()
    assert env.get_feature_value("header") == "Welcome to Bullet Train"
    assert env.is_feature_enabled("dark_mode") is False
    identity = sdk.get_identity_flags("sdk-user", traits={"plan": "pro", "logins": 3})
    assert identity.get_feature_value("font_size") == 15
    assert identity.get_feature_value("header") == "Welcome back, power user"
    again = sdk.get_identity_flags("sdk-user")
    assert again.get_feature_value("font_size") == 15, "traits were persisted"
    transient = sdk.get_identity_flags(
        "sdk-user-2", traits={"plan": {"value": "team", "transient": True}}
    )
    assert transient.get_feature_value("font_size") == 15
    assert sdk.get_identity_flags("sdk-user-2").get_feature_value("font_size") == 12
    whole = sdk.get_identity_flags("sdk-user-3", traits={"plan": "pro"}, transient=True)
    assert whole.get_feature_value("font_size") == 15
    assert sdk.get_identity_flags("sdk-user-3").get_feature_value("font_size") == 12
    print("remote ok")


def random_traits(rng):
    pools = {
        "plan": ["free", "pro", "team", "enterprise"],
        "age": list(range(10, 80)),
        "country": ["GB", "FR", "US", "DE", "gb"],
        "version": ["1.2.3", "2.0.0", "2.0.0-beta.1", "10.1.0", "2.1.0+build.5"],
        "beta": [True, False],
        "score": [0.1, 0.5, 0.75, 2.5],
        "email": ["a@example.com", "b@other.org", "root@example.com.evil"],
        "logins": ["007", "42", "1.50", "x"],
    }
    return {k: rng.choice(v) for k, v in pools.items() if rng.random() < 0.8}


def compare(local_sdk, remote_sdk, count):
    rng = random.Random(42)
    mismatches = []
    for i in range(count):
        identifier = f"user-{i}"
        traits = random_traits(rng)
        local = flag_values(local_sdk.get_identity_flags(identifier, traits=traits))
        remote = flag_values(remote_sdk.get_identity_flags(identifier, traits=traits, transient=True))
        if local != remote:
            mismatches.append((identifier, traits, local, remote))
    if flag_values(local_sdk.get_environment_flags()) != flag_values(remote_sdk.get_environment_flags()):
        mismatches.append(("environment", {}, None, None))
    for m in mismatches[:5]:
        print("MISMATCH", m, file=sys.stderr)
    assert not mismatches, f"{len(mismatches)} of {count} identities disagree"


def agreement():
    local = Flagsmith(environment_key=SERVER_KEY, api_url=URL, enable_local_evaluation=True,
                      environment_refresh_interval_seconds=3600)
    remote_sdk = Flagsmith(environment_key=KEY, api_url=URL)
    compare(local, remote_sdk, 300)
    print("agreement ok")


def offline():
    local = Flagsmith(offline_mode=True, offline_handler=LocalFileHandler(os.environ["BT_DOCUMENT"]))
    remote_sdk = Flagsmith(environment_key=KEY, api_url=URL)
    compare(local, remote_sdk, 100)
    print("offline ok")


def realtime():
    sdk = Flagsmith(environment_key=SERVER_KEY, api_url=URL, enable_local_evaluation=True,
                    enable_realtime_updates=True, realtime_api_url=os.environ["BT_URL"] + "/",
                    environment_refresh_interval_seconds=3600)
    before = sdk.get_environment_flags().get_feature_value("banner")
    print("READY", before, flush=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        value = sdk.get_environment_flags().get_feature_value("banner")
        if value != before:
            print("UPDATED", value, flush=True)
            return
        time.sleep(0.01)
    raise AssertionError("the change did not arrive through the stream")


{"remote": remote, "agreement": agreement, "offline": offline, "realtime": realtime}[sys.argv[1]]()
