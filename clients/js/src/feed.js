/* `openFeed`: a live, self-healing view of some topics, as an async iterator of updates.
 *
 * One loop connects (WebSocket: msgpack, optionally zstd; or SSE read with fetch),
 * feeds every unit to the Tracker, queues its updates for the caller, and when the
 * connection ends (eviction, shutdown, a dropped socket, a stall, a gap) reconnects with
 * backoff and jitter, to the next URL when given several, resuming from the position
 * held. Losses reach the caller as "reset" updates; only what cannot heal (a refused
 * subscription, unreadable bytes, too many failed attempts) ends the iteration with an
 * error. Works in browsers and Node 20.
 */

import { ReconnectPolicy } from "./backoff.js";
import { encodeSub } from "./msgpack.js";
import { parseNanos } from "./nanos.js";
import { Tracker } from "./tracker.js";
import { MAX_EVENT_BYTES, ProtocolError, SseDecoder, decodeFrame, parsePosition } from "./wire.js";
import { dictionaryId, dictionaryUrl, fetchDictionary } from "./zstd.js";

/** A feed that cannot go on: iteration throws it. `kind`: rejected | protocol | unavailable | config. */
export class FeedError extends Error {
  /** @param {string} kind @param {string} message @param {number | null} [code] */
  constructor(kind, message, code = null) {
    super(message);
    this.name = "FeedError";
    this.kind = kind;
    /** The server's error or HTTP status code, for "rejected". */
    this.code = code;
  }
}

/** Stall timeout while the server has not said its heartbeat period. */
export const DEFAULT_STALL_MS = 60000;
/** With a heartbeat period known, a connection silent this many periods is dead. */
export const STALL_HEARTBEATS = 2.5;
export const MIN_STALL_MS = 5000;

const WS_PATH = "/v1/ws";
const SSE_PATH = "/v1/sse";
// A channel, or a venue's own (`book@cbx`, `quote@*` for every venue): docs/PROTOCOL.md, "Topics".
const TOPIC = /^(quote|ticker|book|trade|(?:quote|book)@(?:\*|[a-z0-9_-]{1,16}))\.(\*|[A-Z0-9]+-[A-Z0-9]+)$/;

/**
 * @typedef {import("./tracker.js").Update} Update
 * @typedef {{kind: string, detail: string, error?: FeedError}} Ending
 * kind: slow_consumer | shutdown | limit | dropped | stalled | gap | connect_failed |
 * rejected | protocol | closed.
 * @typedef {{decompress(bytes: Uint8Array, dictionary: Uint8Array): Uint8Array | Promise<Uint8Array>}} ZstdCodec
 * @typedef {object} FeedOptions
 * @property {any} [WebSocket] a WebSocket class (default globalThis.WebSocket; Node 20:
 *   run with --experimental-websocket, or pass the `ws` package's class).
 * @property {typeof fetch} [fetch] default globalThis.fetch (SSE and the zstd dictionary).
 * @property {Record<string, string>} [headers] extra headers of SSE requests.
 * @property {ZstdCodec} [zstd] offer `ticker.v1.zstd` and decompress frames with it.
 * @property {string | null} [position] resume from this "epoch-offset" at first.
 * @property {{position: string, snapshots: any[]}} [snapshot] a /v1/snapshot document
 *   to start from (its state and position), as a page that rendered it does.
 * @property {number} [maxRate] SSE `max_rate` (updates per topic per second).
 * @property {number} [queueSize] updates waiting for the caller (default 1024); while
 *   full the feed stops reading.
 * @property {number} [reconnectMinMs] first backoff ceiling (default 100).
 * @property {number} [reconnectMaxMs] largest backoff ceiling (default 5000).
 * @property {number} [connectTimeoutMs] default 10000.
 * @property {number} [stallTimeoutMs] default: 2.5 heartbeats (at least 5 s), 60 s untold.
 * @property {number | null} [maxAttempts] failed connections in a row before giving up.
 * @property {number} [maxMessageBytes] largest frame, SSE event or burst (16 MiB).
 * @property {number} [maxBufferedBytes] WebSocket frames waiting while the caller is
 *   behind (16 MiB); past it the connection is dropped and later resumed.
 * @property {() => number} [random] jitter source (default Math.random).
 * @property {(event: FeedEvent) => void} [onEvent] connection events (see FeedEvent).
 * @typedef {{type: "hello", url: string, epoch: number, offset: number, heartbeatS: number | null, compression: string | null}
 *   | {type: "ended", url: string, kind: string, detail: string, delayMs: number}
 *   | {type: "connecting", url: string, position: string | null}
 *   | {type: "position", url: string, position: string | null}
 *   | {type: "forbidden", url: string, patterns: string[], message: string}} FeedEvent
 * "position": the resume position moved (after a unit; heartbeats move it too, with no
 * update), emitted before the unit's updates are read from the queue.
 */

