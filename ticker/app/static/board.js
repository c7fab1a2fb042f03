/* The board: one row per symbol with bid, ask, spread, last, change, volume, a sparkline
 * of recent trade prices and the last trade; cells flash when they change. It reads the
 * dashboard's state and draws it once per animation frame; it never touches the stream.
 * What a reset takes away is cleared from the row (a symbol with nothing left goes);
 * while the stream is not live the rows dim with the age of their last update.
 * Prices stay the exact decimal strings the server sent: padded, grouped, never rounded.
 */

const SPARK_POINTS = 120;
const MAX_DECIMALS = 9;
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const FIELDS = ["bid", "ask", "spread", "last", "change", "pct", "volume"];
const STALE_MAX_OPACITY = 0.6; // a stale row dims at once, then further with age
const STALE_MIN_OPACITY = 0.25;
const STALE_FADE_S = 120; // from the first to the last step of dimming

/**
 * @param {object} state the dashboard's state (`topics`: topic -> {seq, data}, counters)
 * @param {object} el the page's elements the board writes into
 */
export function createBoard(state, el) {
  const rows = new Map(); // symbol -> row view
  const dirty = new Set();
  let renderQueued = false;
  let onRender = null;

  /* A topic of `symbol` changed (`data` is what the message carried). `kind` is the
   * update's: a "reset" rebuilt the topic after a loss (or, with `data` empty, the
   * server no longer has it), so what was drawn from before it is dropped. */
  function noteChange(channel, symbol, kind, data) {
    const row = rowFor(symbol);
    row.updatedMs = Date.now();
    if (kind === "reset") {
      if (channel === "trade") {
        row.spark = []; // the trend from before the loss would join two different streams
        row.tradeKey = "";
      }
      if (channel === "quote" || channel === "ticker") row.decimals = 0; // a new scale, maybe
    }
    if (channel === "trade" && data.price != null && (kind === "delta" || row.spark.length === 0)) {
      row.spark.push(Number(data.price));
      if (row.spark.length > SPARK_POINTS) row.spark.shift();
    }
    dirty.add(symbol);
    scheduleRender();
  }

  function scheduleRender() {
    // A hidden tab gets no frames: changes wait (one entry per symbol) until it shows.
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(render);
  }

  function render() {
    renderQueued = false;
    for (const symbol of dirty) {
      const row = rows.get(symbol);
      if (row === undefined) continue;
      if (holdsNothing(symbol)) removeRow(row);
      else renderRow(row);
    }
    dirty.clear();
    el.empty.hidden = rows.size > 0;
    renderStats();
    renderStale();
    onRender?.();
  }

  function holdsNothing(symbol) {
    return !["quote.", "ticker.", "trade."].some((channel) => state.topics[channel + symbol]);
  }

  function removeRow(row) {
    // A reset said the server has none of this symbol's topics any more.
    row.tr.remove();
    rows.delete(row.symbol);
  }

  function rowFor(symbol) {
    let row = rows.get(symbol);
    if (row) return row;
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
    tr.tabIndex = 0; // a row opens the symbol view: by click, or Enter from the keyboard
    tr.setAttribute("aria-label", symbol + ": open the symbol view");
    const name = document.createElement("td");
    name.className = "sym";
    const [base, quote] = symbol.split("-");
    name.append(base || symbol);
    if (quote) {
      const ccy = document.createElement("span");
      ccy.className = "quote-ccy";
      ccy.textContent = "-" + quote;
      name.append(ccy);
    }
    tr.append(name);
    const cells = {};
    for (const field of FIELDS) {
      const td = document.createElement("td");
      td.dataset.field = field;
      td.textContent = "—";
      cells[field] = td;
      tr.append(td);
    }
    const sparkCell = document.createElement("td");
    sparkCell.className = "spark";
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 120 22");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "spark flat");
    const line = document.createElementNS(SVG_NS, "polyline");
    svg.append(line);
    sparkCell.append(svg);
    tr.append(sparkCell);
    const trade = document.createElement("td");
    trade.className = "trade";
    trade.dataset.field = "trade";
    tr.append(trade);
    row = { symbol, tr, cells, svg, line, trade, shown: {}, values: {}, decimals: 0, spark: [],
      tradeKey: "", updatedMs: Date.now() };
    rows.set(symbol, row);
    // Keep the board sorted by symbol.
    const after = [...rows.keys()].sort().find((other) => other > symbol);
    el.rows.insertBefore(tr, after ? rows.get(after).tr : null);
    return row;
  }

  function data(topic) {
    const held = state.topics[topic];
    return held ? held.data : {};
  }

  function renderRow(row) {
    const quote = data("quote." + row.symbol);
    const stats = data("ticker." + row.symbol);
    const trade = data("trade." + row.symbol);
    row.decimals = Math.min(MAX_DECIMALS, Math.max(row.decimals,
      decimalsOf(quote.bid), decimalsOf(quote.ask), decimalsOf(stats.last)));
    const d = row.decimals;
    setCell(row, "bid", price(quote.bid, d), quote.bid);
    setCell(row, "ask", price(quote.ask, d), quote.ask);
    // Venues can disagree for a moment: a crossed or locked consolidated quote is shown
    // as it is, marked, and explained in the cell's title (and in the symbol view).
    const touch = touchState(quote.bid, quote.ask);
    setCell(row, "spread", touch.spread === null ? "—" : touch.spread.toFixed(d), null,
      touch.state === "normal" ? "flat" : touch.state);
    row.cells.spread.title = touch.state === "normal" ? "" : touch.explain;
    // The row says it too (a phone has no spread column).
    if (touch.state === "normal") delete row.tr.dataset.touch;
    else row.tr.dataset.touch = touch.state;
    setCell(row, "last", price(stats.last, d), stats.last);
    const move = changeView(stats.change, stats.open);
    setCell(row, "change", stats.change == null ? "—" : signed(price(stats.change, d)), stats.change,
      move.direction);
    setCell(row, "pct", move.text, move.pct, move.direction);
    setCell(row, "volume", stats.volume != null ? grouped(stats.volume, 4) : "—", null);
    renderSpark(row);
    renderTrade(row, trade, d);
  }

  function setCell(row, field, text, value, colour) {
    const td = row.cells[field];
    if (colour !== undefined && row.shown[field + ":colour"] !== colour) {
      td.classList.remove("up", "down", "flat", "crossed", "locked");
      td.classList.add(colour);
      row.shown[field + ":colour"] = colour;
    }
    if (row.shown[field] === text) return;
    const before = row.values[field];
    row.shown[field] = text;
    row.values[field] = value;
    td.textContent = text;
    if (before == null || value == null) return;
    flash(td, Number(value) >= Number(before) ? "flash-up" : "flash-down");
  }

  function renderSpark(row) {
    const points = row.spark;
    if (points.length === 0) {
      row.line.setAttribute("points", "");
      row.svg.setAttribute("class", "spark flat");
      return;
    }
    let low = Infinity;
    let high = -Infinity;
    for (const p of points) {
      if (p < low) low = p;
      if (p > high) high = p;
    }
    const range = high - low || 1;
    const step = points.length > 1 ? 120 / (points.length - 1) : 0;
    const coords = points.map((p, i) =>
      (i * step).toFixed(1) + "," + (20 - ((p - low) / range) * 18).toFixed(1));
    if (points.length === 1) coords.push("120," + coords[0].split(",")[1]);
    row.line.setAttribute("points", coords.join(" "));
    const trend = points[points.length - 1] - points[0];
    row.svg.setAttribute("class", "spark " + (trend > 0 ? "up" : trend < 0 ? "down" : "flat"));
  }

  function renderTrade(row, trade, decimals) {
    if (trade.price == null) {
      // No trade held (a reset to a stream without one): nothing from before stays.
      row.tradeKey = "";
      row.trade.replaceChildren();
      return;
    }
    const key = trade.id + "|" + trade.price;
    if (row.tradeKey === key) return;
    row.tradeKey = key;
    row.trade.replaceChildren();
    const side = document.createElement("span");
    side.className = trade.side === "buy" ? "buy" : "sell";
    side.textContent = (trade.side === "buy" ? "▲ " : "▼ ") + grouped(trade.size, 4);
    const at = document.createTextNode(" @ " + price(trade.price, decimals) + " ");
    const venue = document.createElement("span");
    venue.className = "venue";
    venue.textContent = trade.venue || "";
    row.trade.append(side, at, venue);
    flash(row.trade, trade.side === "buy" ? "flash-up" : "flash-down");
  }

  /* Rows dim while the stream is not live: at once, then further with the age of each
   * row's last update (its title says the age). Live again: all bright. */
  function renderStale() {
    const live = state.status === "live";
    const now = Date.now();
    for (const row of rows.values()) {
      if (live) {
        if (row.tr.dataset.stale === undefined) continue;
        delete row.tr.dataset.stale;
        row.tr.style.removeProperty("--stale-opacity");
        row.tr.removeAttribute("title");
        continue;
      }
      const ageS = Math.max(0, (now - row.updatedMs) / 1000);
      row.tr.dataset.stale = "";
      row.tr.style.setProperty("--stale-opacity", staleOpacity(ageS).toFixed(2));
      row.tr.title = "stale: last update " + age(ageS) + " ago";
    }
  }

  /* The header: connection state, position, reconnects, resyncs, resets, latency. */
  function renderStats() {
    el.conn.dataset.status = state.status;
    el.connText.textContent = STATUS_TEXT[state.status] || state.status;
    let newest = 0;
    for (const row of rows.values()) newest = Math.max(newest, row.updatedMs);
    const stale = state.status !== "live" && newest > 0;
    el.detail.textContent = state.detail + (stale ?
      (state.detail ? " · " : "") + "prices are stale: last update " + age((Date.now() - newest) / 1000) + " ago" : "");
    el.position.textContent = state.position || "—";
    el.reconnects.textContent = String(state.reconnects);
    el.resyncs.textContent = String(state.resyncs);
    el.resets.textContent = String(state.resets);
    el.latency.textContent = state.latencyMs === null ? "—" : ms(state.latencyMs);
    el.latencyP50.textContent = state.latencyP50Ms === null ? "—" : ms(state.latencyP50Ms);
  }

  return {
    noteChange, scheduleRender, renderStats, renderStale,
    /** @param {() => void} fn called after each frame's drawing (the symbol view's). */
    afterRender(fn) { onRender = fn; },
  };
}

