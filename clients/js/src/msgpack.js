/* A small msgpack decoder and encoder for ticker's wire form (docs/PROTOCOL.md,
 * "msgpack form"). It decodes everything the server sends, one message after another
 * from a frame of concatenated messages, and encodes the client's commands. Integers
 * beyond Number.MAX_SAFE_INTEGER come as BigInt, all others as Number, so nothing is
 * rounded. Bounded: malformed, truncated or absurdly nested input is refused with a
 * MsgpackError, never read past its end. No I/O.
 */

/** Raised for bytes that are not msgpack this decoder accepts. */
export class MsgpackError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "MsgpackError";
  }
}

/** Deepest nesting of arrays and maps accepted (ticker's messages nest 4 deep). */
export const MAX_DEPTH = 32;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;
const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Decode every message of one frame (concatenated msgpack values).
 * @param {Uint8Array} bytes
 * @returns {unknown[]}
 * @throws {MsgpackError} malformed or truncated input.
 */
export function decodeAll(bytes) {
  const reader = new Reader(bytes);
  const out = [];
  while (reader.pos < bytes.length) out.push(reader.value(0));
  return out;
}

/**
 * Decode exactly one msgpack value (no trailing bytes).
 * @param {Uint8Array} bytes
 * @returns {unknown}
 * @throws {MsgpackError}
 */
export function decode(bytes) {
  const reader = new Reader(bytes);
  const value = reader.value(0);
  if (reader.pos !== bytes.length) {
    throw new MsgpackError(`${bytes.length - reader.pos} bytes after the value at ${reader.pos}`);
  }
  return value;
}

