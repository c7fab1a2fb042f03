/* ticker dashboard: renders GET /v1/snapshot at once, then follows /v1/sse from the
 * snapshot's position. This module owns the page's state (window.tickerDashboard) and
 * the stream; `board.js` draws it. Every topic's `seq` is checked: a delta that does not
 * follow the state held is a gap, answered by a fresh snapshot (a resync); a `reset` is
 * followed by the stream's own snapshots; a stream that ends, fails or goes quiet is
 * reopened with backoff from the last position processed, so the server replays exactly
 * what was missed. Nothing is loaded from anywhere but this server.
 */

import { createBoard } from "./board.js";

const TOPICS = "quote.*,ticker.*,trade.*";
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10000;
const STALL_MS = 45000; // three missed heartbeats (15 s each) and the stream is dead
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
  position: null, // "<epoch>-<offset>" of the last event processed
  head: null, // the server's position when the current stream opened
  reconnects: 0, // streams reopened after a drop
  gaps: 0, // deltas whose seq did not follow the state held
  resyncs: 0, // fresh snapshots fetched because of a gap
  resets: 0, // resets received (position too old or from another epoch)
  ends: 0, // `end` events (evicted, or server shutting down)
  errors: 0, // stream errors (dropped connections, refused requests)
  stale: 0, // repeats ignored (seq not after the state held)
  events: 0, // data events applied
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

let source = null; // the EventSource whose events we apply; any other is ignored
let snapshotGeneration = 0; // a newer snapshot request makes older answers moot
let backoffMs = BACKOFF_MIN_MS;
let retryTimer = null;
let retryNeedsSnapshot = false; // the pending retry must fetch a snapshot first
let streamsOpened = 0;
let lastEventAt = Date.now();
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

/* ---- snapshot and stream ------------------------------------------------------- */

async function fetchSnapshot() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch("/v1/snapshot?topics=" + encodeURIComponent(TOPICS), {
      cache: "no-store",
      signal: controller.signal,
    });
    if (!response.ok) throw new Error("snapshot answered HTTP " + response.status);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

async function resnapshot(reason) {
  const generation = ++snapshotGeneration;
  closeStream();
  setStatus(state.position === null ? "connecting" : "resyncing", reason);
  let doc;
  try {
    doc = await fetchSnapshot();
  } catch (err) {
    if (generation === snapshotGeneration) retryLater("snapshot failed: " + err.message, true);
    return;
  }
  if (generation !== snapshotGeneration) return;
  state.topics = Object.create(null);
  for (const message of doc.snapshots) applyMessage(true, message);
  state.epoch = doc.epoch;
  state.position = doc.position;
  openStream();
}

function openStream() {
  closeStream();
  let url = streamBase + "/v1/sse?topics=" + encodeURIComponent(TOPICS) +
    "&last_event_id=" + encodeURIComponent(state.position);
  if (maxRate) url += "&max_rate=" + encodeURIComponent(maxRate);
  const es = new EventSource(url);
  source = es;
  streamsOpened += 1;
  state.streamUrl = url;
  streamUrlEl.textContent = url.split("?")[0];
  lastEventAt = Date.now();
  liveAfterOffset = Infinity;
  const on = (name, handler) =>
    es.addEventListener(name, (event) => {
      if (source !== es) return; // an event from a stream we already left
      lastEventAt = Date.now();
      handler(event);
    });
  on("hello", onHello);
  on("snapshot", (event) => onData(true, event));
  on("delta", (event) => onData(false, event));
  on("heartbeat", onHeartbeat);
  on("reset", onReset);
  on("end", onEnd);
  on("error", onError);
}

function closeStream() {
  if (source !== null) {
    source.close();
    source = null;
  }
}

function retryLater(reason, needSnapshot) {
  // Backoff with jitter; the browser coming back online cuts the wait short.
  closeStream();
  setStatus("reconnecting", reason);
  clearTimeout(retryTimer);
  const delay = backoffMs / 2 + Math.random() * backoffMs / 2;
  backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  retryNeedsSnapshot = retryNeedsSnapshot || needSnapshot;
  retryTimer = setTimeout(reconnectNow, delay);
}

function reconnectNow() {
  clearTimeout(retryTimer);
  retryTimer = null;
  const needSnapshot = retryNeedsSnapshot || state.position === null;
  retryNeedsSnapshot = false;
  if (streamsOpened > 0) state.reconnects += 1;
  if (needSnapshot) resnapshot("reconnecting");
  else openStream();
}