const STATUS_TEXT = { "signed-out": "signed out" };

/** How faded a stale row is after `ageS` seconds without an update. */
export function staleOpacity(ageS) {
  const faded = STALE_MAX_OPACITY - (STALE_MAX_OPACITY - STALE_MIN_OPACITY) * (ageS / STALE_FADE_S);
  return Math.max(STALE_MIN_OPACITY, Math.min(STALE_MAX_OPACITY, faded));
}

/**
 * The day's change as shown: percent text, and a direction that follows what is shown
 * (a change that rounds to 0.00% is flat: neither red nor green).
 * @param {string | null | undefined} change @param {string | null | undefined} open
 * @returns {{text: string, pct: number | null, direction: "up" | "down" | "flat"}}
 */
export function changeView(change, open) {
  if (change == null) return { text: "—", pct: null, direction: "flat" };
  const opened = open != null ? Number(open) : 0;
  const pct = opened ? (Number(change) / opened) * 100 : null;
  const text = pct === null ? "—" : percent(pct);
  let direction = Number(change) > 0 ? "up" : Number(change) < 0 ? "down" : "flat";
  if (text === "0.00%") direction = "flat";
  return { text, pct, direction };
}

/**
 * Whether the consolidated touch is normal, locked (bid = ask) or crossed (bid > ask),
 * with the spread and a sentence that explains it.
 * @param {string | null | undefined} bid @param {string | null | undefined} ask
 */
