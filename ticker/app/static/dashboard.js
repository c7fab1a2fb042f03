/* ticker dashboard: renders GET /v1/snapshot at once, then follows /v1/sse from the
 * snapshot's position with the JavaScript client (clients/js, served at /static/client/),
 * which checks every topic's seq, resyncs on a gap, applies resets (dropping topics the
 * server no longer has), and reopens a stream that ends, fails or goes quiet with
 * backoff, resuming from the last position processed. A symbol view (a row clicked, or
 * `#symbol=BTC-USD`) follows that symbol's book, and each venue's BBO and book, on a
 * second feed while it is open. A server that requires a token gets it from the `ticker_token` cookie (sent with the
 * snapshot and the stream); a refused or expired token stops the page in a "signed out"
 * state until the user retries, instead of retrying for ever. This module owns the
 * page's state (window.tickerDashboard) and maps the client's updates and events onto
 * it; `board.js` and `symbol.js` draw it. Nothing is loaded from anywhere but this server.
 */

import { createBoard } from "./board.js";
import { createSymbolView } from "./symbol.js";
import { FeedError, openFeed } from "./client/index.js";

const TOPICS = ["quote.*", "ticker.*", "trade.*"];
const TAPE_TRADES = 25; // trades kept per symbol for the symbol view's tape
const AUTH_REASONS = new Set(["token_expired", "revoked"]); // SSE `end` reasons of a token
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 10000;
const FETCH_TIMEOUT_MS = 10000;
const LATENCY_SAMPLES = 256;

const params = new URLSearchParams(window.location.search);
const streamBase = sameHostOrigin(params.get("stream"));
const maxRate = params.get("max_rate");

/* Everything a person or a test may want to read. Counters only grow. */
const state = {
  status: "connecting", // connecting | live | reconnecting | resyncing | signed-out
  detail: "",
  auth: null, // when signed out: {reason: "missing" | "expired" | "revoked" | "refused" | "forbidden", message}
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
  trades: Object.create(null), // symbol -> the last TAPE_TRADES trades, newest first
  venues: Object.create(null), // symbol -> venue -> its last trade
  view: null, // the open symbol view: {symbol, status, detail, book, seq, updatedMs, venueQuotes, venueBooks}
  viewOpens: 0, // symbol views opened (each opens a feed)
};
window.tickerDashboard = state;

const byId = (id) => document.getElementById(id);
const board = createBoard(state, {
  conn: byId("conn"),
  connText: byId("conn-text"),
  position: byId("stat-position"),
  reconnects: byId("stat-reconnects"),
  resyncs: byId("stat-resyncs"),
  resets: byId("stat-resets"),
  latency: byId("stat-latency"),
  latencyP50: byId("stat-latency-p50"),
  rows: byId("rows"),
  empty: byId("empty"),
  detail: byId("detail"),
});
const view = createSymbolView(state, byId("symbol-view"));
board.afterRender(() => view.render());
const rateEl = byId("stat-rate");
const clockEl = byId("clock");
const streamUrlEl = byId("stream-url");
const signedOutEl = byId("signed-out");
const signedOutText = byId("signed-out-text");

let feed = null; // the client's feed, once the first snapshot is in
let viewFeed = null; // the symbol view's feed, while it is open
let runs = 0; // run() calls: a retry after signing out starts a new one
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
  if (state.status === "signed-out" && status !== "signed-out") return; // until a retry
  state.status = status;
  state.detail = detail || "";
  board.renderStats();
  board.renderStale();
}

/* ---- signed out: a token missing, refused, expired or revoked ------------------- */

class AuthRefused extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const AUTH_TEXT = {
  missing: "Signed out: this server requires a token. Sign in, then retry.",
  expired: "Signed out: your token expired. Sign in again, then retry.",
  revoked: "Signed out: your token was revoked.",
  refused: "Signed out: the server refused your token. Sign in again, then retry.",
  forbidden: "Your token does not allow any of the dashboard's topics.",
};

/** Why a refusal (HTTP status or close code, and the server's words) signs the page out. */
function authReason(status, message) {
  const text = String(message || "").toLowerCase();
  if (status === 403 || status === 4403) return text.includes("revoked") ? "revoked" : "forbidden";
  if (text.includes("expired")) return "expired";
  if (text.includes("revoked")) return "revoked";
  if (text.includes("is required") || text.includes("no token")) return "missing"; // "a token is required"
  return "refused";
}

function signOut(reason, message) {
  // Stop both feeds: their reconnects would be refused again, for ever.
  feed?.close();
  feed = null;
  closeViewFeed();
  state.auth = { reason, message: message || "" };
  setStatus("signed-out", message || reason);
  signedOutText.textContent = AUTH_TEXT[reason] || AUTH_TEXT.refused;
  signedOutEl.hidden = false;
  board.renderStale();
  view.render();
}

