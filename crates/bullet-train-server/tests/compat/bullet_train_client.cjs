// Checks the original Bullet Train JavaScript client (`bullet-train-client` 0.2.5 from npm, the
// browser and React Native SDK of 2019, in its isomorphic build) against a Bullet Train server. It is
// the one published SDK that writes traits through `traits/`, `traits/bulk/` and
// `traits/increment-value/`.
//
// Usage: node bullet_train_client.cjs, with BT_URL and BT_KEY (client key of examples/environment.json).
// Exits non-zero on the first failed check.

const assert = require("node:assert/strict");
const bulletTrain = require("bullet-train-client/isomorphic").default;

async function main() {
  const errors = [];
  await bulletTrain.init({ environmentID: process.env.BT_KEY, api: process.env.BT_URL + "/api/v1/",
    onError: (error) => errors.push(error) });
  assert.equal(bulletTrain.hasFeature("header"), true);
  assert.equal(bulletTrain.getValue("header"), "Welcome to Bullet Train");
  assert.equal(bulletTrain.getValue("font_size"), 12);
  assert.equal(bulletTrain.hasFeature("dark_mode"), false);
  assert.deepEqual(Object.keys(bulletTrain.getAllFlags()).sort(),
    ["checkout", "dark_mode", "font_size", "header", "max_items"]);

  await bulletTrain.identify("ben@bullet-train.io");
  assert.equal(bulletTrain.getValue("dark_mode"), "midnight");

  // setTrait and setTraits resolve once the write is answered; the client then refetches its flags
  // without waiting, so each step asks for them again before looking.
  // power_users: plan set, and plan pro or team or logins >= 100.
  await bulletTrain.identify("browser-user");
  await bulletTrain.setTrait("plan", "free");
  await bulletTrain.getFlags();
  assert.equal(bulletTrain.getTrait("plan"), "free");
  assert.equal(bulletTrain.getValue("font_size"), 12);
  await bulletTrain.setTraits({ logins: 98, "accept-cookies": "true" });
  await bulletTrain.getFlags();
  assert.deepEqual(bulletTrain.getState().traits, { plan: "free", logins: 98, "accept-cookies": "true" });
  assert.equal(bulletTrain.getValue("header"), "Thanks for accepting cookies");
  assert.equal(bulletTrain.getValue("font_size"), 12);
  await bulletTrain.incrementTrait("logins", 2);
  assert.equal(bulletTrain.getTrait("logins"), 100);
  assert.equal(bulletTrain.getValue("font_size"), 15);
  assert.equal(bulletTrain.getValue("header"), "Welcome back, power user");
  await bulletTrain.incrementTrait("logins", -50);
  assert.equal(bulletTrain.getTrait("logins"), 50);
  assert.equal(bulletTrain.getValue("font_size"), 12);

  bulletTrain.logout();
  await bulletTrain.getFlags();
  assert.equal(bulletTrain.getValue("header"), "Welcome to Bullet Train");
  assert.deepEqual(errors, []);
  console.log("bullet-train-client ok");
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
