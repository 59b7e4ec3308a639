/** The `.md` report of a benchmark run: what ran where, the tables, the targets, what was skipped. */
import { machineLine } from '../machine.js';
import type { BenchResults } from '../results.js';
import {
  idleTable,
  pointsTable,
  readerTable,
  renderMarkdown,
  targetsTable,
  workerSplitLines,
} from './tables.js';

/** Explains the columns of the points tables. */
export const COLUMNS_NOTE =
  '`req/s`: the median of the measured runs; `runs min–max`: the slowest and the fastest of them (on a ' +
  'shared machine a gap within that spread is noise). ' +
  '`× HAProxy`: requests/s ÷ HAProxy `mode http`’s at the same point (TCP contenders: ÷ HAProxy `mode tcp`’s), ' +
  'round by round, the median of the rounds’ ratios (Tandem runs right beside its HAProxy in every round). ' +
  'Latencies are the medians over the runs of each run’s percentile. `proxy CPU`: user + system CPU time of ' +
  'the proxy’s processes per run, as a share of one core (200 % = two cores). `peak RSS`: peak resident ' +
  'memory of the proxy’s processes during the measured runs (summed over its processes).';

/** The Markdown report; `chartFile` is the SVG's file name, linked beside it. */
export function renderMarkdownReport(results: BenchResults, chartFile: string): string {
  const s = results.settings;
  const out: string[] = [];
  out.push(
    `# Tandem benchmark, ${results.date}${results.quick ? ' (quick smoke run: not a measurement)' : ''}`,
  );
  out.push('');
  out.push(
    `- Machine: ${machineLine(results.machine)}; load average ${results.machine.loadAverageAtStart} at start`,
  );
  out.push(
    `- Load: ${results.loadGenerator.version}, keep-alive, ${s.threads} thread(s), concurrency ${s.connections.join(', ')}; ` +
      `${s.warmupSec} s warm-up, then ${s.runs} × ${s.durationSec} s measured per point (median reported)`,
  );
  out.push(`- Command: \`${results.command}\``);
  if (s.tandemWorkers !== undefined)
    out.push(
      `- Tandem's load balancer: \`workers: ${s.tandemWorkers}\`` +
        (s.tandemWorkers === 'auto'
          ? ` (one worker process per core: ${results.machine.cores}, plus the primary process)`
          : s.tandemWorkers === 1
            ? ' (everything in one process)'
            : ' (worker processes, plus the primary process)') +
        (s.tandemSpread === true
          ? '; `spreadConnections: true` (`--tandem-spread`)'
          : s.tandemSpread === undefined || s.tandemSpread === false
            ? ''
            : `; \`spreadConnections: ${s.tandemSpread}\``),
    );
  out.push(
    `- Contenders: ${results.contenders
      .filter((c) => !c.skipped)
      .map((c) => `${c.label} (${c.version ?? '?'})`)
      .join('; ')}`,
  );
  out.push('');
  out.push(`![throughput and p99 latency by concurrency](${chartFile})`);
  for (const c of results.cases) {
    if (!results.points.some((p) => p.case === c.id)) continue;
    out.push('', `## ${c.label}`, '', renderMarkdown(pointsTable(results, c.id)));
  }
  out.push('', COLUMNS_NOTE);
  const splits = workerSplitLines(results);
  if (splits.length > 0) {
    out.push('', '## Connections per worker', '');
    out.push(
      'The load generator’s connections as the kernel split them between Tandem’s worker processes, halfway ' +
        'through each measured run, in the order of the runs, with that run’s requests/s: whether a slow run went with an uneven split.',
      '',
      ...splits.map((l) => `- ${l}`),
    );
  }
  if (results.idle.length > 0 || results.idleSkipped.length > 0) {
    out.push('', `## Idle keep-alive client connections`, '');
    out.push(
      'A client process opens the connections, sends one `GET /` on each, reads the answer and keeps them open; ' +
        'the proxy’s resident memory (all its processes) is read before and while it holds them. `shared once`: while holding, with the pages its processes share (the program’s code and libraries) counted once rather than once per process, which is the memory the machine gives the proxy; the target is checked on it (on the RSS sum where a kernel gives no smaps_rollup).',
    );
    if (results.idle.length > 0) out.push('', renderMarkdown(idleTable(results)));
    for (const sk of results.idleSkipped) out.push('', `- ${sk.contender}: skipped: ${sk.reason}`);
  }
  const reader = results.reader;
  if (reader && reader.points.length > 0) {
    out.push('', '## Database reader endpoint', '');
    out.push(
      `A database-only Tandem stack (a PostgreSQL primary and replicas under \`tandem db\`, \`tandem cluster\`, ` +
        `and \`tandem lb\` serving the endpoints), and ${reader.pgbench ?? 'pgbench'} \`-S -M prepared\` with ` +
        `${reader.clients} clients and ${reader.threads} thread(s): straight to one replica, then through the ` +
        'reader endpoint with one replica running, then with two. `× direct`: tps ÷ the direct run’s.',
    );
    out.push('', renderMarkdown(readerTable(reader)));
  }
  out.push('', '## Targets (issue 5)', '', renderMarkdown(targetsTable(results)));
  if (results.notes.length > 0) {
    out.push('', '## Skipped', '', ...results.notes.map((n) => `- ${n}`));
  }
  return `${out.join('\n')}\n`;
}
