/**
 * One benchmark run: starts the two backends and every contender, measures them point by point
 * with their runs interleaved (same load generator, same settings, one contender under load at a
 * time), runs the idle-connections test, and returns every figure.
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
import { addRatios, checkTargets, pairedReference, summarizeRuns } from './report/summary.js';
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
  await measureInterleaved(ctx, runnable, backends, cases, load, results, (c, failure) => {
    const entry = contenders.find((e) => e.id === c.id)!;
    entry.failed = failure;
    notes.push(`${c.label}: failed: ${failure.split('\n')[0]}`);
    log(`${c.label}: failed: ${failure}`);
  });

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
      tandemSpread: o.tandemSpread,
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
    tandemSpread: ctx.options.tandemSpread,
  };
}

/** A contender started for the measured runs. */
interface Live {
  c: Contender;
  running: RunningContender;
  /** Why it stopped being measured (it died); set once. */
  failed?: string;
}

/**
 * Starts every contender, checks each case's answer through each, then measures point by point
 * (answer × concurrency) with the contenders' runs interleaved: round 1 runs each contender once,
 * round 2 again (starting one further down the list), and so on, each Tandem contender right
 * before or after its HAProxy reference (roundOrder). A slow spell of the machine (a noisy
 * neighbour, a busy disk) then lands on every contender of the point rather than on the one
 * measured at that moment, and a round's ratio to HAProxy compares runs seconds apart (the
 * ratios are the median over the rounds: summary.ts). Contenders wait idle
 * while another is measured. Calls `onFailed` for a contender that does not start, answers
 * wrongly or dies; its points measured before that are kept.
 */
