/**
 * One load balancer: its backends (servers, balancer, health checks), one proxy per frontend, the
 * stats endpoint (HTML, JSON, Prometheus metrics) and the admin API; a config reload changes them
 * in place (reload/reload.ts). `tandem lb` runs this; tests run it in-process.
 *
 * With `workers` above 1 this process is the primary: it listens, runs the health checks, the
 * stats and the admin API, and hands each client connection to one of its worker processes, which
 * proxy it (workers/primary-plane.ts). With `workers: 1` everything runs in this process.
 */
import { loadConfig, type ResolvedConfig } from '../config/load.js';
import type { BackendConfig, FrontendConfig, LoadBalancerConfig, TandemConfig } from '../config/schema.js';
import { ReloadError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatAddress } from './address.js';
import { Backend } from './backend/backend.js';
import type { HealthChange, HealthChangeListener } from './health/health-check.js';
import { listen } from './listen.js';
import { configureProxy, createProxy } from './proxy/create-proxy.js';
import type { UpstreamServer } from './backend/upstream-server.js';
import { TcpProxy } from './proxy/tcp-proxy.js';
import { createAdminServer } from './admin/admin-server.js';
import { ensureAdminToken } from './admin/admin-token.js';
import { closeNow, type RunningLb } from './reload/reload.js';
import { type ReloadResult, Reloader } from './reload/reloader.js';
import { LbMetrics } from './stats/metrics.js';
import { createStatsServer } from './stats/stats-server.js';
import type { LbStatus } from './stats/status.js';
import { PrimaryPlane } from './workers/primary-plane.js';
import { workerCount } from './workers/worker-count.js';

/** A running load balancer. */
export interface LoadBalancerHandle {
  /**
   * Health and counters of every backend server, as served on the stats port. With workers, their
   * counters are read when asked: once it resolves, what every worker counted before it is in, and
   * every worker has applied every state change made before it.
   */
  status(): Promise<LbStatus>;
  /**
   * Applies `next` (default: the config read again, see LoadBalancerOptions.loadConfig) without
   * dropping a connection (see reload/reload.ts). Rejects with a TandemError, and changes nothing,
   * when the config is invalid or cannot be applied. `POST /reload` on the admin API and SIGHUP
   * to `tandem lb` call this.
   */
  reload(next?: ResolvedConfig): Promise<ReloadResult>;
  /**
   * Stops accepting, stops the health checks, lets in-flight requests finish (up to the drain
   * timeout), closes idle keep-alive connections and the connection pools. Safe to call twice.
   */
  close(): Promise<void>;
}

export interface LoadBalancerOptions {
  /** Called on every server health transition, the initial state of each server included. */
  onHealthChange?: HealthChangeListener | undefined;
  /** Longest wait for in-flight requests on close() (default 5000 ms). */
  drainTimeout?: number | undefined;
  /** How reload() reads the config again; default: the config's source file, with its data dir. */
  loadConfig?: (() => ResolvedConfig) | undefined;
  /** Worker processes; default the load balancer's `workers` (`auto`: one per core). */
  workers?: number | undefined;
}

/** Extra wait for the first round of checks beyond the longest check timeout. */
const FIRST_ROUND_SLACK_MS = 250;

/** The load balancer named `name`; a UsageError listing the known names if there is none. */
export function findLoadBalancer(config: TandemConfig, name: string): LoadBalancerConfig {
  const lb = config.loadBalancers.find((l) => l.name === name);
  if (!lb) {
    const known = config.loadBalancers.map((l) => l.name).join(', ');
    throw new UsageError(`no load balancer named "${name}" in the config (known: ${known})`);
  }
  return lb;
}

/**
 * Starts the load balancer `name` of `config`: health checks first (it waits for their first round,
 * so the first requests already go to healthy servers), then the frontends and the stats port.
 * A listen failure rejects with the error from `listenError` (PortInUseError for an address in use),
 * after everything already started is stopped again.
 */
