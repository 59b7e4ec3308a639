/** Writing a run's results: `<out>/<stamp>.json`, `.md` and `.svg` (and `latest.*` for a full run). */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchResults } from '../results.js';
import { renderMarkdownReport } from './markdown.js';
import { renderChart } from './svg-chart.js';

/** `2026-11-22-101530` (UTC) from an ISO date: sorts by time, safe in file names. */
export function fileStamp(isoDate: string): string {
  return isoDate.slice(0, 19).replace('T', '-').replace(/:/g, '');
}

/**
 * Writes the JSON, the Markdown report and the chart; a full (not `--quick`) run also copies them
 * to `latest.json`, `latest.md` and `latest.svg`. Returns the paths written.
 */
export function writeResults(results: BenchResults, outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  const stamp = fileStamp(results.date);
  const json = join(outDir, `${stamp}.json`);
  const md = join(outDir, `${stamp}.md`);
  const svg = join(outDir, `${stamp}.svg`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(svg, renderChart(results));
  writeFileSync(md, renderMarkdownReport(results, `${stamp}.svg`));
  const written = [json, md, svg];
  if (!results.quick) {
    copyFileSync(json, join(outDir, 'latest.json'));
    copyFileSync(svg, join(outDir, 'latest.svg'));
    writeFileSync(join(outDir, 'latest.md'), renderMarkdownReport(results, 'latest.svg'));
    written.push(join(outDir, 'latest.json'), join(outDir, 'latest.md'), join(outDir, 'latest.svg'));
  }
  return written;
}
