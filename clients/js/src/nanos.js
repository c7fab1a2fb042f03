/* Exact prices and sizes: nanos (1e-9 units) as BigInt, and their decimal strings.
 * `formatNanos` renders exactly what the server's JSON form (SSE, /v1/snapshot) carries
 * ("43250.5", "2", "-0.001"); `parseNanos` reads such a string back. `jsonData` turns a
 * WebSocket message's data (nanos) into the JSON form. Pure.
 */

/** Fields whose values are prices or sizes (nanos on WebSocket, decimal strings in JSON). */
export const NANOS_FIELDS = new Set([
  "bid", "bid_size", "ask", "ask_size", "last", "open", "high", "low", "volume", "change",
  "price", "size",
]);
/** Book fields: lists of [price, size]. */
export const BOOK_SIDES = ["bids", "asks"];

const SCALE = 1_000_000_000n;
const DECIMAL = /^(-)?(\d+)(?:\.(\d{1,9}))?$/;

/**
 * Nanos as the shortest exact decimal string, like the server's JSON form.
 * @param {bigint | number} value an integer (Number must be a safe integer).
 * @returns {string}
 */
export function formatNanos(value) {
  if (typeof value === "number" && !Number.isSafeInteger(value)) {
    throw new RangeError(`formatNanos needs an integer, got ${value}`);
  }
  let n = BigInt(value);
  const sign = n < 0n ? "-" : "";
  if (n < 0n) n = -n;
  const whole = n / SCALE;
  const frac = n % SCALE;
  if (frac === 0n) return `${sign}${whole}`;
  return `${sign}${whole}.${frac.toString().padStart(9, "0").replace(/0+$/, "")}`;
}

/**
 * A decimal string ("43250.5", at most 9 decimals) as BigInt nanos.
 * @param {string} text
 * @returns {bigint}
 * @throws {RangeError} not such a decimal.
 */
export function parseNanos(text) {
  const match = typeof text === "string" ? DECIMAL.exec(text) : null;
  if (match === null) throw new RangeError(`not an exact decimal of at most 9 places: ${String(text).slice(0, 64)}`);
  const n = BigInt(match[2]) * SCALE + BigInt((match[3] ?? "").padEnd(9, "0"));
  return match[1] ? -n : n;
}

/**
 * A data object in the JSON form: nanos become decimal strings (other values as they are).
 * @param {Record<string, any>} data
 * @returns {Record<string, any>}
 */
export function jsonData(data) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [name, value] of Object.entries(data)) {
    if (BOOK_SIDES.includes(name) && Array.isArray(value)) {
      out[name] = value.map(([price, size]) => [text(price), text(size)]);
    } else if (NANOS_FIELDS.has(name) && value !== null && value !== undefined) {
      out[name] = text(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

/** @param {unknown} value */
function text(value) {
  return typeof value === "string" ? value : formatNanos(/** @type {bigint|number} */ (value));
}

/**
 * WebSocket data with every price and size as BigInt (small ones arrive as Number).
 * @param {Record<string, any>} data
 * @returns {Record<string, any>}
 */
export function bigData(data) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [name, value] of Object.entries(data)) {
    if (BOOK_SIDES.includes(name) && Array.isArray(value)) {
      out[name] = value.map((level) => {
        if (!Array.isArray(level) || level.length < 2) throw new TypeError(`a ${name} level is not [price, size]`);
        return [toBig(level[0]), toBig(level[1])];
      });
    } else if (NANOS_FIELDS.has(name) && value !== null && value !== undefined) {
      out[name] = toBig(value);
    } else {
      out[name] = value;
    }
  }
  return out;
}

/** @param {unknown} value */
function toBig(value) {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  throw new TypeError(`a price or size is not an integer: ${String(value).slice(0, 64)}`);
}
