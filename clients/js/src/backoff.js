/* Reconnect delays and targets: exponential backoff with full jitter and a cap, when a
 * connection counts as having worked, and which of several URLs comes next. Pure: the
 * random source and the connection's lifetime come in; the feed does the waiting.
 */

/** A connection shorter than this never counts as having worked. */
export const MIN_HEALTHY_MS = 1000;

/**
 * @typedef {{kind: string, detail: string, healthy: boolean, lifetimeMs: number}} EndingFacts
 */

export class ReconnectPolicy {
  /**
   * @param {{minMs: number, maxMs: number, endpoints: number, random: () => number}} options
   */
  constructor({ minMs, maxMs, endpoints, random }) {
    if (!(minMs > 0 && minMs <= maxMs)) throw new RangeError(`backoff needs 0 < min <= max, got ${minMs}, ${maxMs}`);
    if (!(endpoints >= 1)) throw new RangeError("need at least one URL");
    this.minMs = minMs;
    this.maxMs = maxMs;
    this.endpoints = endpoints;
    this.random = random;
    this.healthyAfterMs = Math.max(maxMs, MIN_HEALTHY_MS);
    /** Connections in a row that did not work. */
    this.failures = 0;
    /** The index of the URL the current (or next) attempt uses. */
    this.endpoint = 0;
    this.ceiling = minMs;
    this.gapsInARow = 0;
  }

  /** @param {EndingFacts} ending */
  worked(ending) {
    return ending.healthy && ending.lifetimeMs >= this.healthyAfterMs;
  }

  /**
   * After a connection ended: the delay before the next attempt (which moves to the
   * next URL, round-robin). A connection that worked restarts the backoff; a first gap
   * in a row, or an eviction of a connection that worked, reconnects at once; any other
   * end waits a delay drawn uniformly from [0, ceiling] ("full jitter"), the ceiling
   * doubling up to maxMs.
   * @param {EndingFacts} ending
   * @returns {number} milliseconds to wait.
   */
  next(ending) {
    const worked = this.worked(ending);
    const gap = ending.kind === "gap";
    this.gapsInARow = gap ? this.gapsInARow + 1 : 0;
    if (worked && !gap) this.ceiling = this.minMs;
    this.failures = worked ? 0 : this.failures + 1;
    this.endpoint = (this.endpoint + 1) % this.endpoints;
    if (this.gapsInARow === 1) return 0;
    if (worked && ending.kind === "slow_consumer") return 0;
    const ceiling = this.ceiling;
    this.ceiling = Math.min(this.maxMs, ceiling * 2);
    return this.random() * ceiling;
  }
}
