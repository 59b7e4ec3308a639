import { formatAddress } from '../address.js';
import type { BalancedServer } from '../balance/balancer.js';
import type { CheckState } from '../health/health-check.js';
import { type OutlierCounters, outlierCounters } from './passive-health.js';
import { ConnectionPool } from './connection-pool.js';
import { SlowStart } from './slow-start.js';

/** What the load balancer knows about one server of a backend: address, health, counters. */
export class UpstreamServer implements BalancedServer {
  readonly name: string;
  /** Name of the backend this server belongs to. */
  readonly backend: string;
  readonly host: string;
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  /** Where the health check connects: the server's address, or its `checkPort`. */
  readonly checkTarget: { readonly host: string; readonly port: number; readonly address: string };
  /** Path of this server's HTTP check when it differs from the backend's (`checkPath`). */
  readonly checkPath: string | undefined;
  /** Configured weight; an operator may change it at run time. */
  weight: number;
  readonly backup: boolean;
  /** Health, set by the health check. Down until the first check succeeds. */
  up = false;

  /** The weight balancers use now (see BalancedServer.effectiveWeight). */
  get effectiveWeight(): number {
    return this.slowStart.until === 0 ? this.weight : this.slowStart.weight(this.weight);
  }
  /** Slow start: the ramp of the weight after the server came back up (backends[].slowStart). */
  readonly slowStart: SlowStart;

  /**
   * Operator state: `ready` (normal), `drain` (no new requests; in-flight ones finish; health
   * checks go on), `maint` (disabled: no requests).
   */
  adminState: 'ready' | 'drain' | 'maint' = 'ready';
  /** Passive health: ejected until this time (ms since the epoch); 0 when not ejected. */
  ejectedUntil = 0;
  /** Most requests at once (`maxconn`); undefined = no limit. */
  readonly maxConn: number | undefined;

  /** May take new requests now (see BalancedServer.usable); a server at its maxconn may not. */
  get usable(): boolean {
    return (
      !this.skipped &&
      this.adminState === 'ready' &&
      (this.maxConn === undefined || this.inFlight < this.maxConn) &&
      (this.ignoreHealth || (this.up && (this.ejectedUntil === 0 || Date.now() >= this.ejectedUntil)))
    );
  }
  /** Set by the backend in panic mode (backends[].panicThreshold): health is ignored, all servers count. */
  ignoreHealth = false;
  /** Set only during one pick, so that a retried request is not redispatched to a server it already tried. */
  skipped = false;
  /** Passive health counters (see PassiveHealth). */
  readonly outlier: OutlierCounters = outlierCounters();
  /**
   * In a worker process: the primary's passive health counts errors of this server now, so every
   * answer is reported to it, not only the failures (see workers/remote-passive.ts).
   */
  outlierWatch = false;
  /** Failed requests to this server that were sent again (HAProxy's `wretr`). */
  retries = 0;
  /** Of those, the ones sent to another server (HAProxy's `wredis`). */
  redispatches = 0;
  readonly check: CheckState = {
    lastResult: null,
    lastError: null,
    lastCheckAt: 0,
    lastDurationMs: 0,
    consecutive: 0,
  };
  /** Keep-alive connections to this server, used by the HTTP proxy. */
  readonly pool: ConnectionPool;

  /** Requests being proxied to this server right now. */
  inFlight = 0;
  /**
   * In a primary with workers: the requests its workers have in flight on this server, as last read
   * (shown instead of `inFlight`, which there counts only the TCP sessions the primary placed).
   */
  reportedInFlight: number | undefined = undefined;
  /** Requests sent to this server (every attempt, retries included). */
  totalRequests = 0;
  /** Responses received from this server, indexed by status class: [1] = 1xx … [5] = 5xx. */
  readonly responses: number[] = [0, 0, 0, 0, 0, 0];
  /** Requests that failed on this server: connect errors, timeouts, resets. */
  failures = 0;
  /** TCP mode: connections sent to this server (every attempt, redispatches included). */
  totalConnections = 0;
  /** TCP mode: bytes of clients sent to this server, added as each connection closes. */
  bytesIn = 0;
  /** TCP mode: bytes of this server sent to clients, added as each connection closes. */
  bytesOut = 0;

  constructor(opts: {
    name: string;
    backend: string;
    host: string;
    port: number;
    weight: number;
    backup: boolean;
    maxConn?: number | undefined;
    /** Slow-start time in ms; 0 or absent: off. */
    slowStart?: number | undefined;
    /** Port the health check connects to instead of `port` (HAProxy `check port`). */
    checkPort?: number | undefined;
    /** Path this server's HTTP check requests instead of the backend's. */
    checkPath?: string | undefined;
  }) {
    this.name = opts.name;
    this.backend = opts.backend;
    this.host = opts.host;
    this.port = opts.port;
    this.address = formatAddress(opts.host, opts.port);
    const checkPort = opts.checkPort ?? opts.port;
    this.checkTarget = { host: opts.host, port: checkPort, address: formatAddress(opts.host, checkPort) };
    this.checkPath = opts.checkPath;
    this.weight = opts.weight;
    this.backup = opts.backup;
    this.maxConn = opts.maxConn;
    this.slowStart = new SlowStart(opts.slowStart ?? 0);
    this.pool = new ConnectionPool(opts.host, opts.port);
  }
}
