/* ticker dashboard: renders GET /v1/snapshot at once, then follows /v1/sse from the
 * snapshot's position with the JavaScript client (clients/js, served at /static/client/),
 * which checks every topic's seq, resyncs on a gap, applies resets (dropping topics the
 * server no longer has), and reopens a stream that ends, fails or goes quiet with
 * backoff, resuming from the last position processed. This module owns the page's
 * state (window.tickerDashboard) and maps the client's updates and events onto it;
 * `board.js` draws it. Nothing is loaded from anywhere but this server.
 */

import { createBoard } from "./board.js";
import { openFeed } from "./client/index.js";

const TOPICS = ["quote.*", "ticker.*", "trade.*"];
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10000;
const FETCH_TIMEOUT_MS = 10000;
const LATENCY_SAMPLES = 256;

const params = new URLSearchParams(window.location.search);
const streamBase = sameHostOrigin(params.get("stream"));
const maxRate = params.get("max_rate");

/* Everything a person or a test may want to read. Counters only grow. */
const state = {
  status: "connecting", // connecting | live | reconnecting | resyncing
  detail: "",
  epoch: null,
  position: null, // "<epoch>-<offset>" of the last unit processed
  head: null, // the server's position when the current stream opened
  reconnects: 0, // streams reopened after a drop
  gaps: 0, // deltas whose seq did not follow the state held
  resyncs: 0, // streams reopened at once because of a gap
  resets: 0, // resets received (position too old or from another epoch)
  ends: 0, // `end` events (evicted, or server shutting down)
  errors: 0, // stream errors (dropped connections, refused requests, stalls)
  stale: 0, // repeats ignored (already applied)
  events: 0, // data updates applied
  latencyMs: null, // now - ts of the last live delta
  latencyP50Ms: null, // median over the last LATENCY_SAMPLES live deltas
  streamUrl: "",
  topics: Object.create(null), // topic -> {seq, data}
};
window.tickerDashboard = state;

const byId = (id) => document.getElementById(id);
const board = createBoard(state, {
  conn: byId("conn"),
  connText: byId("conn-text"),
  position: byId("stat-position"),
  reconnects: byId("stat-reconnects"),
  resyncs: byId("stat-resyncs"),
  latency: byId("stat-latency"),
  rows: byId("rows"),
  empty: byId("empty"),
  detail: byId("detail"),
});
const rateEl = byId("stat-rate");
const clockEl = byId("clock");
const streamUrlEl = byId("stream-url");

let feed = null; // the client's feed, once the first snapshot is in
let liveAfterOffset = Infinity; // messages up to here were replayed, not live
const latencies = [];
let eventsThisSecond = 0;

function sameHostOrigin(value) {
  // `?stream=<origin>` points the stream at another port of this same host (the page
  // and the stream may be served apart); anything else is ignored.
  if (!value) return "";
  try {
    const url = new URL(value);
    if ((url.protocol === "http:" || url.protocol === "https:") &&
        url.hostname === window.location.hostname) {
      return url.origin;
    }
  } catch (err) {
    /* not a URL: ignored below */
  }
  console.warn("ticker: ignoring ?stream=" + value + " (only this host may be named)");
  return "";
}

