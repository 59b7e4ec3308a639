import type { SpreadMode } from '../../config/schema.js';

/**
 * Keeps a frontend's client connections spread over the workers that accept on its shared
 * listening socket.
 *
 * Every such worker accepts on the same socket, and the kernel wakes all of them for a new
 * connection: whichever runs first takes every connection waiting. A client that opens its
 * connections in a burst (a browser, a pool, a load generator) then lands on one worker, which
 * does all the work on one core while the others idle: measured with 64 keep-alive connections
 * on 2 workers, splits from 52/12 to 64/0, and 12,500 to 17,700 requests/s where an even split
 * gives 18,000 to 23,000. Having the primary accept and hand out every connection in turn (as
 * node:cluster does) spreads them evenly, but each connection then crosses two processes:
 * connections of one request each went from 8,300 to 3,500 per second.
 *
 * So the workers accept, and a worker that holds too many of a frontend's connections (of
 * connections that last: short ones balance themselves as they close) hands the new one to the
 * least loaded worker, through the primary (a socket can only go to another process over the IPC
 * channel of the two). Each worker reports its counts soon after they change (REPORT_DELAY_MS);
 * the primary passes them on, and a connection handed over carries its sender's count; between
 * two reports, a worker counts the connections it handed to each other worker itself, so that a
 * burst is split and not all sent to the one that looked least loaded.
 *
 * How many is too many is the load balancer's `spreadConnections` (SpreadMode):
 * - `lopsided` (the default): only a worker that holds at least LOPSIDED_MIN connections while
 *   another holds under an eighth of its count hands new ones over. That undoes the costly case,
 *   a burst that landed all on one worker (64/0 of a load generator's 64: measured the slowest
 *   run every time in 20 runs, 5 to 20 % below the others) and leaves splits up to 57/7 alone,
 *   which mostly ran as fast as even ones. A burst of 64 on one worker ends 57/7, after 7
 *   hand-overs. Every hand-over holds up the messages behind it on both IPC channels (below),
 *   which TCP frontends feel most (each new connection asks the primary for its server): with
 *   a quarter instead of an eighth, a burst of 256 took 51 hand-overs instead of 29, and TCP's
 *   p99.9 latency at concurrency 256 went from 17 ms (as with `off`) to 40–90 ms.
 * - `even`: a worker that holds more than its share (the least loaded worker's count plus
 *   spreadSlack) hands the new one over. Under full load that costs latency: Node.js passes one
 *   socket at a time over an IPC channel and waits for the receiving event loop to acknowledge
 *   it, and every message after it on that channel waits too, so a burst of hand-overs queues,
 *   and the last connections handed over wait hundreds of milliseconds (measured with 256
 *   connections at full load: 250 ms median, 800 ms at worst) for their first answer.
 * - `off`: a connection is served by the worker that accepted it.
 */

/** `lopsided`: a worker holding fewer of a frontend's connections than this keeps new ones. */
export const LOPSIDED_MIN = 8;

/**
 * `lopsided`: a worker hands a new connection over while the least loaded other worker holds
 * less than 1/LOPSIDED_RATIO of its own count.
 */
export const LOPSIDED_RATIO = 8;

/** How soon after its connections change a worker reports its counts (one report for a burst). */
export const REPORT_DELAY_MS = 10;

/**
 * Whether a worker reports its count of a frontend's connections at once rather than after
 * REPORT_DELAY_MS: when it fell from `last` (as last reported, at least 2) to `now`, half of it
 * or less. A client that closes all its connections and opens them again at once (a pool
 * restarting, a load generator's next run) would otherwise send the new burst to a worker that
 * still sees the others' old counts, and keeps nearly all of it (measured: 64/0 in 1 of 10 runs
 * of wrk started right after another; 61/3 while the halvings stopped at 4, since against 4 a
 * worker keeps up to 32). Reporting each halving costs a few messages per mass close (64 → 32,
 * 16, 8, 4, 2, 1, then 0 after the delay) and none while counts drift or rise.
 */
export function reportAtOnce(last: number, now: number): boolean {
  return last >= 2 && now * 2 <= last;
}

/**
 * How many more connections than the least loaded worker a worker keeps before it hands new ones
 * over: at least 2, so that connections of one request each are not handed over for a difference
 * that the next moment undoes, and a sixteenth of the two counts' sum for large numbers.
 */
