/**
 * autocannon as the load generator where wrk is not installed: its CLI (a devDependency) in a
 * process of its own, with `--json`. Its latencies have a resolution of 1 ms.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BenchError } from '../bench-error.js';
import type { ChildGroup } from '../children.js';
import { describeExit } from '../children.js';
import type { LoadGenerator, LoadResult, LoadSettings } from './load-generator.js';

interface AutocannonJson {
  requests: { total: number };
  throughput: { total: number };
  latency: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
}

/** The LoadResult in autocannon's `--json` output; undefined when there is none. */
export function parseAutocannonOutput(output: string): LoadResult | undefined {
  const line = output
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{') && l.includes('"latency"'));
  if (!line) return undefined;
  const j = JSON.parse(line) as AutocannonJson;
  const l = j.latency;
  // autocannon's `errors` includes its timeouts; connection and socket errors are not split.
  const other = Math.max(0, j.errors - j.timeouts);
  return {
    requests: j.requests.total,
    seconds: j.duration,
    rps: j.duration > 0 ? j.requests.total / j.duration : 0,
    bytes: j.throughput.total,
    latencyMs: { p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p99_9, max: l.max, mean: l.mean },
    errors: {
      connect: 0,
      read: other,
      write: 0,
      timeout: j.timeouts,
      status: j.non2xx,
      total: other + j.timeouts + j.non2xx,
    },
  };
}

/** The path of autocannon's CLI script, or undefined when the package is not installed. */
export function autocannonScript(): string | undefined {
  try {
    return join(dirname(createRequire(import.meta.url).resolve('autocannon/package.json')), 'autocannon.js');
  } catch {
    return undefined; // not installed: `npm install` brings it (devDependency)
  }
}

/** autocannon, run with this Node.js. */
export function createAutocannon(script: string): LoadGenerator {
  return {
    name: 'autocannon',
    version: () => {
      const pkg = join(dirname(script), 'package.json');
      return Promise.resolve(
        `autocannon ${(JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version}`,
      );
    },
    async run(s: LoadSettings, children: ChildGroup): Promise<LoadResult> {
      const args = [
        script,
        '-c',
        String(s.connections),
        '-d',
        String(s.durationSec),
        '-t',
        String(s.timeoutSec),
        '--json',
        '--no-progress',
        ...(s.threads > 1 ? ['-w', String(s.threads)] : []),
        s.url,
      ];
      const child = children.spawn('autocannon', process.execPath, args, { raiseFdLimit: true });
      const status = await child.exited;
      const result = parseAutocannonOutput(child.output());
      if (!result) {
        throw new BenchError(
          `autocannon ${args.slice(1).join(' ')} gave no result (${describeExit(status)})${child.tail()}`,
        );
      }
      return result;
    },
  };
}