function setStatus(status, detail) {
  state.status = status;
  state.detail = detail || "";
  board.renderStats();
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* ---- the first snapshot, then the feed ------------------------------------------ */

async function fetchSnapshot() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch("/v1/snapshot?topics=" + encodeURIComponent(TOPICS.join(",")), {
      cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) throw new Error("snapshot answered HTTP " + response.status);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

async function run() {
  // The page renders the snapshot at once; the stream then continues from its position
  // with no gap and no duplicate. A failed snapshot is retried with backoff and jitter.
  let backoffMs = BACKOFF_MIN_MS;
  let doc;
  for (;;) {
    try {
      doc = await fetchSnapshot();
      break;
    } catch (err) {
      setStatus("reconnecting", "snapshot failed: " + err.message);
      await sleep(backoffMs / 2 + Math.random() * backoffMs / 2);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    }
  }
  state.topics = Object.create(null);
  const options = {
    snapshot: doc,
    reconnectMinMs: BACKOFF_MIN_MS,
    reconnectMaxMs: BACKOFF_MAX_MS,
    onEvent,
  };
  if (maxRate) options.maxRate = Number(maxRate);
  feed = openFeed(new URL("/v1/sse", streamBase || window.location.origin).toString(), TOPICS, options);
  setPosition(feed.position);
  try {
    for await (const update of feed) onUpdate(update);
  } catch (err) {
    // The server refused the stream for good (or sent what the client cannot read):
    // start over from a fresh snapshot a while later.
    state.errors += 1;
    setStatus("reconnecting", "stream failed: " + err.message);
    feed = null;
    await sleep(BACKOFF_MAX_MS);
    run();
  }
}

window.addEventListener("online", () => {
  if (feed !== null) feed.reconnectNow();
});

/* ---- what the client reports ---------------------------------------------------- */

let lastEnding = null;

function onEvent(event) {
  if (event.type === "connecting") {
    state.streamUrl = event.url;
    streamUrlEl.textContent = event.url.split("?")[0];
    if (lastEnding !== null) setStatus(lastEnding === "gap" ? "resyncing" : "reconnecting", state.detail);
  } else if (event.type === "hello") {
    state.head = event.epoch + "-" + event.offset;
    liveAfterOffset = event.offset;
    setStatus("live", "");
  } else if (event.type === "position") {
    setPosition(event.position);
  } else if (event.type === "ended") {
    lastEnding = event.kind;
    if (event.kind === "gap") {
      state.resyncs += 1; // a resync is not a reconnect
    } else {
      state.reconnects += 1;
      if (event.kind === "slow_consumer" || event.kind === "shutdown") state.ends += 1;
      else state.errors += 1;
    }
    setStatus(event.kind === "gap" ? "resyncing" : "reconnecting", event.kind + (event.detail ? ": " + event.detail : ""));
  }
  syncCounters();
}

function syncCounters() {
  // The client's own counters: gaps it found, resets the server sent, repeats skipped.
  if (feed !== null) {
    state.gaps = feed.tracker.stats.gaps;
    state.resets = feed.stats.resetMessages;
    state.stale = feed.tracker.stats.duplicates;
  }
}

function onUpdate(update) {
  const { topic, kind } = update;
  const channel = topic.split(".")[0];
  const symbol = topic.slice(channel.length + 1);
  syncCounters();
  if (kind === "reset" && update.seq === 0) {
    // The server no longer has this topic (a restart before it republished).
    delete state.topics[topic];
    board.noteChange(channel, symbol, true, {});
    return;
  }
  if (kind === "reset" && state.status === "live") setStatus("live", "reset (" + update.loss.reason + "): fresh state");
  state.topics[topic] = { seq: update.seq, data: update.state };
  board.noteChange(channel, symbol, kind !== "delta", update.data);
  const offset = Number(update.position.split("-")[1]);
  if (kind === "delta" && offset > liveAfterOffset) {
    // Only live messages: a replayed one's age says how long we were away.
    const latency = Date.now() - update.ts / 1000;
    state.latencyMs = latency;
    latencies.push(latency);
    if (latencies.length > LATENCY_SAMPLES) latencies.shift();
  }
  state.events += 1;
  eventsThisSecond += 1;
}

function setPosition(position) {
  if (position === null) return;
  state.position = position;
  state.epoch = Number(position.split("-")[0]);
}

/* ---- once a second: rate, latency median, clock ----------------------------------- */

setInterval(() => {
  rateEl.textContent = String(eventsThisSecond);
  eventsThisSecond = 0;
  if (latencies.length) {
    const sorted = latencies.slice().sort((a, b) => a - b);
    state.latencyP50Ms = sorted[Math.floor(sorted.length / 2)];
  }
  clockEl.textContent = new Date().toISOString().slice(11, 19) + " UTC";
  board.renderStats();
}, 1000);

run();
