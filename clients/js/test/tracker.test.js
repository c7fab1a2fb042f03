// The pure tracker, case by case as tests/client/test_tracker.py checks the Python one:
// state, positions, gaps, resets, and what is reported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Tracker, Mirror, channelKind } from "../src/tracker.js";
import { ProtocolError } from "../src/wire.js";

const TS = 1_763_761_999_997_500;
const hello = (epoch = 7, offset = 0, version = 1) =>
  ({ type: "hello", version, epoch, offset, heartbeatS: 15, compression: null, zstdDictionary: null });
const snap = (topic, seq, offset, data = {}) => ({ type: "data", snapshot: true, topic, seq, offset, ts: TS, data });
const delta = (topic, seq, offset, data = {}) => ({ type: "data", snapshot: false, topic, seq, offset, ts: TS, data });
const book = (seq, offset, bids, snapshot) => ({ type: "data", snapshot, topic: "book.BTC-USD", seq, offset, ts: TS, data: { bids, asks: [] } });
const hb = (epoch, offset) => ({ type: "heartbeat", epoch, offset, ts: TS });
const reset = (epoch, offset, reason) => ({ type: "reset", epoch, offset, reason });
const loss = (after, until, reason) => ({ after, until, reason });

function run(tracker, ...units) {
  const updates = [];
  for (const unit of units) {
    const step = tracker.receive(unit, 5);
    assert.equal(step.resync, false);
    assert.equal(step.refusal, null);
    updates.push(...step.updates);
  }
  return updates;
}

function following() {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 10)], [snap("quote.BTC-USD", 3, 10, { bid: 100n, ask: 101n }), book(5, 10, [[99n, 2n]], true)]);
  return tracker;
}

test("snapshots then deltas give state and position", () => {
  const tracker = following();
  assert.equal(tracker.position, "7-10");
  const updates = run(tracker, [delta("quote.BTC-USD", 4, 11, { bid: 102n })], [book(6, 12, [[99n, 0n], [98n, 1n]], false)]);
  assert.deepEqual(updates.map((u) => u.kind), ["delta", "delta"]);
  const [quote, depth] = updates;
  assert.deepEqual(quote.data, { bid: 102n });
  assert.deepEqual(quote.state, { bid: 102n, ask: 101n });
  assert.deepEqual([quote.seq, quote.position, quote.ts], [4, "7-11", TS]);
  assert.deepEqual(depth.state, { bids: [[98n, 1n]], asks: [] });
  assert.equal(tracker.position, "7-12");
});

test("a replay overlapping what is held is skipped, not applied twice", () => {
  const tracker = following();
  run(tracker, [delta("quote.BTC-USD", 4, 11, { bid: 102n })]);
  assert.deepEqual(run(tracker, [delta("quote.BTC-USD", 4, 11, { bid: 102n })]), []);
  assert.equal(tracker.stats.duplicates, 1);
  assert.deepEqual(tracker.state("quote.BTC-USD"), { bid: 102n, ask: 101n });
});

test("a gap rewinds to the topic's last offset and asks for a resync", () => {
  const tracker = following();
  run(tracker, [delta("quote.BTC-USD", 4, 11, { bid: 102n })], [book(6, 12, [[97n, 1n]], false)]);
  const step = tracker.receive([book(7, 14, [[96n, 1n]], false), delta("quote.BTC-USD", 6, 15, { ask: 105n })]);
  assert.equal(step.resync, true);
  assert.deepEqual(step.updates.map((u) => u.topic), ["book.BTC-USD"]);
  assert.equal(tracker.stats.gaps, 1);
  assert.equal(tracker.resumePosition(), "7-11");
  tracker.connected();
  const updates = run(tracker, [hello(7, 15)], [book(6, 12, [[97n, 1n]], false)], [delta("quote.BTC-USD", 5, 13, { bid: 103n })],
    [book(7, 14, [[96n, 1n]], false)], [delta("quote.BTC-USD", 6, 15, { ask: 105n })]);
  assert.deepEqual(updates.map((u) => [u.topic, u.seq]), [["quote.BTC-USD", 5], ["quote.BTC-USD", 6]]);
  assert.deepEqual(tracker.state("quote.BTC-USD"), { bid: 103n, ask: 105n });
  assert.equal(tracker.stats.duplicates, 2);
  assert.equal(tracker.position, "7-15");
});

