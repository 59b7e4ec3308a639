/**
 * One benchmark run: starts the two backends, then measures each contender in turn (same load
 * generator, same settings), runs the idle-connections test, and returns every figure.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchCase, CASES } from './backend/cases.js';
import { type BackendAddress, startBackends } from './backend/backends.js';
import type { ChildGroup } from './children.js';
import type { Contender, ContenderEnv, RunningContender } from './contenders/contender.js';
import { measureReaderEndpoint, READER_ID, type ReaderResults } from './db/reader-endpoint.js';
import { measureIdle } from './idle/idle-memory.js';
import type { LoadGenerator } from './load/load-generator.js';
import { pickLoadGenerator } from './load/pick.js';
import { describeMachine, machineLine } from './machine.js';
import { HOST, httpGet } from './net.js';
import type { BenchOptions } from './options.js';
import { cpuSeconds, peakRssBytes, processTree, resetPeakRss } from './proc-stats.js';
import { addRatios, checkTargets, summarizeRuns } from './report/summary.js';
import type { BenchResults, ContenderResult, PointResult, RunResult } from './results.js';

/** A request with no answer within this many seconds counts as a timeout error. */
const REQUEST_TIMEOUT_SEC = 5;
const MiB = 1024 * 1024;

/** What a run needs besides its options. */
export interface BenchContext {
  options: BenchOptions;
  contenders: readonly Contender[];
  children: ChildGroup;
  /** A temp directory for config files and logs, removed by the caller. */
  workDir: string;
  /** The command line, recorded in the results. */
  command: string;
  /** Prints one progress line. */
  log: (line: string) => void;
}