/**
 * Follow `topics` on a ticker server until `close()`.
 *
 * @param {string | string[]} urls `ws://host:port/v1/ws`, `wss://...` (msgpack) or
 *   `http://host:port/v1/sse`, `https://...` (SSE); no path: the default one. Several
 *   (the edges of one cluster): every reconnect moves to the next, resuming.
 * @param {string[] | string} topics patterns such as `quote.BTC-USD`, `book.*`.
 * @param {FeedOptions} [options]
 * @returns {Feed}
 * @throws {FeedError} kind "config": a bad URL, topic or option.
 */
export function openFeed(urls, topics, options = {}) {
  const feed = new Feed(urls, topics, options);
  feed.start();
  return feed;
}

/** @param {string} text */
function parseUrl(text) {
  let url;
  try {
    url = new URL(text);
  } catch {
    throw new FeedError("config", `bad URL ${JSON.stringify(text)}`);
  }
  const transport = { "ws:": "ws", "wss:": "ws", "http:": "sse", "https:": "sse" }[url.protocol];
  if (transport === undefined) throw new FeedError("config", `bad URL ${JSON.stringify(text)}: the scheme must be ws, wss, http or https`);
  if (url.search || url.hash) throw new FeedError("config", `bad URL ${JSON.stringify(text)}: no query or fragment, please`);
  if (url.pathname === "" || url.pathname === "/") url.pathname = transport === "ws" ? WS_PATH : SSE_PATH;
  return { transport, url: url.toString() };
}

/** @param {string[] | string} topics */
function parseTopics(topics) {
  const list = typeof topics === "string" ? topics.split(",") : [...topics];
  const out = [...new Set(list.map((t) => t.trim()))];
  if (out.length === 0 || (out.length === 1 && out[0] === "")) throw new FeedError("config", "give at least one topic, e.g. quote.BTC-USD or book.*");
  for (const topic of out) {
    if (topic.length > 64 || !TOPIC.test(topic)) throw new FeedError("config", `bad topic ${JSON.stringify(topic.slice(0, 64))}`);
  }
  return out;
}