class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new MsgpackError("msgpack input must be a Uint8Array");
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  /** @param {number} n */
  need(n) {
    if (this.pos + n > this.bytes.length) {
      throw new MsgpackError(
        `truncated msgpack: need ${n} bytes at ${this.pos}, have ${this.bytes.length - this.pos}`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8() { return this.view.getUint8(this.need(1)); }
  u16() { return this.view.getUint16(this.need(2)); }
  u32() { return this.view.getUint32(this.need(4)); }

  /** @param {boolean} signed */
  i64(signed) {
    const at = this.need(8);
    const big = signed ? this.view.getBigInt64(at) : this.view.getBigUint64(at);
    return big > MAX_SAFE || big < MIN_SAFE ? big : Number(big);
  }

  /** @param {number} n */
  str(n) {
    const at = this.need(n);
    try {
      return utf8.decode(this.bytes.subarray(at, at + n));
    } catch {
      throw new MsgpackError(`invalid UTF-8 in a string at ${at}`);
    }
  }

  /** @param {number} n */
  bin(n) {
    const at = this.need(n);
    return this.bytes.slice(at, at + n);
  }

  /** @param {number} n @param {number} depth */
  array(n, depth) {
    // Every element takes at least one byte: a length past the end is malformed, and
    // checking it first bounds the allocation by the input's size.
    this.fits(n);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  /** @param {number} n @param {number} depth */
  map(n, depth) {
    this.fits(2 * n);
    /** @type {Record<string, unknown>} */
    const out = {};
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new MsgpackError(`a map key at ${at} is not a string`);
      const value = this.value(depth + 1);
      // Own data property even for "__proto__" (plain assignment would set the prototype).
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  /** @param {number} n */
  fits(n) {
    if (n > this.bytes.length - this.pos) {
      throw new MsgpackError(`a container of ${n} items at ${this.pos} is longer than the input`);
    }
  }

  /** @param {number} depth @returns {unknown} */
  value(depth) {
    if (depth > MAX_DEPTH) throw new MsgpackError(`msgpack nested deeper than ${MAX_DEPTH}`);
    const at = this.pos;
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b <= 0x8f) return this.map(b & 0x0f, depth);
    if (b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b <= 0xbf) return this.str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xca: return this.view.getFloat32(this.need(4));
      case 0xcb: return this.view.getFloat64(this.need(8));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.i64(false);
      case 0xd0: return this.view.getInt8(this.need(1));
      case 0xd1: return this.view.getInt16(this.need(2));
      case 0xd2: return this.view.getInt32(this.need(4));
      case 0xd3: return this.i64(true);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
      default:
        // 0xc1 is never used; ext types (0xc7-0xc9, 0xd4-0xd8) are not part of the protocol.
        throw new MsgpackError(`unsupported msgpack type 0x${b.toString(16)} at ${at}`);
    }
  }
}

/**
 * Encode one value: null, boolean, string, integer Number or BigInt (int64/uint64
 * range), other Number (float64), Uint8Array (bin), array, plain object (map).
 * @param {unknown} value
 * @returns {Uint8Array}
 * @throws {MsgpackError} a value msgpack cannot carry.
 */
export function encode(value) {
  /** @type {number[]} */
  const out = [];
  write(out, value, 0);
  return Uint8Array.from(out);
}

/**
 * A `sub` command: `["sub", [pattern, ...], position or null]`.
 * @param {string[]} patterns
 * @param {string | null} position "epoch-offset", or null for fresh snapshots.
 */
export function encodeSub(patterns, position) {
  return encode(["sub", patterns, position ?? null]);
}

/**
 * An `unsub` command: `["unsub", [pattern, ...]]`.
 * @param {string[]} patterns
 */
export function encodeUnsub(patterns) {
  return encode(["unsub", patterns]);
}

/** @param {number[]} out @param {number} n @param {number} bytes */
function be(out, n, bytes) {
  for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
}

/** @param {number[]} out @param {bigint} n @param {boolean} signed */
function be64(out, n, signed) {
  const view = new DataView(new ArrayBuffer(8));
  if (signed) view.setBigInt64(0, n);
  else view.setBigUint64(0, n);
  for (let i = 0; i < 8; i++) out.push(view.getUint8(i));
}

/** @param {number[]} out @param {number} length @param {number[]} heads fix/8/16/32 */
function head(out, length, [fix, fixMax, h16, h32]) {
  if (length <= fixMax) out.push(fix | length);
  else if (length <= 0xffff) { out.push(h16); be(out, length, 2); }
  else { out.push(h32); be(out, length, 4); }
}

/** @param {number[]} out @param {unknown} value @param {number} depth */
function write(out, value, depth) {
  if (depth > MAX_DEPTH) throw new MsgpackError(`value nested deeper than ${MAX_DEPTH}`);
  if (value === null || value === undefined) out.push(0xc0);
  else if (value === false) out.push(0xc2);
  else if (value === true) out.push(0xc3);
  else if (typeof value === "bigint") writeBigInt(out, value);
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) writeBigInt(out, BigInt(value));
    else {
      out.push(0xcb);
      const view = new DataView(new ArrayBuffer(8));
      view.setFloat64(0, value);
      for (let i = 0; i < 8; i++) out.push(view.getUint8(i));
    }
  } else if (typeof value === "string") {
    const bytes = utf8Encoder.encode(value);
    if (bytes.length <= 31) out.push(0xa0 | bytes.length);
    else if (bytes.length <= 0xff) out.push(0xd9, bytes.length);
    else if (bytes.length <= 0xffff) { out.push(0xda); be(out, bytes.length, 2); }
    else { out.push(0xdb); be(out, bytes.length, 4); }
    for (const b of bytes) out.push(b);
  } else if (value instanceof Uint8Array) {
    if (value.length <= 0xff) out.push(0xc4, value.length);
    else if (value.length <= 0xffff) { out.push(0xc5); be(out, value.length, 2); }
    else { out.push(0xc6); be(out, value.length, 4); }
    for (const b of value) out.push(b);
  } else if (Array.isArray(value)) {
    head(out, value.length, [0x90, 15, 0xdc, 0xdd]);
    for (const item of value) write(out, item, depth + 1);
  } else if (typeof value === "object") {
    const entries = Object.entries(value);
    head(out, entries.length, [0x80, 15, 0xde, 0xdf]);
    for (const [key, item] of entries) {
      write(out, key, depth + 1);
      write(out, item, depth + 1);
    }
  } else {
    throw new MsgpackError(`cannot encode a ${typeof value}`);
  }
}

/** @param {number[]} out @param {bigint} n */
function writeBigInt(out, n) {
  if (n >= 0n) {
    if (n <= 0x7fn) out.push(Number(n));
    else if (n <= 0xffn) out.push(0xcc, Number(n));
    else if (n <= 0xffffn) { out.push(0xcd); be(out, Number(n), 2); }
    else if (n <= 0xffffffffn) { out.push(0xce); be(out, Number(n), 4); }
    else if (n <= 0xffffffffffffffffn) { out.push(0xcf); be64(out, n, false); }
    else throw new MsgpackError(`integer ${n} is beyond uint64`);
  } else {
    if (n >= -32n) out.push(Number(n) & 0xff);
    else if (n >= -0x80n) { out.push(0xd0); be(out, Number(n) & 0xff, 1); }
    else if (n >= -0x8000n) { out.push(0xd1); be(out, Number(n) & 0xffff, 2); }
    else if (n >= -0x80000000n) { out.push(0xd2); be(out, (Number(n) >>> 0), 4); }
    else if (n >= -0x8000000000000000n) { out.push(0xd3); be64(out, n, true); }
    else throw new MsgpackError(`integer ${n} is beyond int64`);
  }
}
