/**
 * `tandem lb --name lb-01 [-c FILE] [-d DIR]`: runs one load balancer until SIGINT/SIGTERM (or,
 * under `tandem up`, until the orchestrator goes away). Reports readiness and every server health
 * change to the orchestrator over IPC when there is one, and logs them either way.
 */
import { loadConfig } from '../config/load.js';
import { UsageError } from '../errors.js';
import { formatAddress } from '../lb/address.js';
import type { HealthChange } from '../lb/health/health-check.js';
import { adminTokenPath } from '../lb/admin/admin-token.js';
import { findLoadBalancer, startLoadBalancer } from '../lb/load-balancer.js';
import { createLogger } from '../log.js';
import { onShutdown, report } from '../orchestrator/component-process.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem lb --name NAME [-c FILE] [-d DIR]

Runs the load balancer NAME of the config: its frontends, health checks, stats endpoint and
admin API, with one worker process per core (loadBalancers[].workers) serving the connections. SIGHUP (or \`tandem reload\`) reads the config again and applies it without dropping
connections; an invalid config is logged and the running one kept.

options:
  -n, --name NAME       load balancer to run (a name in loadBalancers, like lb-01)
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

/** Entry point of `tandem lb`. Resolves once the load balancer serves; it then runs until a signal. */
export async function run(argv: string[]): Promise<number> {
  const { values } = parse('lb', argv, { name: { type: 'string', short: 'n' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const name = values.name;
  if (!name) {
    const known = config.loadBalancers.map((l) => l.name).join(', ');
    throw new UsageError(`lb: --name is required (load balancers in the config: ${known})`);
  }
  const lb = findLoadBalancer(config, name);
  const log = createLogger(name);
  const multiBackend = config.backends.length > 1;

  // The initial states are logged as they come; they are reported in one state message once ready.
  let ready = false;
  const states: Record<string, 'up' | 'down'> = {};
  const onHealthChange = (change: HealthChange) => {
    states[`${change.backend}/${change.server}`] = change.up ? 'up' : 'down';
    const line = describeChange(change, multiBackend);
    if (change.up) log.info(line);
    else log.warn(line);
    if (ready) report(log, { type: 'state', details: { servers: { ...states } } });
  };

  const handle = await startLoadBalancer(config, name, log, {
    onHealthChange,
    loadConfig: () => loadConfig({ file: values.config, dataDir: values['data-dir'] }),
  });
  onShutdown(log, () => handle.close());
  // SIGHUP, as nginx and HAProxy take it (and as `tandem up` forwards it): read the config again
  // and apply it without dropping a connection. The reloader logs the outcome either way.
  process.on('SIGHUP', () => {
    log.info('SIGHUP: reloading the config');
    handle
      .reload()
      .then(() => handle.status())
      .then(
        (status) => {
          for (const key of Object.keys(states)) delete states[key];
          for (const b of status.backends) for (const s of b.servers) states[`${b.name}/${s.name}`] = s.state;
          report(log, { type: 'state', details: { servers: { ...states } } });
        },
        (err: Error) => log.debug(`reload not applied: ${err.message}`),
      );
  });
  ready = true;
  const frontends = lb.frontends.map((f) => `${f.mode}://${formatAddress(f.host, f.port)}`);
  const stats = `http://${formatAddress(lb.stats.host, lb.stats.port)}/status`;
  report(log, {
    type: 'ready',
    address: frontends.join(' '),
    details: { frontends: Object.fromEntries(lb.frontends.map((f, i) => [f.name, frontends[i]])), stats },
  });
  log.info(`stats on ${stats}`);
  const tokenFrom = lb.admin.token
    ? 'loadBalancers[].admin.token'
    : adminTokenPath(config.paths.dataDir, name);
  log.info(`admin API on http://${formatAddress(lb.admin.host, lb.admin.port)}/ (token: ${tokenFrom})`);
  report(log, { type: 'state', details: { servers: { ...states } } });
  const workers = (await handle.status()).workers;
  log.info(
    workers === undefined
      ? 'one process (workers: 1)'
      : `${workers.length} worker processes (pids ${workers.map((w) => w.pid).join(', ')})`,
  );
  return 0;
}

/** `server web-02 is DOWN (3 failed checks: connect ECONNREFUSED)`. */
function describeChange(c: HealthChange, withBackend: boolean): string {
  const who = withBackend ? `server ${c.backend}/${c.server}` : `server ${c.server}`;
  if (c.initial)
    return c.up ? `${who} is UP (${c.reason})` : `${who} is DOWN (first check failed: ${c.reason})`;
  const checks = (n: number, what: string) => `${n} ${what} check${n === 1 ? '' : 's'}`;
  return c.up
    ? `${who} is UP (${checks(c.consecutive, 'successful')}: ${c.reason})`
    : `${who} is DOWN (${checks(c.consecutive, 'failed')}: ${c.reason})`;
}
