// openFeed against scripted transports (a fake WebSocket class and a fake fetch): every
// way a connection ends, resuming, backpressure, zstd plumbing, and config errors. No
// timing assertions: each test waits for events, bounded by node's test timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { openFeed, FeedError, endingFromClose, endingFromStatus } from "../src/feed.js";
import { encode, decode } from "../src/msgpack.js";

const TIMEOUT = { timeout: 10000 };
const TOPICS = ["quote.*"];

/** A WebSocket the test scripts: `script(ws, n)` runs for the n-th connection. */
function fakeWebSocket(script) {
  const sockets = [];
  class FakeWebSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = [];
      this.closed = false;
      this.protocol = "";
      this.n = sockets.length;
      sockets.push(this);
      setTimeout(() => script(this, this.n), 0);
    }
    send(bytes) { this.sent.push(decode(bytes)); }
    close() {
      if (this.closed) return;
      this.closed = true;
      setTimeout(() => this.onclose?.({ code: 1005, reason: "" }), 0);
    }
    // -- the server's side --
    accept(protocol = "ticker.v1") { this.protocol = protocol; this.onopen?.(); }
    frame(...messages) { if (!this.closed) this.onmessage?.({ data: bytes(messages).buffer }); }
    raw(data) { if (!this.closed) this.onmessage?.({ data }); }
    serverClose(code, reason = "") { if (!this.closed) { this.closed = true; this.onclose?.({ code, reason }); } }
  }
  return { FakeWebSocket, sockets };
}

function bytes(messages) {
  const parts = messages.map((m) => encode(m));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

const hello = (offset = 10) => ["h", 1, 7, offset, 15.0, null, 32769];
const snap = (seq, offset, bid) => ["s", "quote.BTC-USD", seq, offset, 1, { bid }];
const delta = (seq, offset, bid) => ["d", "quote.BTC-USD", seq, offset, 1, { bid }];
const hb = (offset) => ["hb", 7, offset, 1];

async function take(feed, n) {
  const out = [];
  for await (const u of feed) { out.push(u); if (out.length === n) break; }
  return out;
}

/** Resolves when `predicate()` holds, checking on every turn of the event loop. */
async function until(predicate) {
  while (!predicate()) await new Promise((r) => setTimeout(r, 1));
}

test("WebSocket: subscribes, follows, resumes from the position after an eviction, stops on 4400", TIMEOUT, async () => {
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    if (n === 0) {
      ws.frame(hello(10));
      ws.frame(snap(3, 5, 100), hb(20));
      ws.frame(delta(4, 21, 101));
      ws.serverClose(4008, "slow consumer (slow_outbox); last=7-21");
    } else {
      ws.frame(hello(30));
      ws.frame(delta(5, 22, 102));
      ws.serverClose(4400, "unknown symbol 'NOPE-USD'");
    }
  });
  const events = [];
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, reconnectMinMs: 1, reconnectMaxMs: 2, onEvent: (e) => events.push(e) });
  const seen = [];
  await assert.rejects(async () => { for await (const u of feed) seen.push(u); },
    (err) => err instanceof FeedError && err.kind === "rejected" && err.code === 4400);
  assert.deepEqual(seen.map((u) => [u.kind, u.seq, u.position]), [["snapshot", 3, "7-5"], ["delta", 4, "7-21"], ["delta", 5, "7-22"]]);
  assert.equal(sockets[0].url, "ws://127.0.0.1:1/v1/ws");
  assert.deepEqual(sockets[0].protocols, ["ticker.v1"]);
  assert.deepEqual(sockets[0].sent, [["sub", ["quote.*"], null]]);
  assert.deepEqual(sockets[1].sent, [["sub", ["quote.*"], "7-21"]]);
  assert.equal(feed.stats.endings.slow_consumer, 1);
  assert.deepEqual(events.filter((e) => e.type === "ended").map((e) => e.kind), ["slow_consumer"]);
  assert.equal(feed.state("quote.BTC-USD").bid, 102n);
});

