"""The seed's usage example (Bullet Train Python SDK docs) run with the original client from PyPI,
bullet-train==1.0.5, against a Bullet Train server. Environment: BT_URL, BT_KEY. Exits non-zero on
the first failed check."""

import os

from bullet_train import BulletTrain

bt = BulletTrain(environment_id=os.environ["BT_KEY"], api=os.environ["BT_URL"] + "/api")

# Retrieving feature flags for your project.
assert bt.has_feature("header") is True
assert bt.feature_enabled("header") is True
assert bt.get_value("header") == "Welcome to Bullet Train"
assert bt.get_value("header", "<My User Id>") == "Welcome to Bullet Train"
assert bt.get_value("font_size") == 12
assert bt.has_feature("no_such_feature") is False
assert bt.feature_enabled("no_such_feature") is None
assert bt.get_value("no_such_feature") is None

# Identifying users: the identity override of ben@bullet-train.io.
assert bt.feature_enabled("dark_mode") is False
assert bt.feature_enabled("dark_mode", "ben@bullet-train.io") is True
assert bt.get_value("dark_mode", "ben@bullet-train.io") == "midnight"

# Traits: set then get, and the stored trait puts ben in the cookie_accepters segment.
assert bt.get_value("header", "ben@bullet-train.io") == "Welcome to Bullet Train"
bt.set_trait("accept-cookies", "true", "ben@bullet-train.io")
assert bt.get_trait("accept-cookies", "ben@bullet-train.io") == "true"
assert bt.get_value("header", "ben@bullet-train.io") == "Thanks for accepting cookies"
bt.set_trait("logins", 150, "ben@bullet-train.io")
bt.set_trait("plan", "pro", "ben@bullet-train.io")
assert bt.get_trait("logins", "ben@bullet-train.io") == 150
assert bt.get_value("font_size", "ben@bullet-train.io") == 15
assert bt.get_value("header", "ben@bullet-train.io") == "Welcome back, power user"

# get_flags / get_flags_for_user return the flag objects.
flags = bt.get_flags()
assert {f["feature"]["name"] for f in flags} >= {"header", "font_size", "dark_mode", "checkout"}
assert all({"id", "enabled", "environment", "feature_state_value", "feature"} <= set(f) for f in flags)
user = bt.get_flags_for_user("ben@bullet-train.io")
by_name = {f["feature"]["name"]: f for f in user["flags"]}
assert by_name["font_size"]["feature_state_value"] == 15
assert {t["trait_key"] for t in user["traits"]} == {"accept-cookies", "logins", "plan"}
print("seed example ok")