async function measureInterleaved(
  ctx: BenchContext,
  runnable: readonly Contender[],
  backends: readonly BackendAddress[],
  cases: readonly BenchCase[],
  load: LoadGenerator,
  out: PointResult[],
  onFailed: (c: Contender, failure: string) => void,
): Promise<void> {
  const live: Live[] = [];
  try {
    for (const c of runnable) {
      let running: RunningContender;
      try {
        running = await c.start(env(ctx, c.id, backends));
      } catch (err) {
        onFailed(c, `did not start: ${(err as Error).message}`);
        continue;
      }
      live.push({ c, running });
      ctx.log(`${c.label}: serving on ${HOST}:${running.port}${running.pid ? ` (pid ${running.pid})` : ''}`);
      for (const bc of cases) {
        const wrong = await checkAnswer(running.port, bc);
        if (wrong === undefined) continue;
        live.pop();
        onFailed(c, `${bc.path} through it: ${wrong}`);
        await running.stop();
        break;
      }
    }
    for (const bc of cases) {
      for (const connections of ctx.options.connections) {
        const measured = live.filter((l) => l.failed === undefined);
        if (measured.length === 0) return;
        const points = await measurePoint(ctx, measured, bc, connections, load);
        for (const [i, point] of points.entries()) {
          const l = measured[i]!;
          // A contender that died before its first run of the point has nothing to record.
          if (point.runs.length > 0 || point.failed !== undefined) {
            out.push(point);
            ctx.log(describePoint(l.c, point));
          }
          if (l.failed !== undefined) onFailed(l.c, l.failed);
        }
      }
    }
  } finally {
    await Promise.all(live.map((l) => l.running.stop()));
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

/** The contender's connections per worker, read halfway through a run of `durationSec` (Tandem only). */
async function workerSplitHalfway(
  running: RunningContender,
  durationSec: number,
): Promise<number[] | undefined> {
  if (running.workerConnections === undefined) return undefined;
  await new Promise((r) => setTimeout(r, (durationSec * 1000) / 2));
  return running.workerConnections();
}

/**
 * The order of the contenders in round `round`. An item and its partner (`partnerOf`: a Tandem
 * contender and the HAProxy it is judged against) are measured back to back, the partner first in
 * even rounds and second in odd ones, so that the ratio of a round compares two runs a few seconds
 * apart; every other item stands alone. These groups, in the list's order (a pair where its first
 * item is), are rotated by `round` places.
 */
export function roundOrder<T>(
  items: readonly T[],
  round: number,
  partnerOf: (item: T) => T | undefined = () => undefined,
): T[] {
  const pairOf = new Map<T, [T, T]>();
  for (const item of items) {
    const partner = partnerOf(item);
    if (partner === undefined || partner === item || !items.includes(partner)) continue;
    if (pairOf.has(item) || pairOf.has(partner)) continue;
    const pair: [T, T] = round % 2 === 0 ? [partner, item] : [item, partner];
    pairOf.set(item, pair);
    pairOf.set(partner, pair);
  }
  const groups: T[][] = [];
  for (const item of items) {
    const pair = pairOf.get(item);
    if (pair === undefined) groups.push([item]);
    else if (!groups.includes(pair)) groups.push(pair);
  }
  const k = groups.length === 0 ? 0 : round % groups.length;
  return [...groups.slice(k), ...groups.slice(0, k)].flat();
}

/**
 * One point (answer × concurrency) of every contender in `live`, runs interleaved (see
 * measureInterleaved): before a contender's first run, its warm-up and the reset of its peak
 * memory. Returns one PointResult per contender, in `live`'s order. A contender whose process is
 * gone gets `failed` set on its Live and no further runs.
 */
async function measurePoint(
  ctx: BenchContext,
  live: readonly Live[],
  bc: BenchCase,
  connections: number,
  load: LoadGenerator,
): Promise<PointResult[]> {
  const o = ctx.options;
  const runs = live.map((): RunResult[] => []);
  const errors = live.map((): string | undefined => undefined);
  const peakResettable = live.map(() => false);
  ctx.log(
    `${bc.id}, ${connections} connections: ${live.length} contender(s) × ${o.runs} run(s), interleaved`,
  );
  for (let round = 0; round < o.runs; round++) {
    for (const i of roundOrder(
      live.map((_, i) => i),
      round,
      (i) => {
        const ref = pairedReference(live[i]!.c);
        const at = live.findIndex((l) => l.c.id === ref);
        return at === -1 ? undefined : at;
      },
    )) {
      const l = live[i]!;
      if (l.failed !== undefined || errors[i] !== undefined) continue;
      const pid = l.running.pid;
      if (pid !== undefined && processTree(pid).length === 0) {
        l.failed = 'its process exited during the benchmark';
        continue;
      }
      const settings = {
        url: `http://${HOST}:${l.running.port}${bc.path}`,
        connections,
        threads: o.threads,
        timeoutSec: REQUEST_TIMEOUT_SEC,
      };
      try {
        if (round === 0) {
          if (o.warmupSec > 0) await load.run({ ...settings, durationSec: o.warmupSec }, ctx.children);
          peakResettable[i] = pid !== undefined && resetPeakRss(pid);
        }
        const before = pid === undefined ? 0 : cpuSeconds(pid);
        const split = workerSplitHalfway(l.running, o.durationSec);
        const startedAt = new Date().toISOString();
        const loaded = await load.run({ ...settings, durationSec: o.durationSec }, ctx.children);
        const result: RunResult = { startedAt, ...loaded };
        if (pid !== undefined) result.cpuSeconds = cpuSeconds(pid) - before;
        const workers = await split;
        if (workers !== undefined) result.workerConnections = workers;
        runs[i]!.push(result);
      } catch (err) {
        errors[i] = (err as Error).message;
      }
    }
  }
  return live.map((l, i) => {
    const error = errors[i];
    if (error !== undefined || runs[i]!.length === 0) {
      return {
        contender: l.c.id,
        case: bc.id,
        connections,
        runs: [],
        rps: NaN,
        latencyMs: { p50: NaN, p99: NaN, p999: NaN },
        errors: NaN,
        ...(error !== undefined ? { failed: error } : {}),
      };
    }
    const point = summarizeRuns(l.c.id, bc.id, connections, runs[i]!);
    const pid = l.running.pid;
    if (pid !== undefined) {
      point.peakRssMiB = peakRssBytes(pid) / MiB;
      if (!peakResettable[i])
        ctx.log(`${l.c.label}: note: peak RSS could not be reset; it counts from the start`);
    }
    return point;
  });
}

function describePoint(c: Contender, p: PointResult): string {
  const head = `${c.id.padEnd(13)} ${p.case.padEnd(5)} c=${String(p.connections).padEnd(4)}`;
  if (p.failed) return `${head} failed: ${p.failed}`;
  const cpu = p.cpuPercent === undefined ? '' : `, CPU ${p.cpuPercent.toFixed(0)} %`;
  const rss = p.peakRssMiB === undefined ? '' : `, peak RSS ${p.peakRssMiB.toFixed(1)} MiB`;
  const split = p.runs.some((r) => r.workerConnections !== undefined)
    ? `, per worker ${p.runs.map((r) => r.workerConnections?.join('/') ?? '?').join(' · ')}`
    : '';
  return (
    `${head} ${Math.round(p.rps).toLocaleString('en-US').padStart(8)} req/s, p50 ${p.latencyMs.p50.toFixed(2)} ms, ` +
    `p99 ${p.latencyMs.p99.toFixed(2)} ms, p99.9 ${p.latencyMs.p999.toFixed(2)} ms, ${p.errors} errors${cpu}${rss}${split}`
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