/** The live state of some topics and the stream of their updates (`for await`). */
export class Feed {
  /** @param {string | string[]} urls @param {string[] | string} topics @param {FeedOptions} options */
  constructor(urls, topics, options) {
    const list = (Array.isArray(urls) ? urls : [urls]).map(parseUrl);
    if (list.length === 0) throw new FeedError("config", "give at least one URL");
    if (new Set(list.map((e) => e.transport)).size > 1) throw new FeedError("config", "all URLs must use one transport (ws or http)");
    this.endpoints = list;
    this.transport = list[0].transport;
    this.topics = parseTopics(topics);
    this.options = options;
    const queueSize = options.queueSize ?? 1024;
    if (!(queueSize >= 1)) throw new FeedError("config", "queueSize must be >= 1");
    this.queueSize = queueSize;
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_EVENT_BYTES;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10000;
    this.maxAttempts = options.maxAttempts ?? null;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (this.transport === "ws" && typeof this.WebSocket !== "function") {
      throw new FeedError("config", "no WebSocket: pass options.WebSocket (the `ws` package) or run Node 20 with --experimental-websocket");
    }
    if (typeof this.fetch !== "function" && (this.transport === "sse" || options.zstd)) {
      throw new FeedError("config", "no fetch: pass options.fetch");
    }
    try {
      this.policy = new ReconnectPolicy({ minMs: options.reconnectMinMs ?? 100, maxMs: options.reconnectMaxMs ?? 5000,
        endpoints: list.length, random: options.random ?? Math.random });
    } catch (err) {
      throw new FeedError("config", /** @type {Error} */ (err).message);
    }
    /** The tracker: topic state, position, counters (`feed.tracker.stats`). */
    this.tracker = new Tracker();
    this.stats = { connections: 0, attempts: 0, updates: 0, resetMessages: 0, forbidden: 0,
      /** @type {Record<string, number>} */ endings: {} };
    /** @type {Set<string>} patterns refused as outside the token's entitlements (an
     * `error` 4403 naming them): the others stream on; only when every pattern is
     * refused does the feed stop ("rejected"). */
    this.forbidden = new Set();
    /** @type {FeedError | null} why the feed stopped, once it has. */
    this.error = null;
    this.closed = false;
    /** @type {Update[]} */
    this.queue = [];
    if (options.snapshot) this.seed(options.snapshot);
    else if (options.position) {
      try {
        // The tracker holds it as if it had processed a unit there: the server answers
        // from it (a replay, or a reset whose loss starts there).
        this.tracker.positionHeld = parsePosition(options.position);
      } catch (err) {
        throw new FeedError("config", /** @type {Error} */ (err).message);
      }
    }
    /** @type {((value: void) => void) | null} */
    this.wakeReader = null;
    /** @type {((value: void) => void) | null} */
    this.wakeWriter = null;
    /** @type {Connection | null} */
    this.connection = null;
    /** @type {(() => void) | null} */
    this.cutWait = null;
    /** @type {Map<number, Promise<Uint8Array>>} */
    this.dictionaries = new Map();
    /** @type {Promise<void> | null} */
    this.done = null;
  }

  /** "epoch-offset" of the last unit processed completely (what a reconnect resumes from). */
  get position() {
    return this.tracker.position;
  }

  /** The URL of the current connection (or the next attempt). */
  get url() {
    return this.endpoints[this.policy.endpoint].url;
  }

  /** @param {string} topic the whole state held (it may be ahead of what was read), or null. */
  state(topic) {
    return this.tracker.state(topic);
  }

  /** Every topic whose state is held. */
  heldTopics() {
    return this.tracker.topics();
  }

  /** Start following (openFeed does). */
  start() {
    if (this.done === null) this.done = this.run();
  }

  /** Stop: the connection is closed, pending and later iteration ends. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.connection?.abort({ kind: "closed", detail: "closed by the caller" });
    this.cutWait?.();
    this.wake();
  }

  /** End the current connection as if it dropped; the feed resumes from its position
   * (e.g. the network changed). */
  dropConnection() {
    this.connection?.abort({ kind: "dropped", detail: "dropped by the caller" });
  }

  /** Cut a pending backoff wait short (e.g. the browser came back online). */
  reconnectNow() {
    this.cutWait?.();
  }

  [Symbol.asyncIterator]() {
    return this;
  }