test("a delta for a topic never held starts a re-snapshot and drops what the burst lacks", () => {
  const tracker = following();
  const step = tracker.receive([delta("quote.ETH-USD", 9, 11, { bid: 5n })]);
  assert.equal(step.resync, true);
  assert.equal(tracker.resumePosition(), null);
  assert.deepEqual(tracker.topics(), []);
  tracker.connected();
  const updates = run(tracker, [hello(7, 20)], [snap("quote.BTC-USD", 8, 20, { bid: 1n }), snap("quote.ETH-USD", 9, 20, { bid: 5n })]);
  const byTopic = Object.fromEntries(updates.map((u) => [u.topic, u]));
  assert.ok(updates.every((u) => u.kind === "reset"));
  assert.deepEqual(byTopic["quote.ETH-USD"].loss, loss("7-10", "7-20", "gap"));
  assert.equal(byTopic["book.BTC-USD"].seq, 0);
  assert.deepEqual(byTopic["book.BTC-USD"].state, { bids: [], asks: [] });
  assert.deepEqual(tracker.topics().sort(), ["quote.BTC-USD", "quote.ETH-USD"]);
  assert.equal(tracker.position, "7-20");
});

test("a server reset rebuilds every topic and reports the loss", () => {
  const tracker = following();
  tracker.connected();
  assert.deepEqual(tracker.receive([hello(8, 40)]).updates, []);
  assert.deepEqual(tracker.receive([reset(8, 40, "other_epoch")]).updates, []);
  assert.deepEqual(tracker.topics(), []);
  assert.equal(tracker.resumePosition(), "7-10");
  const updates = run(tracker, [snap("quote.BTC-USD", 2, 40, { bid: 7n }), book(3, 40, [], true)]);
  assert.deepEqual(updates.map((u) => u.kind), ["reset", "reset"]);
  assert.deepEqual(updates[0].loss, loss("7-10", "8-40", "other_epoch"));
  assert.equal(tracker.position, "8-40");
  assert.equal(tracker.stats.resets, 1);
  assert.equal(run(tracker, [delta("quote.BTC-USD", 3, 41, { ask: 9n })])[0].kind, "delta");
});

test("a reset without snapshots drops the topics at the next message", () => {
  const tracker = following();
  tracker.connected();
  run(tracker, [hello(8, 0)], [reset(8, 0, "other_epoch")]);
  const updates = run(tracker, [snap("quote.BTC-USD", 1, 1, { bid: 1n })]);
  const dropped = updates.filter((u) => u.seq === 0);
  assert.deepEqual(new Set(dropped.map((u) => u.topic)), new Set(["quote.BTC-USD", "book.BTC-USD"]));
  assert.ok(dropped.every((u) => u.kind === "reset" && u.ts === 5));
  assert.equal(updates.at(-1).kind, "snapshot");
  assert.deepEqual(updates.at(-1).state, { bid: 1n });
  assert.equal(tracker.position, "8-1");
});

