/* The client's view of the stream: topic state, position, gaps and resets.
 *
 * A Tracker takes what one connection receives, one unit at a time (a WebSocket frame,
 * or SSE events up to one carrying an `id:`), keeps every topic's state in a Mirror,
 * checks every per-topic seq and turns messages into updates. It decides where to
 * resume from, when a gap needs a resync, and which topics a reset rebuilt or dropped.
 * It follows ticker/client/tracker.py rule for rule (the conformance cases hold both to
 * it). Pure: no sockets, no clocks (the time of a dropped topic's update comes in).
 */

import { CHECKSUM_KEY, bookChecksum } from "./checksum.js";
import { parseNanos } from "./nanos.js";
import { PROTOCOL_VERSION, ProtocolError, positionText } from "./wire.js";

/** @typedef {import("./wire.js").Position} Position */
/** @typedef {import("./wire.js").ServerMessage} ServerMessage */
/** @typedef {import("./wire.js").DataMessage} DataMessage */

/**
 * @typedef {{after: string | null, until: string, reason: string}} Loss
 * What may be missing: `after` the last position held before the loss (null: none yet),
 * `until` the position the rebuilt state is consistent with, `reason` one of
 * `too_old`, `other_epoch`, `ahead` (the server's reset), `gap` (the client found a
 * sequence gap and re-snapshotted), `skipped` (an event topic's seq jumped),
 * `resubscribed` (a first subscription was retried afresh after the stream moved on).
 */

/**
 * @typedef {object} Update One change of one topic, in stream order.
 * @property {"snapshot" | "delta" | "reset"} kind snapshot: the whole state and nothing
 *   lost (first state, keyframe, conflated catch-up with `skipped` > 0); delta: the
 *   change applied to the previous state; reset: rebuilt after a loss (see `loss`), or,
 *   with seq 0 and an empty state, a topic the server no longer has.
 * @property {string} topic
 * @property {number} seq the topic's seq after this update.
 * @property {string} position "epoch-offset" of the message.
 * @property {number} ts when the server published it, microseconds since the epoch.
 * @property {Record<string, any>} data what arrived (whole state, or the delta).
 * @property {Record<string, any>} state the topic's whole state after this update.
 * @property {Loss | null} loss for a reset: what may be missing.
 * @property {number} skipped for a snapshot: updates the server coalesced into it.
 */

/**
 * @typedef {object} Step What one unit produced, and what the connection must do next.
 * @property {Update[]} updates to hand to the caller, in order.
 * @property {boolean} resync a sequence gap: end this connection and reconnect at once
 *   from `resumePosition()`; messages after the gap in this unit were not applied.
 * @property {{code: number, message: string} | null} refusal the server's `error`.
 */

export const GAP_REASON = "gap";
/** A book failed its checksum: every topic is re-snapshotted, as after a gap that
 * cannot be replayed. */
export const CHECKSUM_REASON = "checksum";
export const SKIPPED_REASON = "skipped";
export const RESUBSCRIBED_REASON = "resubscribed";

const CHANNELS = /** @type {const} */ ({ quote: "latest", ticker: "latest", book: "book", trade: "event" });
const VENUE_CHANNEL = /^(quote|book)@[a-z0-9_-]{1,16}$/;

/**
 * The kind of a topic's channel.
 * @param {string} topic
 * @returns {"latest" | "book" | "event"}
 * @throws {ProtocolError} an unknown channel.
 */
export function channelKind(topic) {
  let channel = topic.split(".", 1)[0];
  // A venue's own topics (`book@cbx.BTC-USD`) are of their kind's channel.
  const venue = VENUE_CHANNEL.exec(channel);
  if (venue !== null) channel = venue[1];
  const kind = Object.hasOwn(CHANNELS, channel) ? CHANNELS[/** @type {keyof CHANNELS} */ (channel)] : undefined;
  if (kind === undefined) throw new ProtocolError(`unknown channel ${JSON.stringify(channel)} in topic ${JSON.stringify(topic.slice(0, 64))}`);
  return kind;
}

/** A price as a comparable BigInt: nanos (WebSocket) or a decimal string (SSE). */
function priceKey(/** @type {unknown} */ price) {
  if (typeof price === "string") return parseNanos(price);
  return BigInt(/** @type {bigint | number} */ (price));
}

/** @param {unknown} size */
function isZero(size) {
  if (typeof size === "string") return parseNanos(size) === 0n;
  return size == 0; // eslint-disable-line eqeqeq -- 0 and 0n alike
}

