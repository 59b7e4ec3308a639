/**
 * One load balancer process: its backends (servers, balancer, health checks), one proxy per
 * frontend, the stats endpoint (HTML, JSON, Prometheus metrics) and the admin API; a config reload
 * changes them in place (reload/reload.ts). `tandem lb` runs this; tests run it in-process.
 */
import { loadConfig, type ResolvedConfig } from '../config/load.js';
import type { BackendConfig, FrontendConfig, LoadBalancerConfig, TandemConfig } from '../config/schema.js';
import { ReloadError, UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatAddress } from './address.js';
import { Backend } from './backend/backend.js';
import type { HealthChange, HealthChangeListener } from './health/health-check.js';
import { listen } from './listen.js';
import { HttpProxy } from './proxy/http-proxy.js';
import { proxyOptions } from './proxy/proxy-options.js';
import type { UpstreamServer } from './backend/upstream-server.js';
import { TcpProxy } from './proxy/tcp-proxy.js';
import { createAdminServer } from './admin/admin-server.js';
import { ensureAdminToken } from './admin/admin-token.js';
import { closeNow, type FrontendProxy, type RunningLb } from './reload/reload.js';
import { type ReloadResult, Reloader } from './reload/reloader.js';
import { LbMetrics } from './stats/metrics.js';
import { createStatsServer } from './stats/stats-server.js';
import type { LbStatus } from './stats/status.js';

/** A running load balancer. */
export interface LoadBalancerHandle {
  /** Health and counters of every backend server, as served on the stats port. */
  status(): LbStatus;
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
  const metrics = new LbMetrics(() => run.backends.values());
  const newBackend = (bc: BackendConfig, all: ResolvedConfig, previous: Backend | undefined): Backend => {
    const b = new Backend(bc, all.servers, log, previous);
    b.latency = metrics.latencyOf(bc.name);
    return b;
  };
  const backends = new Map<string, Backend>();
  for (const f of lb.frontends) {
    if (backends.has(f.backend)) continue;
    const bc = config.backends.find((b) => b.name === f.backend);
    if (!bc) throw new UsageError(`${name} frontend ${f.name}: no backend named "${f.backend}"`);
    backends.set(f.backend, newBackend(bc, config, undefined));
  }
  const proxies = lb.frontends.map((f) => createProxy(f, backends.get(f.backend)!, lb, log));
  const status = (): LbStatus => ({
    name,
    pid: process.pid,
    frontends: run.lb.frontends.map((f) => ({
      name: f.name,
      address: formatAddress(f.host, f.port),
      backend: f.backend,
    })),
    backends: [...run.backends.values()].map((b) => b.status()),
  });
  const onHealthChange: HealthChangeListener = (change) => {
    metrics.healthChanged(change);
    if (!change.initial) shutDownSessions(run, change);
    options.onHealthChange?.(change);
  };
  const adminTarget = {
    backends: () => run.backends,
    token: () => run.token,
    reload: () => reloader.reload(),
    log,
  };
  const run: RunningLb = {
    name,
    log,
    config,
    lb,
    backends,
    proxies,
    stats: createStatsServer(status, metrics),
    admin: createAdminServer(adminTarget),
    token: adminToken(lb, config),
    drainTimeout,
    onHealthChange,
    retiring: new Set(),
    closing: new Set(),
    newBackend,
    newProxy: (f, backend, l) => createProxy(f, backend, l, log),
    configureProxy,
    newStats: () => createStatsServer(status, metrics),
    newAdmin: () => createAdminServer(adminTarget),
    adminToken,
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
      for (const b of run.backends.values()) b.destroyAgents();
      for (const r of run.retiring) r.server.agent.destroy();
    })();
    return closing;
  };

  await firstRound([...backends.values()], onHealthChange);
  try {
    for (const p of proxies) {
      const f = p.frontend;
      await listen(p.server, f.host, f.port, `${name} frontend ${f.name}`);
      p.server.on('error', (err) => log.error(`frontend ${f.name}: ${err.message}`));
    }
    await listen(run.stats, lb.stats.host, lb.stats.port, `${name} stats`);
    run.stats.on('error', (err) => log.error(`stats: ${err.message}`));
    await listen(run.admin, lb.admin.host, lb.admin.port, `${name} admin API`);
    run.admin.on('error', (err) => log.error(`admin API: ${err.message}`));
  } catch (err) {
    await close();
    throw err;
  }
  return { status, reload: (next) => reloader.reload(next), close };
}

/** The proxy of one frontend, TCP (layer 4) or HTTP (layer 7), with the load balancer's timeouts. */
function createProxy(
  f: FrontendConfig,
  backend: Backend,
  lb: LoadBalancerConfig,
  log: Logger,
): FrontendProxy {
  return f.mode === 'tcp'
    ? new TcpProxy(f, backend, tcpTimeouts(lb), log)
    : new HttpProxy(f, backend, httpTimeouts(lb), log, proxyOptions(lb));
}

/** A reload's timeouts and limits for a proxy that keeps running: they apply to its next requests (connections). */
function configureProxy(p: FrontendProxy, lb: LoadBalancerConfig): void {
  if (p instanceof TcpProxy) {
    p.timeouts = tcpTimeouts(lb);
  } else if (p instanceof HttpProxy) {
    p.configure(httpTimeouts(lb), proxyOptions(lb));
  }
}

function httpTimeouts(lb: LoadBalancerConfig) {
  return {
    connectTimeout: lb.connectTimeout,
    serverTimeout: lb.serverTimeout,
    keepAliveTimeout: lb.keepAliveTimeout,
    headersTimeout: lb.headersTimeout,
    tunnelTimeout: lb.tunnelTimeout,
  };
}

function tcpTimeouts(lb: LoadBalancerConfig) {
  return { connectTimeout: lb.connectTimeout, idleTimeout: lb.tunnelTimeout };
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
function shutDownSessions(run: RunningLb, change: HealthChange): void {
  const backend = run.backends.get(change.backend);
  if (!backend) return;
  const server = backend.servers.find((s) => s.name === change.server);
  if (!server) return;
  let victims: UpstreamServer[] = [];
  if (!change.up && backend.config.onMarkedDown === 'shutdown-sessions') victims = [server];
  if (change.up && !server.backup && backend.config.onMarkedUp === 'shutdown-backup-sessions')
    victims = backend.servers.filter((s) => s.backup);
  let closed = 0;
  for (const p of run.proxies) {
    if (!(p instanceof TcpProxy) || p.backend !== backend) continue;
    for (const v of victims) closed += p.shutdownSessionsOf(v);
  }
  if (closed > 0)
    run.log.warn(
      `backend ${change.backend}: closed ${closed} connection(s) ${change.up ? `to backups, ${change.server} is up` : `to ${change.server}, marked down`}`,
    );
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