test("WebSocket close codes and HTTP statuses map to endings", () => {
  assert.equal(endingFromClose(4008, "x").kind, "slow_consumer");
  assert.equal(endingFromClose(4001, "x").kind, "shutdown");
  assert.equal(endingFromClose(4429, "x").kind, "limit");
  assert.equal(endingFromClose(1006, "").kind, "dropped");
  assert.equal(endingFromClose(1000, "").kind, "dropped");
  for (const code of [4400, 1002, 1009]) assert.ok(endingFromClose(code, "x").error instanceof FeedError, `${code}`);
  assert.equal(endingFromStatus(429, "too many").kind, "limit");
  assert.equal(endingFromStatus(503, "").kind, "limit");
  assert.equal(endingFromStatus(400, "bad topic").error.code, 400);
  assert.equal(endingFromStatus(502, "").kind, "connect_failed");
});

test("WebSocket: shutdown, limit and dropped connections reconnect; 1002 is fatal", TIMEOUT, async () => {
  const closes = [[4001, "shutting down"], [4429, "limit"], [1006, ""], [1002, "bad framing"]];
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    ws.frame(hello(10));
    ws.frame(snap(3 + n, 10 + n, 100 + n), hb(10 + n));
    ws.serverClose(...closes[n]);
  });
  const feed = openFeed("ws://127.0.0.1:1/v1/ws", TOPICS, { WebSocket: FakeWebSocket, reconnectMinMs: 1, reconnectMaxMs: 2 });
  await assert.rejects(take(feed, 100), (err) => err.kind === "protocol" && /1002/.test(err.message));
  assert.equal(sockets.length, 4);
  assert.deepEqual(sockets.map((s) => s.sent[0][2]), [null, "7-10", "7-11", "7-12"]);
  assert.deepEqual(feed.stats.endings, { shutdown: 1, limit: 1, dropped: 1, protocol: 1 });
});

test("WebSocket: an error 4429 on a resume backs off and resumes; bytes that are not msgpack are fatal", TIMEOUT, async () => {
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    ws.frame(hello(10));
    if (n === 0) { ws.frame(snap(3, 10, 1), hb(10)); ws.serverClose(1006); }
    else if (n === 1) ws.frame(["e", 4429, "too many resumes from this address; retry in 1 s"]);
    else ws.raw(new Uint8Array([0xc1]).buffer);
  });
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, reconnectMinMs: 1, reconnectMaxMs: 2 });
  await assert.rejects(take(feed, 100), (err) => err.kind === "protocol" && /invalid msgpack/.test(err.message));
  assert.equal(feed.stats.endings.limit, 1);
  assert.equal(sockets[2].sent[0][2], "7-10");
});

test("WebSocket: a text frame or a hello of another version is fatal", TIMEOUT, async () => {
  for (const send of [(ws) => ws.raw("hello"), (ws) => ws.frame(["h", 2, 7, 1, 15.0, null])]) {
    const { FakeWebSocket } = fakeWebSocket((ws) => { ws.accept(); send(ws); });
    const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket });
    await assert.rejects(take(feed, 1), (err) => err.kind === "protocol");
  }
});

test("WebSocket: a gap reconnects at once from before it, and replayed messages apply once", TIMEOUT, async () => {
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    ws.frame(hello(10));
    if (n === 0) {
      ws.frame(snap(3, 10, 1), hb(10));
      ws.frame(delta(4, 11, 2));
      ws.frame(delta(6, 13, 4)); // seq 5 (offset 12) lost
    } else {
      ws.frame(delta(5, 12, 3));
      ws.frame(delta(6, 13, 4));
    }
  });
  const events = [];
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, onEvent: (e) => events.push(e) });
  const updates = await take(feed, 4);
  feed.close();
  assert.deepEqual(updates.map((u) => u.seq), [3, 4, 5, 6]);
  assert.equal(sockets[1].sent[0][2], "7-11");
  assert.deepEqual(events.filter((e) => e.type === "ended").map((e) => [e.kind, e.delayMs]), [["gap", 0]]);
  assert.equal(feed.tracker.stats.gaps, 1);
});

