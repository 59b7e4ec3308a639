/** `tandem status [--json]`: each component's state, pid, address and role, and server health. */
import { loadConfig } from '../config/load.js';
import { lockHolder, readState } from '../orchestrator/state-file.js';
import { parse } from './args.js';
import { formatTable } from './table.js';

interface LbServerStatus {
  name: string;
  state: string;
  weight: number;
  inFlight?: number;
  totalRequests?: number;
}

export const USAGE = `usage: tandem status [--json] [-c FILE] [-d DIR]

Shows each component of the stack that \`tandem up\` runs for this data dir: state, pid, address,
role, and each load balancer's view of its servers.

options:
  --json                print the status as JSON
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('status', argv, { json: { type: 'boolean' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const dataDir = config.paths.dataDir;
  const holder = lockHolder(dataDir);
  const state = holder !== undefined ? readState(dataDir) : undefined;
  if (!state) {
    if (values.json) process.stdout.write(`${JSON.stringify({ running: false, dataDir }, null, 2)}\n`);
    else process.stdout.write(`Tandem is not running for ${dataDir}. Start it with \`tandem up\`.\n`);
    return 3;
  }
  const health: Record<string, LbServerStatus[]> = {};
  for (const lb of config.loadBalancers) {
    try {
      const res = await fetch(`http://${lb.stats.host}:${lb.stats.port}/status`, {
        signal: AbortSignal.timeout(2000),
      });
      const body = (await res.json()) as { backends: { name: string; servers: LbServerStatus[] }[] };
      for (const b of body.backends) health[`${lb.name} ${b.name}`] = b.servers;
    } catch {
      // The load balancer is down or starting: its row above says so.
    }
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ running: true, ...state, health }, null, 2)}\n`);
    return 0;
  }
  const out: string[] = [];
  out.push(`Tandem ${state.state} (pid ${state.pid}, since ${state.startedAt}; config: ${state.config})`, '');
  out.push(
    formatTable(
      ['COMPONENT', 'STATE', 'PID', 'ADDRESS', 'ROLE', 'RESTARTS'],
      state.components.map((c) => [
        c.id,
        c.state,
        String(c.pid ?? '-'),
        c.address,
        c.role ?? '-',
        String(c.restarts),
      ]),
    ),
  );
  for (const r of state.remote) out.push(`  ${r.id}: on ${r.host} (not managed from here)`);
  for (const [name, servers] of Object.entries(health)) {
    out.push('', `Backend ${name}:`);
    out.push(
      formatTable(
        ['SERVER', 'HEALTH', 'WEIGHT', 'IN FLIGHT', 'REQUESTS'],
        servers.map((s) => [
          s.name,
          s.state,
          String(s.weight),
          String(s.inFlight ?? '-'),
          String(s.totalRequests ?? '-'),
        ]),
      ),
    );
  }
  const cluster = state.components.find((c) => c.kind === 'cluster');
  const dbNodes = cluster?.details['nodes'] as DbNodeLag[] | undefined;
  if (dbNodes) {
    out.push(
      '',
      `Database cluster: term ${String(cluster!.details['term'])}, primary ${String(cluster!.details['primary'])}`,
    );
    out.push(
      formatTable(
        ['NODE', 'ROLE', 'LAG', 'LAG S'],
        dbNodes.map((n) => [
          n.name,
          n.role ?? '-',
          formatLag(n),
          n.lagSeconds === null || n.lagSeconds === undefined ? '-' : n.lagSeconds.toFixed(3),
        ]),
      ),
    );
  }
  const failing = state.components.filter((c) => c.lastError);
  for (const c of failing) out.push('', `${c.id}: last error: ${c.lastError}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

/** A database node as the cluster manager reports it (see ClusterManager.reportReplication). */
interface DbNodeLag {
  name: string;
  role: string;
  lag: number | null;
  lagUnit?: string;
  lagBytes?: number | null;
  lagSeconds?: number | null;
}

/** `4096 B` (PostgreSQL); `12 tx / 4096 B` (MariaDB: transactions, then bytes of binary log). */
function formatLag(n: DbNodeLag): string {
  const known = (v: number | null | undefined): v is number => v !== null && v !== undefined;
  if (n.lagUnit !== 'transactions') return known(n.lag) ? `${n.lag} B` : '-';
  if (!known(n.lag) && !known(n.lagBytes)) return '-';
  return `${known(n.lag) ? n.lag : '-'} tx / ${known(n.lagBytes) ? `${n.lagBytes} B` : '- B'}`;
}
