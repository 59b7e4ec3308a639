/** The result tables, as aligned text for the terminal and as Markdown for the .md file. */
import { describe as describeReaderPoint, type ReaderResults } from '../db/reader-endpoint.js';
import type { BenchResults, PointResult } from '../results.js';
import { formatCount, formatMs, formatRange, formatRatio, formatUnit } from './format.js';

/** A table: header, rows, and which columns are numbers (right-aligned). */
export interface Table {
  header: string[];
  rows: string[][];
  numeric: boolean[];
}

const POINT_HEADER = [
  'contender',
  'conns',
  'req/s',
  'runs min–max',
  '× HAProxy',
  'p50 ms',
  'p99 ms',
  'p99.9 ms',
  'errors',
  'proxy CPU',
  'peak RSS',
];
const POINT_NUMERIC = POINT_HEADER.map((_, i) => i > 0);

/** The table of one case: a row per point, by concurrency, then in contender order. */
export function pointsTable(results: BenchResults, caseId: string): Table {
  const order = results.contenders.map((c) => c.id);
  const label = (id: string) => results.contenders.find((c) => c.id === id)?.label ?? id;
  const rows = results.points
    .filter((p) => p.case === caseId)
    .sort((a, b) => a.connections - b.connections || order.indexOf(a.contender) - order.indexOf(b.contender))
    .map((p) => pointRow(label(p.contender), p));
  return { header: POINT_HEADER, rows, numeric: POINT_NUMERIC };
}

function pointRow(label: string, p: PointResult): string[] {
  if (p.failed)
    return [
      label,
      String(p.connections),
      `failed: ${p.failed.split('\n')[0]}`,
      ...new Array<string>(POINT_HEADER.length - 3).fill(''),
    ];
  return [
    label,
    String(p.connections),
    formatCount(p.rps),
    formatRange(p.runs.map((r) => r.rps)),
    formatRatio(p.ratio),
    formatMs(p.latencyMs.p50),
    formatMs(p.latencyMs.p99),
    formatMs(p.latencyMs.p999),
    formatCount(p.errors),
    formatUnit(p.cpuPercent, 0, ' %'),
    formatUnit(p.peakRssMiB, 1, ' MiB'),
  ];
}

/**
 * Per point of a contender with worker processes (Tandem): each run's client connections per
 * worker, halfway through it, with that run's requests/s. Empty when no run has them.
 */
export function workerSplitLines(results: BenchResults): string[] {
  const label = (id: string) => results.contenders.find((c) => c.id === id)?.label ?? id;
  return results.points
    .filter((p) => p.runs.some((r) => r.workerConnections !== undefined))
    .map(
      (p) =>
        `${label(p.contender)}, ${p.case}, ${p.connections} connections: ` +
        p.runs
          .map((r) => `${r.workerConnections?.join('/') ?? '?'} (${formatCount(r.rps)} req/s)`)
          .join(', '),
    );
}

/** The idle test's table. */
export function idleTable(results: BenchResults): Table {
  const label = (id: string) => results.contenders.find((c) => c.id === id)?.label ?? id;
  return {
    header: [
      'contender',
      'opened',
      'held',
      'still open',
      'RSS before',
      'RSS holding',
      'shared once',
      'per connection',
      'note',
    ],
    numeric: [false, true, true, true, true, true, true, true, false],
    rows: results.idle.map((i) => [
      label(i.contender),
      formatCount(i.attempted),
      formatCount(i.held),
      formatCount(i.stillOpen),
      formatUnit(i.rssBeforeMiB, 1, ' MiB'),
      formatUnit(i.rssHeldMiB, 1, ' MiB'),
      i.sharedOnceHeldMiB === undefined ? '–' : formatUnit(i.sharedOnceHeldMiB, 1, ' MiB'),
      formatUnit(i.perConnectionKiB, 1, ' KiB'),
      [
        i.limitedBy ? `limited by ${i.limitedBy}` : '',
        i.failed > 0 ? `${formatCount(i.failed)} failed: ${i.firstError ?? '?'}` : '',
      ]
        .filter(Boolean)
        .join('; '),
    ]),
  };
}

/** The heading of the reader endpoint's table. */
export const READER_TITLE = 'database reader endpoint (pgbench -S, select-only, prepared statements)';

/** The reader endpoint's table: pgbench to one replica directly, then through the endpoint. */
export function readerTable(reader: ReaderResults): Table {
  return {
    header: ['target', 'clients', 'tps', '× direct', 'latency ms', 'failed'],
    numeric: [false, true, true, true, true, true],
    rows: reader.points.map((p) => [
      describeReaderPoint(p),
      String(reader.clients),
      formatCount(p.tps),
      formatRatio(p.ratio),
      formatMs(p.latencyMs),
      formatCount(p.failed),
    ]),
  };
}

/** The targets' table. */
export function targetsTable(results: BenchResults): Table {
  return {
    header: ['target', 'measured', 'met'],
    numeric: [false, false, false],
    rows: results.targets.map((t) => [
      t.target,
      t.measured,
      t.met === undefined ? '–' : t.met ? 'yes' : 'NO',
    ]),
  };
}

/** Aligned plain text, two spaces of indent. */
export function renderText(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    `  ${cells
      .map((c, i) => (t.numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()}`;
  return [line(t.header), ...t.rows.map(line)].join('\n');
}

/** A GitHub Markdown table. */
export function renderMarkdown(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const align = t.numeric.map((n) => (n ? '---:' : '---'));
  return [
    `| ${t.header.map(esc).join(' | ')} |`,
    `| ${align.join(' | ')} |`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}