  /** @returns {Promise<IteratorResult<Update>>} */
  async next() {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const update = this.queue.shift();
      if (update !== undefined) {
        this.wakeWriter?.();
        return { done: false, value: update };
      }
      if (this.error !== null) throw this.error;
      await new Promise((resolve) => { this.wakeReader = resolve; });
    }
  }

  /** @returns {Promise<IteratorResult<Update>>} */
  async return() {
    this.close();
    return { done: true, value: undefined };
  }

  wake() {
    const reader = this.wakeReader;
    this.wakeReader = null;
    reader?.();
    const writer = this.wakeWriter;
    this.wakeWriter = null;
    writer?.();
  }

  /** @param {{position: string, snapshots: any[]}} doc */
  seed(doc) {
    const at = parsePosition(doc.position);
    const ws = this.transport === "ws";
    const unit = doc.snapshots.map((s) => ({ type: /** @type {const} */ ("data"), snapshot: true, topic: s.topic,
      seq: s.seq, offset: s.offset, ts: s.ts, data: ws ? nanosFromJson(s.data) : s.data }));
    this.tracker.epoch = at.epoch;
    const step = this.tracker.receive([...unit, { type: "heartbeat", epoch: at.epoch, offset: at.offset, ts: 0 }]);
    this.tracker.epoch = null;
    this.queue.push(...step.updates);
  }

  /** @param {FeedEvent} event */
  emit(event) {
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      console.error("ticker feed: onEvent threw", err);
    }
  }

  async run() {
    try {
      while (!this.closed) {
        const opened = Date.now();
        const url = this.url;
        const { ending, units } = await this.session(url);
        this.stats.endings[ending.kind] = (this.stats.endings[ending.kind] ?? 0) + 1;
        if (this.closed) break;
        if (ending.error) throw ending.error;
        const facts = { ...ending, healthy: units >= 2, lifetimeMs: Date.now() - opened };
        const delayMs = this.policy.next(facts);
        this.emit({ type: "ended", url, kind: ending.kind, detail: ending.detail, delayMs });
        if (this.maxAttempts !== null && this.policy.failures >= this.maxAttempts) {
          throw new FeedError("unavailable", `no usable connection in ${this.policy.failures} attempts; last: ${ending.kind} ${ending.detail} (${url})`);
        }
        if (delayMs > 0) await this.sleep(delayMs);
      }
    } catch (err) {
      this.error = err instanceof FeedError ? err : new FeedError("protocol", String(/** @type {Error} */ (err)?.message ?? err));
    } finally {
      this.wake();
    }
  }

  /** @param {number} ms */
  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const feed = this;
      function done() {
        clearTimeout(timer);
        feed.cutWait = null;
        resolve(undefined);
      }
      this.cutWait = done;
    });
  }

  /** One connection from connect to its end. @param {string} url */
  async session(url) {
    this.stats.attempts += 1;
    const position = this.tracker.resumePosition();
    this.emit({ type: "connecting", url, position });
    const connection = this.transport === "ws" ? new WsConnection(this, url, position) : new SseConnection(this, url, position);
    this.connection = connection;
    this.tracker.connected();
    let units = 0;
    try {
      for (;;) {
        const item = await connection.next(this.stallTimeoutMs());
        if (this.closed) return { ending: { kind: "closed", detail: "" }, units };
        if (!Array.isArray(item)) return { ending: item, units };
        units += 1;
        const ending = await this.deliver(item, url, connection, units);
        if (ending !== null) return { ending, units };
      }
    } finally {
      connection.abort({ kind: "closed", detail: "" });
      this.connection = null;
    }
  }

  /**
   * Apply one unit and queue its updates; the ending, if the connection must end.
   * @param {import("./wire.js").ServerMessage[]} unit @param {string} url
   * @param {Connection} connection @param {number} units
   * @returns {Promise<Ending | null>}
   */
  async deliver(unit, url, connection, units) {
    const before = this.tracker.position;
    let step;
    try {
      step = this.tracker.receive(unit, Date.now() * 1000);
    } catch (err) {
      const message = /** @type {Error} */ (err).message;
      return { kind: "protocol", detail: message, error: new FeedError("protocol", message) };
    }
    if (this.tracker.position !== before) this.emit({ type: "position", url, position: this.tracker.position });
    for (const message of unit) {
      if (message.type === "reset") this.stats.resetMessages += 1;
      if (message.type === "hello") {
        this.stats.connections += 1;
        this.emit({ type: "hello", url, epoch: message.epoch, offset: message.offset,
          heartbeatS: message.heartbeatS || null, compression: connection.compression });
      }
    }
    if (step.updates.length) {
      this.queue.push(...step.updates);
      this.stats.updates += step.updates.length;
      this.wake();
    }
    let refusal = step.refusal;
    if (refusal !== null) {
      const named = entitlementRefusal(refusal.code, refusal.message);
      if (named !== null) {
        this.stats.forbidden += 1;
        for (const pattern of named) this.forbidden.add(pattern);
        this.emit({ type: "forbidden", url, patterns: named, message: refusal.message });
        // The allowed patterns stream on; only a feed with nothing allowed stops.
        if (!this.topics.every((t) => this.forbidden.has(t))) refusal = null;
      }
    }
    if (refusal !== null) {
      const { code, message } = refusal;
      // Resumes are rate-limited per address: back off and resume again.
      if (code === 4429 && connection.position !== null) return { kind: "limit", detail: message };
      return { kind: "rejected", detail: message, error: new FeedError("rejected", message, code) };
    }
    if (step.resync) {
      if (this.tracker.resnapshotting() === "checksum") return { kind: "gap", detail: "book checksum mismatch; subscribing afresh" };
      return { kind: "gap", detail: `sequence gap; resuming from ${this.tracker.position}` };
    }
    while (this.queue.length >= this.queueSize && !this.closed) {
      // The caller is behind: stop reading (SSE: TCP backpressure; WebSocket: frames
      // wait in a bounded buffer).
      await new Promise((resolve) => { this.wakeWriter = resolve; });
    }
    return null;
  }

  stallTimeoutMs() {
    if (this.options.stallTimeoutMs) return this.options.stallTimeoutMs;
    const heartbeatS = this.tracker.heartbeatS;
    if (heartbeatS === null) return DEFAULT_STALL_MS;
    return Math.max(MIN_STALL_MS, STALL_HEARTBEATS * heartbeatS * 1000);
  }

  /** @param {string} wsUrl @param {number} id @returns {Promise<Uint8Array>} */
  dictionary(wsUrl, id) {
    let bytes = this.dictionaries.get(id);
    if (bytes === undefined) {
      bytes = fetchDictionary(this.fetch, dictionaryUrl(wsUrl, id));
      bytes.catch(() => this.dictionaries.delete(id)); // fetched again next time
      this.dictionaries.set(id, bytes);
    }
    return bytes;
  }
}

