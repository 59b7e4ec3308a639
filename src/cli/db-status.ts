/** `tandem db status [--json]`: each node's role, activity and replication lag; the term; the last events. */
import pg from 'pg';
import { loadConfig } from '../config/load.js';
import { lsnDiff, managerAlive, readClusterState, readNodeReport } from '../db/cluster/cluster-state.js';
import { SUPERUSER } from '../db/engines/postgres.js';
import { readSecret } from '../db/secrets.js';
import { NotRunningError, UsageError } from '../errors.js';
import { parse } from './args.js';
import { formatTable } from './table.js';
import { pgClient } from '../db/pg-client.js';

interface NodeStatus {
  name: string;
  address: string;
  role: string | null;
  activity: string | null;
  lsn: string | null;
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
  const password = readSecret(dataDir, 'db-superuser') ?? '';
  const query = async <T extends pg.QueryResultRow>(n: { host: string; port: number }, sql: string) => {
    const c = pgClient({
      host: n.host,
      port: n.port,
      user: SUPERUSER,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 1500,
    });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  };
  const primaryNode = db.nodes.find((n) => n.name === state.primary)!;
  let primaryLsn: string | null = null;
  const replication = new Map<string, { lag: number | null; sync: string }>();
  try {
    const rows = await query<{ name: string; sync: string; lag: number | null; lsn: string }>(
      primaryNode,
      `SELECT application_name AS name, sync_state AS sync, extract(epoch FROM replay_lag)::float8 AS lag,
              pg_current_wal_lsn()::text AS lsn FROM pg_stat_replication`,
    );
    for (const r of rows) replication.set(r.name, { lag: r.lag, sync: r.sync });
    primaryLsn =
      rows[0]?.lsn ??
      (await query<{ lsn: string }>(primaryNode, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
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
      lsn: null,
      lagBytes: null,
      lagSeconds: null,
      sync: null,
      error: null,
    };
    try {
      const [row] = await query<{ r: boolean; lsn: string }>(
        n,
        'SELECT pg_is_in_recovery() AS r, (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn',
      );
      s.role = row!.r ? 'replica' : 'primary';
      s.lsn = row!.lsn;
      if (row!.r) {
        s.lagBytes = lsnDiff(primaryLsn, row!.lsn);
        const rep = replication.get(n.name);
        s.lagSeconds = rep ? (rep.lag ?? 0) : null;
        s.sync = rep?.sync ?? 'not streaming';
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
  const lines = [
    `term ${state.term}, primary ${state.primary}, ${db.replication} replication, manager ${out.manager}`,
    ...(state.blocked ? [`FAILOVER BLOCKED: ${state.blocked}`] : []),
    '',
    formatTable(
      ['NODE', 'ADDRESS', 'ROLE', 'ACTIVITY', 'LSN', 'LAG BYTES', 'LAG S', 'SYNC'],
      nodes.map((n) => [
        n.name,
        n.address,
        n.role ?? (n.error ? 'down' : '-'),
        n.activity ?? '-',
        n.lsn ?? '-',
        n.lagBytes === null ? '-' : String(n.lagBytes),
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
