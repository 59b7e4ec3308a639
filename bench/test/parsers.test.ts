import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parsePgbenchOutput } from '../db/reader-endpoint.js';
import { parseAutocannonOutput } from '../load/autocannon.js';
import { parseWrkOutput, WRK_RESULT_MARK } from '../load/wrk.js';
import { parseSmapsRollup, sharedOnceBytes } from '../proc-stats.js';

test('wrk: the Lua report line becomes a LoadResult in milliseconds, with errors summed', () => {
  const output = [
    'Running 10s test @ http://127.0.0.1:8080/',
    '  1 threads and 16 connections',
    'Requests/sec:  40000.00',
    `${WRK_RESULT_MARK}{"requests":400000,"duration_us":10000000,"bytes":48000000,` +
      '"errors":{"connect":1,"read":2,"write":3,"status":4,"timeout":5},' +
      '"latency_us":{"p50":350,"p90":700,"p99":1500,"p999":4200,"max":9000,"mean":400.50}}',
  ].join('\n');
  const r = parseWrkOutput(output)!;
  assert.equal(r.requests, 400_000);
  assert.equal(r.seconds, 10);
  assert.equal(r.rps, 40_000);
  assert.deepEqual(r.latencyMs, { p50: 0.35, p90: 0.7, p99: 1.5, p999: 4.2, max: 9, mean: 0.4005 });
  assert.deepEqual(r.errors, { connect: 1, read: 2, write: 3, status: 4, timeout: 5, total: 15 });
});

test('wrk: output without the report line gives no result', () => {
  assert.equal(parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused\n'), undefined);
});

test('autocannon: its --json line becomes a LoadResult; timeouts are not counted twice', () => {
  const json = {
    duration: 2,
    errors: 7,
    timeouts: 3,
    non2xx: 2,
    latency: { p50: 1, p90: 2, p99: 5, p99_9: 9, max: 12, mean: 1.2 },
    requests: { total: 5000 },
    throughput: { total: 123456 },
  };
  const r = parseAutocannonOutput(`some progress\n${JSON.stringify(json)}\n`)!;
  assert.equal(r.rps, 2500);
  assert.equal(r.bytes, 123456);
  assert.deepEqual(r.latencyMs, { p50: 1, p90: 2, p99: 5, p999: 9, max: 12, mean: 1.2 });
  assert.deepEqual(r.errors, { connect: 0, read: 4, write: 0, timeout: 3, status: 2, total: 9 });
});

test('pgbench: tps, mean latency and failed transactions of its report; none when it printed no report', () => {
  const output = [
    'pgbench (15.14 (Debian 15.14-0+deb12u1))',
    'transaction type: <builtin: select only>',
    'scaling factor: 1',
    'query mode: prepared',
    'number of clients: 16',
    'number of threads: 1',
    'maximum number of tries: 1',
    'duration: 5 s',
    'number of transactions actually processed: 61234',
    'number of failed transactions: 2 (0.003%)',
    'latency average = 1.305 ms',
    'initial connection time = 21.880 ms',
    'tps = 12261.113208 (without initial connection time)',
  ].join('\n');
  assert.deepEqual(parsePgbenchOutput(output), { tps: 12261.113208, latencyMs: 1.305, failed: 2 });
  assert.equal(parsePgbenchOutput('pgbench: error: connection to server failed\n'), undefined);
});

test('smaps_rollup: private and shared resident bytes; a real process has both', () => {
  const text = [
    '55d5c0000000-7ffd1d5f9000 ---p 00000000 00:00 0                          [rollup]',
    'Rss:               52544 kB',
    'Pss:               19710 kB',
    'Shared_Clean:      41364 kB',
    'Shared_Dirty:          0 kB',
    'Private_Clean:         4 kB',
    'Private_Dirty:     11176 kB',
    'Shared_Hugetlb:        0 kB',
    'Private_Hugetlb:       0 kB',
  ].join('\n');
  assert.deepEqual(parseSmapsRollup(text), { private: 11180 * 1024, shared: 41364 * 1024 });
  const self = parseSmapsRollup(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  assert.ok(self.private > 0 && self.shared > 0);
  // This process alone: its private pages plus its shared ones, which is its RSS.
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  const once = sharedOnceBytes(process.pid)!;
  assert.ok(Math.abs(once - rss) < rss * 0.1, `${once} vs RSS ${rss}`);
});