test("a reset and its snapshots in one unit rebuild and make a resume point", () => {
  const tracker = following();
  tracker.connected();
  run(tracker, [hello(7, 40)]);
  const updates = run(tracker, [reset(7, 40, "too_old"), snap("quote.BTC-USD", 9, 40, { bid: 7n }), book(12, 40, [[98n, 1n]], true)]);
  assert.deepEqual(updates.map((u) => [u.kind, u.topic, u.seq]), [["reset", "quote.BTC-USD", 9], ["reset", "book.BTC-USD", 12]]);
  for (const u of updates) assert.deepEqual(u.loss, loss("7-10", "7-40", "too_old"));
  assert.equal(tracker.position, "7-40");
  assert.equal(tracker.resumePosition(), "7-40");
  assert.deepEqual(tracker.state("book.BTC-USD"), { bids: [[98n, 1n]], asks: [] });
  assert.equal(tracker.stats.resets, 1);
  tracker.connected();
  run(tracker, [hello(7, 50)], [reset(7, 50, "too_old")]);
  assert.equal(tracker.resumePosition(), "7-40");
  const later = run(tracker, [hb(7, 51)], [snap("trade.BTC-USD", 1, 52, { price: 3n })]);
  assert.deepEqual(new Set(later.filter((u) => u.seq === 0).map((u) => u.topic)), new Set(["quote.BTC-USD", "book.BTC-USD"]));
  assert.equal(later.at(-1).kind, "snapshot");
  assert.equal(later.at(-1).loss, null);
  assert.equal(tracker.position, "7-52");
});

test("a reset interrupted by a reconnect keeps where the loss began", () => {
  const tracker = following();
  tracker.connected();
  run(tracker, [hello(8, 40)], [reset(8, 40, "other_epoch")]);
  tracker.connected();
  run(tracker, [hello(8, 45)], [reset(8, 45, "other_epoch")]);
  const updates = run(tracker, [snap("quote.BTC-USD", 2, 45, { bid: 7n })]);
  assert.deepEqual(updates[0].loss, loss("7-10", "8-45", "other_epoch"));
  assert.equal(tracker.stats.resets, 1);
});

test("conflated snapshots are exact, but a jump in trades is a loss", () => {
  const tracker = following();
  run(tracker, [snap("trade.BTC-USD", 4, 10, { price: 1n })]);
  const updates = run(tracker, [snap("quote.BTC-USD", 7, 11, { bid: 110n })], [snap("trade.BTC-USD", 6, 12, { price: 3n })]);
  assert.equal(updates[0].kind, "snapshot");
  assert.equal(updates[0].skipped, 3);
  assert.equal(updates[1].kind, "reset");
  assert.deepEqual(updates[1].loss, loss("7-10", "7-12", "skipped"));
  assert.equal(tracker.stats.conflated, 1);
});

test("a first subscription has no resume point until its first data", () => {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 42)]);
  assert.equal(tracker.resumePosition(), null);
  run(tracker, [hb(7, 42)]);
  assert.equal(tracker.resumePosition(), null);
  tracker.connected();
  run(tracker, [hello(7, 50)], [snap("quote.BTC-USD", 3, 50, { bid: 1n })]);
  assert.equal(tracker.resumePosition(), "7-50");
  run(tracker, [hb(7, 55)]);
  assert.equal(tracker.resumePosition(), "7-55");
});

test("a fresh resubscription reports what may be missing since the first hello", () => {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 42)]);
  tracker.connected();
  assert.equal(tracker.resumePosition(), null);
  const updates = run(tracker, [hello(7, 60)], [snap("trade.BTC-USD", 18, 60, { price: 5n }), snap("quote.BTC-USD", 3, 60, { bid: 1n })]);
  assert.deepEqual(updates.map((u) => u.kind), ["reset", "reset"]);
  for (const u of updates) assert.deepEqual(u.loss, loss("7-42", "7-60", "resubscribed"));
  assert.equal(tracker.stats.resets, 1);
  assert.equal(tracker.resumePosition(), "7-60");
  assert.deepEqual(run(tracker, [delta("trade.BTC-USD", 19, 61, { price: 6n })]).map((u) => u.kind), ["delta"]);
});

test("a fresh resubscription of a stream that did not move loses nothing", () => {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 42)]);
  tracker.connected();
  const updates = run(tracker, [hello(7, 42)], [snap("quote.BTC-USD", 3, 42, { bid: 1n })]);
  assert.deepEqual(updates.map((u) => u.kind), ["snapshot"]);
  assert.equal(tracker.stats.resets, 0);
});

