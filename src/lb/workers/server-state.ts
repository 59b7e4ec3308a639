/**
 * What the primary and the workers exchange about servers: their run-time state (the primary's,
 * applied by every worker) and their counters (each worker's, summed by the primary).
 */
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';

/** The run-time state of one server that every worker must see the same. */
export interface ServerState {
  name: string;
  up: boolean;
  adminState: UpstreamServer['adminState'];
  weight: number;
  /** Passive health: ejected until (ms since the epoch), 0 when not ejected. */
  ejectedUntil: number;
  /** Slow start: when the running ramp began (ms since the epoch), 0 when not ramping. */
  slowStartAt: number;
  /** Passive health counts errors of this server now: report every answer (see RemotePassiveHealth). */
  watch: boolean;
}

/** The run-time state of one backend's servers, and its panic mode. */
export interface BackendState {
  name: string;
  panic: boolean;
  servers: ServerState[];
}

/** The state of `b` as the primary has it. */
export function backendState(b: Backend): BackendState {
  return {
    name: b.name,
    panic: b.panic,
    servers: b.servers.map((s) => ({
      name: s.name,
      up: s.up,
      adminState: s.adminState,
      weight: s.weight,
      ejectedUntil: s.ejectedUntil,
      slowStartAt: s.slowStart.startedAtEpoch(),
      watch: s.outlierWatch,
    })),
  };
}

/** Applies the primary's `state` to a worker's backend of the same name (servers matched by name). */
export function applyBackendState(b: Backend, state: BackendState): void {
  b.panic = state.panic;
  for (const st of state.servers) {
    const s = b.servers.find((x) => x.name === st.name);
    if (s === undefined) continue;
    s.up = st.up;
    s.adminState = st.adminState;
    s.weight = st.weight;
    s.ejectedUntil = st.ejectedUntil;
    s.slowStart.resume(st.slowStartAt);
    s.outlierWatch = st.watch;
    s.ignoreHealth = state.panic;
  }
}

/**
 * A server's counters as one array: in flight, requests, responses by class (6: index 0 unused,
 * then 1xx…5xx), failures, retries, redispatches, TCP connections, bytes in, bytes out.
 */
export type ServerCounters = number[];

const IN_FLIGHT = 0;
const REQUESTS = 1;
const RESPONSES = 2;
const FAILURES = 8;
const RETRIES = 9;
const REDISPATCHES = 10;
const CONNECTIONS = 11;
const BYTES_IN = 12;
const BYTES_OUT = 13;
const LENGTH = 14;

/** One backend's counters in one worker. */
export interface BackendCounters {
  name: string;
  /** Requests waiting in the worker's queue of this backend. */
  queued: number;
  /** The worker's latency histogram of this backend (LatencyHistogram.snapshot()). */
  latency: { counts: number[]; count: number; sum: number } | undefined;
  servers: Array<{ name: string; c: ServerCounters }>;
}

/** The counters of a worker's backend `b`. */
export function backendCounters(b: Backend): BackendCounters {
  return {
    name: b.name,
    queued: b.queued,
    latency: b.latency?.snapshot(),
    servers: b.servers.map((s) => ({ name: s.name, c: serverCounters(s) })),
  };
}

function serverCounters(s: UpstreamServer): ServerCounters {
  const c = new Array<number>(LENGTH).fill(0);
  c[IN_FLIGHT] = s.inFlight;
  c[REQUESTS] = s.totalRequests;
  for (let i = 0; i < 6; i++) c[RESPONSES + i] = s.responses[i] ?? 0;
  c[FAILURES] = s.failures;
  c[RETRIES] = s.retries;
  c[REDISPATCHES] = s.redispatches;
  c[CONNECTIONS] = s.totalConnections;
  c[BYTES_IN] = s.bytesIn;
  c[BYTES_OUT] = s.bytesOut;
  return c;
}

/** Sums of backend counters from several workers, by backend and server name. */
export class CounterSums {
  private readonly servers = new Map<string, ServerCounters>();
  private readonly queued = new Map<string, number>();
  private readonly latency = new Map<string, { counts: number[]; count: number; sum: number }>();

  /**
   * Adds one worker's counters. `gone`: the worker has exited, so nothing of it is in flight or
   * queued any more; only what it counted stays.
   */
  add(backends: readonly BackendCounters[], gone = false): void {
    for (const b of backends) {
      if (!gone) this.queued.set(b.name, (this.queued.get(b.name) ?? 0) + b.queued);
      if (b.latency !== undefined) {
        const l = this.latency.get(b.name);
        if (l === undefined) this.latency.set(b.name, { ...b.latency, counts: [...b.latency.counts] });
        else {
          b.latency.counts.forEach((v, i) => {
            l.counts[i] = (l.counts[i] ?? 0) + v;
          });
          l.count += b.latency.count;
          l.sum += b.latency.sum;
        }
      }
      for (const s of b.servers) {
        const key = `${b.name}\0${s.name}`;
        let sum = this.servers.get(key);
        if (sum === undefined) {
          sum = new Array<number>(LENGTH).fill(0);
          this.servers.set(key, sum);
        }
        for (let i = 0; i < LENGTH; i++) if (!(gone && i === IN_FLIGHT)) sum[i]! += s.c[i] ?? 0;
      }
    }
  }

  /** These sums as counters again (to add them to later sums: the counters of exited workers). */
  toCounters(): BackendCounters[] {
    const byBackend = new Map<string, BackendCounters>();
    const backend = (name: string): BackendCounters => {
      let b = byBackend.get(name);
      if (b === undefined) {
        b = { name, queued: 0, latency: this.latency.get(name), servers: [] };
        byBackend.set(name, b);
      }
      return b;
    };
    for (const [key, c] of this.servers) {
      const [b, s] = key.split('\0') as [string, string];
      backend(b).servers.push({ name: s, c: [...c] });
    }
    for (const name of this.latency.keys()) backend(name);
    return [...byBackend.values()];
  }

  /**
   * Writes the sums into the primary's backends `b` (its servers' counters, its queue length and
   * its latency histogram), which the status, the admin API and the metrics read.
   */
  writeInto(b: Backend): void {
    b.remoteQueued = this.queued.get(b.name) ?? 0;
    const l = this.latency.get(b.name);
    if (l !== undefined) b.latency?.setTotals(l.counts, l.count, l.sum);
    for (const s of b.servers) {
      const c = this.servers.get(`${b.name}\0${s.name}`);
      s.reportedInFlight = c?.[IN_FLIGHT] ?? 0;
      s.totalRequests = c?.[REQUESTS] ?? 0;
      for (let i = 0; i < 6; i++) s.responses[i] = c?.[RESPONSES + i] ?? 0;
      s.failures = c?.[FAILURES] ?? 0;
      s.retries = c?.[RETRIES] ?? 0;
      s.redispatches = c?.[REDISPATCHES] ?? 0;
      s.totalConnections = c?.[CONNECTIONS] ?? 0;
      s.bytesIn = c?.[BYTES_IN] ?? 0;
      s.bytesOut = c?.[BYTES_OUT] ?? 0;
    }
  }
}
