/* ticker's messages as the client sees them, from both wire forms: a WebSocket frame
 * (concatenated msgpack arrays) or SSE events of JSON text, grouped into the units a
 * client resumes by (docs/PROTOCOL.md, "Resume points"). Positions have the text form
 * "epoch-offset". Pure and bounded; malformed input raises ProtocolError.
 */

import { decodeAll, MsgpackError } from "./msgpack.js";
import { bigData } from "./nanos.js";

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;
/** Longest SSE event, and most bytes of one SSE burst (a WebSocket burst is one frame). */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/** Bytes or events this client cannot read: the feed stops and raises it. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ProtocolError";
  }
}

/**
 * @typedef {{epoch: number, offset: number}} Position
 * @typedef {{type: "data", snapshot: boolean, topic: string, seq: number, offset: number,
 *   ts: number, data: Record<string, any>}} DataMessage
 * @typedef {{type: "hello", version: number, epoch: number, offset: number,
 *   heartbeatS: number, compression: string | null, zstdDictionary: number | null}} Hello
 * @typedef {{type: "heartbeat", epoch: number, offset: number, ts: number}} Heartbeat
 * @typedef {{type: "reset", epoch: number, offset: number, reason: string}} Reset
 * @typedef {{type: "error", code: number, message: string}} ErrorMessage
 * @typedef {DataMessage | Hello | Heartbeat | Reset | ErrorMessage} ServerMessage
 * @typedef {{type: "end", reason: string, last: string}} StreamEnd
 */

/** @param {Position} p */
export function positionText(p) {
  return `${p.epoch}-${p.offset}`;
}

/**
 * @param {string} text "epoch-offset"
 * @returns {Position}
 * @throws {ProtocolError}
 */
export function parsePosition(text) {
  const match = /^(\d{1,16})-(\d{1,16})$/.exec(String(text));
  const epoch = match === null ? NaN : Number(match[1]);
  const offset = match === null ? NaN : Number(match[2]);
  // Every position on the wire is below 2^53 (docs/PROTOCOL.md, "Numbers").
  if (!Number.isSafeInteger(epoch) || !Number.isSafeInteger(offset)) {
    throw new ProtocolError(`bad position ${JSON.stringify(String(text).slice(0, 64))}`);
  }
  return { epoch, offset };
}

/** @param {unknown} v @returns {v is number} */
const isInt = (v) => typeof v === "number" && Number.isSafeInteger(v);

/** @param {boolean} ok @param {string} what */
function require(ok, what) {
  if (!ok) throw new ProtocolError(`ill-formed ${what} message`);
}

/**
 * One server message from its msgpack array. Elements past the known ones are ignored
 * (fields are only ever added at the end). Prices and sizes become BigInt nanos.
 * @param {unknown} obj
 * @returns {ServerMessage}
 * @throws {ProtocolError}
 */
export function fromArray(obj) {
  if (!Array.isArray(obj) || obj.length === 0 || typeof obj[0] !== "string") {
    throw new ProtocolError("a message must be a msgpack array starting with its type");
  }
  const kind = obj[0];
  if (kind === "s" || kind === "d") {
    require(obj.length >= 6, "data");
    const [, topic, seq, offset, ts, data] = obj;
    const ok = typeof topic === "string" && data !== null && typeof data === "object" && !Array.isArray(data);
    require(ok && isInt(seq) && isInt(offset) && isInt(ts), "data");
    let big;
    try {
      big = bigData(data);
    } catch (err) {
      throw new ProtocolError(`ill-formed data message: ${/** @type {Error} */ (err).message}`);
    }
    return { type: "data", snapshot: kind === "s", topic, seq, offset, ts, data: big };
  }
  if (kind === "h") {
    require(obj.length >= 6 && obj.slice(1, 4).every(isInt), "hello");
    require(typeof obj[4] === "number" && (obj[5] === null || obj[5] === "zstd"), "hello");
    const dictionary = obj.length > 6 ? obj[6] : null;
    require(dictionary === null || isInt(dictionary), "hello");
    return { type: "hello", version: obj[1], epoch: obj[2], offset: obj[3], heartbeatS: obj[4],
      compression: obj[5], zstdDictionary: dictionary };
  }
  if (kind === "hb") {
    require(obj.length >= 4 && obj.slice(1, 4).every(isInt), "heartbeat");
    return { type: "heartbeat", epoch: obj[1], offset: obj[2], ts: obj[3] };
  }
  if (kind === "r") {
    require(obj.length >= 4 && isInt(obj[1]) && isInt(obj[2]) && typeof obj[3] === "string", "reset");
    return { type: "reset", epoch: obj[1], offset: obj[2], reason: obj[3] };
  }
  if (kind === "e") {
    require(obj.length >= 3 && isInt(obj[1]) && typeof obj[2] === "string", "error");
    return { type: "error", code: obj[1], message: obj[2] };
  }
  throw new ProtocolError(`unknown server message type ${JSON.stringify(kind.slice(0, 64))}`);
}

