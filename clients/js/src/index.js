/* The ticker JavaScript client: `openFeed` and the pieces it is made of. */

export { openFeed, Feed, FeedError } from "./feed.js";
export { Tracker, Mirror, channelKind } from "./tracker.js";
export { bookChecksum, checksumText, crc32 } from "./checksum.js";
export { formatNanos, parseNanos, jsonData } from "./nanos.js";
export { decode, decodeAll, encode, encodeSub, encodeUnsub, MsgpackError } from "./msgpack.js";
export { decodeFrame, SseDecoder, ProtocolError, parsePosition, positionText } from "./wire.js";