export async function startLoadBalancer(
  config: ResolvedConfig,
  name: string,
  log: Logger,
  options: LoadBalancerOptions = {},
): Promise<LoadBalancerHandle> {
  const lb = findLoadBalancer(config, name);
  const drainTimeout = options.drainTimeout ?? 5000;
  const workers = options.workers ?? workerCount(lb.workers);
  const plane = workers > 1 ? new PrimaryPlane(() => run, workers, drainTimeout, log) : undefined;
  const metrics = new LbMetrics(() => run.backends.values(), plane && (() => plane.workers()));
  const newBackend = (bc: BackendConfig, all: ResolvedConfig, previous: Backend | undefined): Backend => {
    const b = new Backend(bc, all.servers, log, previous);
    b.latency = metrics.latencyOf(bc.name);
    if (plane) b.onStateChange = () => plane.stateChanged(b);
    return b;
  };
  const backends = new Map<string, Backend>();
  for (const f of lb.frontends) {
    if (backends.has(f.backend)) continue;
    const bc = config.backends.find((b) => b.name === f.backend);
    if (!bc) throw new UsageError(`${name} frontend ${f.name}: no backend named "${f.backend}"`);
    backends.set(f.backend, newBackend(bc, config, undefined));
  }
  const newProxy = (f: FrontendConfig, backend: Backend, l: LoadBalancerConfig) =>
    plane ? plane.newListener(f, backend) : createProxy(f, backend, l, log);
  const proxies = lb.frontends.map((f) => newProxy(f, backends.get(f.backend)!, lb));
  /** The status as of now: with workers, of their counters as last read. */
  const snapshot = (): LbStatus => ({
    name,
    pid: process.pid,
    frontends: run.lb.frontends.map((f) => ({
      name: f.name,
      address: formatAddress(f.host, f.port),
      backend: f.backend,
    })),
    backends: [...run.backends.values()].map((b) => b.status()),
    ...(plane ? { workers: plane.workers() } : {}),
  });
  /** With workers: reads their counters into the primary's backends. */
  const refresh = async (): Promise<void> => {
    await plane?.refresh();
  };
  const status = async (): Promise<LbStatus> => {
    await refresh();
    return snapshot();
  };
  const onHealthChange: HealthChangeListener = (change) => {
    metrics.healthChanged(change);
    plane?.stateChanged(run.backends.get(change.backend));
    if (!change.initial) shutDownSessions(run, change, plane);
    options.onHealthChange?.(change);
  };
  const adminTarget = {
    backends: () => run.backends,
    token: () => run.token,
    reload: () => reloader.reload(),
    refresh,
    changed: async (backend: Backend) => {
      if (!plane) return;
      plane.stateChanged(backend);
      await plane.sync();
    },
    log,
  };
  const run: RunningLb = {
    name,
    log,
    config,
    lb,
    backends,
    proxies,
    stats: createStatsServer(status, metrics, refresh),
    admin: createAdminServer(adminTarget),
    token: adminToken(lb, config),
    drainTimeout,
    onHealthChange,
    retiring: new Set(),
    closing: new Set(),
    newBackend,
    newProxy,
    configureProxy,
    newStats: () => createStatsServer(status, metrics, refresh),
    newAdmin: () => createAdminServer(adminTarget),
    adminToken,
    ...(plane
      ? {
          // The workers retire their own servers; the primary's have nothing in flight.
          retire: (r) => {
            r.server.pool.destroy();
            return Promise.resolve();
          },
          committed: () => plane.reloaded(),
        }
      : {}),
  };
  const reloader = new Reloader(run, metrics, options.loadConfig ?? (() => readAgain(config)));

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      reloader.stop();
      for (const b of run.backends.values()) b.stopChecks();
      await Promise.all([
        closeNow(run.stats),
        closeNow(run.admin),
        ...run.proxies.map((p) => p.close(drainTimeout)),
        ...run.closing,
      ]);
      await plane?.stop(drainTimeout);
      for (const b of run.backends.values()) b.destroyAgents();
      for (const r of run.retiring) r.server.pool.destroy();
    })();
    return closing;
  };

  if (plane) {
    try {
      await plane.start();
    } catch (err) {
      await close();
      throw err;
    }
  }
  await firstRound([...backends.values()], onHealthChange);
  try {
    for (const p of proxies) {
      const f = p.frontend;
      await p.listen(`${name} frontend ${f.name}`);
    }
    await listen(run.stats, lb.stats.host, lb.stats.port, `${name} stats`);
    run.stats.on('error', (err) => log.error(`stats: ${err.message}`));
    await listen(run.admin, lb.admin.host, lb.admin.port, `${name} admin API`);
    run.admin.on('error', (err) => log.error(`admin API: ${err.message}`));
    await plane?.announce();
  } catch (err) {
    await close();
    throw err;
  }
  return { status, reload: (next) => reloader.reload(next), close };
}

