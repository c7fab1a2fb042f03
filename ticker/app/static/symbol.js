/* The symbol view: one symbol's consolidated quote with its crossed or locked state
 * explained, the composite depth ladder (book.<SYM>: per price, the size summed over
 * venues, and each venue's part from book@<venue>.<SYM>; the per-venue columns are
 * hidden on phones, the composite size's tooltip lists them), each venue's BBO
 * (quote@<venue>.<SYM>, the venues at the best bid and ask marked), each venue's last
 * trade, and a tape of the last trades. It reads the dashboard's state (`view`,
 * `topics`, `trades`, `venues`) and draws it; it never touches a stream (dashboard.js
 * opens and closes the view's feed).
 */

import { decimalsOf, grouped, price, touchState } from "./board.js";

const LADDER_LEVELS = 10; // per side
const SIZE_DECIMALS = 4; // sizes are shown to at most this many decimals (cut, not rounded)

/**
 * @param {object} state the dashboard's state
 * @param {HTMLElement} root the view's <section>
 */
export function createSymbolView(state, root) {
  const $ = (name) => root.querySelector("[data-part=" + name + "]");
  const parts = {
    title: $("title"),
    status: $("status"),
    bid: $("bid"),
    ask: $("ask"),
    spread: $("spread"),
    touch: $("touch"),
    explain: $("explain"),
    ladder: $("ladder"),
    ladderHead: $("ladder-head"),
    ladderNote: $("ladder-note"),
    vquotes: $("vquotes"),
    venues: $("venues"),
    tape: $("tape"),
  };
  let closeHandler = null;
  $("close").addEventListener("click", () => close());

  function close() {
    closeHandler?.();
  }

  function render() {
    const view = state.view;
    root.hidden = view === null;
    document.body.classList.toggle("viewing", view !== null);
    if (view === null) return;
    const symbol = view.symbol;
    parts.title.textContent = symbol;
    const signedOut = state.status === "signed-out";
    const status = signedOut ? "signed out" : view.status;
    parts.status.textContent = status;
    parts.status.dataset.status = signedOut ? "signed-out" : view.status;
    parts.status.title = view.detail;
    // Dim with the page's rows when either stream is not live.
    const stale = signedOut || state.status !== "live" || view.status !== "live";
    if (stale) root.dataset.stale = "";
    else delete root.dataset.stale;

    const held = state.topics["quote." + symbol];
    const quote = held ? held.data : {};
    const book = view.book || { bids: [], asks: [] };
    const venueQuotes = Object.values(view.venueQuotes);
    const decimals = Math.max(decimalsOf(quote.bid), decimalsOf(quote.ask),
      ...venueQuotes.map((q) => Math.max(decimalsOf(q.bid), decimalsOf(q.ask))),
      ...book.bids.slice(0, LADDER_LEVELS).map(([p]) => decimalsOf(p)),
      ...book.asks.slice(0, LADDER_LEVELS).map(([p]) => decimalsOf(p)));
    renderTouch(quote, decimals);
    renderLadder(book, decimals, view);
    renderVenueQuotes(view.venueQuotes, decimals);
    renderVenues(state.venues[symbol] || {}, decimals);
    renderTape(state.trades[symbol] || [], decimals);
  }

  function renderTouch(quote, decimals) {
    parts.bid.textContent = quote.bid == null ? "—" : price(quote.bid, decimals) + sizeText(quote.bid_size);
    parts.ask.textContent = quote.ask == null ? "—" : price(quote.ask, decimals) + sizeText(quote.ask_size);
    const touch = touchState(quote.bid, quote.ask);
    parts.spread.textContent = touch.spread === null ? "—" :
      touch.spread.toFixed(decimals) + (touch.bps === null ? "" : " (" + bpsText(touch.bps) + ")");
    parts.touch.dataset.state = touch.state;
    parts.explain.textContent = touch.explain;
    parts.explain.hidden = touch.state === "normal";
  }

  function renderLadder(book, decimals, view) {
    // One price axis, highest first: asks above, bids below; in a crossed book some bids
    // sit above some asks, and the prices between the two touches are marked.
    const bids = book.bids.slice(0, LADDER_LEVELS);
    const asks = book.asks.slice(0, LADDER_LEVELS);
    const levels = new Map();
    for (const [p, size] of bids) levels.set(p, { price: p, bid: size, ask: null });
    for (const [p, size] of asks) {
      const key = [...levels.keys()].find((k) => Number(k) === Number(p));
      if (key !== undefined) levels.get(key).ask = size;
      else levels.set(p, { price: p, bid: null, ask: size });
    }
    const rows = [...levels.values()].sort((a, b) => Number(b.price) - Number(a.price));
    const bestBid = bids.length ? Number(bids[0][0]) : null;
    const bestAsk = asks.length ? Number(asks[0][0]) : null;
    const overlap = bestBid !== null && bestAsk !== null && bestBid >= bestAsk;
    let largest = 0;
    let sizeDecimals = 0;
    for (const row of rows) {
      largest = Math.max(largest, Number(row.bid || 0), Number(row.ask || 0));
      sizeDecimals = Math.max(sizeDecimals, decimalsOf(row.bid), decimalsOf(row.ask));
    }
    sizeDecimals = Math.min(sizeDecimals, SIZE_DECIMALS);
    // Each venue's size at each shown price (book@<venue>.<SYM>), keyed by the number.
    const names = Object.keys(view.venueBooks).sort();
    const venueLevels = names.map((name) => ({
      bid: new Map(view.venueBooks[name].bids.map(([p, size]) => [Number(p), size])),
      ask: new Map(view.venueBooks[name].asks.map(([p, size]) => [Number(p), size])),
    }));
    const venueSizes = (row, side) => names.map((name, i) =>
      row[side] === null ? null : venueLevels[i][side].get(Number(row.price)) ?? null);
    renderLadderHead(names);
    const trs = rows.map((row) => {
      const tr = document.createElement("tr");
      const p = Number(row.price);
      if (overlap && p >= bestAsk && p <= bestBid) tr.className = "overlap";
      const bidParts = venueSizes(row, "bid");
      const askParts = venueSizes(row, "ask");
      tr.append(
        ...names.map((name, i) => venueCell(name, bidParts[i], "bid", sizeDecimals)),
        sizeCell(row.bid, largest, "bid", sizeDecimals, names, bidParts),
        priceCell(row, decimals),
        sizeCell(row.ask, largest, "ask", sizeDecimals, names, askParts),
        ...names.map((name, i) => venueCell(name, askParts[i], "ask", sizeDecimals)));
      return tr;
    });
    parts.ladder.replaceChildren(...trs);
    if (view.book === null) {
      parts.ladderNote.textContent = view.status === "live" ? "No book for this symbol." : "Waiting for the book…";
    } else if (overlap) {
      parts.ladderNote.textContent = (bestBid === bestAsk ? "Locked" : "Crossed") +
        " book: the marked prices are bid on one venue and offered on another at once.";
    } else {
      parts.ladderNote.textContent = "";
    }
  }

  function renderLadderHead(names) {
    // Bid venues, bid, price, ask, ask venues: each venue's part stands beside its side.
    const key = names.join(",");
    if (parts.ladderHead.dataset.venues === key) return;
    parts.ladderHead.dataset.venues = key;
    const th = (text, className, title) => {
      const el = document.createElement("th");
      el.textContent = text;
      if (className) el.className = className;
      if (title) el.title = title;
      return el;
    };
    const venueThs = (side) => names.map((name) => th(name, "vsize " + side, name + "'s " + side + " size"));
    parts.ladderHead.replaceChildren(tr([
      ...venueThs("bid"), th("Bid size", "size bid"), th("Price", "price"), th("Ask size", "size ask"),
      ...venueThs("ask"),
    ]));
  }

  function venueCell(name, size, side, decimals) {
    const td = document.createElement("td");
    td.className = "vsize " + side;
    td.dataset.venue = name;
    if (size !== null) {
      td.textContent = sizeAligned(size, decimals);
      td.title = name + ": " + grouped(size, SIZE_DECIMALS);
    }
    return td;
  }

  function renderVenueQuotes(quotes, decimals) {
    // Each venue's BBO; the venues at the best bid (highest) and best ask (lowest) over
    // the venues shown are marked. Computed from the same feed as the rows, so the marks
    // never disagree with them.
    const names = Object.keys(quotes).sort();
    const bids = names.map((n) => quotes[n].bid).filter((p) => p != null).map(Number);
    const asks = names.map((n) => quotes[n].ask).filter((p) => p != null).map(Number);
    const bestBid = bids.length ? Math.max(...bids) : null;
    const bestAsk = asks.length ? Math.min(...asks) : null;
    parts.vquotes.replaceChildren(...names.map((name) => {
      const q = quotes[name];
      const row = tr([
        cell(name, "venue"),
        quoteCell(q.bid, decimals, "bid", q.bid != null && Number(q.bid) === bestBid),
        cell(q.bid_size == null ? "" : grouped(q.bid_size, SIZE_DECIMALS), "qsize"),
        quoteCell(q.ask, decimals, "ask", q.ask != null && Number(q.ask) === bestAsk),
        cell(q.ask_size == null ? "" : grouped(q.ask_size, SIZE_DECIMALS), "qsize"),
      ]);
      row.dataset.venue = name;
      return row;
    }));
    if (names.length === 0) parts.vquotes.replaceChildren(tr([cell("no venue quotes yet", "muted", 5)]));
  }

  function quoteCell(value, decimals, side, best) {
    const td = cell(value == null ? "—" : price(value, decimals), side);
    if (best) {
      td.classList.add("best");
      td.title = "at the consolidated best " + side;
    }
    return td;
  }

  function priceCell(row, decimals) {
    const td = document.createElement("td");
    td.className = "price " + (row.bid !== null && row.ask !== null ? "both" : row.bid !== null ? "bid" : "ask");
    td.textContent = price(row.price, decimals);
    return td;
  }

  function sizeCell(size, largest, side, decimals, names, venueSizes) {
    const td = document.createElement("td");
    td.className = "size " + side;
    if (size === null) return td;
    td.textContent = sizeAligned(size, decimals);
    // Each venue's part, also where its columns are hidden (phones).
    const shares = names.flatMap((name, i) =>
      venueSizes[i] === null ? [] : [name + " " + grouped(venueSizes[i], SIZE_DECIMALS)]);
    if (shares.length) td.title = shares.join(" + ");
    // The bar's length is the level's share of the largest shown (CSSOM: allowed by the
    // page's policy, unlike an inline style attribute).
    td.style.setProperty("--bar", ((Number(size) / (largest || 1)) * 100).toFixed(1) + "%");
    return td;
  }

  function renderVenues(venues, decimals) {
    const names = Object.keys(venues).sort();
    parts.venues.replaceChildren(...names.map((name) => {
      const trade = venues[name];
      return tr([
        cell(name, "venue"),
        cell(price(trade.price, decimals), trade.side === "buy" ? "buy" : "sell"),
        cell(grouped(trade.size, 4)),
        cell(timeText(trade.venue_ts), "muted"),
      ]);
    }));
    if (names.length === 0) parts.venues.replaceChildren(tr([cell("no trades yet", "muted", 4)]));
  }

  function renderTape(trades, decimals) {
    parts.tape.replaceChildren(...trades.map((trade) => tr([
      cell(timeText(trade.venue_ts), "muted"),
      cell(trade.side === "buy" ? "buy" : "sell", trade.side === "buy" ? "buy" : "sell"),
      cell(price(trade.price, decimals)),
      cell(grouped(trade.size, 4)),
      cell(trade.venue || "", "venue"),
    ])));
    if (trades.length === 0) parts.tape.replaceChildren(tr([cell("no trades yet", "muted", 5)]));
  }

  return {
    render,
    close,
    /** @param {() => void} fn called when the user closes the view. */
    onClose(fn) { closeHandler = fn; },
  };
}

function bpsText(bps) {
  // Basis points of the mid: two decimals while small, so a tiny cross is not "-0.0".
  const size = Math.abs(bps);
  return (size >= 10 ? bps.toFixed(1) : size >= 1 || size === 0 ? bps.toFixed(2) : bps.toPrecision(2)) + " bps";
}

/** A size cut to `decimals` and padded to them, so a column aligns on the point. */
function sizeAligned(size, decimals) {
  const [whole, fraction = ""] = grouped(size, decimals).split(".");
  return decimals > 0 ? whole + "." + fraction.padEnd(decimals, "0") : whole;
}

function sizeText(size) {
  return size == null ? "" : " × " + grouped(size, 4);
}

function tr(cells) {
  const row = document.createElement("tr");
  row.append(...cells);
  return row;
}

function cell(text, className, span) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  if (span) td.colSpan = span;
  return td;
}

function timeText(tsUs) {
  if (tsUs == null) return "";
  return new Date(Number(tsUs) / 1000).toISOString().slice(11, 23);
}
