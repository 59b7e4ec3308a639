import type { PassiveHealthConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { UpstreamServer } from './upstream-server.js';

/** What passive health counts for one server (kept on the server: `UpstreamServer.outlier`). */
export interface OutlierCounters {
  /** Connection errors and timeouts in a row. */
  errors: number;
  /** 5xx answers and connection errors in a row. */
  fiveXx: number;
  /** Ejections in a row: the next one lasts `baseEjectionTime × (streak + 1)`. */
  streak: number;
  /** When the last ejection ended or ends (ms since the epoch); 0 before the first one. */
  lastEjectionEnd: number;
}

/** Fresh counters for a server. */
export function outlierCounters(): OutlierCounters {
  return { errors: 0, fiveXx: 0, streak: 0, lastEjectionEnd: 0 };
}

/** Where the proxy reports what it sees of each server: PassiveHealth, or in a worker process its reporter. */
export interface PassiveHealthSink {
  /** `server` answered with `status` (response headers received). */
  response(server: UpstreamServer, status: number): void;
  /** A request to `server` failed without an answer: connection error, reset or timeout (`why`). */
  error(server: UpstreamServer, why: string): void;
  /** Clears the timers that end ejections. */
  stop(): void;
}

/**
 * Passive health of one backend (outlier detection, like Envoy's): the proxy reports every answer
 * and every failure it sees, and a server with `consecutiveErrors` connection errors (or
 * `consecutive5xx` 5xx answers) in a row is ejected, i.e. gets no new requests, before its active
 * check notices anything.
 *
 * The n-th ejection in a row lasts `baseEjectionTime × n`, at most `maxEjectionTime`; each
 * `baseEjectionTime` a server then spends in rotation without being ejected takes one off n.
 * Never more than `maxEjectedPercent` of the backend's servers are ejected at once (rounded down).
 * An ejection ends on its own time, whatever the active check says meanwhile.
 */
export class PassiveHealth implements PassiveHealthSink {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly maxStreak: number;

  constructor(
    private readonly config: PassiveHealthConfig,
    private readonly servers: readonly UpstreamServer[],
    private readonly log: Logger,
    /** Called when a server is ejected and when an ejection ends. */
    private readonly onChange: () => void,
  ) {
    this.maxStreak = Math.ceil(config.maxEjectionTime / config.baseEjectionTime);
  }

  /** `server` answered with `status` (response headers received). */
  response(server: UpstreamServer, status: number): void {
    const o = server.outlier;
    if (status < 500) {
      o.errors = 0;
      o.fiveXx = 0;
      return;
    }
    const limit = this.config.consecutive5xx;
    if (limit > 0 && ++o.fiveXx >= limit) {
      this.eject(
        server,
        `${count(o.fiveXx, '5xx answer')} in a row, the last HTTP ${status}`,
        o.fiveXx === limit,
      );
    }
  }

  /** A request to `server` failed without an answer: connection error, reset or timeout (`why`). */
  error(server: UpstreamServer, why: string): void {
    const o = server.outlier;
    o.errors++;
    o.fiveXx++;
    const { consecutiveErrors, consecutive5xx } = this.config;
    if (consecutiveErrors > 0 && o.errors >= consecutiveErrors) {
      const reason = `${count(o.errors, 'connection error')} in a row, the last ${why}`;
      this.eject(server, reason, o.errors === consecutiveErrors);
    } else if (consecutive5xx > 0 && o.fiveXx >= consecutive5xx) {
      this.eject(
        server,
        `${count(o.fiveXx, '5xx answer or error')} in a row, the last ${why}`,
        o.fiveXx === consecutive5xx,
      );
    }
  }

  /** Clears the timers that end ejections (ejected servers stay so until their time is over). */
  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Ejects `server`, unless it is already or the share of ejected servers would pass the limit. */
  private eject(server: UpstreamServer, reason: string, first: boolean): void {
    const now = Date.now();
    if (server.ejectedUntil > now) return;
    let ejected = 0;
    for (const s of this.servers) if (s.ejectedUntil > now) ejected++;
    const where = `backend ${server.backend}: server ${server.name}`;
    if ((ejected + 1) * 100 > this.config.maxEjectedPercent * this.servers.length) {
      if (first)
        this.log.warn(
          `${where} not ejected (${reason}): ${ejected} of ${this.servers.length} servers are ejected, maxEjectedPercent is ${this.config.maxEjectedPercent}`,
        );
      return;
    }
    const o = server.outlier;
    const base = this.config.baseEjectionTime;
    if (o.streak > 0) o.streak = Math.max(0, o.streak - Math.floor((now - o.lastEjectionEnd) / base));
    o.streak = Math.min(o.streak + 1, this.maxStreak);
    const ms = Math.min(base * o.streak, this.config.maxEjectionTime);
    const until = now + ms;
    server.ejectedUntil = until;
    o.lastEjectionEnd = until;
    o.errors = 0;
    o.fiveXx = 0;
    this.log.warn(`${where} ejected for ${formatMs(ms)} (${reason}; ejection ${o.streak} in a row)`);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (server.ejectedUntil !== until) return;
      server.ejectedUntil = 0;
      // Failures of requests still in flight at the ejection do not count towards the next one.
      o.errors = 0;
      o.fiveXx = 0;
      this.log.info(`${where} is back in rotation after its ejection`);
      this.onChange();
    }, ms);
    timer.unref();
    this.timers.add(timer);
    this.onChange();
  }
}

/** `300ms`, `10s`, `2.5s`. */
function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`;
}

/** `1 connection error`, `3 connection errors`. */
function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}
