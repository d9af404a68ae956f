// Checks the current Flagsmith Node.js server SDK (`flagsmith-nodejs` 8.x from npm) against a Bullet
// Train server.
//
// Usage: node flagsmith_nodejs.cjs <mode>, with BT_URL, BT_KEY (client key) and BT_SERVER_KEY set.
// Modes:
//   remote     remote evaluation of environment and identity flags, stored and transient traits
//   agreement  local evaluation (environment document) agrees with remote evaluation for 300 identities
//   offline    offline mode from an exported document (BT_DOCUMENT: its path) agrees with remote
//   analytics  the SDK's analytics processor posts evaluation counts (the Rust test checks them)
// Exits non-zero on the first failed check.

const assert = require("node:assert/strict");
const { Flagsmith, AnalyticsProcessor, LocalFileHandler } = require("flagsmith-nodejs");

const API = process.env.BT_URL + "/api/v1/";
const KEY = process.env.BT_KEY;
const SERVER_KEY = process.env.BT_SERVER_KEY || "";

function flagValues(flags) {
  // The SDK gives a null value as `undefined` when it evaluates locally and as `null` from the API.
  return Object.fromEntries(flags.allFlags().map((f) => [f.featureName, [f.enabled, f.value ?? null]]));
}

async function remote() {
  const sdk = new Flagsmith({ environmentKey: KEY, apiUrl: API });
  const env = await sdk.getEnvironmentFlags();
  assert.equal(env.getFeatureValue("header"), "Welcome to Bullet Train");
  assert.equal(env.isFeatureEnabled("dark_mode"), false);
  assert.equal(env.getFeatureValue("max_items"), "12.5");
  const identity = await sdk.getIdentityFlags("node-user", { plan: "pro", logins: 3 });
  assert.equal(identity.getFeatureValue("font_size"), 15);
  assert.equal(identity.getFeatureValue("header"), "Welcome back, power user");
  const again = await sdk.getIdentityFlags("node-user");
  assert.equal(again.getFeatureValue("font_size"), 15, "traits were persisted");
  const transient = await sdk.getIdentityFlags("node-user-2",
    { plan: { value: "team", transient: true }, logins: 3 });
  assert.equal(transient.getFeatureValue("font_size"), 15);
  assert.equal((await sdk.getIdentityFlags("node-user-2")).getFeatureValue("font_size"), 12);
  const whole = await sdk.getIdentityFlags("node-user-3", { plan: "pro", logins: 3 }, true);
  assert.equal(whole.getFeatureValue("font_size"), 15);
  assert.equal((await sdk.getIdentityFlags("node-user-3")).getFeatureValue("font_size"), 12);
  const ben = await sdk.getIdentityFlags("ben@bullet-train.io");
  assert.equal(ben.isFeatureEnabled("dark_mode"), true);
  assert.equal(ben.getFeatureValue("dark_mode"), "midnight");
  console.log("remote ok");
}

// A small deterministic generator, so every run checks the same identities.
function generator(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  return { next, choice: (list) => list[Math.floor(next() * list.length)] };
}

function randomTraits(rng) {
  const pools = {
    plan: ["free", "pro", "team", "enterprise"],
    age: Array.from({ length: 70 }, (_, i) => i + 10),
    country: ["GB", "FR", "US", "DE", "gb"],
    version: ["1.2.3", "2.0.0", "2.0.0-beta.1", "10.1.0", "2.1.0+build.5"],
    beta: [true, false],
    score: [0.1, 0.5, 0.75, 2.5],
    email: ["a@example.com", "b@other.org", "root@example.com.evil"],
    // Not "007" or 42: the SDK's own engine departs from Flagsmith's reference engine (which the
    // server follows, and the Python SDK agrees with) there. It does not turn numeric strings into
    // numbers ("007" EQUAL "7" is false for it) and it matches an integer against a decimal condition
    // value (42 GREATER_THAN "1.25" is true for it; the reference cannot parse "1.25" as an int).
    logins: [0.5, 1.5, 2.25, "x"],
  };
  const traits = {};
  for (const [key, values] of Object.entries(pools)) {
    if (rng.next() < 0.8) traits[key] = rng.choice(values);
  }
  return traits;
}

async function compare(local, remoteSdk, count) {
  const rng = generator(42);
  const mismatches = [];
  for (let i = 0; i < count; i++) {
    const identifier = `user-${i}`;
    const traits = randomTraits(rng);
    const mine = flagValues(await local.getIdentityFlags(identifier, traits));
    const theirs = flagValues(await remoteSdk.getIdentityFlags(identifier, traits, true));
    try {
      assert.deepEqual(mine, theirs);
    } catch {
      mismatches.push({ identifier, traits, local: mine, remote: theirs });
    }
  }
  try {
    assert.deepEqual(flagValues(await local.getEnvironmentFlags()),
      flagValues(await remoteSdk.getEnvironmentFlags()));
  } catch {
    mismatches.push({ identifier: "environment" });
  }
  for (const m of mismatches.slice(0, 5)) console.error("MISMATCH", JSON.stringify(m));
  assert.equal(mismatches.length, 0, `${mismatches.length} of ${count} identities disagree`);
}

async function agreement() {
  const local = new Flagsmith({ environmentKey: SERVER_KEY, apiUrl: API, enableLocalEvaluation: true,
    environmentRefreshIntervalSeconds: 3600 });
  const remoteSdk = new Flagsmith({ environmentKey: KEY, apiUrl: API });
  // The document the SDK evaluates with is the one our server serves.
  const environment = await local.getEnvironment();
  assert.equal(environment.apiKey, KEY);
  await compare(local, remoteSdk, 300);
  await local.close();
  console.log("agreement ok");
}

async function offline() {
  const local = new Flagsmith({ offlineMode: true,
    offlineHandler: new LocalFileHandler(process.env.BT_DOCUMENT) });
  const remoteSdk = new Flagsmith({ environmentKey: KEY, apiUrl: API });
  await compare(local, remoteSdk, 100);
  console.log("offline ok");
}

async function analytics() {
  // The SDK's own processor (the one `enableAnalytics` uses). The SDK flushes at most every 10 s, from
  // inside an evaluation; flushing here sends the same request at once.
  const processor = new AnalyticsProcessor({ environmentKey: KEY, baseApiUrl: API });
  for (let i = 0; i < 3; i++) processor.trackFeature("header");
  processor.trackFeature("font_size");
  await processor.flush();
  console.log("analytics ok");
}

const modes = { remote, agreement, offline, analytics };
modes[process.argv[2]]().catch((error) => {
  console.error(error);
  process.exit(1);
});