/** The admin API token: `admin.token` from the config, else the one generated under the data dir. */
function adminToken(lb: LoadBalancerConfig, config: ResolvedConfig): string {
  return lb.admin.token ?? ensureAdminToken(config.paths.dataDir, lb.name);
}

/** The config read again from its file (what a reload applies by default). */
function readAgain(config: ResolvedConfig): ResolvedConfig {
  if (config.source === 'built-in default' || !config.source.startsWith('/'))
    throw new ReloadError(
      `the load balancer runs the ${config.source}: there is no config file to read again`,
    );
  return loadConfig({ file: config.source, dataDir: config.paths.dataDir });
}

/** Starts every backend's checks and waits for their first results, at most one check timeout (+ slack). */
/**
 * HAProxy's `on-marked-down shutdown-sessions` and `on-marked-up shutdown-backup-sessions`, for
 * TCP frontends: a server marked down loses its established connections; an active server marked
 * up takes the backups' connections back (their clients reconnect and land on it).
 */
function shutDownSessions(run: RunningLb, change: HealthChange, plane: PrimaryPlane | undefined): void {
  const backend = run.backends.get(change.backend);
  if (!backend) return;
  const server = backend.servers.find((s) => s.name === change.server);
  if (!server) return;
  let victims: UpstreamServer[] = [];
  if (!change.up && backend.config.onMarkedDown === 'shutdown-sessions') victims = [server];
  if (change.up && !server.backup && backend.config.onMarkedUp === 'shutdown-backup-sessions')
    victims = backend.servers.filter((s) => s.backup);
  if (victims.length === 0) return;
  const report = (closed: number) => {
    if (closed > 0)
      run.log.warn(
        `backend ${change.backend}: closed ${closed} connection(s) ${change.up ? `to backups, ${change.server} is up` : `to ${change.server}, marked down`}`,
      );
  };
  if (plane) {
    if (run.proxies.some((p) => p.frontend.mode === 'tcp' && p.backend === backend))
      void plane
        .shutdownSessions(
          backend.name,
          victims.map((v) => v.name),
        )
        .then(report);
    return;
  }
  let closed = 0;
  for (const p of run.proxies) {
    if (!(p instanceof TcpProxy) || p.backend !== backend) continue;
    for (const v of victims) closed += p.shutdownSessionsOf(v);
  }
  report(closed);
}

async function firstRound(backends: Backend[], onChange: HealthChangeListener | undefined): Promise<void> {
  const listener: HealthChangeListener = (change) => onChange?.(change);
  const all = Promise.all(backends.map((b) => b.startChecks(listener)));
  const bound = Math.max(...backends.map((b) => b.config.healthCheck.timeout)) + FIRST_ROUND_SLACK_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, bound);
  });
  await Promise.race([all, deadline]);
  clearTimeout(timer);
}