test("a new topic's first message is a snapshot and a resume point; a lone delta is a resync", () => {
  const tracker = new Tracker();
  tracker.connected();
  const updates = run(tracker, [hello(7, 42)], [snap("trade.BTC-USD", 1, 43, { price: 5n })]);
  assert.deepEqual(updates.map((u) => [u.kind, u.seq, u.loss]), [["snapshot", 1, null]]);
  assert.equal(tracker.resumePosition(), "7-43");
  assert.equal(run(tracker, [delta("trade.BTC-USD", 2, 44, { price: 6n })])[0].kind, "delta");
  const step = tracker.receive([delta("trade.ETH-USD", 1, 45, { price: 1n })]);
  assert.equal(step.resync, true);
  assert.equal(tracker.resumePosition(), null);
});

test("a live first snapshot replaces the empty state of an exact topic", () => {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 42)], [snap("trade.BTC-USD", 0, 42)]);
  assert.deepEqual(tracker.state("trade.BTC-USD"), {});
  const [update] = run(tracker, [snap("trade.BTC-USD", 1, 43, { price: 5n })]);
  assert.deepEqual([update.kind, update.skipped, update.loss], ["snapshot", 0, null]);
  assert.deepEqual(tracker.state("trade.BTC-USD"), { price: 5n });
});

test("a topic born after a fresh resubscription is no loss", () => {
  const tracker = new Tracker();
  tracker.connected();
  run(tracker, [hello(7, 42)]);
  tracker.connected();
  const updates = run(tracker, [hello(7, 60)], [snap("trade.BTC-USD", 1, 60, { price: 5n })]);
  assert.deepEqual(updates.map((u) => [u.kind, u.loss]), [["snapshot", null]]);
  assert.equal(tracker.stats.resets, 0);
});

test("heartbeats move the position and errors are refusals", () => {
  const tracker = following();
  run(tracker, [hb(7, 30)]);
  assert.equal(tracker.position, "7-30");
  const step = tracker.receive([{ type: "error", code: 4400, message: "unknown symbol 'NOPE-USD'" }]);
  assert.deepEqual(step.refusal, { code: 4400, message: "unknown symbol 'NOPE-USD'" });
});

test("protocol violations raise", () => {
  const tracker = new Tracker();
  assert.throws(() => tracker.receive([snap("quote.BTC-USD", 1, 1, { bid: 1n })]), (e) => e instanceof ProtocolError && /before the hello/.test(e.message));
  assert.throws(() => tracker.receive([hello(7, 0, 2)]), /version 2/);
  assert.throws(() => channelKind("candle.BTC-USD"), /unknown channel/);
});

test("a burst resumes from its heartbeat; its snapshots keep their own offsets", () => {
  const tracker = new Tracker();
  tracker.connected();
  const updates = run(tracker, [hello(7, 50)], [snap("quote.BTC-USD", 3, 5, { bid: 1n }), book(9, 40, [[99n, 2n]], true), hb(7, 50)]);
  assert.deepEqual(updates.map((u) => [u.kind, u.position]), [["snapshot", "7-5"], ["snapshot", "7-40"]]);
  assert.equal(tracker.position, "7-50");
  assert.deepEqual(run(tracker, [delta("quote.BTC-USD", 4, 51, { bid: 2n })]).map((u) => u.kind), ["delta"]);
});

test("a reset unit rebuilds from snapshots at their own offsets and drops the rest", () => {
  const tracker = following();
  tracker.connected();
  run(tracker, [hello(7, 100)]);
  const updates = run(tracker, [reset(7, 100, "too_old"), snap("quote.BTC-USD", 9, 20, { bid: 7n }), snap("quote.ETH-USD", 4, 90, { bid: 3n }), hb(7, 100)]);
  assert.deepEqual(updates.map((u) => [u.kind, u.topic, u.seq]),
    [["reset", "quote.BTC-USD", 9], ["reset", "quote.ETH-USD", 4], ["reset", "book.BTC-USD", 0]]);
  for (const u of updates) assert.deepEqual(u.loss, loss("7-10", "7-100", "too_old"));
  assert.equal(tracker.position, "7-100");
  assert.deepEqual(tracker.topics().sort(), ["quote.BTC-USD", "quote.ETH-USD"]);
  assert.equal(tracker.stats.resets, 1);
});

