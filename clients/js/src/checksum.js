/*
 * The book checksum (docs/PROTOCOL.md, "Book checksum"): CRC32 of the top 10 levels of
 * each side, interleaved best first as `bid:size:ask:size:...`, prices and sizes as
 * their integer nanos in base 10. Pure; the tracker's mirror checks books with it.
 */

import { parseNanos } from "./nanos.js";

export const CHECKSUM_DEPTH = 10;
export const CHECKSUM_KEY = "checksum";

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC32 (ISO-HDLC, zlib's) of an ASCII string, unsigned.
 * @param {string} text @returns {number}
 */
export function crc32(text) {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) crc = TABLE[(crc ^ text.charCodeAt(i)) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** @param {unknown} value nanos (BigInt or number, WebSocket) or a decimal string (SSE). */
function nanos(value) {
  return typeof value === "string" ? parseNanos(value) : BigInt(/** @type {bigint | number} */ (value));
}

/**
 * The text the checksum is taken of.
 * @param {[unknown, unknown][]} bids best (highest) first
 * @param {[unknown, unknown][]} asks best (lowest) first
 * @returns {string}
 */
export function checksumText(bids, asks) {
  /** @type {string[]} */
  const parts = [];
  const nb = Math.min(bids.length, CHECKSUM_DEPTH);
  const na = Math.min(asks.length, CHECKSUM_DEPTH);
  for (let i = 0; i < Math.max(nb, na); i++) {
    if (i < nb) parts.push(`${nanos(bids[i][0])}:${nanos(bids[i][1])}`);
    if (i < na) parts.push(`${nanos(asks[i][0])}:${nanos(asks[i][1])}`);
  }
  return parts.join(":");
}

/**
 * The checksum of a book (sides best first, as `Mirror.data` gives them).
 * @param {[unknown, unknown][]} bids @param {[unknown, unknown][]} asks @returns {number}
 */
export function bookChecksum(bids, asks) {
  return crc32(checksumText(bids, asks));
}
