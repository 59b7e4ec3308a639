/** The command line of `npm run bench`. */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PACKAGE_ROOT } from '../src/config/load.js';
import { SPREAD_MODES, type SpreadMode } from '../src/config/schema.js';
import { UsageError } from '../src/errors.js';
import { CASES } from './backend/cases.js';

/** Every setting of one benchmark run. */
export interface BenchOptions {
  /** Seconds of each measured run. */
  durationSec: number;
  /** Seconds of the warm-up run before each point's measured runs (0: none). */
  warmupSec: number;
  /** Measured runs per point. */
  runs: number;
  /** Concurrency levels (keep-alive connections). */
  connections: number[];
  /** Contender ids to run; undefined: all. */
  only: string[] | undefined;
  /** Case ids to run. */
  cases: string[];
  /** `--quick` was given (recorded in the results). */
  quick: boolean;
  load: 'auto' | 'wrk' | 'autocannon';
  /** wrk threads / autocannon workers. */
  threads: number;
  /** Connections of the idle test; 0 skips it. */
  idleConnections: number;
  /** pgbench clients of the database reader endpoint measurement. */
  dbClients: number;
  /** Tandem's `workers` setting for its contenders (`auto`: one per core). */
  tandemWorkers: 'auto' | number;
  /** Tandem's `spreadConnections` setting for its contenders. */
  tandemSpread: SpreadMode;
  /** Directory the results are written to. */
  outDir: string;
  help: boolean;
}

/** The help text; CONTENDER_IDS stands for the list of contender ids. */
export const USAGE = `usage: npm run bench -- [options]

Measures Tandem's load balancer against HAProxy, nginx and a Node.js proxy on this machine.

  --duration SEC          seconds of each measured run (default 5; 2 with --quick)
  --warmup SEC            warm-up seconds before each point's runs, 0 for none (default 2; 1 with --quick)
  --runs N                measured runs per point, the median is reported (default 3; 1 with --quick)
  --connections LIST      concurrency levels (default 16,64,256)
  --only IDS              contenders to run (default all): CONTENDER_IDS
  --cases LIST            answers to measure (default all): ${CASES.map((c) => c.id).join(',')}
  --quick                 one short run per point: a smoke test, not a measurement
  --load wrk|autocannon   force a load generator (default: wrk if installed, else autocannon)
  --threads N             wrk threads / autocannon workers (default: half the cores, at least 1)
  --idle-connections N    connections of the idle-memory test, 0 to skip it (default 10000)
  --db-clients N          pgbench clients of the database reader endpoint measurement (default 16)
  --tandem-workers N      worker processes of Tandem's load balancers: auto (one per core, the default) or N
  --tandem-spread MODE    Tandem's spreadConnections: lopsided (the default), even or off
  --out DIR               where results are written (default bench/results)
  -h, --help              this text`;

/** Parses the benchmark's argv; throws UsageError on a bad option. */
export function parseOptions(argv: string[], contenderIds: readonly string[]): BenchOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        warmup: { type: 'string' },
        runs: { type: 'string' },
        connections: { type: 'string' },
        only: { type: 'string' },
        cases: { type: 'string' },
        quick: { type: 'boolean', default: false },
        load: { type: 'string' },
        threads: { type: 'string' },
        'idle-connections': { type: 'string' },
        'db-clients': { type: 'string' },
        'tandem-workers': { type: 'string' },
        'tandem-spread': { type: 'string' },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(`bench: ${(err as Error).message.replace(/\. To specify.*$/s, '')}`);
  }
  const quick = values.quick === true;
  const only = values.only === undefined ? undefined : list('--only', values.only);
  for (const id of only ?? []) {
    if (!contenderIds.includes(id))
      throw new UsageError(`bench: --only: no contender "${id}" (known: ${contenderIds.join(', ')})`);
  }
  const cases = values.cases === undefined ? CASES.map((c) => c.id) : list('--cases', values.cases);
  for (const id of cases) {
    if (!CASES.some((c) => c.id === id))
      throw new UsageError(`bench: --cases: no case "${id}" (known: ${CASES.map((c) => c.id).join(', ')})`);
  }
  const load = values.load ?? 'auto';
  const spreadMode = (v: string | undefined): SpreadMode => {
    if (v === undefined) return 'lopsided';
    if ((SPREAD_MODES as readonly string[]).includes(v)) return v as SpreadMode;
    throw new UsageError(`bench: --tandem-spread: must be ${SPREAD_MODES.join(', ')} (got "${v}")`);
  };
  if (load !== 'auto' && load !== 'wrk' && load !== 'autocannon')
    throw new UsageError(`bench: --load: must be wrk or autocannon (got "${load}")`);
  return {
    durationSec: seconds('--duration', values.duration, quick ? 2 : 5, 1),
    warmupSec: seconds('--warmup', values.warmup, quick ? 1 : 2, 0),
    runs: integer('--runs', values.runs, quick ? 1 : 3, 1),
    connections:
      values.connections === undefined
        ? [16, 64, 256]
        : list('--connections', values.connections).map((c) => integer('--connections', c, 0, 1)),
    only,
    cases,
    quick,
    load,
    threads: integer('--threads', values.threads, Math.max(1, Math.floor(availableParallelism() / 2)), 1),
    idleConnections: integer('--idle-connections', values['idle-connections'], 10_000, 0),
    dbClients: integer('--db-clients', values['db-clients'], 16, 1),
    tandemWorkers:
      values['tandem-workers'] === undefined || values['tandem-workers'] === 'auto'
        ? 'auto'
        : integer('--tandem-workers', values['tandem-workers'], 0, 1),
    tandemSpread: spreadMode(values['tandem-spread']),
    outDir: values.out ?? join(PACKAGE_ROOT, 'bench', 'results'),
    help: values.help === true,
  };
}

/** The usage text with the known contender ids filled in. */
export function usage(contenderIds: readonly string[]): string {
  return USAGE.replace('CONTENDER_IDS', contenderIds.join(','));
}

function list(flag: string, value: string): string[] {
  const items = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new UsageError(`bench: ${flag}: must be a comma-separated list`);
  return items;
}

function integer(flag: string, value: string | undefined, def: number, min: number): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || n < min)
    throw new UsageError(`bench: ${flag}: must be an integer ≥ ${min} (got "${value}")`);
  return n;
}

/** Whole seconds, written `10` or `10s`. */
function seconds(flag: string, value: string | undefined, def: number, min: number): number {
  if (value === undefined) return def;
  const m = /^\s*(\d+)\s*s?\s*$/.exec(value);
  if (!m || Number(m[1]) < min)
    throw new UsageError(
      `bench: ${flag}: must be a whole number of seconds ≥ ${min}, like 10 or 10s (got "${value}")`,
    );
  return Number(m[1]);
}
