// The book checksum (docs/PROTOCOL.md, "Book checksum"), and the tracker re-snapshotting
// a book that fails it, as tests/core/test_checksum.py and tests/client/test_tracker.py
// check the Python client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { bookChecksum, checksumText, crc32 } from "../src/checksum.js";
import { Mirror, Tracker, channelKind } from "../src/tracker.js";

const TS = 1_763_761_999_997_500;
const EXAMPLE = "43250500000000:1250000000:43251000000000:300000000:43250000000000:2000000000";

test("the worked example of the protocol page", () => {
  const bids = [[43250500000000n, 1250000000], [43250000000000n, 2000000000]];
  const asks = [[43251000000000n, 300000000]];
  assert.equal(checksumText(bids, asks), EXAMPLE);
  assert.equal(bookChecksum(bids, asks), 49495085);
  // SSE's decimal strings give the same text.
  assert.equal(checksumText([["43250.5", "1.25"], ["43250", "2"]], [["43251", "0.3"]]), EXAMPLE);
  assert.equal(crc32(""), 0);
  assert.equal(crc32("123456789"), 0xcbf43926); // the CRC-32 check value
});

test("only the top 10 levels count, sides interleaved best first", () => {
  const bids = Array.from({ length: 15 }, (_, i) => [BigInt(100 - i), BigInt(i + 1)]);
  const asks = [[200n, 1n], [201n, 2n]];
  const text = checksumText(bids, asks);
  assert.ok(text.startsWith("100:1:200:1:99:2:201:2:98:3:97:4"));
  assert.equal(text.split(":").length, 2 * (10 + 2));
});

const hello = (epoch = 7, offset = 0) => ({ type: "hello", version: 1, epoch, offset, heartbeatS: 15, compression: null, zstdDictionary: null });
const book = (snapshot, seq, offset, bids, checksum) =>
  ({ type: "data", snapshot, topic: "book.BTC-USD", seq, offset, ts: TS, data: checksum === undefined ? { bids, asks: [] } : { bids, asks: [], checksum } });
const sum = (bids) => bookChecksum(bids, []);

test("the mirror refuses a book that fails its checksum and drops it; a snapshot mismatch is kept", () => {
  const mirror = new Mirror();
  assert.deepEqual(mirror.apply(book(true, 1, 1, [[99n, 2n]], sum([[99n, 2n]]))), { applied: true, seq: 1 });
  assert.deepEqual(mirror.apply(book(false, 2, 2, [[98n, 1n]], sum([[99n, 2n], [98n, 1n]]))), { applied: true, seq: 2 });
  mirror.held.get("book.BTC-USD").bids.set(50n, [50n, 7n]); // diverge on purpose
  assert.deepEqual(mirror.apply(book(false, 3, 3, [[97n, 1n]], sum([[99n, 2n], [98n, 1n], [97n, 1n]]))),
    { applied: false, reason: "checksum", heldSeq: 0 });
  assert.equal(mirror.has("book.BTC-USD"), false);
  mirror.apply(book(true, 4, 4, [[1n, 1n]], 12345));
  assert.equal(mirror.snapshotChecksumMismatches, 1);
  assert.equal(mirror.has("book.BTC-USD"), true);
});

test("a tracker whose book diverged re-snapshots and reports a reset with reason checksum", () => {
  const tracker = new Tracker();
  tracker.connected();
  tracker.receive([hello(7, 10)]);
  tracker.receive([book(true, 5, 10, [[99n, 2n]])]);
  tracker.mirror.held.get("book.BTC-USD").bids.set(97n, [97n, 5n]);
  const step = tracker.receive([book(false, 6, 11, [[98n, 1n]], sum([[99n, 2n], [98n, 1n]]))]);
  assert.equal(step.resync, true);
  assert.equal(tracker.stats.checksumMismatches, 1);
  assert.equal(tracker.stats.gaps, 0);
  assert.equal(tracker.resnapshotting(), "checksum");
  assert.equal(tracker.resumePosition(), null);
  tracker.connected();
  tracker.receive([hello(7, 12)]);
  const { updates } = tracker.receive([book(true, 6, 11, [[99n, 2n], [98n, 1n]], sum([[99n, 2n], [98n, 1n]])),
    { type: "heartbeat", epoch: 7, offset: 12, ts: TS }]);
  assert.deepEqual(updates.map((u) => [u.kind, u.loss]), [["reset", { after: "7-10", until: "7-12", reason: "checksum" }]]);
  assert.deepEqual(tracker.state("book.BTC-USD"), { bids: [[99n, 2n], [98n, 1n]], asks: [] });
  assert.equal(tracker.resnapshotting(), null);
});

test("venue topics are of their kind's channel; other venue channels are unknown", () => {
  assert.equal(channelKind("book@cbx.BTC-USD"), "book");
  assert.equal(channelKind("quote@itx.ETH-USD"), "latest");
  assert.throws(() => channelKind("trade@cbx.BTC-USD"), /unknown channel/);
  assert.throws(() => channelKind("book@CBX.BTC-USD"), /unknown channel/);
});
