/** From measured runs to the figures reported: medians, ratios to HAProxy, the targets. */
import type { IdleResult } from '../idle/idle-memory.js';
import type { ContenderResult, PointResult, RunResult, TargetCheck } from '../results.js';
import { median, sum } from '../stats.js';

/** The figures of one point from its measured runs (medians; errors summed). */
export function summarizeRuns(
  contender: string,
  caseId: string,
  connections: number,
  runs: RunResult[],
): PointResult {
  const point: PointResult = {
    contender,
    case: caseId,
    connections,
    runs,
    rps: median(runs.map((r) => r.rps)),
    latencyMs: {
      p50: median(runs.map((r) => r.latencyMs.p50)),
      p99: median(runs.map((r) => r.latencyMs.p99)),
      p999: median(runs.map((r) => r.latencyMs.p999)),
    },
    errors: sum(runs.map((r) => r.errors.total)),
  };
  const cpu = runs.filter((r) => r.cpuSeconds !== undefined);
  if (cpu.length > 0) {
    point.cpuSeconds = median(cpu.map((r) => r.cpuSeconds!));
    point.cpuPercent = median(cpu.map((r) => (r.cpuSeconds! / r.seconds) * 100));
  }
  return point;
}

/** The HAProxy contender a contender of `layer` is compared with. */
export function referenceOf(layer: ContenderResult['layer']): string {
  return layer === 'tcp' ? 'haproxy-tcp' : 'haproxy-http';
}

/**
 * The HAProxy contender a Tandem contender is measured beside in every round (benchmark.ts's
 * roundOrder), and judged against; undefined for the others.
 */
export function pairedReference(c: { id: string; layer: ContenderResult['layer'] }): string | undefined {
  return TANDEM_CONTENDERS.includes(c.id) ? referenceOf(c.layer) : undefined;
}

/** Tandem's contenders: the ones the targets judge. */
const TANDEM_CONTENDERS: readonly string[] = ['tandem-l7', 'tandem-l4'];

/**
 * `a`'s figure over `b`'s in each round: the runs of a round with the same index (each round ran
 * every contender once, a Tandem contender right beside its reference). Undefined unless both
 * have one run per round.
 */
function roundRatios(
  a: PointResult,
  b: PointResult,
  figure: (run: RunResult) => number,
): number[] | undefined {
  if (a.runs.length === 0 || a.runs.length !== b.runs.length) return undefined;
  return a.runs.map((run, i) => figure(run) / figure(b.runs[i]!));
}

const rpsOf = (run: RunResult) => run.rps;
const p99Of = (run: RunResult) => run.latencyMs.p99;

/** One figure of a point against its reference's. */
interface Comparison {
  /** What is judged: the median of `rounds` where there are, else `medians`. */
  value: number;
  /** The ratio of each round (finite), or undefined. */
  rounds: number[] | undefined;
  /** The ratio of the two points' medians. */
  medians: number;
}

/**
 * `a`'s figure over `b`'s (`figure` of each run; `atPoint` of the points, their medians): the
 * median of the rounds' ratios where both ran once per round, else the ratio of the medians.
 */
function compare(
  a: PointResult,
  b: PointResult,
  figure: (run: RunResult) => number,
  atPoint: (p: PointResult) => number,
): Comparison {
  const medians = atPoint(a) / atPoint(b);
  const each = roundRatios(a, b, figure);
  const rounds = each !== undefined && each.every(Number.isFinite) ? each : undefined;
  return { value: rounds === undefined ? medians : median(rounds), rounds, medians };
}

const rpsAt = (p: PointResult) => p.rps;
const p99At = (p: PointResult) => p.latencyMs.p99;

/**
 * Sets `ratio`, `p99Ratio` and `reference` on every point whose HAProxy reference was measured.
 * The ratios are the median over the rounds of each round's ratio (a paired comparison: a slow
 * spell of the machine in one round falls on both runs of it); for a point without one run per
 * round, the ratio of the medians. `medianRatio` is always the ratio of the medians.
 */
export function addRatios(points: PointResult[], contenders: readonly ContenderResult[]): void {
  for (const p of points) {
    if (p.failed) continue;
    const layer = contenders.find((c) => c.id === p.contender)?.layer ?? 'http';
    const refId = referenceOf(layer);
    const ref = findPoint(points, refId, p.case, p.connections);
    if (!ref || ref.rps <= 0) continue;
    p.reference = refId;
    const rps = compare(p, ref, rpsOf, rpsAt);
    p.medianRatio = rps.medians;
    p.ratio = rps.value;
    const p99 = compare(p, ref, p99Of, p99At);
    if (Number.isFinite(p99.value)) p.p99Ratio = p99.value;
  }
}

function findPoint(
  points: readonly PointResult[],
  contender: string,
  caseId: string,
  connections: number,
): PointResult | undefined {
  return points.find(
    (p) => p.contender === contender && p.case === caseId && p.connections === connections && !p.failed,
  );
}

/** Concurrency the throughput and latency targets are stated at. */
export const TARGET_CONNECTIONS = 64;
/** The Node.js proxies among the contenders: each must be behind Tandem L7. */
export const NODE_PROXIES: readonly string[] = ['http-proxy-3'];
/** Memory target of the idle test, in MiB, for 10,000 connections. */
export const IDLE_TARGET_MIB = 150;

const fmtRps = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * `value` with two decimals, or three when two would show the `target` itself for a value that is
 * not it (0.8952 against 0.9: `0.895`, not a `0.90` marked as missing); the same for the rounds'
 * ratios and the medians' beside it.
 */
