import type { BackendConfig, ServerConfig } from '../../config/schema.js';
import { StartupError } from '../../errors.js';
import type { Balancer } from '../balance/balancer.js';
import { createBalancer } from '../balance/create-balancer.js';
import type { HealthChangeListener, HealthCheck } from '../health/health-check.js';
import { HttpHealthCheck } from '../health/http-check.js';
import type { BackendStatus, ServerStatus } from '../stats/status.js';
import { UpstreamServer } from './upstream-server.js';

/** A backend at run time: its servers (with health and counters), its balancer, its checks. */
export class Backend {
  readonly name: string;
  readonly servers: readonly UpstreamServer[];
  readonly balancer: Balancer<UpstreamServer>;
  private checks: HealthCheck[] = [];

  /** Resolves each backend server's address from `servers` (the config's top-level list). */
  constructor(
    readonly config: BackendConfig,
    servers: readonly ServerConfig[],
  ) {
    this.name = config.name;
    this.servers = config.servers.map((s, i) => {
      const target = servers.find((t) => t.name === s.name);
      if (!target) throw new StartupError(`backend ${config.name}: no server named "${s.name}" in servers`);
      return new UpstreamServer({
        name: s.name,
        backend: config.name,
        host: target.host,
        port: target.port,
        weight: s.weight,
        backup: s.backup || (config.mode === 'active-passive' && i > 0),
        maxConn: s.maxconn,
      });
    });
    this.balancer = createBalancer(config.balance, this.servers);
  }

  /** Starts one health check per server; resolves when every server has had its first check. */
  startChecks(onChange: HealthChangeListener): Promise<void> {
    this.stopChecks();
    this.checks = this.servers.map((s) => new HttpHealthCheck(s, this.config.healthCheck, onChange));
    for (const check of this.checks) check.start();
    return Promise.all(this.checks.map((c) => c.firstResult)).then(() => undefined);
  }

  /** Stops every health check; servers keep their last state. */
  stopChecks(): void {
    for (const check of this.checks) check.stop();
    this.checks = [];
  }

  /** Closes the keep-alive connections to the servers. */
  destroyAgents(): void {
    for (const s of this.servers) s.agent.destroy();
  }

  status(): BackendStatus {
    return {
      name: this.name,
      balance: this.config.balance,
      mode: this.config.mode,
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
    inFlight: s.inFlight,
    totalRequests: s.totalRequests,
    responses: { '2xx': r[2]!, '3xx': r[3]!, '4xx': r[4]!, '5xx': r[5]! },
    failures: s.failures,
    check: {
      lastResult: c.lastResult,
      lastError: c.lastError,
      lastCheckAt: c.lastCheckAt ? new Date(c.lastCheckAt).toISOString() : null,
      lastDurationMs: c.lastResult === null ? null : c.lastDurationMs,
      consecutive: c.consecutive,
    },
  };
}
