/** `tandem db status [--json]`: each node's role, activity and replication lag; the term; the last events. */
import { loadConfig } from '../config/load.js';
import { managerAlive, readClusterState, readNodeReport } from '../db/cluster/cluster-state.js';
import { createDriver } from '../db/cluster/db-node.js';
import type { NodeProbe } from '../db/engines/engine.js';
import { MariaDbDriver } from '../db/engines/mariadb-driver.js';
import { NotRunningError, UsageError } from '../errors.js';
import { parse } from './args.js';
import { formatTable } from './table.js';

interface NodeStatus {
  name: string;
  address: string;
  role: string | null;
  activity: string | null;
  /** Replayed position: LSN (PostgreSQL) or GTID position (MariaDB). */
  position: string | null;
  /** In `lagUnit`: what `maxLag` and `maximumLagOnFailover` compare. */
  lag: number | null;
  lagUnit: 'bytes' | 'transactions';
  /** Bytes of the primary's log (WAL, MariaDB binary log) not applied yet. */
  lagBytes: number | null;
  lagSeconds: number | null;
  sync: string | null;
  error: string | null;
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parse('db status', argv, { json: { type: 'boolean' } });
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const db = config.database;
  if (!db) throw new UsageError('db status: the config has no database section');
  const dataDir = config.paths.dataDir;
  const state = readClusterState(dataDir);
  if (!state) throw new NotRunningError(`the database cluster of ${dataDir} was never started`);
  const driver = createDriver(config);
  const primaryNode = db.nodes.find((n) => n.name === state.primary)!;
  let primaryProbe: NodeProbe | undefined;
  let links = new Map<string, { lagSeconds: number | null; mode: string }>();
  try {
    primaryProbe = await driver.probe(primaryNode, 1500);
    links = await driver.replicaLinks(primaryNode);
  } catch {
    // the primary is down: the table says so
  }
  const nodes: NodeStatus[] = [];
  for (const n of db.nodes) {
    const report = readNodeReport(dataDir, n.name);
    const s: NodeStatus = {
      name: n.name,
      address: `${n.host}:${n.port}`,
      role: null,
      activity: report?.activity ?? null,
      position: null,
      lag: null,
      lagUnit: driver.lagUnit,
      lagBytes: null,
      lagSeconds: null,
      sync: null,
      error: null,
    };
    try {
      const probe = await driver.probe(n, 1500);
      s.role = probe.role;
      s.position = probe.replayed;
      if (probe.role === 'replica') {
        s.lag = driver.diff(primaryProbe?.position, probe.replayed);
        s.lagBytes = primaryProbe ? driver.lagBytes(primaryProbe, probe) : null;
        const link = links.get(n.name);
        s.lagSeconds = link ? link.lagSeconds : await driver.replicaLagSeconds(n).catch(() => null);
        s.sync =
          link?.mode ??
          (driver instanceof MariaDbDriver ? await driver.replicaMode(n).catch(() => null) : 'not streaming');
      }
    } catch (err) {
      s.error = (err as Error).message;
    }
    nodes.push(s);
  }
  const out = {
    term: state.term,
    primary: state.primary,
    replication: db.replication,
    manager: managerAlive(dataDir) ? 'running' : 'not running',
    blocked: state.blocked,
    nodes,
    events: state.history.slice(-5),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return 0;
  }
  // PostgreSQL's lag is in bytes already; MariaDB's in transactions, then bytes of binary log.
  const byTransactions = driver.lagUnit === 'transactions';
  const count = (v: number | null) => (v === null ? '-' : String(v));
  const lines = [
    `term ${state.term}, primary ${state.primary}, ${db.replication} replication, manager ${out.manager}`,
    ...(state.blocked ? [`FAILOVER BLOCKED: ${state.blocked}`] : []),
    '',
    formatTable(
      [
        'NODE',
        'ADDRESS',
        'ROLE',
        'ACTIVITY',
        byTransactions ? 'GTID' : 'LSN',
        ...(byTransactions ? ['LAG TX'] : []),
        'LAG BYTES',
        'LAG S',
        'SYNC',
      ],
      nodes.map((n) => [
        n.name,
        n.address,
        n.role ?? (n.error ? 'down' : '-'),
        n.activity ?? '-',
        n.position || '-',
        ...(byTransactions ? [count(n.lag), count(n.lagBytes)] : [count(n.lag)]),
        n.lagSeconds === null ? '-' : n.lagSeconds.toFixed(3),
        n.sync ?? '-',
      ]),
    ),
    '',
    'last events:',
    ...state.history
      .slice(-5)
      .map(
        (e) =>
          `  term ${e.term}  ${e.at}  ${e.kind.padEnd(10)} ${e.primary}${e.previous ? ` (was ${e.previous})` : ''}: ${e.note}`,
      ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
