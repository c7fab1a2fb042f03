// openFeed against a real `ticker serve` (its venues publishing), started by
// tests/js/test_node_client.py, which names it in TICKER_JS_SERVER: the mirror equals
// /v1/snapshot at the same position over WebSocket, SSE and zstd; random cuts resume with
// no gap and no repeat; resets from another epoch, too old and ahead; refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { openFeed, jsonData, parsePosition } from "../src/index.js";

const SERVER = process.env.TICKER_JS_SERVER;
const REPLAY_MAX = Number(process.env.TICKER_JS_REPLAY_MAX ?? "1000");
const SKIP = SERVER ? false : "TICKER_JS_SERVER is not set (tests/js/test_node_client.py starts a server and sets it)";
const WS = SERVER ? SERVER.replace(/^http/, "ws") : "";
const ALL = ["quote.*", "book.*", "trade.*", "ticker.*"];
const TIMEOUT = 30000;
const FAST = { reconnectMinMs: 5, reconnectMaxMs: 50 };

async function snapshotDoc(topics = ALL) {
  const response = await fetch(`${SERVER}/v1/snapshot?topics=${encodeURIComponent(topics.join(","))}`);
  assert.equal(response.status, 200);
  return response.json();
}

/** What a caller saw: every topic's state (JSON form) at each seq, and per-topic checks. */
class Record {
  constructor() {
    this.states = new Map(); // topic -> Map(seq -> state in the JSON form)
    this.firstOffset = new Map(); // topic -> offset of its first update
    this.updates = [];
  }

  add(u) {
    this.updates.push(u);
    if (!this.states.has(u.topic)) this.states.set(u.topic, new Map());
    if (!this.firstOffset.has(u.topic)) this.firstOffset.set(u.topic, parsePosition(u.position).offset);
    this.states.get(u.topic).set(u.seq, JSON.stringify(jsonData(u.state)));
  }

  /** The mirror equals `doc` (a /v1/snapshot document at a position the feed passed). */
  check(doc) {
    const at = parsePosition(doc.position).offset;
    const expected = new Set(doc.snapshots.filter((s) => s.seq > 0).map((s) => s.topic));
    const seen = new Set([...this.firstOffset].filter(([, offset]) => offset <= at).map(([topic]) => topic));
    assert.deepEqual([...seen].sort(), [...expected].sort());
    for (const s of doc.snapshots) {
      if (s.seq === 0) continue;
      const held = this.states.get(s.topic)?.get(s.seq);
      assert.ok(held !== undefined, `${s.topic} never reached seq ${s.seq}`);
      const { checksum, ...state } = s.data; // a book's checksum: carried, not held
      assert.deepEqual(JSON.parse(held), state, `${s.topic} at seq ${s.seq}`);
    }
  }
}

/**
 * Read `feed` into `record`; after `atLeast` updates (or once `atLeast(count)`) take /v1/snapshot and go on until
 * the feed passed its position; `onUpdate` may act on each; `topics`: the document's. Returns the document.
 */
async function followToSnapshot(feed, record, atLeast, onUpdate = () => {}, topics = ALL) {
  let doc = null;
  let target = null;
  for await (const u of feed) {
    record.add(u);
    onUpdate(u, record.updates.length);
    const ready = typeof atLeast === "function" ? atLeast(record.updates.length) : record.updates.length >= atLeast;
    if (doc === null && ready) {
      doc = await snapshotDoc(topics);
      target = parsePosition(doc.position);
    }
    if (target !== null) {
      const at = parsePosition(u.position);
      if (at.epoch === target.epoch && at.offset >= target.offset) return doc;
    }
  }
  throw new Error(`the feed ended: ${feed.error}`);
}

function zstdCodec() {
  const require = createRequire(import.meta.url);
  const { ZstdCodec } = require("zstd-codec");
  return new Promise((resolve) => ZstdCodec.run((zstd) => {
    const simple = new zstd.Simple();
    const dictionaries = new Map();
    resolve({
      decompress(bytes, dictionary) {
        const key = dictionary.join(",");
        if (!dictionaries.has(key)) dictionaries.set(key, new zstd.Dict.Decompression(dictionary));
        const out = simple.decompressUsingDict(bytes, dictionaries.get(key));
        if (out === null) throw new Error("zstd-codec could not decompress the frame");
        return out;
      },
    });
  }));
}