test("a silent connection is a stall: the feed reconnects and resumes", TIMEOUT, async () => {
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    ws.frame(hello(10));
    if (n === 0) ws.frame(snap(3, 10, 1), hb(10)); // then nothing
    else ws.frame(delta(4, 11, 2));
  });
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, stallTimeoutMs: 20, reconnectMinMs: 1, reconnectMaxMs: 2 });
  const updates = await take(feed, 2);
  feed.close();
  assert.deepEqual(updates.map((u) => u.seq), [3, 4]);
  assert.equal(feed.stats.endings.stalled, 1);
  assert.equal(sockets[1].sent[0][2], "7-10");
});

test("a caller that stops reading: frames wait in a bounded buffer, then the feed drops and resumes, losing nothing", TIMEOUT, async () => {
  const later = (ws, seqs) => seqs.forEach((seq, i) => setTimeout(() => ws.frame(delta(seq, 9 + seq, seq)), i));
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept();
    ws.frame(hello(10));
    if (n === 0) {
      ws.frame(snap(1, 10, 0n), hb(10));
      later(ws, Array.from({ length: 39 }, (_, i) => i + 2));
    } else {
      const next = Number(ws.sent[0][2].split("-")[1]) - 8;
      later(ws, Array.from({ length: 41 - next }, (_, i) => i + next));
    }
  });
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, queueSize: 2, maxBufferedBytes: 300, reconnectMinMs: 1, reconnectMaxMs: 2 });
  await until(() => sockets.length === 1 && sockets[0].closed); // dropped while nobody reads
  const updates = await take(feed, 40);
  feed.close();
  assert.deepEqual(updates.map((u) => u.seq), Array.from({ length: 40 }, (_, i) => i + 1));
  assert.equal(sockets.length, 2);
  assert.equal(feed.stats.endings.slow_consumer, 1);
  assert.equal(feed.tracker.stats.duplicates, 0);
});

test("several URLs: every reconnect moves on; too many failed attempts end the feed", TIMEOUT, async () => {
  const { FakeWebSocket, sockets } = fakeWebSocket((ws) => ws.serverClose(1006));
  const feed = openFeed(["ws://a.invalid:1", "ws://b.invalid:2"], TOPICS, { WebSocket: FakeWebSocket, maxAttempts: 3, reconnectMinMs: 1, reconnectMaxMs: 2 });
  await assert.rejects(take(feed, 1), (err) => err.kind === "unavailable" && /3 attempts/.test(err.message));
  assert.deepEqual(sockets.map((s) => new URL(s.url).host), ["a.invalid:1", "b.invalid:2", "a.invalid:1"]);
  assert.equal(feed.stats.endings.connect_failed, 3);
});

test("zstd: offered only with a codec; the dictionary named in the frame is fetched once, over http(s)", TIMEOUT, async () => {
  const DICT = new Uint8Array([1, 2, 3]);
  const header = [0x28, 0xb5, 0x2f, 0xfd, 0x22, 0x01, 0x80, 0x00]; // dictionary id 32769
  const squash = (messages) => new Uint8Array([...header, ...bytes(messages)]).buffer;
  const fetched = [];
  const fetch = async (url) => { fetched.push(url); return new Response(DICT); };
  const codec = { decompress(frame, dictionary) { assert.deepEqual(dictionary, DICT); return frame.slice(header.length); } };
  const { FakeWebSocket, sockets } = fakeWebSocket((ws, n) => {
    ws.accept("ticker.v1.zstd");
    ws.raw(squash([hello(10)]));
    ws.raw(squash([snap(3 + n, 10 + n, n), hb(10 + n)]));
    if (n === 0) ws.serverClose(1006);
  });
  const feed = openFeed("wss://h.example:9", TOPICS, { WebSocket: FakeWebSocket, fetch, zstd: codec, reconnectMinMs: 1, reconnectMaxMs: 2 });
  const updates = await take(feed, 2);
  feed.close();
  assert.deepEqual(updates.map((u) => u.seq), [3, 4]);
  assert.deepEqual(sockets[0].protocols, ["ticker.v1.zstd", "ticker.v1"]);
  assert.deepEqual(sockets[0].sent, [["sub", ["quote.*"], null]]); // commands stay plain
  assert.deepEqual(fetched, ["https://h.example:9/v1/zstd-dictionary/32769"]);

  // A dictionary the server does not have, or a codec that fails: fatal, said clearly.
  for (const [fetchImpl, zstd, pattern] of [
    [async () => new Response("{}", { status: 404 }), codec, /HTTP 404/],
    [fetch, { decompress() { throw new Error("corrupted block"); } }, /zstd: corrupted block/],
  ]) {
    const { FakeWebSocket: Fake } = fakeWebSocket((ws) => { ws.accept("ticker.v1.zstd"); ws.raw(squash([hello(10)])); });
    const bad = openFeed("ws://h.example:9", TOPICS, { WebSocket: Fake, fetch: fetchImpl, zstd });
    await assert.rejects(take(bad, 1), (err) => err.kind === "protocol" && pattern.test(err.message));
  }
});

