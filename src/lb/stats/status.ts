/** The shape of `GET /status` on the stats port, and of `LoadBalancerHandle.status()`. */
import type { WorkerInfo } from '../workers/worker-pool.js';

export interface ServerStatus {
  name: string;
  /** `host:port` of the server's web server. */
  address: string;
  weight: number;
  /** Effective backup flag (`backup: true`, or not the first server in mode active-passive). */
  backup: boolean;
  state: 'up' | 'down';
  /** Operator state (admin API): `ready`, `drain` (no new requests; in-flight ones finish) or `maint` (disabled). */
  adminState: 'ready' | 'drain' | 'maint';
  /** Requests being proxied to the server now. */
  inFlight: number;
  /** Requests sent to the server, retries included. */
  totalRequests: number;
  /** Responses received from the server, by status class. */
  responses: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Requests that failed on the server: connect errors, timeouts, resets. */
  failures: number;
  /** Failed requests to the server that were sent again (HAProxy's `wretr`). */
  retries: number;
  /** Of those, the ones sent to another server (HAProxy's `wredis`). */
  redispatches: number;
  /** Passive health: ejected now (no new requests until `ejectedUntil`). */
  ejected: boolean;
  /** ISO 8601 time the current ejection ends, null when not ejected. */
  ejectedUntil: string | null;
  /** TCP mode: connections sent to the server (every attempt, redispatches included). */
  totalConnections: number;
  /** TCP mode: bytes from clients to the server, and from the server to clients (counted as connections close). */
  bytes: { in: number; out: number };
  check: {
    lastResult: 'ok' | 'fail' | null;
    lastError: string | null;
    /** ISO 8601 time the last check ended, null before the first one. */
    lastCheckAt: string | null;
    lastDurationMs: number | null;
    /** Checks in a row with the same result as the last one. */
    consecutive: number;
  };
}

export interface BackendStatus {
  name: string;
  balance: string;
  mode: 'active-active' | 'active-passive';
  /** Panic mode: too few servers healthy (panicThreshold), so every server takes traffic. */
  panic: boolean;
  /** Requests waiting in the backend queue now (every usable server at its maxconn). */
  queued: number;
  /** Sum of the servers' `retries`. */
  retries: number;
  /** Sum of the servers' `redispatches`. */
  redispatches: number;
  servers: ServerStatus[];
}

export interface FrontendStatus {
  name: string;
  /** `host:port` the frontend listens on. */
  address: string;
  backend: string;
}

export interface LbStatus {
  /** Name of the load balancer (lb-01). */
  name: string;
  /** The load balancer's process (with workers: the primary's). */
  pid: number;
  frontends: FrontendStatus[];
  /** Counters are summed over the workers (with workers). */
  backends: BackendStatus[];
  /** The worker processes, when the load balancer has them (`workers` above 1). */
  workers?: WorkerInfo[];
}
