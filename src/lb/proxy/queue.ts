/**
 * The backend queue (HAProxy's backend queue, `maxqueue` and `timeout queue`): when every usable
 * server of a backend is at its `maxconn`, a request waits here, oldest first, until a slot frees
 * (a request to one of the servers completes). A full queue, or a wait longer than the queue
 * timeout, gets a 503.
 *
 * One timer per queue, armed for the oldest waiting request (every request waits the same time, so
 * deadlines come in queue order): waiting costs no timer per request.
 */
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { Balancer, BalancedServer, PickContext } from '../balance/balancer.js';

/** Why a queued request is turned away. */
export type QueueRejection = 'timeout' | 'unavailable';

/** A request waiting in a backend queue. */
export interface QueuedRequest {
  /** What the balancer picks a server with. */
  readonly pickContext: PickContext;
  /** A server with a free slot was picked: send the request there. */
  dispatch(server: UpstreamServer): void;
  /**
   * Answer 503: `timeout` when no slot freed within the queue timeout, `unavailable` when no
   * server can take it any more (none usable, and none full that could free a slot).
   */
  reject(reason: QueueRejection): void;
}

/** A server at its `maxconn`: it takes no new request until one of its requests completes. */
export function atMaxConn(s: BalancedServer): boolean {
  return s.maxConn !== undefined && s.inFlight >= s.maxConn;
}

/** Keep the array this much longer than the live part before compacting it. */
const COMPACT_AFTER = 64;

/** A bounded FIFO of requests waiting for a server slot, with one shared wait timeout. */
export class RequestQueue {
  private items: Array<QueuedRequest | undefined> = [];
  private deadlines: number[] = [];
  /** Index of the oldest entry that may still be live. */
  private head = 0;
  private live = 0;
  private timer: NodeJS.Timeout | undefined = undefined;

  /**
   * @param size most requests waiting at once (0: none ever waits)
   * @param timeout longest wait in milliseconds
   */
  constructor(
    readonly size: number,
    readonly timeout: number,
  ) {}

  /** Requests waiting now. */
  get length(): number {
    return this.live;
  }

  /** Adds `item` at the tail; false (nothing added) when the queue is full. */
  push(item: QueuedRequest): boolean {
    if (this.live >= this.size) return false;
    this.items.push(item);
    this.deadlines.push(Date.now() + this.timeout);
    this.live++;
    if (this.timer === undefined) this.arm();
    return true;
  }

  /** Takes `item` out of the queue (its client went away); false if it was not waiting. */
  remove(item: QueuedRequest): boolean {
    const i = this.items.indexOf(item, this.head);
    if (i < 0) return false;
    this.items[i] = undefined;
    this.live--;
    if (this.live === 0) this.reset();
    return true;
  }

  /**
   * Hands waiting requests, oldest first, to the servers `balancer` picks, as long as it picks one
   * (servers at their maxconn are not usable, so it picks only servers with a free slot). When it
   * picks none and no server of `servers` is at its maxconn, no slot will ever free: every
   * waiting request is rejected as `unavailable`.
   */
  dispatch(balancer: Balancer<UpstreamServer>, servers: readonly UpstreamServer[]): void {
    while (this.live > 0) {
      const item = this.first();
      const server = balancer.pick(item.pickContext);
      if (server === undefined) {
        if (!servers.some(atMaxConn)) this.rejectAll('unavailable');
        return;
      }
      this.shift();
      item.dispatch(server);
    }
  }

  /** Rejects every waiting request, oldest first. */
  rejectAll(reason: QueueRejection): void {
    while (this.live > 0) this.shift().reject(reason);
  }

  /** The oldest live entry (the queue must not be empty); dead entries before it are skipped. */
  private first(): QueuedRequest {
    while (this.items[this.head] === undefined) this.head++;
    return this.items[this.head]!;
  }

  /** Removes and returns the oldest live entry (the queue must not be empty). */
  private shift(): QueuedRequest {
    const item = this.first();
    this.items[this.head] = undefined;
    this.head++;
    this.live--;
    if (this.live === 0) this.reset();
    else if (this.head > COMPACT_AFTER && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.deadlines = this.deadlines.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  private reset(): void {
    this.items = [];
    this.deadlines = [];
    this.head = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Arms the timer for the oldest live entry's deadline. */
  private arm(): void {
    this.first();
    const delay = Math.max(1, this.deadlines[this.head]! - Date.now());
    this.timer = setTimeout(this.expire, delay);
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = Date.now();
    while (this.live > 0) {
      this.first();
      if (this.deadlines[this.head]! > now) break;
      this.shift().reject('timeout');
    }
    if (this.live > 0) this.arm();
  };
}