/** A fetch that answers SSE requests from a script: `respond(url, n, init)` -> Response. */
function fakeFetch(respond) {
  const requests = [];
  const fetch = async (url, init) => {
    requests.push({ url: new URL(url), init });
    return respond(new URL(url), requests.length - 1, init);
  };
  return { fetch, requests };
}

function sseResponse(chunks, { status = 200, end = true } = {}) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      if (end) controller.close();
    },
  });
  return new Response(body, { status, headers: { "content-type": "text/event-stream" } });
}

const sseHello = 'event: hello\ndata: {"version":1,"epoch":7,"offset":10,"heartbeat_s":15}\n\n';
const sseSnap = (seq, offset, bid) => `event: snapshot\ndata: {"topic":"quote.BTC-USD","seq":${seq},"offset":${offset},"ts":1,"data":{"bid":"${bid}"}}\n\n`;
const sseDelta = (seq, offset, bid) => `event: delta\nid: 7-${offset}\ndata: {"topic":"quote.BTC-USD","seq":${seq},"offset":${offset},"ts":1,"data":{"bid":"${bid}"}}\n\n`;
const sseHb = (offset) => `event: heartbeat\nid: 7-${offset}\ndata: {"epoch":7,"offset":${offset},"ts":1}\n\n`;

test("SSE: resumes by last_event_id after an end event, a 429 and a dropped body; headers pass through; 400 is fatal", TIMEOUT, async () => {
  const { fetch, requests } = fakeFetch((url, n) => {
    if (n === 0) return sseResponse([sseHello, sseSnap(3, 5, "1.5") + sseHb(20), sseDelta(4, 21, "2"), 'event: end\ndata: {"reason":"slow_outbox","last":"7-21"}\n\n']);
    if (n === 1) return new Response("too many resumes from this address; retry in 1 s", { status: 429 });
    if (n === 2) return sseResponse([sseHello, sseDelta(5, 22, "3")]); // the body just ends
    return new Response("unknown symbol 'NOPE-USD'", { status: 400 });
  });
  const feed = openFeed("http://127.0.0.1:1", ["quote.*", "trade.BTC-USD"], { fetch, headers: { Authorization: "Bearer t" }, maxRate: 5, reconnectMinMs: 1, reconnectMaxMs: 2 });
  const seen = [];
  await assert.rejects(async () => { for await (const u of feed) seen.push(u); }, (err) => err.kind === "rejected" && err.code === 400);
  assert.deepEqual(seen.map((u) => [u.kind, u.seq, u.state.bid]), [["snapshot", 3, "1.5"], ["delta", 4, "2"], ["delta", 5, "3"]]);
  assert.equal(requests[0].url.pathname, "/v1/sse");
  assert.equal(requests[0].url.searchParams.get("topics"), "quote.*,trade.BTC-USD");
  assert.equal(requests[0].url.searchParams.get("max_rate"), "5");
  assert.equal(requests[0].url.searchParams.get("last_event_id"), null);
  assert.deepEqual(requests.slice(1).map((r) => r.url.searchParams.get("last_event_id")), ["7-21", "7-21", "7-22"]);
  assert.equal(requests[0].init.headers.Authorization, "Bearer t");
  assert.deepEqual(feed.stats.endings, { slow_consumer: 1, limit: 1, dropped: 1, rejected: 1 });
});

