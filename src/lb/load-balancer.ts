/**
 * One load balancer process: its backends (servers, balancer, health checks), one HTTP proxy per
 * frontend, and the stats endpoint. `tandem lb` runs this; tests run it in-process.
 */
import type { Server } from 'node:http';
import type { ResolvedConfig } from '../config/load.js';
import type { LoadBalancerConfig, TandemConfig } from '../config/schema.js';
import { UsageError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatAddress } from './address.js';
import { Backend } from './backend/backend.js';
import type { HealthChangeListener } from './health/health-check.js';
import { listen } from './listen.js';
import { HttpProxy } from './proxy/http-proxy.js';
import { createStatsServer } from './stats/stats-server.js';
import type { LbStatus } from './stats/status.js';

/** A running load balancer. */
export interface LoadBalancerHandle {
  /** Health and counters of every backend server, as served on the stats port. */
  status(): LbStatus;
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
  const backends = new Map<string, Backend>();
  for (const f of lb.frontends) {
    if (backends.has(f.backend)) continue;
    const bc = config.backends.find((b) => b.name === f.backend);
    if (!bc) throw new UsageError(`${name} frontend ${f.name}: no backend named "${f.backend}"`);
    backends.set(f.backend, new Backend(bc, config.servers));
  }
  const timeouts = {
    connectTimeout: lb.connectTimeout,
    serverTimeout: lb.serverTimeout,
    keepAliveTimeout: lb.keepAliveTimeout,
  };
  const proxies = lb.frontends.map((f) => new HttpProxy(f, backends.get(f.backend)!, timeouts, log));
  const status = (): LbStatus => ({
    name,
    pid: process.pid,
    frontends: lb.frontends.map((f) => ({
      name: f.name,
      address: formatAddress(f.host, f.port),
      backend: f.backend,
    })),
    backends: [...backends.values()].map((b) => b.status()),
  });
  const stats = createStatsServer(status);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      for (const b of backends.values()) b.stopChecks();
      await Promise.all([closeStats(stats), ...proxies.map((p) => p.close(drainTimeout))]);
      for (const b of backends.values()) b.destroyAgents();
    })();
    return closing;
  };

  await firstRound([...backends.values()], options.onHealthChange);
  try {
    for (const p of proxies) {
      const f = p.frontend;
      await listen(p.server, f.host, f.port, `${name} frontend ${f.name}`);
      p.server.on('error', (err) => log.error(`frontend ${f.name}: ${err.message}`));
    }
    await listen(stats, lb.stats.host, lb.stats.port, `${name} stats`);
    stats.on('error', (err) => log.error(`stats: ${err.message}`));
  } catch (err) {
    await close();
    throw err;
  }
  return { status, close };
}

/** Starts every backend's checks and waits for their first results, at most one check timeout (+ slack). */
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

function closeStats(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
