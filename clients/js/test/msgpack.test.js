// The msgpack codec, the wire decoding, exact nanos, the SSE parser and the backoff.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, decodeAll, encode, encodeSub, encodeUnsub, MsgpackError, MAX_DEPTH } from "../src/msgpack.js";
import { formatNanos, parseNanos, jsonData, bigData } from "../src/nanos.js";
import { decodeFrame, fromArray, SseDecoder, EventStreamParser, ProtocolError, parsePosition } from "../src/wire.js";
import { ReconnectPolicy } from "../src/backoff.js";
import { dictionaryId, dictionaryUrl } from "../src/zstd.js";

const hex = (text) => Uint8Array.from(text.replace(/\s+/g, "").match(/../g).map((b) => parseInt(b, 16)));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");

// docs/PROTOCOL.md's example bytes (from the server's own encoder).
const SNAPSHOT = hex(`96a173ad71756f74652e4254432d55534429cd04b0cf00064421e42e758084a3626964cf000027560ab05900
a86269645f73697a65ce4a817c80a361736bcf00002756287dbe00a861736b5f73697a65ce11e1a300`);
const DELTA = hex("96a164ad71756f74652e4254432d5553442acd04d2cf00064421e42e779f81a86269645f73697a65ce77359400");

test("the protocol's example frames decode, and re-encode to the same bytes", () => {
  const [message] = decodeAll(SNAPSHOT);
  assert.deepEqual(message, ["s", "quote.BTC-USD", 41, 1200, 1763762213123456,
    { bid: 43250500000000, bid_size: 1250000000, ask: 43251000000000, ask_size: 300000000 }]);
  assert.equal(toHex(encode(message)), toHex(SNAPSHOT));
  // Two messages in one frame: decoded one after another.
  const both = new Uint8Array([...SNAPSHOT, ...DELTA]);
  assert.equal(decodeAll(both).length, 2);
  assert.throws(() => decode(both), /bytes after the value/);
});

test("integers beyond 2^53 come as BigInt, exact; all others as Number", () => {
  const values = [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -Number.MAX_SAFE_INTEGER];
  for (const n of values) assert.equal(decode(encode(n)), n, `${n}`);
  const big = [2n ** 53n, 140_000_000_000_000_001n, 2n ** 63n - 1n, 2n ** 64n - 1n, -(2n ** 53n), -(2n ** 63n)];
  for (const n of big) assert.equal(decode(encode(n)), n, `${n}`);
  // DOGE's day volume in nanos, as the server packs it (uint64), exact to the last nano.
  assert.equal(decode(hex("cf01f161421c8e0001")), 140_000_000_000_000_001n);
  assert.equal(decode(hex("d3fffffffffffffffe")), -2); // int64 within range: a Number
  assert.throws(() => encode(2n ** 64n), /beyond uint64/);
  assert.throws(() => encode(-(2n ** 63n) - 1n), /beyond int64/);
});

test("every other type the server may send", () => {
  const value = [null, true, false, 1.5, -0.25, "é".repeat(40), "x".repeat(300), "y".repeat(70000),
    new Uint8Array([1, 2, 3]), new Uint8Array(300), new Uint8Array(70000), Array(20).fill(1), Array(70000).fill(0),
    Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
    Object.fromEntries(Array.from({ length: 70000 }, (_, i) => [`k${i}`, i]))];
  assert.deepEqual(decode(encode(value)), value);
  assert.equal(decode(hex("ca3fc00000")), 1.5); // float32
  const proto = decode(hex("81a95f5f70726f746f5f5f01")); // {"__proto__": 1}
  assert.equal(Object.getPrototypeOf(proto), Object.prototype);
  assert.deepEqual(Object.keys(proto), ["__proto__"]);
});

test("commands encode as the protocol says", () => {
  assert.deepEqual(decode(encodeSub(["quote.*", "book.BTC-USD"], "1763762000-1200")), ["sub", ["quote.*", "book.BTC-USD"], "1763762000-1200"]);
  assert.deepEqual(decode(encodeSub(["quote.*"], null)), ["sub", ["quote.*"], null]);
  assert.deepEqual(decode(encodeUnsub(["quote.*"])), ["unsub", ["quote.*"]]);
  assert.throws(() => encode(() => 1), /cannot encode a function/);
});

test("malformed input is refused with a clear error, never read past its end", () => {
  const bad = {
    "truncated uint32": hex("ce0000"),
    "truncated string": hex("a5616263"),
    "truncated array": hex("93 01 02"),
    "array longer than the input": hex("ddffffffff"),
    "map longer than the input": hex("dfffffffff"),
    "never-used type 0xc1": hex("c1"),
    "ext type": hex("d40100"),
    "invalid UTF-8": hex("a2c328"),
    "a non-string map key": hex("810102"),
    "nothing": new Uint8Array(0),
  };
  for (const [what, bytes] of Object.entries(bad)) {
    assert.throws(() => decode(bytes), MsgpackError, what);
  }
  const deep = new Uint8Array(MAX_DEPTH + 2).fill(0x91);
  assert.throws(() => decode(deep), /nested deeper/);
  assert.throws(() => decode("not bytes"), /Uint8Array/);
});