window.addEventListener("online", () => {
  if (retryTimer !== null) reconnectNow();
});

/* ---- events -------------------------------------------------------------------- */

function onHello(event) {
  const hello = JSON.parse(event.data);
  state.head = hello.epoch + "-" + hello.offset;
  liveAfterOffset = hello.offset;
  backoffMs = BACKOFF_MIN_MS;
  setStatus("live", "");
}

function onData(snapshot, event) {
  const message = JSON.parse(event.data);
  if (!applyMessage(snapshot, message)) {
    state.gaps += 1;
    state.resyncs += 1;
    resnapshot("gap in " + message.topic + " at seq " + message.seq);
    return;
  }
  if (event.lastEventId) setPosition(event.lastEventId);
  if (!snapshot && message.offset > liveAfterOffset) {
    // Only live messages: a replayed one's age says how long we were away.
    const latency = Date.now() - message.ts / 1000;
    state.latencyMs = latency;
    latencies.push(latency);
    if (latencies.length > LATENCY_SAMPLES) latencies.shift();
  }
  state.events += 1;
  eventsThisSecond += 1;
}

function onHeartbeat(event) {
  // Written after everything up to its position: resuming from it misses nothing. It
  // also ends every burst of snapshots (whose own offsets are their topics' last
  // change), carrying the burst's position as its id.
  if (event.lastEventId) setPosition(event.lastEventId);
  board.renderStats();
}

function onReset(event) {
  // The position could not be served; snapshots of every topic follow at once, then a
  // heartbeat. Neither the reset nor the snapshots carry an id: the position is ours
  // only with the state it names, so the heartbeat's id sets it (a cut before it:
  // reset again). (lastEventId of an event without an id is the previous id.)
  const reset = JSON.parse(event.data);
  state.resets += 1;
  state.topics = Object.create(null);
  setStatus("live", "reset (" + reset.reason + "): fresh snapshots");
}

function onEnd(event) {
  const end = JSON.parse(event.data);
  state.ends += 1;
  retryLater("server ended the stream (" + end.reason + ")", false);
}

function onError() {
  // Also after a refused request. Our own backoff replaces the browser's fixed retry,
  // and resumes from the position we processed rather than the last id it saw.
  state.errors += 1;
  retryLater("stream dropped", false);
}

function setPosition(position) {
  state.position = position;
  state.epoch = Number(position.split("-")[0]);
}

/* ---- topic state --------------------------------------------------------------- */

/* Apply one data message; false means a gap (nothing was applied). */
function applyMessage(snapshot, message) {
  const held = state.topics[message.topic];
  const channel = message.topic.split(".")[0];
  if (snapshot) {
    if (held && message.seq < held.seq) {
      state.stale += 1;
      return true;
    }
    state.topics[message.topic] = { seq: message.seq, data: Object.assign({}, message.data) };
  } else {
    const heldSeq = held ? held.seq : 0;
    if (message.seq <= heldSeq) {
      state.stale += 1;
      return true;
    }
    // A topic's first message is a snapshot: a delta of a topic not held is a gap.
    if (!held || message.seq !== heldSeq + 1) return false;
    if (channel === "trade") {
      // A trade replaces the last one.
      state.topics[message.topic] = { seq: message.seq, data: Object.assign({}, message.data) };
    } else {
      Object.assign(held.data, message.data); // latest-value MERGE (null: the value is gone)
      held.seq = message.seq;
    }
  }
  board.noteChange(channel, message.topic.slice(channel.length + 1), snapshot, message.data);
  return true;
}

/* ---- once a second: rate, latency median, clock, stall watchdog ---------------- */

setInterval(() => {
  rateEl.textContent = String(eventsThisSecond);
  eventsThisSecond = 0;
  if (latencies.length) {
    const sorted = latencies.slice().sort((a, b) => a - b);
    state.latencyP50Ms = sorted[Math.floor(sorted.length / 2)];
  }
  clockEl.textContent = new Date().toISOString().slice(11, 19) + " UTC";
  board.renderStats();
  if (source !== null && Date.now() - lastEventAt > STALL_MS) {
    retryLater("no event for " + STALL_MS / 1000 + " s", false);
  }
}, 1000);

resnapshot("loading snapshot");