/** @param {Record<string, any>} data JSON-form data as BigInt nanos (a seeded WS feed). */
function nanosFromJson(data) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [name, value] of Object.entries(data)) {
    if ((name === "bids" || name === "asks") && Array.isArray(value)) out[name] = value.map(([p, s]) => [parseNanos(p), parseNanos(s)]);
    else if (typeof value === "string" && name !== "side" && name !== "id" && name !== "venue") out[name] = parseNanos(value);
    else out[name] = value;
  }
  return out;
}

/**
 * The units of one connection, pulled one at a time; an Ending when it is over.
 * @typedef {{position: string | null, compression: string | null,
 *   next(timeoutMs: number): Promise<import("./wire.js").ServerMessage[] | Ending>,
 *   abort(ending: Ending): void}} Connection
 */

class Inbox {
  constructor() {
    /** @type {any[]} */
    this.items = [];
    /** @type {Ending | null} */
    this.ending = null;
    /** @type {((value: void) => void) | null} */
    this.waiter = null;
  }

  /** @param {any} item */
  push(item) {
    this.items.push(item);
    this.notify();
  }

  /** @param {Ending} ending */
  end(ending) {
    if (this.ending === null) this.ending = ending;
    this.notify();
  }

  notify() {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }

  /**
   * The next item, or the ending; after `timeoutMs` of silence, `onStall()`.
   * @param {number} timeoutMs @param {() => void} onStall
   */
  async take(timeoutMs, onStall) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.items.length) return { item: this.items.shift() };
      if (this.ending !== null) return { ending: this.ending };
      const left = deadline - Date.now();
      if (left <= 0) {
        onStall();
        continue;
      }
      let timer;
      await new Promise((resolve) => {
        this.waiter = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }
}

/** @param {number} code @param {string} reason @returns {Ending} */
/**
 * The patterns an `error` refuses as outside the token's entitlements (`not entitled
 * to: a, b`, or after a narrower refresh `no longer entitled to: a`); null for any other.
 * @param {number} code
 * @param {string} message
 * @returns {string[] | null}
 */
export function entitlementRefusal(code, message) {
  if (code !== 4403) return null;
  for (const prefix of ["not entitled to:", "no longer entitled to:"]) {
    if (message.startsWith(prefix)) {
      return message.slice(prefix.length).split(",").map((p) => p.trim()).filter((p) => p);
    }
  }
  return null;
}