/** Runs the whole benchmark and returns its results (not yet written). */
export async function runBenchmark(ctx: BenchContext): Promise<BenchResults> {
  const { options: o, log } = ctx;
  const started = new Date().toISOString();
  const machine = describeMachine();
  log(`machine: ${machineLine(machine)}`);
  if (machine.loadAverageAtStart > 0.3 * machine.cores) {
    log(
      `note: the load average is ${machine.loadAverageAtStart} on ${machine.cores} cores: something else is running, ` +
        'the figures will be noisy',
    );
  }
  if (o.quick) log('note: --quick: one short run per point; a smoke test, not a measurement');
  const load = pickLoadGenerator(o.load, ctx.workDir);
  const loadVersion = await load.version();
  log(`load generator: ${loadVersion}`);

  const cases = CASES.filter((c) => o.cases.includes(c.id));
  const selected = ctx.contenders.filter((c) => !o.only || o.only.includes(c.id));
  const contenders: ContenderResult[] = [];
  const notes: string[] = [];
  const runnable: Contender[] = [];
  for (const c of selected) {
    const entry: ContenderResult = { id: c.id, label: c.label, layer: c.layer };
    contenders.push(entry);
    const reason = await c.unavailable();
    if (reason) {
      entry.skipped = reason;
      notes.push(`${c.label}: ${reason} (skipped)`);
      log(`${c.label}: ${reason} (skipped)`);
      continue;
    }
    entry.version = await c.version();
    runnable.push(c);
  }

  const perPoint = o.warmupSec + o.runs * o.durationSec + 0.5;
  const points = runnable.length * cases.length * o.connections.length;
  const idleCount = o.idleConnections > 0 ? runnable.filter((c) => c.layer !== 'none').length : 0;
  const estimate = points * perPoint + runnable.length * 3 + idleCount * 10;
  log(
    `measuring ${runnable.map((c) => c.id).join(', ')}: ${points} points × (${o.warmupSec} s warm-up + ` +
      `${o.runs} × ${o.durationSec} s), about ${Math.ceil(estimate / 60)} min`,
  );

  const backends = runnable.length > 0 ? await startBackends(ctx.children) : [];
  if (backends.length > 0)
    log(`backends: ${backends.map((b) => `${b.name} on ${HOST}:${b.port}`).join(', ')}`);
  const results: PointResult[] = [];
  for (const c of runnable) {
    const entry = contenders.find((e) => e.id === c.id)!;
    const failure = await measureContender(ctx, c, backends, cases, load, results);
    if (failure) {
      entry.failed = failure;
      notes.push(`${c.label}: failed: ${failure.split('\n')[0]}`);
      log(`${c.label}: failed: ${failure}`);
    }
  }

  const idle: BenchResults['idle'] = [];
  const idleSkipped: BenchResults['idleSkipped'] = [];
  if (o.idleConnections > 0) {
    for (const c of runnable) {
      if (c.layer === 'none') continue;
      const outcome = await idleTest(ctx, c, backends).catch((err: Error) => err.message);
      if (typeof outcome === 'string') {
        idleSkipped.push({ contender: c.id, reason: outcome });
        log(`${c.label}: idle test skipped: ${outcome}`);
      } else {
        idle.push(outcome);
        log(
          `${c.label}: ${outcome.held.toLocaleString('en-US')} of ${outcome.attempted.toLocaleString('en-US')} idle connections held ` +
            `(${outcome.stillOpen.toLocaleString('en-US')} still open), RSS ${outcome.rssBeforeMiB.toFixed(1)} → ` +
            `${outcome.rssHeldMiB.toFixed(1)} MiB${outcome.limitedBy ? `; limited by ${outcome.limitedBy}` : ''}` +
            `${outcome.firstError ? `; first failure: ${outcome.firstError}` : ''}`,
        );
      }
    }
  }

  let reader: ReaderResults | undefined;
  if (!o.only || o.only.includes(READER_ID)) {
    log(`database reader endpoint: pgbench -S with ${o.dbClients} clients, one replica then two`);
    reader = await measureReaderEndpoint(ctx);
    const why = reader.skipped ?? (reader.failed ? `failed: ${reader.failed.split('\n')[0]}` : undefined);
    if (why !== undefined) {
      notes.push(`database reader endpoint (1 and 2 replicas): ${why}${reader.skipped ? ' (skipped)' : ''}`);
      log(`database reader endpoint: ${why}${reader.skipped ? ' (skipped)' : ''}`);
    }
  }

  addRatios(results, contenders);
  return {
    date: started,
    command: ctx.command,
    quick: o.quick,
    machine,
    settings: {
      durationSec: o.durationSec,
      warmupSec: o.warmupSec,
      runs: o.runs,
      connections: o.connections,
      threads: o.threads,
      timeoutSec: REQUEST_TIMEOUT_SEC,
      idleConnections: o.idleConnections,
      dbClients: o.dbClients,
      tandemWorkers: o.tandemWorkers,
    },
    loadGenerator: { name: load.name, version: loadVersion },
    cases: cases.map((c) => ({ id: c.id, label: c.label, path: c.path })),
    contenders,
    points: results,
    idle,
    idleSkipped,
    ...(reader ? { reader } : {}),
    targets: checkTargets(
      results,
      cases.map((c) => c.id),
      idle,
    ),
    notes,
  };
}

function env(ctx: BenchContext, name: string, backends: readonly BackendAddress[]): ContenderEnv {
  const dir = join(ctx.workDir, name);
  mkdirSync(dir, { recursive: true });
  return {
    backends,
    dir,
    children: ctx.children,
    maxClientConnections: Math.max(1024, ctx.options.idleConnections + 256),
    tandemWorkers: ctx.options.tandemWorkers,
  };
}

/**
 * Starts `c`, checks each case's answer through it, measures every point into `out`, stops it.
 * Returns why it failed, if it did (a point whose load run failed is recorded with `failed`).
 */
async function measureContender(
  ctx: BenchContext,
  c: Contender,
  backends: readonly BackendAddress[],
  cases: readonly BenchCase[],
  load: LoadGenerator,
  out: PointResult[],
): Promise<string | undefined> {
  const o = ctx.options;
  let running: RunningContender;
  try {
    running = await c.start(env(ctx, c.id, backends));
  } catch (err) {
    return `did not start: ${(err as Error).message}`;
  }
  ctx.log(`${c.label}: serving on ${HOST}:${running.port}${running.pid ? ` (pid ${running.pid})` : ''}`);
  try {
    for (const bc of cases) {
      const wrong = await checkAnswer(running.port, bc);
      if (wrong) return `${bc.path} through it: ${wrong}`;
      for (const connections of o.connections) {
        if (running.pid !== undefined && processTree(running.pid).length === 0) {
          return 'its process exited during the benchmark';
        }
        const point = await measurePoint(ctx, c, running, bc, connections, load);
        out.push(point);
        ctx.log(describePoint(c, point));
      }
    }
    return undefined;
  } finally {
    await running.stop();
  }
}