/**
 * Every message of one WebSocket frame: one unit.
 * @param {Uint8Array} frame
 * @returns {ServerMessage[]}
 * @throws {ProtocolError}
 */
export function decodeFrame(frame) {
  let values;
  try {
    values = decodeAll(frame);
  } catch (err) {
    if (err instanceof MsgpackError) throw new ProtocolError(`invalid msgpack in frame: ${err.message}`);
    throw err;
  }
  return values.map(fromArray);
}

/** @typedef {{event: string, data: string, id: string | null}} SseEvent */

/**
 * An incremental text/event-stream parser (the WHATWG rules: \n, \r\n or \r line ends,
 * ":" comments, "field: value", a blank line dispatches). Feed it decoded text.
 */
export class EventStreamParser {
  /** @param {number} maxEventBytes the longest event accepted. */
  constructor(maxEventBytes = MAX_EVENT_BYTES) {
    this.maxEventBytes = maxEventBytes;
    this.text = "";
    this.event = "";
    /** @type {string[]} */
    this.data = [];
    /** @type {string | null} */
    this.id = null;
    this.size = 0;
  }

  /**
   * Events completed by `chunk`.
   * @param {string} chunk
   * @returns {SseEvent[]}
   * @throws {ProtocolError} an event longer than allowed.
   */
  feed(chunk) {
    const text = this.text + chunk;
    /** @type {SseEvent[]} */
    const events = [];
    let start = 0;
    for (;;) {
      const end = lineEnd(text, start);
      if (end < 0) break;
      const line = text.slice(start, end);
      start = end + (text.startsWith("\r\n", end) ? 2 : 1);
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    this.text = text.slice(start);
    if (this.size + this.text.length > this.maxEventBytes) {
      throw new ProtocolError(`an event longer than ${this.maxEventBytes} bytes`);
    }
    return events;
  }

  /** @param {string} line @returns {SseEvent | null} */
  line(line) {
    if (line === "") return this.dispatch();
    this.size += line.length;
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") this.event = value;
    else if (name === "data") this.data.push(value);
    else if (name === "id" && !value.includes("\0")) this.id = value;
    return null; // `retry` and unknown fields: the feed has its own backoff
  }

  dispatch() {
    const { event, data, id } = this;
    this.event = "";
    this.data = [];
    this.id = null;
    this.size = 0;
    if (data.length === 0) return null;
    return { event: event || "message", data: data.join("\n"), id };
  }
}

/** @param {string} text @param {number} start */
function lineEnd(text, start) {
  const newline = text.indexOf("\n", start);
  const limit = newline >= 0 ? newline : text.length;
  const ret = text.indexOf("\r", start);
  if (ret >= 0 && ret < limit) return ret + 1 < text.length ? ret : -1;
  return newline;
}

/** @param {string} data @returns {Record<string, any>} */
function object(data) {
  const obj = JSON.parse(data);
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) throw new TypeError("data is not a JSON object");
  return obj;
}

