// Checks the Flagsmith JavaScript client (`flagsmith` 10.x from npm, the SDK web and React Native apps
// use) against a Bullet Train server, running in Node standing in for a browser: Node's own fetch, the
// `eventsource` package's EventSource and, for real-time mode, a `window` global.
//
// Usage: node flagsmith_js.cjs <mode>, with BT_URL and BT_KEY (client key of examples/environment.json).
// Modes:
//   remote    environment flags, identity overrides, identify with traits, setTrait and setTraits,
//             stored and transient traits, logout
//   realtime  prints READY, then waits until "header" changes through the SSE stream and prints UPDATED
// Exits non-zero on the first failed check.

const assert = require("node:assert/strict");
const { EventSource } = require("eventsource");

// The client picks up the browser's EventSource when it loads.
globalThis.EventSource = EventSource;
const { createFlagsmithInstance } = require("flagsmith");

const API = process.env.BT_URL + "/api/v1/";
const KEY = process.env.BT_KEY;

function client() {
  return createFlagsmithInstance();
}

async function remote() {
  const flagsmith = client();
  await flagsmith.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false });
  assert.equal(flagsmith.hasFeature("header"), true);
  assert.equal(flagsmith.getValue("header"), "Welcome to Bullet Train");
  assert.equal(flagsmith.getValue("font_size"), 12);
  assert.equal(flagsmith.getValue("max_items"), "12.5");
  assert.equal(flagsmith.hasFeature("dark_mode"), false);
  assert.equal(flagsmith.hasFeature("no_such_feature"), false);
  assert.equal(flagsmith.getValue("no_such_feature", { fallback: "fallback" }), "fallback");
  // internal_tools is a server-side-only feature: client keys never see it.
  assert.deepEqual(Object.keys(flagsmith.getAllFlags()).sort(),
    ["checkout", "dark_mode", "font_size", "header", "max_items"]);

  // The identity override of ben@bullet-train.io.
  await flagsmith.identify("ben@bullet-train.io");
  assert.equal(flagsmith.hasFeature("dark_mode"), true);
  assert.equal(flagsmith.getValue("dark_mode"), "midnight");

  // setTrait stores a trait and re-evaluates: js-user joins cookie_accepters.
  await flagsmith.identify("js-user");
  assert.equal(flagsmith.getValue("header"), "Welcome to Bullet Train");
  await flagsmith.setTrait("accept-cookies", "true");
  assert.equal(flagsmith.getTrait("accept-cookies"), "true");
  assert.equal(flagsmith.getValue("header"), "Thanks for accepting cookies");
  // setTraits adds more: power_users' override of the header has the higher priority.
  await flagsmith.setTraits({ plan: "pro", logins: 150 });
  assert.equal(flagsmith.getValue("font_size"), 15);
  assert.equal(flagsmith.getValue("header"), "Welcome back, power user");
  assert.equal(flagsmith.getTrait("plan"), "pro");
  assert.equal(flagsmith.getTrait("logins"), 150);

  // Traits sent with identify are stored too.
  const second = client();
  await second.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false });
  await second.identify("js-user-3", { plan: "team", logins: 120 });
  assert.equal(second.getValue("font_size"), 15);

  // A fresh client identifying the same user gets the stored traits back from the server.
  const again = client();
  await again.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false,
    identity: "js-user" });
  assert.equal(again.getTrait("plan"), "pro");
  assert.equal(again.getTrait("accept-cookies"), "true");
  assert.equal(again.getValue("font_size"), 15);
  const third = client();
  await third.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false,
    identity: "js-user-3" });
  assert.equal(third.getTrait("plan"), "team");
  assert.equal(third.getValue("font_size"), 15);

  // A transient trait is evaluated but not stored.
  const transient = client();
  await transient.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false,
    evaluationContext: { identity: { identifier: "js-user-2",
      traits: { plan: { value: "team", transient: true }, logins: 200 } } } });
  assert.equal(transient.getValue("font_size"), 15);
  const later = client();
  await later.init({ environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false,
    identity: "js-user-2" });
  assert.equal(later.getTrait("plan"), undefined);
  assert.equal(later.getTrait("logins"), 200);
  assert.equal(later.getValue("font_size"), 12);

  // Logging out goes back to the environment's flags.
  await flagsmith.logout();
  assert.equal(flagsmith.getValue("header"), "Welcome to Bullet Train");
  console.log("remote ok");
}

async function realtime() {
  // The client opens its stream only in a browser (it checks for `window`).
  globalThis.window = globalThis;
  const flagsmith = client();
  let resolveUpdated;
  const updated = new Promise((resolve) => { resolveUpdated = resolve; });
  let before;
  await flagsmith.init({
    environmentID: KEY, api: API, fetch: globalThis.fetch, cacheFlags: false,
    realtime: true, eventSourceUrl: process.env.BT_URL + "/",
    onChange: () => {
      const value = flagsmith.getValue("header");
      if (before !== undefined && value !== before) resolveUpdated(value);
    },
  });
  before = flagsmith.getValue("header");
  console.log("READY " + before);
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error("the change did not arrive through the stream")), 20000));
  console.log("UPDATED " + await Promise.race([updated, timeout]));
  process.exit(0);
}

const modes = { remote, realtime };
modes[process.argv[2]]().catch((error) => {
  console.error(error);
  process.exit(1);
});
