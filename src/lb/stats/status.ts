/** The shape of `GET /status` on the stats port, and of `LoadBalancerHandle.status()`. */

export interface ServerStatus {
  name: string;
  /** `host:port` of the server's web server. */
  address: string;
  weight: number;
  /** Effective backup flag (`backup: true`, or not the first server in mode active-passive). */
  backup: boolean;
  state: 'up' | 'down';
  /** Requests being proxied to the server now. */
  inFlight: number;
  /** Requests sent to the server, retries included. */
  totalRequests: number;
  /** Responses received from the server, by status class. */
  responses: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Requests that failed on the server: connect errors, timeouts, resets. */
  failures: number;
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
  pid: number;
  frontends: FrontendStatus[];
  backends: BackendStatus[];
}