/** @param {Record<string, any>} obj @param {string} key */
function int(obj, key) {
  const value = obj[key];
  if (!isInt(value)) throw new TypeError(`${key} is not an integer`);
  return value;
}

/**
 * One SSE event as a message (null: an event this client does not know). Data stays in
 * the JSON form: prices and sizes as exact decimal strings.
 * @param {SseEvent} event
 * @returns {ServerMessage | StreamEnd | null}
 */
export function fromSseEvent(event) {
  const name = event.event;
  if (name === "snapshot" || name === "delta") {
    const obj = object(event.data);
    const data = obj.data;
    if (typeof obj.topic !== "string" || data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new TypeError("not a data message");
    }
    return { type: "data", snapshot: name === "snapshot", topic: obj.topic, seq: int(obj, "seq"),
      offset: int(obj, "offset"), ts: int(obj, "ts"), data };
  }
  if (name === "heartbeat") {
    const obj = object(event.data);
    return { type: "heartbeat", epoch: int(obj, "epoch"), offset: int(obj, "offset"), ts: int(obj, "ts") };
  }
  if (name === "hello") {
    const obj = object(event.data);
    const dictionary = obj.zstd_dictionary ?? null;
    return { type: "hello", version: obj.version ?? PROTOCOL_VERSION, epoch: int(obj, "epoch"),
      offset: int(obj, "offset"), heartbeatS: Number(obj.heartbeat_s ?? 0), compression: null,
      zstdDictionary: dictionary };
  }
  if (name === "reset") {
    const obj = object(event.data);
    return { type: "reset", epoch: int(obj, "epoch"), offset: int(obj, "offset"), reason: String(obj.reason) };
  }
  if (name === "error") {
    const obj = object(event.data);
    return { type: "error", code: int(obj, "code"), message: String(obj.message) };
  }
  if (name === "end") {
    const obj = object(event.data);
    return { type: "end", reason: String(obj.reason ?? ""), last: String(obj.last ?? "") };
  }
  return null;
}

/**
 * ticker's SSE events as messages grouped into resumable units: a reset and the
 * snapshots of a burst carry no `id:`, the heartbeat ending the burst does, so they
 * travel as one unit, like a burst in one WebSocket frame.
 */
export class SseDecoder {
  /** @param {number} maxEventBytes */
  constructor(maxEventBytes = MAX_EVENT_BYTES) {
    this.parser = new EventStreamParser(maxEventBytes);
    this.maxBurstBytes = maxEventBytes;
    /** @type {ServerMessage[]} */
    this.burst = [];
    this.burstBytes = 0;
  }

  /**
   * Units (and the stream's end, if it came) completed by `chunk` of text.
   * @param {string} chunk
   * @returns {(ServerMessage[] | StreamEnd)[]}
   * @throws {ProtocolError} a malformed event, or a burst over the byte bound.
   */
  feed(chunk) {
    /** @type {(ServerMessage[] | StreamEnd)[]} */
    const out = [];
    for (const event of this.parser.feed(chunk)) {
      let item;
      try {
        item = fromSseEvent(event);
      } catch (err) {
        throw new ProtocolError(`bad ${JSON.stringify(event.event)} event: ${/** @type {Error} */ (err).message}`);
      }
      if (item === null) continue;
      if (item.type === "end") {
        out.push(item);
      } else if ((item.type === "data" || item.type === "reset") && event.id === null) {
        this.burstBytes += event.data.length;
        if (this.burstBytes > this.maxBurstBytes) {
          throw new ProtocolError(`${this.burst.length + 1} events without an id: carry more than ` +
            `${this.maxBurstBytes} bytes (a burst must end with an id:)`);
        }
        this.burst.push(item);
      } else {
        out.push([...this.burst, item]);
        this.burst = [];
        this.burstBytes = 0;
      }
    }
    return out;
  }
}
