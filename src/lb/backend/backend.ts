import type { BackendConfig, ServerConfig } from '../../config/schema.js';
import { parseHostPort } from '../../config/host-port.js';
import { StartupError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Balancer, PickContext } from '../balance/balancer.js';
import { createBalancer } from '../balance/create-balancer.js';
import type { HealthChangeListener, HealthCheck } from '../health/health-check.js';
import { createHealthCheck } from '../health/create-health-check.js';
import { createStickyCookie, type StickyCookie } from '../proxy/sticky.js';
import { RequestQueue } from '../proxy/queue.js';
import type { LatencyHistogram } from '../stats/latency-histogram.js';
import type { BackendStatus, ServerStatus } from '../stats/status.js';
import { PassiveHealth, type PassiveHealthSink } from './passive-health.js';
import { adoptServer } from '../reload/carry-over.js';
import type { UpstreamServer } from './upstream-server.js';

const SILENT: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** A backend at run time: its servers (with health and counters), its balancer, its checks. */
export class Backend {
  readonly name: string;
  readonly servers: readonly UpstreamServer[];
  readonly balancer: Balancer<UpstreamServer>;
  /** Sticky sessions by an inserted cookie (`stickyCookie`); undefined when not configured. */
  readonly sticky: StickyCookie<UpstreamServer> | undefined;
  /** Where the proxy records each request's latency (set by the load balancer for its metrics). */
  latency: LatencyHistogram | undefined = undefined;
  private checks: HealthCheck[] = [];
  /** Passive health: the proxy reports answers and failures here; it ejects servers. */
  readonly passive: PassiveHealthSink;
  /** Panic mode (see updatePanic): every server counts as usable, health ignored. */
  panic = false;
  /** Requests waiting while every usable server is at its maxconn (`queue.size`, `queue.timeout`). */
  readonly queue: RequestQueue;

  /**
   * In a load balancer's primary process, which serves no request itself: the requests waiting in
   * the workers' queues of this backend (their sum, as last read).
   */
  remoteQueued = 0;
  /** Called when passive health ejects a server or ends an ejection (the primary tells its workers). */
  onStateChange: (() => void) | undefined = undefined;

  /** Requests waiting in the queue now. */
  get queued(): number {
    return this.queue.length + this.remoteQueued;
  }

  /**
   * Resolves each backend server's address from `servers` (the config's top-level list). A config
   * reload passes the running backend of the same name as `previous`: its servers carry over (see
   * reload/carry-over.ts). `passive`: where the proxy's reports go, default the backend's own
   * PassiveHealth (a worker process reports to its primary instead).
   */
  constructor(
    readonly config: BackendConfig,
    servers: readonly ServerConfig[],
    private readonly log: Logger = SILENT,
    previous?: Backend,
    passive?: (servers: readonly UpstreamServer[]) => PassiveHealthSink,
  ) {
    this.name = config.name;
    this.servers = config.servers.map((s, i) => {
      // `address: host:port` (a database node, say) wins over the web server of the same name.
      const target =
        (s.address === undefined ? undefined : parseHostPort(s.address)) ??
        servers.find((t) => t.name === s.name);
      if (!target) throw new StartupError(`backend ${config.name}: no server named "${s.name}" in servers`);
      return adoptServer(previous, {
        name: s.name,
        backend: config.name,
        host: target.host,
        port: target.port,
        weight: s.weight,
        backup: s.backup || (config.mode === 'active-passive' && i > 0),
        maxConn: s.maxconn,
        slowStart: config.slowStart,
        checkPort: s.checkPort,
        checkPath: s.checkPath,
      });
    });
    this.balancer = createBalancer(config, this.servers);
    this.sticky = createStickyCookie(config, this.servers);
    this.queue = new RequestQueue(config.queue.size, config.queue.timeout);
    this.passive =
      passive?.(this.servers) ??
      new PassiveHealth(config.passiveHealth, this.servers, log, () => {
        this.updatePanic();
        this.onStateChange?.();
      });
  }