byId("signed-out-retry").addEventListener("click", () => {
  // The user signed in again (a new cookie): start over from a fresh snapshot.
  signedOutEl.hidden = true;
  state.auth = null;
  state.status = "connecting";
  state.detail = "";
  board.renderStats();
  lastEnding = null;
  run();
  if (state.view !== null) openViewFeed(state.view.symbol);
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* ---- the first snapshot, then the feed ------------------------------------------ */

async function fetchSnapshot() {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  try {
    const response = await fetch("/v1/snapshot?topics=" + encodeURIComponent(TOPICS.join(",")), {
      cache: "no-store",
      credentials: "same-origin", // the `ticker_token` cookie, when the server wants one
      signal: controller.signal,
    });
    if (response.status === 401 || response.status === 403) {
      const body = await response.json().catch(() => ({}));
      throw new AuthRefused(response.status, body.error || "HTTP " + response.status);
    }
    if (!response.ok) throw new Error("snapshot answered HTTP " + response.status);
    return await response.json();
  } finally {
    clearTimeout(timer);
  }
}

const sseUrl = () => new URL("/v1/sse", streamBase || window.location.origin).toString();

async function run() {
  // The page renders the snapshot at once; the stream then continues from its position
  // with no gap and no duplicate. A failed snapshot is retried with backoff and jitter;
  // a refused token is not (see signOut).
  const run_ = ++runs;
  let backoffMs = BACKOFF_MIN_MS;
  let doc;
  for (;;) {
    try {
      doc = await fetchSnapshot();
      break;
    } catch (err) {
      if (run_ !== runs) return;
      if (err instanceof AuthRefused) {
        signOut(authReason(err.status, err.message), err.message);
        return;
      }
      setStatus("reconnecting", "snapshot failed: " + err.message);
      await sleep(backoffMs / 2 + Math.random() * backoffMs / 2);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
    }
  }
  if (run_ !== runs) return;
  state.topics = Object.create(null);
  const options = {
    snapshot: doc,
    reconnectMinMs: BACKOFF_MIN_MS,
    reconnectMaxMs: BACKOFF_MAX_MS,
    onEvent,
  };
  if (maxRate) options.maxRate = Number(maxRate);
  // Patterns the token does not allow at all: the stream would refuse them.
  const forbidden = new Set(doc.forbidden || []);
  const topics = TOPICS.filter((t) => !forbidden.has(t));
  if (topics.length === 0) {
    signOut("forbidden", "not entitled to: " + TOPICS.join(", "));
    return;
  }
  const mine = feed = openFeed(sseUrl(), topics, options);
  setPosition(mine.position);
  try {
    for await (const update of mine) onUpdate(update);
  } catch (err) {
    if (mine !== feed) return; // closed while signing out
    const refusal = authRefusal(err);
    if (refusal !== null) {
      signOut(authReason(refusal.code, refusal.message), refusal.message);
      return;
    }
    // The server refused the stream for good (or sent what the client cannot read):
    // start over from a fresh snapshot a while later.
    state.errors += 1;
    setStatus("reconnecting", "stream failed: " + err.message);
    feed = null;
    await sleep(BACKOFF_MAX_MS);
    if (run_ === runs && state.status !== "signed-out") run();
  }
}

/** A feed error that is about the token (HTTP 401/403, 4401/4403), else null. */
function authRefusal(err) {
  if (!(err instanceof FeedError) || err.kind !== "rejected") return null;
  if (![401, 403, 4401, 4403].includes(err.code)) return null;
  return { code: err.code, message: err.message };
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
    if (AUTH_REASONS.has(event.kind) || AUTH_REASONS.has(event.detail)) {
      // The token ran out (or was revoked) mid-stream. The client reconnects once more
      // with the cookie as it is now: a login page that renewed it keeps the page live;
      // else that attempt gets 401 and the page signs out.
      state.reconnects += 1;
      state.ends += 1;
      setStatus("reconnecting", (event.detail === "revoked" ? "token revoked" : "token expired") + ": trying the cookie again");
      syncCounters();
      return;
    }
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
    // The server no longer has this topic (a restart before it republished): what was
    // shown from it goes too.
    delete state.topics[topic];
    if (channel === "trade") {
      delete state.trades[symbol];
      delete state.venues[symbol];
    }
    board.noteChange(channel, symbol, kind, {});
    return;
  }
  if (kind === "reset" && state.status === "live") setStatus("live", "reset (" + update.loss.reason + "): fresh state");
  state.topics[topic] = { seq: update.seq, data: update.state };
  if (channel === "trade") noteTrade(symbol, kind, update.state);
  board.noteChange(channel, symbol, kind, update.data);
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

function noteTrade(symbol, kind, trade) {
  // The tape: a reset (trades may be missing) starts it again from the one held.
  if (kind === "reset" || !state.trades[symbol]) {
    state.trades[symbol] = [];
    state.venues[symbol] = Object.create(null);
  }
  const tape = state.trades[symbol];
  if (kind !== "delta" && tape.length && tape[0].id === trade.id) return; // held already
  tape.unshift(trade);
  if (tape.length > TAPE_TRADES) tape.pop();
  if (trade.venue) state.venues[symbol][trade.venue] = trade;
}

function setPosition(position) {
  if (position === null) return;
  state.position = position;
  state.epoch = Number(position.split("-")[0]);
}

/* ---- once a second: rate, latency median, clock ----------------------------------- */

const showClock = () => { clockEl.textContent = new Date().toISOString().slice(11, 19); };
showClock();

setInterval(() => {
  rateEl.textContent = String(eventsThisSecond);
  eventsThisSecond = 0;
  if (latencies.length) {
    const sorted = latencies.slice().sort((a, b) => a - b);
    state.latencyP50Ms = sorted[Math.floor(sorted.length / 2)];
  }
  showClock();
  board.renderStats();
  board.renderStale();
  view.render();
}, 1000);

/* ---- the symbol view: its book on a feed of its own, only while it is open -------- */

function viewSymbolFromHash() {
  const match = /^#symbol=([A-Z0-9]+-[A-Z0-9]+)$/.exec(window.location.hash);
  return match ? match[1] : null;
}

function showView() {
  const symbol = viewSymbolFromHash();
  if (symbol === (state.view && state.view.symbol)) return;
  closeViewFeed();
  state.view = null;
  if (symbol !== null) {
    state.view = { symbol, status: "connecting", detail: "", book: null, seq: 0, updatedMs: null,
      venueQuotes: Object.create(null), venueBooks: Object.create(null) };
    if (state.status !== "signed-out") openViewFeed(symbol);
  }
  view.render();
}

function openViewFeed(symbol) {
  // A second stream of the view's own topics (the composite book, and each venue's BBO
  // and book), from fresh snapshots; the view's quote and trades come from the page's
  // own feed. Closed with the view. Venue patterns a token does not allow are dropped
  // by the client (a `forbidden` event), the composite book still follows.
  closeViewFeed();
  const current = state.view;
  state.viewOpens += 1;
  const onViewEvent = (event) => {
    if (state.view !== current) return;
    if (event.type === "hello") current.status = "live";
    else if (event.type === "ended") {
      current.status = "reconnecting";
      current.detail = event.kind + (event.detail ? ": " + event.detail : "");
    }
    view.render();
  };
  const mine = viewFeed = openFeed(sseUrl(), ["book." + symbol, "quote@*." + symbol, "book@*." + symbol], {
    reconnectMinMs: BACKOFF_MIN_MS,
    reconnectMaxMs: BACKOFF_MAX_MS,
    onEvent: onViewEvent,
  });
  (async () => {
    try {
      for await (const update of mine) {
        if (state.view !== current) break;
        const channel = update.topic.slice(0, update.topic.length - symbol.length - 1);
        const [kind, venue] = channel.split("@");
        if (venue === undefined) {
          current.book = update.seq === 0 ? null : update.state;
          current.seq = update.seq;
        } else {
          // A venue's topic: seq 0 is a topic the server no longer has (it goes).
          const held = kind === "quote" ? current.venueQuotes : current.venueBooks;
          if (update.seq === 0) delete held[venue];
          else held[venue] = update.state;
        }
        current.updatedMs = Date.now();
        board.scheduleRender();
      }
    } catch (err) {
      if (mine !== viewFeed) return;
      const refusal = authRefusal(err);
      if (refusal !== null) signOut(authReason(refusal.code, refusal.message), refusal.message);
      else {
        current.status = "failed";
        current.detail = err.message;
        view.render();
      }
    }
  })();
}

function closeViewFeed() {
  const open = viewFeed;
  viewFeed = null;
  open?.close();
}

window.addEventListener("hashchange", showView);
byId("rows").addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-symbol]");
  if (tr) window.location.hash = "symbol=" + tr.dataset.symbol;
});
byId("rows").addEventListener("keydown", (event) => {
  const tr = event.target.closest("tr[data-symbol]");
  if (tr && event.key === "Enter") window.location.hash = "symbol=" + tr.dataset.symbol;
});
view.onClose(() => {
  // Back to the board: the view's feed closes with the hash.
  history.replaceState(null, "", window.location.pathname + window.location.search);
  showView();
});
window.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.view !== null) view.close();
});

showView();
run();
