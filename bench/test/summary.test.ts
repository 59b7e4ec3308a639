import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IdleResult } from '../idle/idle-memory.js';
import type { LoadResult } from '../load/load-generator.js';
import { addRatios, checkTargets, summarizeRuns } from '../report/summary.js';
import type { ContenderResult, PointResult, RunResult } from '../results.js';
import { median } from '../stats.js';

function run(rps: number, p99: number, cpuSeconds?: number): RunResult {
  const r: LoadResult = {
    requests: rps * 10,
    seconds: 10,
    rps,
    bytes: 0,
    latencyMs: { p50: p99 / 4, p90: p99 / 2, p99, p999: p99 * 2, max: p99 * 3, mean: p99 / 4 },
    errors: { connect: 0, read: 1, write: 0, timeout: 0, status: 0, total: 1 },
  };
  return cpuSeconds === undefined ? r : { ...r, cpuSeconds };
}

const contenders: ContenderResult[] = [
  { id: 'tandem-l7', label: 'Tandem L7', layer: 'http' },
  { id: 'tandem-l4', label: 'Tandem L4', layer: 'tcp' },
  { id: 'haproxy-http', label: 'HAProxy http', layer: 'http' },
  { id: 'haproxy-tcp', label: 'HAProxy tcp', layer: 'tcp' },
  { id: 'http-proxy-3', label: 'http-proxy-3', layer: 'http' },
];

test('median: odd and even counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
});

test('a point is the median of its runs; errors are summed; CPU is a share of one core', () => {
  const p = summarizeRuns('tandem-l7', 'small', 64, [run(100, 3, 5), run(300, 1, 8), run(200, 2, 6)]);
  assert.equal(p.rps, 200);
  assert.equal(p.latencyMs.p99, 2);
  assert.equal(p.errors, 3);
  assert.equal(p.cpuSeconds, 6);
  assert.equal(p.cpuPercent, 60);
});

function points(): PointResult[] {
  return [
    summarizeRuns('haproxy-http', 'small', 64, [run(10_000, 2)]),
    summarizeRuns('haproxy-tcp', 'small', 64, [run(20_000, 1)]),
    summarizeRuns('tandem-l7', 'small', 64, [run(9_000, 2.5)]),
    summarizeRuns('tandem-l4', 'small', 64, [run(15_000, 1)]),
    summarizeRuns('http-proxy-3', 'small', 64, [run(3_000, 9)]),
  ];
}

test('ratios: L7 contenders against HAProxy mode http, L4 ones against mode tcp', () => {
  const ps = points();
  addRatios(ps, contenders);
  const by = (id: string) => ps.find((p) => p.contender === id)!;
  assert.equal(by('tandem-l7').ratio, 0.9);
  assert.equal(by('tandem-l7').reference, 'haproxy-http');
  assert.equal(by('tandem-l7').p99Ratio, 1.25);
  assert.equal(by('tandem-l4').ratio, 0.75);
  assert.equal(by('tandem-l4').reference, 'haproxy-tcp');
  assert.equal(by('haproxy-http').ratio, 1);
});

/** Tandem L7's idle test: 10,000 connections held in `rssHeldMiB` (and `sharedOnceHeldMiB` if given). */
function idleHeld(rssHeldMiB: number, sharedOnceHeldMiB?: number): IdleResult[] {
  return [
    {
      contender: 'tandem-l7',
      connections: 10_000,
      attempted: 10_000,
      held: 10_000,
      failed: 0,
      stillOpen: 10_000,
      rssBeforeMiB: 60,
      rssHeldMiB,
      perConnectionKiB: 8,
      ...(sharedOnceHeldMiB === undefined ? {} : { sharedOnceHeldMiB }),
    },
  ];
}

test("targets: each of the issue's targets is judged, and a missing figure is 'not measured'", () => {
  const checks = checkTargets(points(), ['small', '64k'], idleHeld(140));
  const met = (prefix: string) => checks.find((c) => c.target.startsWith(prefix))?.met;
  assert.equal(met('small, c=64: Tandem L7 throughput'), true);
  assert.equal(met('small, c=64: Tandem L7 p99'), true);
  assert.equal(met('small, c=64: Tandem L4 throughput'), false);
  assert.equal(met('small: http-proxy-3 behind'), true);
  assert.equal(met('64k, c=64: Tandem L7 throughput'), undefined);
  assert.equal(met('Tandem L7 holds 10,000'), true);
  assert.match(checks.find((c) => c.target.startsWith('small, c=64: Tandem L4'))!.measured, /^0\.75 ×/);
});