  /** Starts one health check per server; resolves when every server has had its first check. */
  startChecks(onChange: HealthChangeListener): Promise<void> {
    this.stopChecks();
    this.checks = this.servers.map((s) =>
      createHealthCheck(s, this.config.healthCheck, (change) => {
        // Slow start ramps a server that comes back, not the initial state (as in HAProxy).
        if (change.up && !change.initial) s.slowStart.begin();
        this.updatePanic();
        onChange(change);
      }),
    );
    for (const check of this.checks) check.start();
    return Promise.all(this.checks.map((c) => c.firstResult)).then(() => undefined);
  }

  /** Stops every health check; servers keep their last state. */
  stopChecks(): void {
    for (const check of this.checks) check.stop();
    this.checks = [];
    this.passive.stop();
  }

  /**
   * The next server for a request that failed on each of `tried` (the last one last): like
   * `balancer.pick`, with every server of `tried` left out of the pick.
   */
  pickUntried(ctx: PickContext, tried: readonly UpstreamServer[]): UpstreamServer | undefined {
    for (const s of tried) s.skipped = true;
    try {
      return this.balancer.pick(ctx, tried[tried.length - 1]);
    } finally {
      for (const s of tried) s.skipped = false;
    }
  }

  /**
   * Panic mode, like Envoy's panic threshold: when some but fewer than `panicThreshold` percent of
   * the servers are healthy (up and not ejected), every server counts as usable (health ignored;
   * drain and maintenance still honoured), since spreading traffic over possibly bad servers beats
   * overloading the few good ones. With no healthy server at all there is no panic: requests are
   * answered 503. Called on every health transition and ejection.
   */
  updatePanic(): void {
    const threshold = this.config.panicThreshold;
    const now = Date.now();
    let healthy = 0;
    for (const s of this.servers) if (s.up && s.ejectedUntil <= now) healthy++;
    const panic = threshold > 0 && healthy > 0 && healthy * 100 < threshold * this.servers.length;
    if (panic === this.panic) return;
    this.panic = panic;
    for (const s of this.servers) s.ignoreHealth = panic;
    if (panic)
      this.log.warn(
        `backend ${this.name}: PANIC: ${healthy} of ${this.servers.length} servers healthy, below panicThreshold ${threshold}%: balancing over all servers`,
      );
    else
      this.log.info(
        `backend ${this.name}: out of panic mode: ${healthy} of ${this.servers.length} servers healthy`,
      );
  }

  /** Closes the keep-alive connections to the servers. */
  destroyAgents(): void {
    for (const s of this.servers) s.pool.destroy();
  }

  status(): BackendStatus {
    return {
      name: this.name,
      balance: this.config.balance,
      mode: this.config.mode,
      panic: this.panic,
      queued: this.queued,
      retries: this.servers.reduce((n, s) => n + s.retries, 0),
      redispatches: this.servers.reduce((n, s) => n + s.redispatches, 0),
      servers: this.servers.map(serverStatus),
    };
  }
}

function serverStatus(s: UpstreamServer): ServerStatus {
  const r = s.responses;
  const c = s.check;
  return {
    name: s.name,
    address: s.address,
    weight: s.weight,
    backup: s.backup,
    state: s.up ? 'up' : 'down',
    adminState: s.adminState,
    inFlight: s.reportedInFlight ?? s.inFlight,
    totalRequests: s.totalRequests,
    responses: { '2xx': r[2]!, '3xx': r[3]!, '4xx': r[4]!, '5xx': r[5]! },
    failures: s.failures,
    retries: s.retries,
    redispatches: s.redispatches,
    ejected: s.ejectedUntil > Date.now(),
    ejectedUntil: s.ejectedUntil > Date.now() ? new Date(s.ejectedUntil).toISOString() : null,
    totalConnections: s.totalConnections,
    bytes: { in: s.bytesIn, out: s.bytesOut },
    check: {
      lastResult: c.lastResult,
      lastError: c.lastError,
      lastCheckAt: c.lastCheckAt ? new Date(c.lastCheckAt).toISOString() : null,
      lastDurationMs: c.lastResult === null ? null : c.lastDurationMs,
      consecutive: c.consecutive,
    },
  };
}