export function endingFromClose(code, reason) {
  if (code === 4008) return { kind: "slow_consumer", detail: reason };
  if (code === 4001) return { kind: "shutdown", detail: reason };
  if (code === 4429) return { kind: "limit", detail: reason };
  if (code === 4400) return { kind: "rejected", detail: reason, error: new FeedError("rejected", reason || "bad request", code) };
  if (code === 1002 || code === 1009) {
    return { kind: "protocol", detail: reason, error: new FeedError("protocol", `connection closed with ${code}: ${reason}`) };
  }
  return { kind: "dropped", detail: `close ${code} ${reason}`.trim() };
}

/** @param {number} status @param {string} body @returns {Ending} */
export function endingFromStatus(status, body) {
  const text = body.trim().slice(0, 200);
  if (status === 429 || status === 503) return { kind: "limit", detail: `HTTP ${status}: ${text}` };
  if (status >= 400 && status < 500) return { kind: "rejected", detail: text, error: new FeedError("rejected", text || `HTTP ${status}`, status) };
  return { kind: "connect_failed", detail: `HTTP ${status}: ${text}` };
}

/** A WebSocket connection (binary msgpack frames; zstd when a codec is given). */
class WsConnection {
  /** @param {Feed} feed @param {string} url @param {string | null} position */
  constructor(feed, url, position) {
    this.feed = feed;
    this.url = url;
    this.position = position;
    /** @type {string | null} */
    this.compression = null;
    this.inbox = new Inbox();
    this.buffered = 0;
    this.opened = false;
    const protocols = feed.options.zstd ? ["ticker.v1.zstd", "ticker.v1"] : ["ticker.v1"];
    let ws;
    try {
      ws = new feed.WebSocket(url, protocols);
    } catch (err) {
      this.inbox.end({ kind: "connect_failed", detail: String(/** @type {Error} */ (err).message) });
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    this.connectTimer = setTimeout(() => this.abort({ kind: "connect_failed", detail: `no connection within ${feed.connectTimeoutMs} ms` }), feed.connectTimeoutMs);
    ws.onopen = () => {
      clearTimeout(this.connectTimer);
      this.opened = true;
      this.compression = ws.protocol === "ticker.v1.zstd" ? "zstd" : null;
      ws.send(encodeSub(feed.topics, position)); // commands are never compressed
    };
    ws.onmessage = (/** @type {MessageEvent} */ event) => {
      if (typeof event.data === "string") {
        this.abort({ kind: "protocol", detail: "a text frame", error: new FeedError("protocol", "the server sent a text frame") });
        return;
      }
      const bytes = new Uint8Array(event.data);
      this.buffered += bytes.length;
      if (bytes.length > feed.maxMessageBytes || this.buffered > feed.maxBufferedBytes) {
        // The caller is too far behind (or the frame is absurd): drop the connection and
        // resume later from the last unit applied.
        this.abort({ kind: "slow_consumer", detail: `more than ${feed.maxBufferedBytes} bytes waiting for the caller` });
        return;
      }
      this.inbox.push(bytes);
    };
    ws.onclose = (/** @type {CloseEvent} */ event) => {
      clearTimeout(this.connectTimer);
      if (!this.opened) this.inbox.end({ kind: "connect_failed", detail: `close ${event.code} ${event.reason ?? ""}`.trim() });
      else this.inbox.end(endingFromClose(event.code, event.reason ?? ""));
    };
    ws.onerror = () => {}; // a close event follows with the code
  }

  /** @param {Ending} ending */
  abort(ending) {
    clearTimeout(this.connectTimer);
    this.inbox.end(ending);
    this.inbox.items = [];
    try {
      this.ws?.close();
    } catch {
      /* already closing */
    }
  }

  /** @param {number} timeoutMs */
  async next(timeoutMs) {
    const got = await this.inbox.take(timeoutMs, () => this.abort({ kind: "stalled", detail: `nothing for ${timeoutMs} ms` }));
    if ("ending" in got) return /** @type {Ending} */ (got.ending);
    /** @type {Uint8Array} */
    let frame = got.item;
    this.buffered -= frame.length;
    try {
      if (this.compression === "zstd") frame = await this.decompress(frame);
      return decodeFrame(frame);
    } catch (err) {
      const message = /** @type {Error} */ (err).message;
      return { kind: "protocol", detail: message, error: err instanceof FeedError ? err : new FeedError("protocol", message) };
    }
  }

  /** @param {Uint8Array} frame */
  async decompress(frame) {
    const codec = /** @type {ZstdCodec} */ (this.feed.options.zstd);
    const id = dictionaryId(frame);
    const dictionary = id === 0 ? new Uint8Array(0) : await this.feed.dictionary(this.url, id);
    let out;
    try {
      out = await codec.decompress(frame, dictionary);
    } catch (err) {
      throw new ProtocolError(`zstd: ${/** @type {Error} */ (err).message}`);
    }
    if (!(out instanceof Uint8Array)) throw new ProtocolError("zstd: decompress() must return a Uint8Array");
    if (out.length > this.feed.maxMessageBytes) throw new ProtocolError(`zstd: a frame larger than ${this.feed.maxMessageBytes} bytes`);
    return out;
  }
}

/** An SSE connection read with fetch (JSON form). */
class SseConnection {
  /** @param {Feed} feed @param {string} url @param {string | null} position */
  constructor(feed, url, position) {
    this.feed = feed;
    this.position = position;
    this.compression = null;
    this.controller = new AbortController();
    /** @type {Ending | null} */
    this.ending = null;
    /** @type {import("./wire.js").ServerMessage[][]} */
    this.units = [];
    this.decoder = new SseDecoder(feed.maxMessageBytes);
    const target = new URL(url);
    target.searchParams.set("topics", feed.topics.join(","));
    // The query parameter, not the Last-Event-ID header: a header would make a
    // cross-origin request need a CORS preflight.
    if (position !== null) target.searchParams.set("last_event_id", position);
    if (feed.options.maxRate) target.searchParams.set("max_rate", String(feed.options.maxRate));
    this.target = target.toString();
    this.reader = null;
    this.started = this.open();
  }