test("ratios and targets: the median of the rounds' ratios, with the ratio of the medians beside it", () => {
  // Round by round (a Tandem run right beside its HAProxy's): 0.80, 0.55, 0.90 → 0.80; but the
  // medians come from different rounds: 8,000 / 10,500 = 0.76.
  const ps = [
    summarizeRuns('haproxy-http', 'small', 64, [run(10_000, 2), run(11_000, 4), run(10_500, 2)]),
    summarizeRuns('tandem-l7', 'small', 64, [run(8_000, 3), run(6_000, 4), run(9_450, 4)]),
    summarizeRuns('haproxy-tcp', 'small', 64, [run(20_000, 1), run(20_000, 1)]),
    // A contender with fewer runs than its reference (it died): judged on the medians.
    summarizeRuns('tandem-l4', 'small', 64, [run(19_000, 1)]),
  ];
  addRatios(ps, contenders);
  const l7p = ps.find((p) => p.contender === 'tandem-l7')!;
  assert.equal(l7p.ratio, 0.8);
  assert.ok(Math.abs(l7p.medianRatio! - 8_000 / 10_500) < 1e-9);
  // p99 by round: 1.5, 1, 2 → 1.5 (the medians: 4 / 2 = 2).
  assert.equal(l7p.p99Ratio, 1.5);
  assert.equal(ps.find((p) => p.contender === 'tandem-l4')!.ratio, 0.95);
  const checks = checkTargets(ps, ['small'], []);
  const l7 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L7 throughput'))!;
  assert.equal(
    l7.measured,
    '0.80 × (median of the rounds 0.80/0.55/0.90; medians 8,000 vs 10,500 req/s: 0.76 ×)',
  );
  assert.equal(l7.met, true);
  const p99 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L7 p99'))!;
  assert.equal(
    p99.measured,
    '1.50 × (median of the rounds 1.50/1.00/2.00; medians 4.00 ms vs 2.00 ms: 2.00 ×)',
  );
  assert.equal(p99.met, true);
  const l4 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L4 throughput'))!;
  assert.equal(l4.measured, '0.95 × (19,000 vs 20,000 req/s)');
  assert.equal(l4.met, true);
});

test('idle target: judged on the memory with shared pages counted once where it is known, else on the RSS sum', () => {
  const idleCheck = (idle: IdleResult[]) =>
    checkTargets(points(), ['small'], idle).find((c) => c.target.startsWith('Tandem L7 holds 10,000'))!;
  const counted = idleCheck(idleHeld(220, 140));
  assert.equal(counted.met, true);
  assert.match(
    counted.measured,
    /^140\.0 MiB holding 10,000 of 10,000, shared pages counted once \(220\.0 MiB summing/,
  );
  assert.equal(idleCheck(idleHeld(220, 151)).met, false);
  assert.equal(idleCheck(idleHeld(140)).met, true);
  assert.equal(idleCheck(idleHeld(151)).met, false);
  assert.equal(idleCheck([{ ...idleHeld(140, 140)[0]!, stillOpen: 9_000 }]).met, false);
});

test('a ratio that two decimals would round onto its target is shown with three, so that it reads as judged', () => {
  const ps = [
    summarizeRuns('haproxy-tcp', 'small', 64, [run(20_000, 1), run(20_000, 1)]),
    // A contender with fewer runs than its reference: judged on the medians. 17,905 / 20,000 =
    // 0.89525: "0.90" would read as met.
    summarizeRuns('tandem-l4', 'small', 64, [run(17_905, 1)]),
    summarizeRuns('haproxy-http', 'small', 64, [run(20_000, 1), run(20_000, 1), run(20_000, 1)]),
    // By round: 0.799, 0.85, 0.75 → 0.799.
    summarizeRuns('tandem-l7', 'small', 64, [run(15_980, 1), run(17_000, 1), run(15_000, 1)]),
  ];
  addRatios(ps, contenders);
  const checks = checkTargets(ps, ['small'], []);
  const l4 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L4 throughput'))!;
  assert.equal(l4.measured, '0.895 × (17,905 vs 20,000 req/s)');
  assert.equal(l4.met, false);
  const l7 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L7 throughput'))!;
  assert.equal(
    l7.measured,
    '0.799 × (median of the rounds 0.799/0.85/0.75; medians 15,980 vs 20,000 req/s: 0.799 ×)',
  );
  assert.equal(l7.met, false);
  // Away from the target, two decimals as before.
  const p99 = checks.find((c) => c.target.startsWith('small, c=64: Tandem L7 p99'))!;
  assert.match(p99.measured, /^1\.00 × /);
});
