// The conformance cases (conformance/cases/*.json, format in conformance/README.md) run
// through the pure tracker: each step's frames or events are applied as the feed would,
// and what the tracker reports and holds is compared with the case, field by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { Tracker } from "../src/tracker.js";
import { SseDecoder, decodeFrame } from "../src/wire.js";
import { jsonData } from "../src/nanos.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CASES = process.env.TICKER_CONFORMANCE_CASES ?? path.resolve(HERE, "../../../conformance/cases");
const EXPECT_KEYS = ["refusal", "resume", "resync", "state", "updates"];

const files = existsSync(CASES) ? readdirSync(CASES).filter((f) => f.endsWith(".json")).sort() : [];

if (files.length === 0) {
  test("conformance cases", { skip: `no cases in ${CASES} (conformance/cases/*.json)` }, () => {});
}

/** The tracker's state in the cases' form: JSON-form data, null fields dropped. */
function heldState(tracker) {
  const out = {};
  for (const topic of tracker.topics()) {
    const data = jsonData(tracker.state(topic));
    for (const [key, value] of Object.entries(data)) if (value === null) delete data[key];
    out[topic] = { seq: tracker.mirror.seq(topic), data };
  }
  return out;
}

/** An update in the cases' form. */
const reported = (u) => ({ kind: u.kind, topic: u.topic, seq: u.seq, position: u.position, skipped: u.skipped, loss: u.loss });

/** Sort object keys, so a diff shows values, not key order. */
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  }
  return value;
}

for (const file of files) {
  const name = file.replace(/\.json$/, "");
  test(`conformance: ${name}`, () => {
    const doc = JSON.parse(readFileSync(path.join(CASES, file), "utf8"));
    assert.ok(["ws", "sse"].includes(doc.transport), `${name}: transport must be "ws" or "sse"`);
    assert.ok(Array.isArray(doc.steps) && doc.steps.length > 0, `${name}: no steps`);
    const tracker = new Tracker();
    let sse = new SseDecoder();
    doc.steps.forEach((step, index) => {
      const where = `${name}, step ${index}`;
      if ("connect" in step) {
        tracker.connected();
        sse = new SseDecoder(); // what the parser buffered is gone with the connection
        if ("resume" in step.connect) {
          assert.equal(tracker.resumePosition(), step.connect.resume, `${where}: the position to subscribe with`);
        }
        return;
      }
      /** @type {any[][]} */
      let units;
      if ("ws" in step) units = [decodeFrame(new Uint8Array(Buffer.from(step.ws, "base64")))];
      else if ("sse" in step) units = sse.feed(step.sse).filter((item) => Array.isArray(item));
      else assert.fail(`${where}: a step is one of connect, ws, sse; got ${Object.keys(step).join(", ")}`);
      const updates = [];
      let resync = false;
      let refusal = null;
      for (const unit of units) {
        const result = tracker.receive(unit, 0);
        updates.push(...result.updates.map(reported));
        resync ||= result.resync;
        if (result.refusal !== null) refusal = result.refusal.code;
        if (result.resync || result.refusal !== null) break;
      }
      if (!step.expect) return;
      assert.deepEqual(Object.keys(step.expect).sort(), EXPECT_KEYS, `${where}: a malformed expect`);
      const actual = { updates, resync, refusal, resume: tracker.resumePosition(), state: heldState(tracker) };
      for (const key of EXPECT_KEYS) {
        assert.deepEqual(canonical(actual[key]), canonical(step.expect[key]), `${where}: ${key} differs`);
      }
    });
  });
}
