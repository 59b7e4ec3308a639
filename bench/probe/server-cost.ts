/**
 * `npm run bench:server-cost`: what node:http's server costs, measured against a bare server on
 * Node's own llhttp parser, both answering the same 18-byte text with keep-alive. It is the
 * evidence behind the next step for the proxy's speed (README, Benchmark): the client side of
 * Tandem's L7 proxy is a node:http server, and this says how much CPU per request and memory per
 * idle connection that layer takes by itself, with no proxying at all.
 *
 * For each server: CPU time per request under the load generator (concurrency 64, a warm-up, then
 * three runs, the median), and resident memory per idle keep-alive connection (5,000 connections
 * that each had one answer). Run on a quiet machine, like the benchmark.
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { type Child, ChildGroup } from '../children.js';
import { pickLoadGenerator } from '../load/pick.js';
import { freePort, HOST, httpGet, pollUntil } from '../net.js';
import { cpuSeconds } from '../proc-stats.js';
import { measureIdle } from '../idle/idle-memory.js';
import { median } from '../stats.js';

const SERVER = fileURLToPath(new URL('./probe-server.js', import.meta.url));
const KINDS = [
  { id: 'node-http', label: 'node:http server' },
  { id: 'llhttp', label: 'bare socket + llhttp' },
] as const;
const RUNS = 3;
const RUN_SEC = 5;
const IDLE_CONNECTIONS = 5000;

/** Resolves once the server answers `GET /` with 200; rejects if it exits first. */
function answers(label: string, port: number, child: Child): Promise<void> {
  return pollUntil(
    `an answer from ${label} on ${HOST}:${port}`,
    async () => (await httpGet(port, '/', 1000)).status === 200,
    10_000,
    child,
  );
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-server-cost-'));
  const children = new ChildGroup();
  const stop = () => void children.stopAll().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const load = pickLoadGenerator('auto', dir);
    console.log(
      `load generator: ${await load.version()}; concurrency 64, ${RUNS} × ${RUN_SEC} s after a 2 s warm-up`,
    );
    const rows: string[] = [];
    for (const kind of KINDS) {
      const port = await freePort();
      const child = children.spawn(kind.label, process.execPath, [SERVER, kind.id, String(port)], {
        raiseFdLimit: true,
      });
      await answers(kind.label, port, child);
      const settings = { url: `http://${HOST}:${port}/`, connections: 64, threads: 1, timeoutSec: 5 };
      await load.run({ ...settings, durationSec: 2 }, children);
      const perRequest: number[] = [];
      const rates: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        const before = cpuSeconds(child.pid);
        const r = await load.run({ ...settings, durationSec: RUN_SEC }, children);
        perRequest.push(((cpuSeconds(child.pid) - before) * 1e6) / r.requests);
        rates.push(r.rps);
      }
      await children.stop(child);
      // A fresh process for the memory, so the load's garbage does not count.
      const fresh = children.spawn(kind.label, process.execPath, [SERVER, kind.id, String(port)], {
        raiseFdLimit: true,
      });
      await answers(kind.label, port, fresh);

      const idle = await measureIdle(
        kind.id,
        { port, pid: fresh.pid, stop: () => children.stop(fresh) },
        IDLE_CONNECTIONS,
        children,
      );
      await children.stop(fresh);
      const memory =
        typeof idle === 'string'
          ? `not measured: ${idle}`
          : `${idle.perConnectionKiB.toFixed(1)} KiB per idle connection (${idle.held} held)`;
      rows.push(
        `${kind.label.padEnd(22)} ${Math.round(median(rates)).toLocaleString('en-US').padStart(7)} req/s  ` +
          `${median(perRequest).toFixed(1).padStart(5)} µs CPU per request  ${memory}`,
      );
      console.log(rows.at(-1));
    }
    return 0;
  } finally {
    await children.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`server-cost: ${err.message}`);
    process.exit(1);
  },
);
