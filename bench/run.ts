/**
 * `npm run bench [-- options]`: the benchmark's entry point. Runs it, prints the tables, writes
 * the results; stops every process it started on the way out, Ctrl-C included.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { TandemError } from '../src/errors.js';
import { runBenchmark } from './benchmark.js';
import { ChildGroup } from './children.js';
import { CONTENDERS } from './contenders/all.js';
import { READER_ID } from './db/reader-endpoint.js';
import { parseOptions, usage } from './options.js';
import { COLUMNS_NOTE } from './report/markdown.js';
import {
  idleTable,
  pointsTable,
  READER_TITLE,
  readerTable,
  renderText,
  targetsTable,
} from './report/tables.js';
import { writeResults } from './report/write-results.js';

/** What --only may name: the contenders, and the database reader endpoint measurement. */
const ids = [...CONTENDERS.map((c) => c.id), READER_ID];
const children = new ChildGroup();
let workDir: string | undefined;

/** Removes the temp directory (configs, logs of the contenders). */
function cleanup(): void {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
  workDir = undefined;
}

// Whatever happens, no child outlives the harness.
process.on('exit', () => {
  children.killAllNow();
  cleanup();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\nbench: ${signal}: stopping every process it started\n`);
    void children.stopAll().finally(() => {
      cleanup();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv, ids);
  if (options.help) {
    process.stdout.write(`${usage(ids)}\n`);
    return 0;
  }
  workDir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const results = await runBenchmark({
    options,
    contenders: CONTENDERS,
    children,
    workDir,
    command: ['npm run bench', ...(argv.length > 0 ? ['--', ...argv] : [])].join(' '),
    log,
  });
  await children.stopAll();

  for (const c of results.cases) {
    if (!results.points.some((p) => p.case === c.id)) continue;
    log(`\n${c.label}\n${renderText(pointsTable(results, c.id))}`);
  }
  log(`\n${COLUMNS_NOTE}`);
  if (results.idle.length > 0) log(`\nidle keep-alive client connections\n${renderText(idleTable(results))}`);
  if (results.reader && results.reader.points.length > 0)
    log(`\n${READER_TITLE}\n${renderText(readerTable(results.reader))}`);
  log(`\ntargets (issue 5)\n${renderText(targetsTable(results))}`);
  if (results.notes.length > 0) log(`\nskipped:\n${results.notes.map((n) => `  ${n}`).join('\n')}`);
  const written = writeResults(results, options.outDir);
  log(`\nwritten: ${written.map((f) => relative(process.cwd(), f) || f).join(', ')}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof TandemError) {
      process.stderr.write(`bench: ${err.message.replace(/^bench: /, '')}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`bench: unexpected error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