export function spreadSlack(mine: number, least: number): number {
  return Math.max(2, (mine + least) >> 4);
}

/**
 * Connections of a frontend that lasted less than this, on average of late, are not handed over
 * while they keep closing (one closed within this time): they come and go faster than the
 * imbalance could matter, and a hand-over costs as much as serving a short connection (measured:
 * connections of one request each, 9,200 per second without hand-overs, 7,200 with them at every
 * imbalance).
 */
export const SHORT_LIVED_MS = 500;
/** Weight of the latest closed connection in a frontend's average connection lifetime. */
const LIFETIME_WEIGHT = 1 / 16;

/** One worker's view of the other workers' connections of each frontend. */
export class ConnectionSpread {
  /** By frontend id: the other accepting workers' connections (slot → count). */
  private readonly peers = new Map<number, Map<number, number>>();
  /** By frontend id: how long its connections here lasted (a moving average), and when the last closed (ms). */
  private readonly lifetime = new Map<number, { avg: number; lastAt: number }>();

  constructor(
    /** This worker's slot (0-based), left out of the counts. */
    private readonly self: number,
    /** When a new connection is handed over: `lopsided` or `even` (`off` hands none over). */
    private readonly mode: SpreadMode,
  ) {}

  /**
   * Worker `slot` reported `n` connections of frontend `f` (-1: it stopped accepting on it). It
   * replaces what this worker counted for it, hand-overs included.
   */
  update(f: number, slot: number, n: number): void {
    if (slot === this.self) return;
    let others = this.peers.get(f);
    if (n < 0) {
      others?.delete(slot);
      if (others?.size === 0) this.peers.delete(f);
      return;
    }
    if (others === undefined) this.peers.set(f, (others = new Map()));
    others.set(slot, n);
  }

  /**
   * The worker of `slot` handed this one a connection of frontend `f`, holding `n` of them itself
   * then: fresher than its last report. When two workers race for a burst, each sees the other as
   * less loaded until their reports cross; learning the count from the connection itself keeps
   * them from trading connections back and forth.
   */
  heard(f: number, slot: number, n: number): void {
    const others = this.peers.get(f);
    if (others?.has(slot) === true) others.set(slot, n);
  }

  /** A connection of frontend `f` closed here after `ageMs`, at `now` (performance.now()). */
  closed(f: number, ageMs: number, now: number): void {
    const l = this.lifetime.get(f);
    if (l === undefined) this.lifetime.set(f, { avg: ageMs, lastAt: now });
    else {
      l.avg += (ageMs - l.avg) * LIFETIME_WEIGHT;
      l.lastAt = now;
    }
  }

  /** Frontend `f`'s connections come and go quickly now (SHORT_LIVED_MS). */
  private shortLived(f: number, now: number): boolean {
    const l = this.lifetime.get(f);
    return l !== undefined && l.avg < SHORT_LIVED_MS && now - l.lastAt < SHORT_LIVED_MS;
  }

  /** Frontend `f` is not accepted here any more. */
  forget(f: number): void {
    this.peers.delete(f);
    this.lifetime.delete(f);
  }

  /**
   * Where a new connection of frontend `f` goes, with `mine` of its connections open here: the
   * slot of the least loaded other worker when this one holds too many (by the mode; that worker
   * is counted one more from now on), else undefined (keep it). Short-lived connections stay
   * where they are (SHORT_LIVED_MS). `now`: performance.now().
   */
  target(f: number, mine: number, now: number): number | undefined {
    const others = this.peers.get(f);
    if (others === undefined || this.shortLived(f, now)) return undefined;
    let slot: number | undefined;
    let least = Infinity;
    for (const [s, n] of others) {
      if (n < least) {
        least = n;
        slot = s;
      }
    }
    if (slot === undefined || !this.tooMany(mine, least)) return undefined;
    others.set(slot, least + 1);
    return slot;
  }

  /** Whether `mine` connections are too many here while the least loaded other worker holds `least`. */
  private tooMany(mine: number, least: number): boolean {
    switch (this.mode) {
      case 'lopsided':
        return mine >= LOPSIDED_MIN && least * LOPSIDED_RATIO < mine;
      case 'even':
        return mine > least + spreadSlack(mine, least);
      case 'off':
        return false;
    }
  }
}
