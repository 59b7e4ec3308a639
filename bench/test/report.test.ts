import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderMarkdownReport } from '../report/markdown.js';
import { fileStamp } from '../report/write-results.js';
import { niceCeil, renderChart } from '../report/svg-chart.js';
import { summarizeRuns } from '../report/summary.js';
import type { BenchResults } from '../results.js';

function results(): BenchResults {
  const run = (rps: number) => ({
    requests: rps,
    seconds: 1,
    rps,
    bytes: 0,
    latencyMs: { p50: 1, p90: 2, p99: 3, p999: 4, max: 5, mean: 1 },
    errors: { connect: 0, read: 0, write: 0, timeout: 0, status: 0, total: 0 },
  });
  return {
    date: '2026-11-22T10:15:30.000Z',
    command: 'npm run bench',
    quick: false,
    machine: {
      cpu: 'CPU',
      cores: 2,
      memoryGiB: 4,
      os: 'Linux',
      kernel: '6.1',
      node: 'v20',
      loadAverageAtStart: 0,
    },
    settings: {
      durationSec: 1,
      warmupSec: 0,
      runs: 1,
      connections: [16, 64],
      threads: 1,
      timeoutSec: 5,
      idleConnections: 0,
    },
    loadGenerator: { name: 'wrk', version: 'wrk 4.1.0' },
    cases: [{ id: 'small', label: 'small answer', path: '/' }],
    contenders: [
      { id: 'tandem-l7', label: 'Tandem <L7> & co', layer: 'http', version: 'x' },
      { id: 'nginx', label: 'nginx', layer: 'http', skipped: 'not installed' },
    ],
    points: [
      summarizeRuns('tandem-l7', 'small', 16, [run(1000)]),
      summarizeRuns('tandem-l7', 'small', 64, [run(2000)]),
    ],
    idle: [],
    idleSkipped: [],
    targets: [],
    notes: ['nginx: not installed (skipped)'],
  };
}

test('niceCeil rounds up to 1, 2, 2.5 or 5 × a power of ten', () => {
  assert.equal(niceCeil(0.7), 1);
  assert.equal(niceCeil(13), 20);
  assert.equal(niceCeil(2100), 2500);
  assert.equal(niceCeil(48_000), 50_000);
  assert.equal(niceCeil(0), 1);
});

test('the chart is an SVG with one line per measured contender and escaped labels', () => {
  const svg = renderChart(results());
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 2); // req/s and p99 panels
  assert.match(svg, /Tandem &lt;L7&gt; &amp; co/);
  assert.doesNotMatch(svg, />nginx</); // skipped: not in the legend
});

test('the Markdown report links the chart, has a table per case and lists what was skipped', () => {
  const md = renderMarkdownReport(results(), 'chart.svg');
  assert.match(md, /!\[throughput and p99 latency by concurrency\]\(chart\.svg\)/);
  assert.match(md, /\| Tandem <L7> & co \| 16 \| 1,000 \|/);
  assert.match(md, /- nginx: not installed \(skipped\)/);
  assert.equal(fileStamp('2026-11-22T10:15:30.000Z'), '2026-11-22-101530');
  // Tandem's settings: said when set; spreadConnections when the results have it (older ones may not).
  const r = results();
  r.settings.tandemWorkers = 'auto';
  assert.match(
    renderMarkdownReport(r, 'c.svg'),
    /- Tandem's load balancer: `workers: auto` \(one worker process per core: 2, plus the primary process\)\n/,
  );
  r.settings.tandemSpread = 'lopsided';
  assert.match(
    renderMarkdownReport(r, 'c.svg'),
    /plus the primary process\); `spreadConnections: lopsided`\n/,
  );
  // Results of runs from when --tandem-spread was a switch.
  r.settings.tandemSpread = true;
  assert.match(
    renderMarkdownReport(r, 'c.svg'),
    /plus the primary process\); `spreadConnections: true` \(`--tandem-spread`\)\n/,
  );
  // Without a per-worker count, no such section; with one, each run's split and its requests/s.
  assert.doesNotMatch(md, /Connections per worker/);
  r.points[1]!.runs[0]!.workerConnections = [40, 24];
  assert.match(
    renderMarkdownReport(r, 'c.svg'),
    /## Connections per worker\n\n.*\n\n- Tandem <L7> & co, small, 64 connections: 40\/24 \(2,000 req\/s\)\n/,
  );
});

test('a point shows the median of its runs and how far apart they were', () => {
  const r = results();
  const run = (rps: number) => ({ ...r.points[0]!.runs[0]!, rps, requests: rps });
  r.points = [summarizeRuns('tandem-l7', 'small', 16, [run(9_100), run(7_518), run(8_887)])];
  const md = renderMarkdownReport(r, 'chart.svg');
  const row = md.split('\n').find((l) => l.startsWith('| Tandem'));
  assert.ok(row, md);
  const cells = row.split('|').map((c) => c.trim());
  assert.equal(cells[3], '8,887');
  assert.equal(cells[4], '7,518–9,100');
  assert.match(md, /`runs min–max`: the slowest and the fastest/);
  r.points = [summarizeRuns('tandem-l7', 'small', 16, [run(9_100)])];
  const one = renderMarkdownReport(r, 'chart.svg')
    .split('\n')
    .find((l) => l.startsWith('| Tandem'))!;
  assert.equal(one.split('|').map((c) => c.trim())[4], '9,100');
});