function againstTarget(value: number, target: number): string {
  const two = value.toFixed(2);
  return two === target.toFixed(2) && value !== target ? value.toFixed(3) : two;
}

/**
 * `0.80 × (median of the rounds 0.80/0.55/0.90; medians 8,000 vs 10,500 req/s: 0.76 ×)`, or
 * `0.95 × (19,000 vs 20,000 req/s)` when judged on the medians; `vs` compares the medians, and
 * `target` is the figure the value is judged against.
 */
function describeComparison(c: Comparison, vs: string, target: number): string {
  const value = againstTarget(c.value, target);
  if (c.rounds === undefined) return `${value} × (${vs})`;
  const rounds = c.rounds.map((r) => againstTarget(r, target)).join('/');
  return `${value} × (median of the rounds ${rounds}; medians ${vs}: ${againstTarget(c.medians, target)} ×)`;
}

const fmtMs = (n: number) => `${n.toFixed(2)} ms`;

/**
 * The targets, for each case: Tandem L7 ≥ 0.8 × HAProxy mode http in throughput and p99
 * ≤ 1.5 × HAProxy's at concurrency 64; Tandem L4 ≥ 0.9 × HAProxy mode tcp; every Node.js proxy
 * behind Tandem L7 at every concurrency; and 10,000 idle connections in under 150 MiB.
 */
export function checkTargets(
  points: readonly PointResult[],
  caseIds: readonly string[],
  idle: readonly IdleResult[],
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const c = TARGET_CONNECTIONS;
  for (const caseId of caseIds) {
    const l7 = findPoint(points, 'tandem-l7', caseId, c);
    const l4 = findPoint(points, 'tandem-l4', caseId, c);
    const hh = findPoint(points, 'haproxy-http', caseId, c);
    const ht = findPoint(points, 'haproxy-tcp', caseId, c);
    // Judged as addRatios reports (compare).
    const ratioCheck = (
      target: string,
      a: PointResult | undefined,
      b: PointResult | undefined,
      min: number,
    ) => {
      if (!a || !b) return checks.push({ target, measured: 'not measured', met: undefined });
      const r = compare(a, b, rpsOf, rpsAt);
      return checks.push({
        target,
        measured: describeComparison(r, `${fmtRps(a.rps)} vs ${fmtRps(b.rps)} req/s`, min),
        met: r.value >= min,
      });
    };
    ratioCheck(`${caseId}, c=${c}: Tandem L7 throughput ≥ 0.8 × HAProxy mode http`, l7, hh, 0.8);
    if (l7 && hh) {
      const r = compare(l7, hh, p99Of, p99At);
      checks.push({
        target: `${caseId}, c=${c}: Tandem L7 p99 ≤ 1.5 × HAProxy mode http`,
        measured: describeComparison(r, `${fmtMs(l7.latencyMs.p99)} vs ${fmtMs(hh.latencyMs.p99)}`, 1.5),
        met: r.value <= 1.5,
      });
    } else {
      checks.push({
        target: `${caseId}, c=${c}: Tandem L7 p99 ≤ 1.5 × HAProxy mode http`,
        measured: 'not measured',
        met: undefined,
      });
    }
    ratioCheck(`${caseId}, c=${c}: Tandem L4 throughput ≥ 0.9 × HAProxy mode tcp`, l4, ht, 0.9);

    for (const id of NODE_PROXIES) {
      if (!points.some((p) => p.contender === id)) continue;
      const pairs = points
        .filter((p) => p.contender === id && p.case === caseId && !p.failed)
        .map((p) => [p, findPoint(points, 'tandem-l7', caseId, p.connections)] as const);
      const target = `${caseId}: ${id} behind Tandem L7 at every concurrency`;
      if (pairs.length === 0 || pairs.some(([, t]) => !t)) {
        checks.push({ target, measured: 'not measured', met: undefined });
        continue;
      }
      checks.push({
        target,
        measured: pairs
          .map(([p, t]) => `c=${p.connections}: ${fmtRps(p.rps)} vs ${fmtRps(t!.rps)}`)
          .join('; '),
        met: pairs.every(([p, t]) => p.rps < t!.rps),
      });
    }
  }
  const tandemIdle = idle.find((i) => i.contender === 'tandem-l7');
  const idleTarget = `Tandem L7 holds 10,000 idle client connections in < ${IDLE_TARGET_MIB} MiB`;
  if (!tandemIdle || tandemIdle.connections < 10_000) {
    checks.push({ target: idleTarget, measured: 'not measured', met: undefined });
  } else {
    // The proxy's processes all map the same node binary and libraries: summed RSS counts those
    // pages once per process, though the machine holds them once. Judged on the memory the
    // proxy really takes (each process's private pages, the shared ones once) where it is known.
    const shared = tandemIdle.sharedOnceHeldMiB;
    const held = `holding ${tandemIdle.stillOpen.toLocaleString('en-US')} of ${tandemIdle.connections.toLocaleString('en-US')}`;
    checks.push({
      target: idleTarget,
      measured:
        shared === undefined
          ? `${tandemIdle.rssHeldMiB.toFixed(1)} MiB RSS ${held}`
          : `${shared.toFixed(1)} MiB ${held}, shared pages counted once (${tandemIdle.rssHeldMiB.toFixed(1)} MiB summing each process's RSS)`,
      met: tandemIdle.stillOpen >= 10_000 && (shared ?? tandemIdle.rssHeldMiB) < IDLE_TARGET_MIB,
    });
  }
  return checks;
}