test("frames decode into messages; prices and sizes become BigInt; trailing elements ignored", () => {
  const [snapshot] = decodeFrame(SNAPSHOT);
  assert.deepEqual(snapshot, { type: "data", snapshot: true, topic: "quote.BTC-USD", seq: 41, offset: 1200, ts: 1763762213123456,
    data: { bid: 43250500000000n, bid_size: 1250000000n, ask: 43251000000000n, ask_size: 300000000n } });
  assert.deepEqual(jsonData(snapshot.data), { bid: "43250.5", bid_size: "1.25", ask: "43251", ask_size: "0.3" });
  const hello = fromArray(["h", 1, 1763762000, 1237, 15.0, null, 32769, "future"]);
  assert.deepEqual(hello, { type: "hello", version: 1, epoch: 1763762000, offset: 1237, heartbeatS: 15, compression: null, zstdDictionary: 32769 });
  assert.equal(fromArray(["h", 1, 1, 1, 15, "zstd"]).zstdDictionary, null);
  assert.deepEqual(fromArray(["hb", 1, 2, 3]), { type: "heartbeat", epoch: 1, offset: 2, ts: 3 });
  assert.deepEqual(fromArray(["r", 1, 2, "too_old"]), { type: "reset", epoch: 1, offset: 2, reason: "too_old" });
  assert.deepEqual(fromArray(["e", 4400, "bad"]), { type: "error", code: 4400, message: "bad" });
  assert.deepEqual(fromArray(["d", "book.X-USD", 2, 3, 4, { bids: [[5, 0]], asks: [] }]).data, { bids: [[5n, 0n]], asks: [] });
  for (const bad of [[], [1], ["zz"], ["s", "t", 1, 2], ["s", "t", "1", 2, 3, {}], ["s", "t", 1, 2, 3, []],
    ["s", "t", 1, 2, 3, { bid: 1.5 }], ["s", "t", 1, 2, 3, { bids: [1] }], ["h", 1, 2, 3, "x", null],
    ["h", 1, 2, 3, 15, "gzip"], ["h", 1, 2, 3, 15, null, "x"], ["hb", 1, 2], ["r", 1, 2, 3], ["e", "x", "y"], ["s", "t", 2n ** 60n, 1, 1, {}]]) {
    assert.throws(() => fromArray(bad), ProtocolError, JSON.stringify(bad, (_, v) => (typeof v === "bigint" ? String(v) : v)));
  }
  assert.throws(() => decodeFrame(hex("ce00")), /invalid msgpack in frame/);
  assert.throws(() => decodeFrame(encode("hello")), /array starting with its type/);
});

test("nanos format exactly as the server's JSON, and parse back", () => {
  const cases = [[43250500000000n, "43250.5"], [300000000n, "0.3"], [2000000000n, "2"], [-1000000n, "-0.001"],
    [0n, "0"], [1n, "0.000000001"], [2n ** 63n - 1n, "9223372036.854775807"], [140_000_000_000_000_001n, "140000000.000000001"]];
  for (const [nanos, text] of cases) {
    assert.equal(formatNanos(nanos), text);
    assert.equal(parseNanos(text), nanos);
  }
  assert.equal(formatNanos(20250000000), "20.25");
  assert.throws(() => formatNanos(1.5), /integer/);
  for (const bad of ["", "1.", ".5", "1e9", "0.0000000001", "abc", "1,5", null]) assert.throws(() => parseNanos(bad), RangeError, String(bad));
  assert.deepEqual(bigData({ bid: 5, bid_size: null, side: "buy", bids: [[1, 2]] }), { bid: 5n, bid_size: null, side: "buy", bids: [[1n, 2n]] });
  assert.deepEqual(jsonData({ bid: null, ts: 5, venue_ts: 6, bids: [[1000000000n, 0n]] }), { bid: null, ts: 5, venue_ts: 6, bids: [["1", "0"]] });
});