test("SSE: a malformed event is fatal; a failed fetch reconnects", TIMEOUT, async () => {
  const { fetch } = fakeFetch((url, n) => {
    if (n === 0) throw new TypeError("fetch failed");
    return sseResponse([sseHello, "event: delta\nid: 7-1\ndata: {nope\n\n"]);
  });
  const feed = openFeed("https://127.0.0.1:1/v1/sse", TOPICS, { fetch, reconnectMinMs: 1, reconnectMaxMs: 2 });
  await assert.rejects(take(feed, 1), (err) => err.kind === "protocol" && /bad "delta" event/.test(err.message));
  assert.equal(feed.stats.endings.connect_failed, 1);
});

test("a feed started from a /v1/snapshot document resumes from its position", TIMEOUT, async () => {
  const { fetch, requests } = fakeFetch(() => sseResponse([sseHello, sseDelta(4, 21, "2")], { end: false }));
  const doc = { position: "7-20", snapshots: [{ topic: "quote.BTC-USD", seq: 3, offset: 5, ts: 1, data: { bid: "1.5", ask: "9" } }] };
  const feed = openFeed("http://127.0.0.1:1", TOPICS, { fetch, snapshot: doc });
  const updates = await take(feed, 2);
  feed.close();
  assert.deepEqual(updates.map((u) => [u.kind, u.seq]), [["snapshot", 3], ["delta", 4]]);
  assert.deepEqual(updates[1].state, { bid: "2", ask: "9" });
  assert.equal(requests[0].url.searchParams.get("last_event_id"), "7-20");
  // The same document on a WebSocket feed holds BigInt nanos.
  const { FakeWebSocket } = fakeWebSocket(() => {});
  const ws = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket, snapshot: doc });
  assert.deepEqual(ws.state("quote.BTC-USD"), { bid: 1500000000n, ask: 9000000000n });
  ws.close();
});

test("close() ends the iteration, also while waiting", TIMEOUT, async () => {
  const { FakeWebSocket } = fakeWebSocket((ws) => { ws.accept(); ws.frame(hello(10)); });
  const feed = openFeed("ws://127.0.0.1:1", TOPICS, { WebSocket: FakeWebSocket });
  const pending = feed.next();
  feed.close();
  assert.deepEqual(await pending, { done: true, value: undefined });
  assert.deepEqual(await feed.next(), { done: true, value: undefined });
});

test("bad URLs, topics and options are refused at once", () => {
  const { FakeWebSocket } = fakeWebSocket(() => {});
  const o = { WebSocket: FakeWebSocket };
  for (const [urls, topics, options, pattern] of [
    ["ftp://x", TOPICS, o, /scheme/],
    ["not a url", TOPICS, o, /bad URL/],
    ["ws://x/v1/ws?a=1", TOPICS, o, /no query/],
    [["ws://x", "http://y"], TOPICS, o, /one transport/],
    [[], TOPICS, o, /at least one URL/],
    ["ws://x", [], o, /at least one topic/],
    ["ws://x", ["quote.btc-usd"], o, /bad topic/],
    ["ws://x", TOPICS, { WebSocket: 42 }, /no WebSocket/],
    ["http://x", TOPICS, { fetch: 42 }, /no fetch/],
    ["ws://x", TOPICS, { ...o, queueSize: 0 }, /queueSize/],
    ["ws://x", TOPICS, { ...o, reconnectMinMs: 10, reconnectMaxMs: 1 }, /0 < min <= max/],
    ["ws://x", TOPICS, { ...o, position: "7" }, /bad position/],
  ]) {
    assert.throws(() => openFeed(urls, topics, options), pattern, JSON.stringify(urls));
  }
});

test("entitlementRefusal names the refused patterns of a 4403, and nothing else", async () => {
  const { entitlementRefusal } = await import("../src/feed.js");
  assert.deepEqual(entitlementRefusal(4403, "not entitled to: trade.*, book.ETH-USD"), ["trade.*", "book.ETH-USD"]);
  assert.deepEqual(entitlementRefusal(4403, "no longer entitled to: quote.*"), ["quote.*"]);
  assert.equal(entitlementRefusal(4403, "token revoked; last=7-3"), null);
  assert.equal(entitlementRefusal(4400, "not entitled to: trade.*"), null);
});
