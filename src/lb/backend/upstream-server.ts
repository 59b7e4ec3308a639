import { Agent } from 'node:http';
import { formatAddress } from '../address.js';
import type { BalancedServer } from '../balance/balancer.js';
import type { CheckState } from '../health/health-check.js';

/** What the load balancer knows about one server of a backend: address, health, counters. */
export class UpstreamServer implements BalancedServer {
  readonly name: string;
  /** Name of the backend this server belongs to. */
  readonly backend: string;
  readonly host: string;
  readonly port: number;
  /** `host:port`. */
  readonly address: string;
  /** Configured weight; an operator may change it at run time. */
  weight: number;
  readonly backup: boolean;
  /** Health, set by the health check. Down until the first check succeeds. */
  up = false;

  /** The weight balancers use now (see BalancedServer.effectiveWeight). */
  get effectiveWeight(): number {
    return this.weight;
  }

  /**
   * Operator state: `ready` (normal), `drain` (no new requests; in-flight ones finish; health
   * checks go on), `maint` (disabled: no requests).
   */
  adminState: 'ready' | 'drain' | 'maint' = 'ready';
  /** Passive health: ejected until this time (ms since the epoch); 0 when not ejected. */
  ejectedUntil = 0;
  /** Most requests at once (`maxconn`); undefined = no limit. */
  readonly maxConn: number | undefined;

  /** May take new requests now (see BalancedServer.usable). */
  get usable(): boolean {
    return (
      this.up && this.adminState === 'ready' && (this.ejectedUntil === 0 || Date.now() >= this.ejectedUntil)
    );
  }
  readonly check: CheckState = {
    lastResult: null,
    lastError: null,
    lastCheckAt: 0,
    lastDurationMs: 0,
    consecutive: 0,
  };
  /** Keep-alive connection pool to this server, used by the proxy. */
  readonly agent: Agent;

  /** Requests being proxied to this server right now. */
  inFlight = 0;
  /** Requests sent to this server (every attempt, retries included). */
  totalRequests = 0;
  /** Responses received from this server, indexed by status class: [1] = 1xx … [5] = 5xx. */
  readonly responses: number[] = [0, 0, 0, 0, 0, 0];
  /** Requests that failed on this server: connect errors, timeouts, resets. */
  failures = 0;

  constructor(opts: {
    name: string;
    backend: string;
    host: string;
    port: number;
    weight: number;
    backup: boolean;
    maxConn?: number | undefined;
  }) {
    this.name = opts.name;
    this.backend = opts.backend;
    this.host = opts.host;
    this.port = opts.port;
    this.address = formatAddress(opts.host, opts.port);
    this.weight = opts.weight;
    this.backup = opts.backup;
    this.maxConn = opts.maxConn;
    this.agent = new Agent({ keepAlive: true, scheduling: 'lifo', maxFreeSockets: 256, noDelay: true });
  }
}