test("SSE: events split at any byte, grouped into units by their id", () => {
  const stream = "retry: 1000\n\nevent: hello\ndata: {\"version\":1,\"epoch\":7,\"offset\":9,\"heartbeat_s\":15,\"zstd_dictionary\":32769}\n\n" +
    ": comment\r\nevent: reset\r\ndata: {\"epoch\":7,\"offset\":20,\"reason\":\"too_old\"}\r\n\r\n" +
    "event: snapshot\rdata: {\"topic\":\"quote.A-USD\",\"seq\":3,\"offset\":5,\"ts\":1,\"data\":{\"bid\":\"1.5\"}}\r\r" +
    "event: heartbeat\nid: 7-20\ndata: {\"epoch\":7,\"offset\":20,\"ts\":2}\n\n" +
    "event: delta\nid: 7-21\ndata: {\"topic\":\"quote.A-USD\",\"seq\":4,\"offset\":21,\"ts\":3,\"data\":{\"bid\":null}}\n\n" +
    "event: future\ndata: {}\n\nevent: end\ndata: {\"reason\":\"slow_outbox\",\"last\":\"7-21\"}\n\n";
  for (const size of [1, 2, 7, stream.length]) {
    const decoder = new SseDecoder();
    const out = [];
    for (let i = 0; i < stream.length; i += size) out.push(...decoder.feed(stream.slice(i, i + size)));
    assert.deepEqual(out.map((u) => (Array.isArray(u) ? u.map((m) => m.type) : u.type)),
      [["hello"], ["reset", "data", "heartbeat"], ["data"], "end"], `chunks of ${size}`);
    assert.equal(out[0][0].heartbeatS, 15);
    assert.equal(out[0][0].zstdDictionary, 32769);
    assert.deepEqual(out[1][1].data, { bid: "1.5" });
    assert.deepEqual(out[3], { type: "end", reason: "slow_outbox", last: "7-21" });
  }
  assert.throws(() => new SseDecoder().feed("event: delta\ndata: {nope\n\n"), /bad "delta" event/);
  assert.throws(() => new SseDecoder().feed("event: heartbeat\ndata: {\"epoch\":1}\n\n"), /offset is not an integer/);
  assert.throws(() => new SseDecoder().feed("event: snapshot\ndata: [1]\n\n"), /not a JSON object/);
  assert.throws(() => new EventStreamParser(10).feed("data: 0123456789"), /longer than 10/);
  const burst = new SseDecoder(100);
  const snapshot = "event: snapshot\ndata: {\"topic\":\"quote.A-USD\",\"seq\":3,\"offset\":5,\"ts\":1,\"data\":{}}\n\n";
  assert.throws(() => { for (let i = 0; i < 5; i++) burst.feed(snapshot); }, /without an id/);
});

test("positions parse strictly", () => {
  assert.deepEqual(parsePosition("1763762000-1234"), { epoch: 1763762000, offset: 1234 });
  assert.deepEqual(parsePosition("1796303561892719-5"), { epoch: 1796303561892719, offset: 5 });
  for (const bad of ["", "1", "1-", "-1", "a-1", "1-2-3", "1-99999999999999999", "9999999999999999-1"]) assert.throws(() => parsePosition(bad), ProtocolError);
});

test("backoff: full jitter under a doubling cap; a first gap is at once; URLs rotate", () => {
  const draws = [];
  const policy = new ReconnectPolicy({ minMs: 100, maxMs: 400, endpoints: 2, random: () => { draws.push(1); return 1; } });
  const failed = { kind: "dropped", detail: "", healthy: false, lifetimeMs: 0 };
  assert.deepEqual([1, 2, 3, 4].map(() => policy.next(failed)), [100, 200, 400, 400]);
  assert.equal(policy.failures, 4);
  assert.equal(policy.endpoint, 0);
  const worked = { kind: "dropped", detail: "", healthy: true, lifetimeMs: 1000 };
  assert.equal(policy.next(worked), 100); // the ceiling starts over
  assert.equal(policy.failures, 0);
  assert.equal(policy.next({ ...failed, kind: "gap" }), 0);
  assert.equal(policy.next({ ...worked, kind: "slow_consumer" }), 0);
  const zero = new ReconnectPolicy({ minMs: 100, maxMs: 400, endpoints: 1, random: () => 0 });
  assert.equal(zero.next(failed), 0); // full jitter reaches down to 0
  assert.throws(() => new ReconnectPolicy({ minMs: 0, maxMs: 1, endpoints: 1, random: Math.random }), /0 < min/);
});

test("zstd frame headers name their dictionary", () => {
  // magic, descriptor (single segment, 2-byte dictionary id), id 32769, content size.
  assert.equal(dictionaryId(hex("28b52ffd 22 0180 05")), 32769);
  assert.equal(dictionaryId(hex("28b52ffd 03 58 01800000")), 32769); // window byte, 4-byte id
  assert.equal(dictionaryId(hex("28b52ffd 21 07 05 00")), 7);
  assert.equal(dictionaryId(hex("28b52ffd 20 05 0000")), 0);
  assert.throws(() => dictionaryId(hex("00112233445566")), /bad magic/);
  assert.throws(() => dictionaryId(hex("28b52ffd 03 58 01")), /shorter than its header/);
  assert.equal(dictionaryUrl("wss://h.example:9/v1/ws", 32769), "https://h.example:9/v1/zstd-dictionary/32769");
  assert.equal(dictionaryUrl("ws://127.0.0.1:8080/v1/ws", 5), "http://127.0.0.1:8080/v1/zstd-dictionary/5");
});