class Held {
  /** @param {"latest" | "book" | "event"} kind */
  constructor(kind) {
    this.kind = kind;
    this.seq = 0;
    /** @type {Record<string, any>} */
    this.fields = {};
    /** @type {Map<bigint, [unknown, unknown]>} */
    this.bids = new Map();
    /** @type {Map<bigint, [unknown, unknown]>} */
    this.asks = new Map();
  }
}

/**
 * @typedef {{applied: true, seq: number} | {applied: false, reason: "no_snapshot" | "gap" | "stale" | "checksum", heldSeq: number}} ApplyResult
 */

/** The state of every topic a client follows: snapshots and deltas applied in order. */
export class Mirror {
  constructor() {
    /** @type {Map<string, Held>} */
    this.held = new Map();
    /** Book snapshots whose checksum is not the book's: kept (a re-snapshot would bring
     * the same; the checksums disagree, not the books). */
    this.snapshotChecksumMismatches = 0;
  }

  /** @param {string} topic */
  has(topic) {
    return this.held.has(topic);
  }

  /** Topics whose state is held. */
  topics() {
    return [...this.held.keys()];
  }

  /** @param {string} topic the seq the topic is at (0 when not held). */
  seq(topic) {
    return this.held.get(topic)?.seq ?? 0;
  }

  /**
   * Apply a snapshot (always accepted unless older) or the next delta of a topic. A
   * delta of a topic not held is refused (`no_snapshot`), whatever its seq. A book delta
   * carrying a `checksum` the book then fails is refused (`checksum`) and the topic is
   * dropped: what it held had diverged from the server's.
   * @param {DataMessage} message
   * @returns {ApplyResult}
   */
  apply(message) {
    let held = this.held.get(message.topic);
    if (message.snapshot) {
      if (held !== undefined && message.seq < held.seq) return { applied: false, reason: "stale", heldSeq: held.seq };
      held = new Held(channelKind(message.topic));
      Mirror.merge(held, message.data);
      this.held.set(message.topic, held);
    } else {
      // A topic's first message (seq 1) is a snapshot: a delta alone is never enough.
      if (held === undefined) return { applied: false, reason: "no_snapshot", heldSeq: 0 };
      if (message.seq <= held.seq) return { applied: false, reason: "stale", heldSeq: held.seq };
      if (message.seq !== held.seq + 1) return { applied: false, reason: "gap", heldSeq: held.seq };
      Mirror.merge(held, message.data);
      if (!checksumHolds(held, message.data)) {
        this.held.delete(message.topic);
        return { applied: false, reason: "checksum", heldSeq: 0 };
      }
    }
    held.seq = message.seq;
    if (message.snapshot && !checksumHolds(held, message.data)) this.snapshotChecksumMismatches += 1;
    return { applied: true, seq: message.seq };
  }

  /** @param {string} topic drop its state (after unsubscribing, or before a re-snapshot). */
  forget(topic) {
    this.held.delete(topic);
  }

  /**
   * The topic's whole state in the form of a snapshot's data (a fresh object). Latest-
   * value fields the server set to null stay, as null: the value is gone.
   * @param {string} topic
   * @returns {Record<string, any>}
   * @throws {Error} the topic is not held.
   */
  data(topic) {
    const held = this.held.get(topic);
    if (held === undefined) throw new Error(`topic ${topic} is not held`);
    if (held.kind === "book") {
      return { bids: side(held.bids, true), asks: side(held.asks, false) };
    }
    return { ...held.fields };
  }

  /** @param {Held} held @param {Record<string, any>} data */
  static merge(held, data) {
    if (held.kind === "book") {
      levels(held.bids, data.bids ?? []);
      levels(held.asks, data.asks ?? []);
    } else if (held.kind === "latest") {
      Object.assign(held.fields, data);
    } else {
      held.fields = { ...data };
    }
  }
}

/** Whether a book matches the checksum its message carries (true when none is).
 * @param {Held} held @param {Record<string, any>} data */
function checksumHolds(held, data) {
  const expected = held.kind === "book" ? data[CHECKSUM_KEY] : undefined;
  if (expected === undefined || expected === null) return true;
  return Number(expected) === bookChecksum(side(held.bids, true), side(held.asks, false));
}

