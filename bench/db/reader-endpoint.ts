/**
 * The database `reader` endpoint under load: a database-only Tandem stack (`tandem db` for each
 * node, `tandem cluster`, and `tandem lb` serving the writer and reader endpoints; no web server)
 * with a PostgreSQL primary and replicas, and `pgbench -S` (select-only, prepared statements)
 * through the reader endpoint: first with one replica running, then with two. For reference,
 * the same load straight to one replica, with no proxy in between.
 */
import { execFile } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../../src/config/load.js';
import { readSecret } from '../../src/db/secrets.js';
import { BenchError } from '../bench-error.js';
import type { Child, ChildGroup } from '../children.js';
import { findExecutable, versionOf } from '../executables.js';
import { HOST, freePort, httpGet } from '../net.js';
import type { BenchOptions } from '../options.js';
import { median, sum } from '../stats.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'tandem.js');
/** What `--only` calls this measurement. */
export const READER_ID = 'db-reader';
/** pgbench's scale: 100,000 accounts per unit; the select-only load reads them by key. */
const SCALE = 1;
/** Longest wait for a node, the cluster manager or the load balancer to start. */
const START_TIMEOUT_MS = 180_000;
/** Longest wait for the reader endpoint to route to a replica, or for a replica to catch up. */
const ROUTE_TIMEOUT_MS = 60_000;
/** Where Debian's PostgreSQL packages put pgbench, searched before PATH. */
const PGBENCH_PATHS = ['/usr/lib/postgresql/15/bin/pgbench', '/usr/lib/postgresql/16/bin/pgbench'];

/** One point: pgbench to one replica directly, or through the reader endpoint with `replicas` running. */
export interface ReaderPoint {
  target: 'direct' | 'reader';
  replicas: number;
  /** Each measured run: transactions per second, mean latency, failed transactions. */
  runs: PgbenchResult[];
  /** Median over the runs. */
  tps: number;
  latencyMs: number;
  /** Summed over the runs. */
  failed: number;
  /** tps ÷ the direct point's. */
  ratio?: number;
}

/** The reader endpoint part of a benchmark run. */
export interface ReaderResults {
  /** pgbench's version, and the load it ran. */
  pgbench?: string;
  clients: number;
  threads: number;
  points: ReaderPoint[];
  /** Why it was not measured (pgbench missing, not selected). */
  skipped?: string;
  /** Why it stopped (a component did not start). */
  failed?: string;
}

/** What one pgbench run printed. */
export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  failed: number;
}

/** The figures of pgbench's report, or undefined when it printed none (it failed). */
export function parsePgbenchOutput(output: string): PgbenchResult | undefined {
  const tps = /^tps = ([\d.]+) \(without initial connection time\)$/m.exec(output);
  const latency = /^latency average = ([\d.]+) ms$/m.exec(output);
  if (!tps || !latency) return undefined;
  const failed = /^number of failed transactions: (\d+)/m.exec(output);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]), failed: Number(failed?.[1] ?? 0) };
}

