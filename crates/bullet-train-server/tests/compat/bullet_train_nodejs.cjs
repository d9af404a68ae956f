// Checks the original Bullet Train Node.js client (`bullet-train-nodejs` 1.0.1 from npm, the seed's
// JavaScript sibling) against a Bullet Train server, through every method it has that works: its
// setTrait throws a ReferenceError before sending anything (a bug in 1.0.1), so the trait it reads
// back is stored through the Rust test first.
//
// Usage: node bullet_train_nodejs.cjs, with BT_URL and BT_KEY (client key of examples/environment.json).
// Exits non-zero on the first failed check.

const assert = require("node:assert/strict");
const bulletTrain = require("bullet-train-nodejs");

async function main() {
  const errors = [];
  bulletTrain.init({ environmentID: process.env.BT_KEY, api: process.env.BT_URL + "/api/v1/",
    onError: (error) => errors.push(error) });

  assert.equal(await bulletTrain.hasFeature("header"), true);
  assert.equal(await bulletTrain.getValue("header"), "Welcome to Bullet Train");
  assert.equal(await bulletTrain.getValue("font_size"), 12);
  assert.equal(await bulletTrain.hasFeature("dark_mode"), false);
  assert.equal(await bulletTrain.hasFeature("no_such_feature"), false);
  assert.equal(await bulletTrain.getValue("no_such_feature"), null);

  const flags = await bulletTrain.getFlags();
  assert.deepEqual(flags.checkout, { enabled: true, value: "classic" });
  assert.deepEqual(flags.max_items, { enabled: true, value: "12.5" });

  // The identity override of ben@bullet-train.io, and his stored traits.
  assert.equal(await bulletTrain.hasFeature("dark_mode", "ben@bullet-train.io"), true);
  assert.equal(await bulletTrain.getValue("dark_mode", "ben@bullet-train.io"), "midnight");
  assert.equal(await bulletTrain.getTrait("ben@bullet-train.io", "plan"), "pro");
  assert.equal(await bulletTrain.getTrait("ben@bullet-train.io", "logins"), 150);
  assert.equal(await bulletTrain.getValue("font_size", "ben@bullet-train.io"), 15);
  const user = await bulletTrain.getFlagsForUser("ben@bullet-train.io");
  assert.deepEqual(user.header, { enabled: true, value: "Welcome back, power user" });
  const identity = await bulletTrain.getUserIdentity("ben@bullet-train.io");
  assert.deepEqual(identity.traits, { plan: "pro", logins: 150 });

  // A new user is created on first sight, with the environment's flags.
  assert.equal(await bulletTrain.getValue("font_size", "node-newcomer"), 12);
  assert.deepEqual(errors, []);
  console.log("bullet-train-nodejs ok");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