/** @param {Map<bigint, [unknown, unknown]>} book @param {[unknown, unknown][]} changes */
function levels(book, changes) {
  for (const [price, size] of changes) {
    const key = priceKey(price);
    if (isZero(size)) book.delete(key);
    else book.set(key, [price, size]);
  }
}

/** @param {Map<bigint, [unknown, unknown]>} book @param {boolean} descending best first */
function side(book, descending) {
  const keys = [...book.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (descending) keys.reverse();
  return keys.map((key) => {
    const [price, size] = /** @type {[unknown, unknown]} */ (book.get(key));
    return [price, size];
  });
}

/** Counters of what the tracker saw (they only grow). */
export function newStats() {
  return { units: 0, resets: 0, gaps: 0, duplicates: 0, conflated: 0, checksumMismatches: 0 };
}

/**
 * Topic state, stream position and loss accounting of one feed.
 */
export class Tracker {
  constructor() {
    this.stats = newStats();
    this.mirror = new Mirror();
    /** @type {number | null} the epoch of the stream the current connection follows. */
    this.epoch = null;
    /** @type {number | null} the server's heartbeat period from the last hello. */
    this.heartbeatS = null;
    /** @type {Position | null} the position of the last unit processed completely. */
    this.positionHeld = null;
    /** @type {Map<string, number>} */
    this.topicOffsets = new Map();
    /** @type {PendingReset | null} */
    this.pending = null;
    /** @type {Position | null} the first connection's hello, while no data arrived. */
    this.firstHello = null;
    /** @type {Position | null} set on a fresh resubscription (see RESUBSCRIBED_REASON). */
    this.resubscribedAfter = null;
  }

  /** "epoch-offset" of the last unit processed completely (null: none yet). */
  get position() {
    return this.positionHeld === null ? null : positionText(this.positionHeld);
  }

  /**
   * The position to subscribe with on the next connection (null: fresh snapshots).
   * During a reset whose snapshots have not all arrived, it is still the position from
   * before the reset, so the server answers with the reset again.
   * @returns {string | null}
   */
  resumePosition() {
    if (this.pending !== null && this.pending.until === null) return null;
    return this.position;
  }

  /** Why every topic waits for a fresh snapshot ("gap", "checksum"), or null. */
  resnapshotting() {
    return this.pending !== null && this.pending.until === null ? this.pending.reason : null;
  }

  /** @param {string} topic @returns {Record<string, any> | null} the whole state, or null. */
  state(topic) {
    return this.mirror.has(topic) ? this.mirror.data(topic) : null;
  }

  /** Every topic whose state is held. */
  topics() {
    return this.mirror.topics();
  }

  /** A new connection starts: its hello will say which epoch it follows. */
  connected() {
    this.epoch = null;
    this.heartbeatS = null;
    if (this.positionHeld === null && this.pending === null) this.resubscribedAfter = this.firstHello;
  }

  /**
   * Apply one unit of messages.
   * @param {ServerMessage[]} unit
   * @param {number} [nowUs] the time, for the `ts` of updates of dropped topics.
   * @returns {Step}
   * @throws {ProtocolError} a hello of another version, or data before any hello.
   */
  receive(unit, nowUs = 0) {
    this.stats.units += 1;
    /** @type {Update[]} */
    const updates = [];
    /** @type {Position | null} */
    let reached = null;
    const burst = burstPosition(unit);
    let resetSeen = false;
    /** @type {{code: number, message: string} | null} */
    let refusal = null;
    for (const message of unit) {
      if (message.type === "data") {
        const epoch = this.requireEpoch();
        const pending = this.pending;
        if (pending !== null) {
          if (rebuilds(pending, message, epoch, resetSeen)) {
            updates.push(this.rebuild(pending, message, epoch, burst));
            reached = { epoch, offset: message.offset };
            continue;
          }
          updates.push(...this.finishReset(nowUs));
        }
        const outcome = this.apply(message, epoch, burst);
        // Nothing after a gap is applied: the resync brings it back in order.
        if (outcome === RESYNC) return { updates, resync: true, refusal };
        if (outcome !== DUPLICATE) updates.push(outcome);
        reached = { epoch, offset: message.offset };
      } else if (message.type === "heartbeat") {
        // Written after everything up to its position: a safe resume point.
        updates.push(...this.finishReset(nowUs));
        if (this.positionHeld !== null || reached !== null) reached = { epoch: message.epoch, offset: message.offset };
        // Else a first subscription has had no data yet: the heartbeat may have been
        // written before the subscribe was taken, ahead of its snapshots.
      } else if (message.type === "reset") {
        this.beginReset({ epoch: message.epoch, offset: message.offset }, message.reason);
        resetSeen = true;
      } else if (message.type === "hello") {
        if (message.version !== PROTOCOL_VERSION) {
          throw new ProtocolError(`server speaks protocol version ${message.version}, this client ${PROTOCOL_VERSION}`);
        }
        this.epoch = message.epoch;
        // Not a resume point: the hello precedes the subscription's burst, and resuming
        // from it would never bring the snapshots of topics that did not change since.
        this.heartbeatS = message.heartbeatS || null;
        if (this.positionHeld === null && this.firstHello === null) {
          this.firstHello = { epoch: message.epoch, offset: message.offset };
        }
      } else {
        // The rest of the unit still counts: a refusal of some patterns (4403) comes
        // with the burst of the others.
        refusal = { code: message.code, message: message.message };
      }
    }
    const pending = this.pending;
    // A burst of snapshots travels as one unit: every topic it rebuilds is in it.
    if (pending !== null && pending.rebuilt) updates.push(...this.finishReset(nowUs));
    if (reached !== null && this.pending === null) this.positionHeld = reached;
    if (this.positionHeld !== null) this.firstHello = this.resubscribedAfter = null;
    return { updates, resync: false, refusal };
  }

  requireEpoch() {
    if (this.epoch === null) throw new ProtocolError("a data message arrived before the hello");
    return this.epoch;
  }

  /**
   * @param {DataMessage} message @param {number} epoch @param {Position | null} burst
   * @returns {Update | typeof DUPLICATE | typeof RESYNC}
   */
  apply(message, epoch, burst) {
    const topic = message.topic;
    const lastOffset = this.topicOffsets.get(topic);
    if (lastOffset !== undefined && message.offset <= lastOffset) {
      // Already applied: a replay from before a gap resync overlaps what we hold.
      this.stats.duplicates += 1;
      return DUPLICATE;
    }
    const held = this.mirror.has(topic);
    const heldSeq = this.mirror.seq(topic);
    const result = this.mirror.apply(message);
    if (!result.applied) {
      this.resync(topic, result.reason, epoch);
      return RESYNC;
    }
    this.topicOffsets.set(topic, message.offset);
    const position = { epoch, offset: message.offset };
    if (!message.snapshot) return this.update("delta", message, position);
    const after = this.resubscribedAfter;
    // A snapshot at seq 1 is the topic's whole history: nothing of it can be missed.
    if (!held && after !== null && message.seq > 1 && movedOn(after, position)) {
      this.stats.resets += this.firstHello !== null ? 1 : 0;
      this.firstHello = null; // counted once per resubscription
      const loss = makeLoss(after, burst ?? position, RESUBSCRIBED_REASON);
      return this.update("reset", message, position, loss);
    }
    const skipped = held ? message.seq - heldSeq - 1 : 0;
    if (skipped > 0 && channelKind(topic) === "event") {
      // Events are never conflated: a jump means events were missed.
      this.stats.resets += 1;
      const from = lastOffset !== undefined ? { epoch, offset: lastOffset } : null;
      return this.update("reset", message, position, makeLoss(from, burst ?? position, SKIPPED_REASON));
    }
    if (skipped > 0) this.stats.conflated += 1;
    return this.update("snapshot", message, position, null, Math.max(skipped, 0));
  }

  /**
   * @param {"snapshot" | "delta" | "reset"} kind @param {DataMessage} message
   * @param {Position} position @param {Loss | null} [loss] @param {number} [skipped]
   * @returns {Update}
   */
  update(kind, message, position, loss = null, skipped = 0) {
    return { kind, topic: message.topic, seq: message.seq, position: positionText(position), ts: message.ts,
      data: message.data, state: this.mirror.data(message.topic), loss, skipped };
  }

  /** A delta does not follow the state held: replay from before it, or re-snapshot.
   * @param {string} topic @param {string} reason @param {number} epoch */
  resync(topic, reason, epoch) {
    if (reason === "checksum") {
      // A replay would only apply more deltas to a wrong book: fresh snapshots.
      this.stats.checksumMismatches += 1;
      this.beginReset(null, CHECKSUM_REASON);
      return;
    }
    this.stats.gaps += 1;
    const lastOffset = this.topicOffsets.get(topic);
    if (reason === "gap" && lastOffset !== undefined) {
      // Everything of this topic up to lastOffset is applied; the server replays from
      // there (what other topics hold comes back as duplicates), or answers a reset.
      this.positionHeld = { epoch, offset: lastOffset };
    } else {
      this.beginReset(null, GAP_REASON);
    }
  }

  /** Forget every topic until a burst of snapshots rebuilds it.
   * @param {Position | null} until @param {string} reason */
  beginReset(until, reason) {
    let pending = this.pending;
    if (pending === null) {
      pending = this.pending = { after: this.positionHeld, until, reason, awaiting: new Set(), rebuilt: false };
      this.stats.resets += 1;
    } else {
      // A reset again before the last one finished: the loss still starts where the
      // first one began.
      pending.until = until;
      pending.reason = reason;
      pending.rebuilt = false;
    }
    for (const topic of this.mirror.topics()) {
      pending.awaiting.add(topic);
      this.mirror.forget(topic);
    }
    this.topicOffsets.clear();
  }

  /** @param {PendingReset} pending @param {DataMessage} message @param {number} epoch
   * @param {Position | null} burst @returns {Update} */
  rebuild(pending, message, epoch, burst) {
    // The heartbeat that ends the burst names its position; an older server's
    // snapshots each carried it.
    if (pending.until === null) pending.until = burst ?? { epoch, offset: message.offset };
    pending.rebuilt = true;
    pending.awaiting.delete(message.topic);
    this.mirror.forget(message.topic);
    this.mirror.apply(message); // a snapshot of a topic not held is always applied
    this.topicOffsets.set(message.topic, message.offset);
    const loss = makeLoss(pending.after, pending.until, pending.reason);
    return this.update("reset", message, { epoch, offset: message.offset }, loss);
  }

  /** End a reset: topics its burst did not rebuild no longer exist on the server.
   * @param {number} nowUs @returns {Update[]} */
  finishReset(nowUs) {
    const pending = this.pending;
    if (pending === null) return [];
    this.pending = null;
    if (pending.until !== null) this.positionHeld = pending.until;
    if (pending.until === null || pending.awaiting.size === 0) return [];
    const loss = makeLoss(pending.after, pending.until, pending.reason);
    const until = positionText(pending.until);
    return [...pending.awaiting].map((topic) => ({ kind: /** @type {const} */ ("reset"), topic, seq: 0,
      position: until, ts: nowUs, data: emptyState(topic), state: emptyState(topic), loss, skipped: 0 }));
  }
}

/**
 * @typedef {{after: Position | null, until: Position | null, reason: string,
 *   awaiting: Set<string>, rebuilt: boolean}} PendingReset
 * `until` is null for a re-snapshot the client asked for itself (subscribing without a
 * position): then the heartbeat ending the burst names it.
 */

const DUPLICATE = Symbol("duplicate");
const RESYNC = Symbol("resync");

/** True for a snapshot of the burst that answers the reset: after the reset in the same
 * unit, or after the burst's first snapshot (`rebuilt` lasts one unit).
 * @param {PendingReset} pending @param {DataMessage} message @param {number} epoch
 * @param {boolean} resetSeen */
function rebuilds(pending, message, epoch, resetSeen) {
  if (!message.snapshot) return false;
  const until = pending.until;
  if (until === null || resetSeen || pending.rebuilt) return true;
  return until.epoch === epoch && until.offset === message.offset;
}

/** The position of a burst of snapshots (or a reset unit): the heartbeat ending it.
 * @param {ServerMessage[]} unit @returns {Position | null} */
function burstPosition(unit) {
  const last = unit.length ? unit[unit.length - 1] : null;
  if (last === null || last.type !== "heartbeat") return null;
  if (unit.some((m) => m.type === "reset" || (m.type === "data" && m.snapshot))) {
    return { epoch: last.epoch, offset: last.offset };
  }
  return null;
}

/** @param {Position} since @param {Position} now */
function movedOn(since, now) {
  return now.epoch !== since.epoch || now.offset > since.offset;
}

/** @param {Position | null} after @param {Position} until @param {string} reason @returns {Loss} */
function makeLoss(after, until, reason) {
  return { after: after === null ? null : positionText(after), until: positionText(until), reason };
}

/** @param {string} topic */
function emptyState(topic) {
  return channelKind(topic) === "book" ? { bids: [], asks: [] } : {};
}