export function touchState(bid, ask) {
  if (bid == null || ask == null) return { state: "normal", spread: null, bps: null, explain: "" };
  const spread = Number(ask) - Number(bid);
  const mid = (Number(ask) + Number(bid)) / 2;
  const bps = mid ? (spread / mid) * 10000 : null;
  if (spread > 0) return { state: "normal", spread, bps, explain: "" };
  if (spread === 0) {
    return { state: "locked", spread, bps, explain:
      "Locked: the best bid equals the best ask. The consolidated quote takes each side " +
      "from the best venue, and two venues quote the same price on opposite sides; " +
      "a trade at that price usually clears it." };
  }
  return { state: "crossed", spread, bps, explain:
    "Crossed: the best bid is above the best ask. The consolidated quote takes each side " +
    "from the best venue, and for a moment one venue bids more than another offers; " +
    "buying on one and selling on the other (arbitrage) closes it." };
}

function flash(td, name) {
  td.classList.remove("flash-up", "flash-down");
  void td.offsetWidth; // restart the animation
  td.classList.add(name);
}

function decimalsOf(text) {
  if (text == null) return 0;
  const dot = String(text).indexOf(".");
  return dot < 0 ? 0 : String(text).length - dot - 1;
}

function price(text, decimals) {
  if (text == null) return "—";
  const negative = String(text).startsWith("-");
  const [whole, fraction = ""] = String(text).replace("-", "").split(".");
  const padded = decimals > 0 ? "." + fraction.padEnd(decimals, "0") : "";
  return (negative ? "-" : "") + group(whole) + padded;
}

function grouped(text, maxDecimals) {
  const [whole, fraction = ""] = String(text).split(".");
  const kept = fraction.slice(0, maxDecimals);
  return group(whole) + (kept ? "." + kept : "");
}

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

function signed(text) {
  return text.startsWith("-") || Number(text.replace(/,/g, "")) === 0 ? text : "+" + text;
}

function percent(value) {
  const text = Math.abs(value).toFixed(2);
  if (text === "0.00") return "0.00%";
  return (value > 0 ? "+" : "-") + text + "%";
}

function age(seconds) {
  return seconds < 60 ? Math.floor(seconds) + " s" : Math.floor(seconds / 60) + " min";
}

export { price, grouped, decimalsOf, signed };

function ms(value) {
  return (value < 10 ? value.toFixed(1) : Math.round(value).toString()) + " ms";
}