for (const [name, url, zstd] of [["WebSocket", WS, false], ["SSE", SERVER, false], ["WebSocket zstd", WS, true]]) {
  test(`${name}: the mirror equals /v1/snapshot at the same position`, { skip: SKIP, timeout: TIMEOUT }, async () => {
    const hellos = [];
    const options = { onEvent: (e) => e.type === "hello" && hellos.push(e) };
    if (zstd) options.zstd = await zstdCodec();
    const feed = openFeed(url, ALL, options);
    const record = new Record();
    try {
      record.check(await followToSnapshot(feed, record, 300));
    } finally {
      feed.close();
    }
    assert.deepEqual(hellos.map((h) => h.compression), [zstd ? "zstd" : null]);
    if (url === WS) {
      // The WebSocket form keeps nanos exact: every price and size is a BigInt.
      const quote = record.updates.find((u) => u.topic.startsWith("quote.") && u.state.bid != null);
      assert.equal(typeof quote.state.bid, "bigint");
    }
    assert.deepEqual([feed.tracker.stats.gaps, feed.tracker.stats.resets], [0, 0]);
  });
}

/** A small seeded generator, so a failing run can be repeated. */
function seeded(seed) {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

for (const [name, url] of [["WebSocket", WS], ["SSE", SERVER]]) {
  test(`${name}: random cuts resume with no gap and no repeat`, { skip: SKIP, timeout: TIMEOUT }, async () => {
    const random = seeded(name.length * 7919);
    const cuts = 5;
    const feed = openFeed(url, ALL, { ...FAST, random });
    const record = new Record();
    const lastSeq = new Map();
    let cut = 0;
    let nextCut = 30 + Math.floor(random() * 60);
    try {
      const ready = (count) => cut === cuts && count >= nextCut;
      const doc = await followToSnapshot(feed, record, ready, (u, count) => {
        // No repeat and no gap: every topic's seq goes up by exactly one, from the first
        // snapshot on, across every reconnect.
        const last = lastSeq.get(u.topic);
        if (last !== undefined) assert.equal(u.seq, last + 1, `${u.topic} after seq ${last} (${u.kind})`);
        assert.ok(u.kind !== "reset" && u.skipped === 0, `${u.topic}: ${u.kind} skipped ${u.skipped}`);
        lastSeq.set(u.topic, u.seq);
        if (cut < cuts && count >= nextCut && feed.connection !== null) {
          feed.dropConnection();
          cut += 1;
          nextCut = count + 30 + Math.floor(random() * 60);
        }
      });
      record.check(doc);
    } finally {
      feed.close();
    }
    assert.equal(feed.stats.endings.dropped, cuts, JSON.stringify(feed.stats));
    assert.equal(feed.stats.connections, cuts + 1);
    assert.deepEqual(feed.tracker.stats, { ...feed.tracker.stats, gaps: 0, resets: 0, duplicates: 0 });
  });
}

test("SSE: a position of another epoch gets a reset; a topic the server lacks is dropped", { skip: SKIP, timeout: TIMEOUT }, async () => {
  // As a page that rendered an old document: held state at a position of another epoch.
  const old = { position: "1-5", snapshots: [{ topic: "quote.ZZZ-USD", seq: 4, offset: 5, ts: 1, data: { bid: "1" } }] };
  const feed = openFeed(SERVER, ["quote.*"], { snapshot: old });
  const record = new Record();
  const resets = [];
  try {
    for await (const u of feed) {
      if (u.kind === "reset") resets.push(u);
      if (u.topic === "quote.ZZZ-USD" && u.seq === 0) break;
    }
    assert.ok(!feed.heldTopics().includes("quote.ZZZ-USD"));
    const doc = await snapshotDoc(["quote.*"]);
    const epoch = parsePosition(doc.position).epoch;
    const until = resets[0].loss.until;
    assert.equal(parsePosition(until).epoch, epoch);
    for (const u of resets) assert.deepEqual(u.loss, { after: "1-5", until, reason: "other_epoch" });
    const rebuilt = resets.filter((u) => u.seq > 0).map((u) => u.topic).sort();
    assert.deepEqual(rebuilt, doc.snapshots.map((s) => s.topic).sort());
    assert.deepEqual(resets.at(-1).state, {});
    assert.equal(feed.stats.resetMessages, 1);
  } finally {
    feed.close();
  }
});

for (const [reason, positionOf] of [["too_old", (e) => `${e}-1`], ["ahead", (e, o) => `${e}-${o + 1000000}`]]) {
  test(`WebSocket: a position ${reason === "too_old" ? "too old to replay" : "ahead of the stream"} gets a reset, then the stream`, { skip: SKIP, timeout: TIMEOUT }, async () => {
    let doc = await snapshotDoc();
    for (let i = 0; i < 200 && parsePosition(doc.position).offset <= REPLAY_MAX + 50; i++) {
      await new Promise((r) => setTimeout(r, 100)); // the venues publish meanwhile
      doc = await snapshotDoc();
    }
    const { epoch, offset } = parsePosition(doc.position);
    assert.ok(offset > REPLAY_MAX + 50, "the server did not publish enough to evict offset 1");
    const from = positionOf(epoch, offset);
    const feed = openFeed(WS, ALL, { position: from });
    const record = new Record();
    try {
      const first = [];
      for (;;) {
        // Not `for await ... break`: that would close the feed.
        const { value: u } = await feed.next();
        record.add(u);
        if (u.kind !== "reset") break;
        first.push(u);
      }
      assert.ok(first.length > 0);
      for (const u of first) assert.deepEqual(u.loss, { after: from, until: first[0].loss.until, reason });
      record.check(await followToSnapshot(feed, record, 0));
    } finally {
      feed.close();
    }
  });
}

test("refusals: an unknown symbol ends the feed with the server's reason, on both transports", { skip: SKIP, timeout: TIMEOUT }, async () => {
  for (const [url, code] of [[WS, 4400], [SERVER, 400]]) {
    const feed = openFeed(url, ["quote.NOPE-USD"]);
    await assert.rejects((async () => { for await (const u of feed) void u; })(),
      (err) => err.kind === "rejected" && err.code === code && /NOPE-USD/.test(err.message));
  }
});

for (const [name, url, topic] of [["WebSocket", WS, "book.BTC-USD"], ["SSE", SERVER, "book@cbx.BTC-USD"]]) {
  test(`${name}: a corrupted book is found by its checksum and repaired from the server`, { skip: SKIP, timeout: TIMEOUT }, async () => {
    const topics = ["book.*", "book@*.*"];
    const feed = openFeed(url, topics, FAST);
    const record = new Record();
    let corrupted = false;
    try {
      // The document is taken once the re-subscription's burst arrived (its reset updates
      // come as one unit): taken at the mismatch, it could fall between the last state
      // held and the burst, at a seq the burst's snapshot jumps over.
      const repaired = () => record.updates.some((u) => u.kind === "reset" && u.loss?.reason === "checksum");
      const doc = await followToSnapshot(feed, record, repaired, (u) => {
        if (!corrupted && u.topic === topic && feed.tracker.mirror.has(topic)) {
          // A best bid the server never had (within the levels the checksum covers), in
          // the form this transport holds prices in.
          const price = 10n ** 18n;
          const held = url === WS ? [price, 5n] : ["1000000000", "0.000000005"];
          feed.tracker.mirror.held.get(topic).bids.set(price, held);
          corrupted = true;
        }
      }, topics);
      // Taken after the mismatch: the books held again are the server's.
      record.check(doc);
    } finally {
      feed.close();
    }
    assert.equal(feed.tracker.stats.checksumMismatches, 1, JSON.stringify(feed.tracker.stats));
    assert.equal(feed.tracker.stats.gaps, 0);
    const resets = record.updates.filter((u) => u.kind === "reset");
    assert.ok(resets.some((u) => u.topic === topic && u.loss.reason === "checksum"), JSON.stringify(resets.map((u) => u.topic)));
    assert.equal(feed.stats.endings.gap, 1);
  });
}