/** The pgbench to use, or undefined when none is installed. */
export function findPgbench(): string | undefined {
  return PGBENCH_PATHS.find(isExecutable) ?? findExecutable('pgbench');
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

interface Stack {
  dataDir: string;
  file: string;
  nodes: Array<{ name: string; port: number }>;
  writer: number;
  reader: number;
  stats: number;
  children: Map<string, Child>;
}

export interface ReaderContext {
  options: BenchOptions;
  children: ChildGroup;
  workDir: string;
  log: (line: string) => void;
}

/** Runs the reader endpoint measurement; never throws (a failure is reported in the result). */
export async function measureReaderEndpoint(ctx: ReaderContext): Promise<ReaderResults> {
  const o = ctx.options;
  const clients = o.dbClients;
  const threads = Math.min(o.threads, clients);
  const result: ReaderResults = { clients, threads, points: [] };
  const pgbench = findPgbench();
  if (pgbench === undefined) {
    result.skipped = 'pgbench is not installed (apt-get install postgresql-15)';
    return result;
  }
  result.pgbench = await versionOf('pgbench', pgbench, ['--version'], /\(PostgreSQL\) (\S+)/);
  const stack = await writeStack(ctx.workDir);
  try {
    // One replica: the primary, db-02, the manager and the endpoints; db-03 is not started yet.
    await startComponent(ctx, stack, 'db-01', ['db', '--node', 'db-01']);
    await startComponent(ctx, stack, 'db-02', ['db', '--node', 'db-02']);
    await startComponent(ctx, stack, 'cluster', ['cluster']);
    await startComponent(ctx, stack, 'lb', ['lb', '--name', 'bench-db']);
    const env = { ...process.env, PGPASSWORD: readSecret(stack.dataDir, 'db-app') ?? '' };
    const at = (port: number) => ['-h', HOST, '-p', String(port), '-U', 'app', 'app'];
    await run(pgbench, ['-i', '-s', String(SCALE), '-q', ...at(stack.writer)], env, 'pgbench -i');
    await caughtUp(stack, 'db-02', env['PGPASSWORD']!);
    await routed(stack, ['db-02']);
    const load = (port: number, replicas: number, target: ReaderPoint['target']) =>
      measurePoint(ctx, pgbench, at(port), env, { target, replicas });
    result.points.push(await load(stack.nodes[1]!.port, 1, 'direct'));
    result.points.push(await load(stack.reader, 1, 'reader'));
    // A second replica joins (cloned from the primary); the endpoint spreads the reads over both.
    await startComponent(ctx, stack, 'db-03', ['db', '--node', 'db-03']);
    await caughtUp(stack, 'db-03', env['PGPASSWORD']!);
    await routed(stack, ['db-02', 'db-03']);
    result.points.push(await load(stack.reader, 2, 'reader'));
  } catch (err) {
    result.failed = (err as Error).message;
  } finally {
    // The load balancer first, then the manager, then the nodes (replicas before the primary).
    for (const name of ['lb', 'cluster', 'db-03', 'db-02', 'db-01']) {
      const child = stack.children.get(name);
      if (child) await ctx.children.stop(child);
    }
  }
  const direct = result.points.find((p) => p.target === 'direct');
  for (const p of result.points) if (direct && direct.tps > 0) p.ratio = p.tps / direct.tps;
  return result;
}

/** The stack's config in `<workDir>/db-reader` (readable by PostgreSQL's unprivileged user). */
async function writeStack(workDir: string): Promise<Stack> {
  const dir = join(workDir, 'db-reader');
  mkdirSync(dir, { recursive: true });
  // The engine runs as its own user when the harness runs as root: it must reach its data dir.
  chmodSync(workDir, 0o755);
  chmodSync(dir, 0o755);
  const nodes = [];
  for (const name of ['db-01', 'db-02', 'db-03'])
    nodes.push({ name, port: await freePort(), apiPort: await freePort() });
  const [writer, reader, stats, web, app, frontend, admin] = await Promise.all(
    [1, 2, 3, 4, 5, 6, 7].map(() => freePort()),
  );
  const config = {
    dataDir: join(dir, 'data'),
    // The load balancer's HTTP side needs a server; none is started (the stack is the database's).
    servers: [{ name: 'web-01', host: HOST, port: web, app: { port: app, processes: 1 } }],
    loadBalancers: [
      {
        name: 'bench-db',
        host: HOST,
        frontends: [{ name: 'web', host: HOST, port: frontend, backend: 'web' }],
        stats: { host: HOST, port: stats },
        admin: { host: HOST, port: admin },
      },
    ],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }] }],
    database: {
      nodes: nodes.map((n, i) => ({ ...n, host: HOST, role: i === 0 ? 'primary' : 'replica' })),
      endpoints: { loadBalancer: 'bench-db', writer: { port: writer }, reader: { port: reader } },
    },
  };
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, stringify(config));
  return {
    dataDir: config.dataDir,
    file,
    nodes,
    writer: writer!,
    reader: reader!,
    stats: stats!,
    children: new Map(),
  };
}

/** Starts `tandem <args>` of the stack and waits for its `ready on` line. */
async function startComponent(ctx: ReaderContext, stack: Stack, name: string, args: string[]): Promise<void> {
  const child = ctx.children.spawn(
    `tandem ${args.join(' ')}`,
    process.execPath,
    [BIN, ...args, '-c', stack.file, '-d', stack.dataDir],
    { env: { ...process.env, TANDEM_LOG_LEVEL: 'info' } },
  );
  stack.children.set(name, child);
  try {
    await child.waitForLine(
      `tandem ${args.join(' ')} ready`,
      (l) => l.includes(' ready on '),
      START_TIMEOUT_MS,
    );
  } catch (err) {
    throw new BenchError(`tandem ${args.join(' ')} did not start: ${(err as Error).message}${child.tail()}`);
  }
  ctx.log(`database reader endpoint: tandem ${args.join(' ')} is ready`);
}