/** Undefined when `GET path` through the contender is answered 200 with the whole body; else what is wrong. */
async function checkAnswer(port: number, bc: BenchCase): Promise<string | undefined> {
  for (let i = 0; i < 2; i++) {
    const reply = await httpGet(port, bc.path, 5000);
    if (reply.status !== 200) return `answered ${reply.status}`;
    if (reply.body.length < bc.minBodyBytes) {
      return `answered ${reply.body.length} bytes, expected at least ${bc.minBodyBytes}`;
    }
  }
  return undefined;
}

async function measurePoint(
  ctx: BenchContext,
  c: Contender,
  running: RunningContender,
  bc: BenchCase,
  connections: number,
  load: LoadGenerator,
): Promise<PointResult> {
  const o = ctx.options;
  const settings = {
    url: `http://${HOST}:${running.port}${bc.path}`,
    connections,
    threads: o.threads,
    timeoutSec: REQUEST_TIMEOUT_SEC,
  };
  const pid = running.pid;
  try {
    if (o.warmupSec > 0) await load.run({ ...settings, durationSec: o.warmupSec }, ctx.children);
    const peakResettable = pid !== undefined && resetPeakRss(pid);
    const runs: RunResult[] = [];
    for (let i = 0; i < o.runs; i++) {
      const before = pid === undefined ? 0 : cpuSeconds(pid);
      const result: RunResult = await load.run({ ...settings, durationSec: o.durationSec }, ctx.children);
      if (pid !== undefined) result.cpuSeconds = cpuSeconds(pid) - before;
      runs.push(result);
    }
    const point = summarizeRuns(c.id, bc.id, connections, runs);
    if (pid !== undefined) {
      point.peakRssMiB = peakRssBytes(pid) / MiB;
      if (!peakResettable) ctx.log(`${c.label}: note: peak RSS could not be reset; it counts from the start`);
    }
    return point;
  } catch (err) {
    return {
      contender: c.id,
      case: bc.id,
      connections,
      runs: [],
      rps: NaN,
      latencyMs: { p50: NaN, p99: NaN, p999: NaN },
      errors: NaN,
      failed: (err as Error).message,
    };
  }
}

function describePoint(c: Contender, p: PointResult): string {
  const head = `${c.id.padEnd(13)} ${p.case.padEnd(5)} c=${String(p.connections).padEnd(4)}`;
  if (p.failed) return `${head} failed: ${p.failed}`;
  const cpu = p.cpuPercent === undefined ? '' : `, CPU ${p.cpuPercent.toFixed(0)} %`;
  const rss = p.peakRssMiB === undefined ? '' : `, peak RSS ${p.peakRssMiB.toFixed(1)} MiB`;
  return (
    `${head} ${Math.round(p.rps).toLocaleString('en-US').padStart(8)} req/s, p50 ${p.latencyMs.p50.toFixed(2)} ms, ` +
    `p99 ${p.latencyMs.p99.toFixed(2)} ms, p99.9 ${p.latencyMs.p999.toFixed(2)} ms, ${p.errors} errors${cpu}${rss}`
  );
}

/** Starts a fresh instance of `c` and runs the idle test on it. */
async function idleTest(ctx: BenchContext, c: Contender, backends: readonly BackendAddress[]) {
  const running = await c.start(env(ctx, `${c.id}-idle`, backends));
  try {
    return await measureIdle(
      c.id,
      running,
      ctx.options.idleConnections,
      ctx.children,
      c.layer === 'tcp' ? 2 : 1,
    );
  } finally {
    await running.stop();
  }
}
