/* The board: one row per symbol with bid, ask, spread, last, change, volume, a sparkline
 * of recent trade prices and the last trade; cells flash when they change. It reads the
 * dashboard's state and draws it once per animation frame; it never touches the stream.
 * Prices stay the exact decimal strings the server sent: padded, grouped, never rounded.
 */

const SPARK_POINTS = 120;
const MAX_DECIMALS = 9;
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const FIELDS = ["bid", "ask", "spread", "last", "change", "pct", "volume"];

/**
 * @param {object} state the dashboard's state (`topics`: topic -> {seq, data}, counters)
 * @param {object} el the page's elements the board writes into
 */
export function createBoard(state, el) {
  const rows = new Map(); // symbol -> row view
  const dirty = new Set();
  let renderQueued = false;

  /* A topic of `symbol` changed (`data` is what the message carried). */
  function noteChange(channel, symbol, snapshot, data) {
    const row = rowFor(symbol);
    if (channel === "trade" && data.price != null && (!snapshot || row.spark.length === 0)) {
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
    for (const symbol of dirty) renderRow(rows.get(symbol));
    dirty.clear();
    el.empty.hidden = rows.size > 0;
    renderStats();
  }

  function rowFor(symbol) {
    let row = rows.get(symbol);
    if (row) return row;
    const tr = document.createElement("tr");
    tr.dataset.symbol = symbol;
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
      tradeKey: "" };
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
    const spread = quote.bid != null && quote.ask != null ?
      Number(quote.ask) - Number(quote.bid) : null;
    // Venues can disagree for a moment: a crossed consolidated quote is shown as it is.
    setCell(row, "spread", spread === null ? "—" : spread.toFixed(d), null,
      spread !== null && spread < 0 ? "crossed" : "flat");
    setCell(row, "last", price(stats.last, d), stats.last);
    const change = stats.change != null ? Number(stats.change) : null;
    const direction = change === null || change === 0 ? "flat" : change > 0 ? "up" : "down";
    setCell(row, "change", change === null ? "—" : signed(price(stats.change, d)), stats.change,
      direction);
    const open = stats.open != null ? Number(stats.open) : 0;
    const pct = change !== null && open ? (change / open) * 100 : null;
    setCell(row, "pct", pct === null ? "—" : percent(pct), pct, direction);
    setCell(row, "volume", stats.volume != null ? grouped(stats.volume, 4) : "—", null);
    renderSpark(row);
    renderTrade(row, trade, d);
  }

  function setCell(row, field, text, value, colour) {
    const td = row.cells[field];
    if (colour !== undefined && row.shown[field + ":colour"] !== colour) {
      td.classList.remove("up", "down", "flat", "crossed");
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
    if (points.length === 0) return;
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
    if (trade.price == null) return;
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

  /* The header: connection state, position, reconnects, resyncs, latency. */
  function renderStats() {
    el.conn.dataset.status = state.status;
    el.connText.textContent = state.status;
    el.detail.textContent = state.detail;
    el.position.textContent = state.position || "—";
    el.reconnects.textContent = String(state.reconnects);
    el.resyncs.textContent = state.resets ?
      state.resyncs + " · " + state.resets + " reset" : String(state.resyncs);
    el.latency.textContent = state.latencyMs === null ? "—" :
      ms(state.latencyMs) + (state.latencyP50Ms === null ? "" : " · p50 " + ms(state.latencyP50Ms));
  }

  return { noteChange, scheduleRender, renderStats };
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

function ms(value) {
  return (value < 10 ? value.toFixed(1) : Math.round(value).toString()) + " ms";
}
