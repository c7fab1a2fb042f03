/* zstd frames of the `ticker.v1.zstd` subprotocol: reading the dictionary id from a
 * frame header (every compressed frame carries it, the hello included) and fetching
 * that dictionary from the server (`GET /v1/zstd-dictionary/<id>`, same host over
 * http(s)). Decompression itself is the caller's: `{decompress(bytes, dictionary)}`.
 */

import { ProtocolError } from "./wire.js";

const MAGIC = 0xfd2fb528;

/**
 * The dictionary id in a zstd frame's header (0: none).
 * @param {Uint8Array} frame
 * @returns {number}
 * @throws {ProtocolError} not a zstd frame.
 */
export function dictionaryId(frame) {
  if (frame.length < 6) throw new ProtocolError("a zstd frame shorter than its header");
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new ProtocolError("not a zstd frame (bad magic number)");
  const descriptor = frame[4];
  const idBytes = [0, 1, 2, 4][descriptor & 0x03];
  const singleSegment = (descriptor & 0x20) !== 0;
  const at = 5 + (singleSegment ? 0 : 1);
  if (frame.length < at + idBytes) throw new ProtocolError("a zstd frame shorter than its header");
  if (idBytes === 0) return 0;
  if (idBytes === 1) return frame[at];
  if (idBytes === 2) return view.getUint16(at, true);
  return view.getUint32(at, true);
}

/**
 * The URL of a dictionary on the server of a ws(s):// URL.
 * @param {string} wsUrl
 * @param {number} id
 */
export function dictionaryUrl(wsUrl, id) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = `/v1/zstd-dictionary/${id}`;
  url.search = "";
  return url.toString();
}

/** Most bytes of a dictionary accepted (ticker's is 4 KiB). */
export const MAX_DICTIONARY_BYTES = 1024 * 1024;

/**
 * Fetch a dictionary's bytes.
 * @param {typeof fetch} fetchImpl
 * @param {string} url
 * @param {AbortSignal} [signal]
 * @returns {Promise<Uint8Array>}
 * @throws {ProtocolError} the server has no such dictionary, or it is too large.
 */
export async function fetchDictionary(fetchImpl, url, signal) {
  const response = await fetchImpl(url, { signal });
  if (!response.ok) throw new ProtocolError(`zstd dictionary ${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length > MAX_DICTIONARY_BYTES) throw new ProtocolError(`zstd dictionary ${url}: larger than ${MAX_DICTIONARY_BYTES} bytes`);
  return bytes;
}
