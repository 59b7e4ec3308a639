/**
 * What a config reload keeps of each server. A server of the new config that was already in the
 * running backend (same name) keeps its run-time state:
 *
 * - same address, `backup`, `maxconn` and slow-start time: the very same `UpstreamServer` object
 *   goes on serving (health, counters, ejection, connection pool, requests in flight, all kept);
 * - otherwise a new object takes over its counters and operator state, and its health too when
 *   the address is the same; the old object finishes its requests in flight, then adds what it
 *   counted meanwhile to its successor and closes its connection pool (`retire`).
 *
 * Either way the operator state (drain, maint) survives, and so does a weight set through the admin
 * API, unless the reload changes that server's weight in the config.
 */
import type { Backend } from '../backend/backend.js';
import { UpstreamServer } from '../backend/upstream-server.js';

/** What the Backend constructor gives each UpstreamServer. */
export type ServerOptions = ConstructorParameters<typeof UpstreamServer>[0];

/** Plain counters of a server that only grow (responses by class are counted apart). */
const COUNTERS = [
  'totalRequests',
  'failures',
  'retries',
  'redispatches',
  'totalConnections',
  'bytesIn',
  'bytesOut',
] as const;

type Counters = Record<(typeof COUNTERS)[number], number> & { responses: number[] };

/**
 * The server for `opts` in a backend built to replace `previous`: the running server of that name,
 * or a new one that takes over its state (see the module comment), or simply a new one.
 */
export function adoptServer(previous: Backend | undefined, opts: ServerOptions): UpstreamServer {
  const prev = previous?.servers.find((s) => s.name === opts.name);
  if (previous === undefined || prev === undefined) return new UpstreamServer(opts);
  const configured = previous.config.servers.find((s) => s.name === opts.name)?.weight;
  // A weight set through the admin API survives, unless the config now says something else.
  const weight = configured === opts.weight ? prev.weight : opts.weight;
  if (
    prev.host === opts.host &&
    prev.port === opts.port &&
    prev.backup === opts.backup &&
    prev.maxConn === opts.maxConn &&
    prev.slowStart.duration === (opts.slowStart ?? 0) &&
    prev.checkTarget.port === (opts.checkPort ?? opts.port) &&
    prev.checkPath === opts.checkPath
  ) {
    prev.weight = weight;
    prev.ignoreHealth = false; // the new backend decides about panic mode itself
    return prev;
  }
  const next = new UpstreamServer({ ...opts, weight });
  next.adminState = prev.adminState;
  addCounters(next, snapshot(prev));
  if (prev.host === opts.host && prev.port === opts.port) {
    next.up = prev.up;
    Object.assign(next.check, prev.check);
    next.ejectedUntil = prev.ejectedUntil;
    Object.assign(next.outlier, prev.outlier);
  }
  return next;
}

/** A server that the reload took out of service; see `retire`. */
export interface Retired {
  server: UpstreamServer;
  /** The server that took over its counters, if any. */
  successor: UpstreamServer | undefined;
  /** Its counters when the successor took them over. */
  counted: Counters;
}

/**
 * The servers of `old` that are not in any of `current` any more (removed, or replaced by a new
 * object), each with its successor: the server of the same name in `current`, if any.
 */
export function retiredServers(old: Backend, current: readonly Backend[]): Retired[] {
  const kept = new Set(current.flatMap((b) => b.servers));
  const successors = current.find((b) => b.name === old.name)?.servers;
  return old.servers
    .filter((s) => !kept.has(s))
    .map((server) => ({
      server,
      successor: successors?.find((s) => s.name === server.name),
      counted: snapshot(server),
    }));
}

/**
 * Lets a retired server finish its requests in flight (polling `inFlight`; nothing else uses it
 * any more), then adds what it counted since the reload to its successor and closes its pool of
 * keep-alive connections. Resolves then.
 */
export function retire(r: Retired, pollMs = 100): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      if (r.successor !== undefined) addCounters(r.successor, difference(snapshot(r.server), r.counted));
      r.server.pool.destroy();
      resolve();
    };
    if (r.server.inFlight <= 0) {
      finish();
      return;
    }
    const timer = setInterval(() => {
      if (r.server.inFlight > 0) return;
      clearInterval(timer);
      finish();
    }, pollMs);
    timer.unref();
  });
}

function snapshot(s: UpstreamServer): Counters {
  const c = { responses: [...s.responses] } as Counters;
  for (const k of COUNTERS) c[k] = s[k];
  return c;
}

function difference(a: Counters, b: Counters): Counters {
  const c = { responses: a.responses.map((v, i) => v - (b.responses[i] ?? 0)) } as Counters;
  for (const k of COUNTERS) c[k] = a[k] - b[k];
  return c;
}

function addCounters(s: UpstreamServer, c: Counters): void {
  for (const k of COUNTERS) s[k] += c[k];
  c.responses.forEach((v, i) => {
    s.responses[i] = (s.responses[i] ?? 0) + v;
  });
}