  async open() {
    const feed = this.feed;
    const timer = setTimeout(() => this.abort({ kind: "connect_failed", detail: `no answer within ${feed.connectTimeoutMs} ms` }), feed.connectTimeoutMs);
    try {
      const response = await feed.fetch(this.target, { headers: { ...(feed.options.headers ?? {}) }, cache: "no-store", signal: this.controller.signal });
      if (response.status !== 200 || response.body === null) {
        const body = await response.text().catch(() => "");
        this.abort(endingFromStatus(response.status, body));
        return;
      }
      this.reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    } catch (err) {
      if (this.ending === null) this.abort({ kind: "connect_failed", detail: String(/** @type {Error} */ (err).message) });
    } finally {
      clearTimeout(timer);
    }
  }

  /** @param {Ending} ending */
  abort(ending) {
    if (this.ending === null) this.ending = ending;
    this.controller.abort();
  }

  /** @param {number} timeoutMs */
  async next(timeoutMs) {
    await this.started;
    let timer;
    try {
      while (this.units.length === 0) {
        if (this.ending !== null || this.reader === null) return this.ending ?? { kind: "dropped", detail: "" };
        timer = setTimeout(() => this.abort({ kind: "stalled", detail: `nothing for ${timeoutMs} ms` }), timeoutMs);
        let chunk;
        try {
          chunk = await this.reader.read();
        } catch (err) {
          if (this.ending === null) this.abort({ kind: "dropped", detail: String(/** @type {Error} */ (err).message) });
          continue;
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done) {
          if (this.ending === null) this.abort({ kind: "dropped", detail: "the stream ended" });
          continue;
        }
        let items;
        try {
          items = this.decoder.feed(chunk.value);
        } catch (err) {
          const message = /** @type {Error} */ (err).message;
          this.abort({ kind: "protocol", detail: message, error: new FeedError("protocol", message) });
          continue;
        }
        for (const item of items) {
          if (Array.isArray(item)) this.units.push(item);
          else {
            // The server ends the stream (slow consumer, shutdown): units before it count.
            const kind = item.reason.startsWith("slow") ? "slow_consumer" : item.reason === "shutdown" ? "shutdown" : "dropped";
            if (this.ending === null) this.ending = { kind, detail: item.reason };
            this.controller.abort();
            break;
          }
        }
      }
      return /** @type {import("./wire.js").ServerMessage[]} */ (this.units.shift());
    } finally {
      clearTimeout(timer);
    }
  }
}