/** Waits until replica `name` has every pgbench account (the init was replicated to it). */
async function caughtUp(stack: Stack, name: string, password: string): Promise<void> {
  const node = stack.nodes.find((n) => n.name === name)!;
  const want = 100_000 * SCALE;
  await until(`${name} to have the pgbench tables`, async () => {
    const client = new pg.Client({ host: HOST, port: node.port, user: 'app', password, database: 'app' });
    await client.connect();
    try {
      const r = await client.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_accounts');
      return Number(r.rows[0]!.n) === want;
    } finally {
      await client.end();
    }
  });
}

/** Waits until the load balancer's reader backend routes to exactly `replicas` (its checks passed). */
async function routed(stack: Stack, replicas: string[]): Promise<void> {
  await until(`the reader endpoint to route to ${replicas.join(' and ')}`, async () => {
    const status = JSON.parse((await httpGet(stack.stats, '/status')).body.toString()) as {
      backends: Array<{ name: string; servers: Array<{ name: string; state: string; backup: boolean }> }>;
    };
    const reader = status.backends.find((b) => b.name === 'db-reader');
    const up = reader?.servers.filter((s) => !s.backup && s.state === 'up').map((s) => s.name) ?? [];
    return up.length === replicas.length && replicas.every((r) => up.includes(r));
  });
}

/** A warm-up run, then the measured runs, of `pgbench -S` against `target`. */
async function measurePoint(
  ctx: ReaderContext,
  pgbench: string,
  target: string[],
  env: NodeJS.ProcessEnv,
  what: Pick<ReaderPoint, 'target' | 'replicas'>,
): Promise<ReaderPoint> {
  const o = ctx.options;
  const threads = Math.min(o.threads, o.dbClients);
  const args = (sec: number) => [
    '-S',
    '-M',
    'prepared',
    '-c',
    String(o.dbClients),
    '-j',
    String(threads),
    '-T',
    String(sec),
    ...target,
  ];
  if (o.warmupSec > 0) await run(pgbench, args(o.warmupSec), env, 'pgbench -S (warm-up)');
  const runs: PgbenchResult[] = [];
  for (let i = 0; i < o.runs; i++) {
    const out = await run(pgbench, args(o.durationSec), env, 'pgbench -S');
    const r = parsePgbenchOutput(out);
    if (r === undefined) throw new BenchError(`pgbench -S printed no result:\n${out}`);
    runs.push(r);
  }
  const point: ReaderPoint = {
    ...what,
    runs,
    tps: median(runs.map((r) => r.tps)),
    latencyMs: median(runs.map((r) => r.latencyMs)),
    failed: sum(runs.map((r) => r.failed)),
  };
  ctx.log(
    `database reader endpoint: ${describe(point)}: ${Math.round(point.tps).toLocaleString('en-US')} tps, ` +
      `latency ${point.latencyMs.toFixed(2)} ms, ${point.failed} failed`,
  );
  return point;
}

/** `direct to one replica`, `reader endpoint, 2 replicas`. */
export function describe(p: Pick<ReaderPoint, 'target' | 'replicas'>): string {
  return p.target === 'direct'
    ? 'direct to one replica (no proxy)'
    : `reader endpoint, ${p.replicas} replica${p.replicas === 1 ? '' : 's'}`;
}

/** Runs `file args` to its end (at most a minute past its own run time); its stdout, or a BenchError. */
function run(file: string, args: string[], env: NodeJS.ProcessEnv, what: string): Promise<string> {
  const seconds = Number(args[args.indexOf('-T') + 1] ?? 0) || 0;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { env, timeout: (seconds + 60) * 1000, maxBuffer: 4 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new BenchError(`${what} failed: ${err.message}\n${stderr}`));
        else resolve(`${stdout}\n${stderr}`);
      },
    );
  });
}

/** Polls `check` (errors count as not yet) until it is true, at most ROUTE_TIMEOUT_MS. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ROUTE_TIMEOUT_MS;
  let last = '';
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline)
      throw new BenchError(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