test("a re-snapshot after a gap is consistent with the burst's position", () => {
  const tracker = following();
  assert.equal(tracker.receive([delta("quote.ETH-USD", 9, 11, { bid: 5n })]).resync, true);
  tracker.connected();
  const updates = run(tracker, [hello(7, 30)], [snap("quote.BTC-USD", 8, 12, { bid: 1n }), snap("quote.ETH-USD", 9, 25, { bid: 5n }), hb(7, 30)]);
  for (const u of updates) assert.deepEqual(u.loss, loss("7-10", "7-30", "gap"));
  assert.equal(tracker.position, "7-30");
});

test("the mirror: latest-value MERGE keeps null, books in both forms, trades whole, stale refused", () => {
  const mirror = new Mirror();
  assert.deepEqual(mirror.apply(delta("quote.X-USD", 1, 1, { bid: 1n })), { applied: false, reason: "no_snapshot", heldSeq: 0 });
  mirror.apply(snap("quote.X-USD", 1, 1, { bid: "1.5", ask: "2" }));
  mirror.apply(delta("quote.X-USD", 2, 2, { bid: null }));
  assert.deepEqual(mirror.data("quote.X-USD"), { bid: null, ask: "2" });
  assert.deepEqual(mirror.apply(delta("quote.X-USD", 2, 3, {})), { applied: false, reason: "stale", heldSeq: 2 });
  assert.deepEqual(mirror.apply(delta("quote.X-USD", 4, 3, {})), { applied: false, reason: "gap", heldSeq: 2 });
  assert.deepEqual(mirror.apply(snap("quote.X-USD", 1, 3, {})), { applied: false, reason: "stale", heldSeq: 2 });
  // SSE book: decimal strings sorted by value, not as text; "0" removes a level.
  mirror.apply({ ...book(1, 1, [["9.5", "1"], ["10", "2"], ["100", "3"]], true), topic: "book.X-USD" });
  mirror.apply({ ...book(2, 2, [["10", "0"], ["11", "0.5"]], false), topic: "book.X-USD" });
  assert.deepEqual(mirror.data("book.X-USD"), { bids: [["100", "3"], ["11", "0.5"], ["9.5", "1"]], asks: [] });
  // WebSocket book beyond 2^53: BigInt keys stay exact.
  const big = 2n ** 60n;
  mirror.apply({ type: "data", snapshot: true, topic: "book.Y-USD", seq: 1, offset: 1, ts: 0, data: { bids: [], asks: [[big + 1n, 1n], [big, 2n]] } });
  mirror.apply({ type: "data", snapshot: false, topic: "book.Y-USD", seq: 2, offset: 2, ts: 0, data: { asks: [[big + 1n, 0n]] } });
  assert.deepEqual(mirror.data("book.Y-USD"), { bids: [], asks: [[big, 2n]] });
  mirror.apply(snap("trade.X-USD", 1, 1, { price: 1n, side: "buy" }));
  mirror.apply(delta("trade.X-USD", 2, 2, { price: 2n }));
  assert.deepEqual(mirror.data("trade.X-USD"), { price: 2n });
  assert.throws(() => mirror.data("trade.NONE-USD"), /not held/);
});

test("an error in a unit is reported and the rest of the unit is still applied", () => {
  // A `sub` with one pattern outside the token's entitlements: error 4403, then the
  // burst of the allowed ones, in one frame.
  const tracker = new Tracker();
  tracker.connected();
  tracker.receive([hello(7, 10)], 5);
  const refused = { type: "error", code: 4403, message: "not entitled to: trade.*" };
  const step = tracker.receive([refused, snap("quote.BTC-USD", 3, 9, { bid: 100n }), hb(7, 10)], 5);
  assert.deepEqual(step.refusal, { code: 4403, message: "not entitled to: trade.*" });
  assert.deepEqual(step.updates.map((u) => [u.kind, u.topic]), [["snapshot", "quote.BTC-USD"]]);
  assert.equal(tracker.position, "7-10");
});
