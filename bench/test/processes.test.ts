import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { isAlive, skipUnless, tempDir, waitFor } from '../../test/helpers/index.js';
import { ChildGroup } from '../children.js';
import { findExecutable } from '../executables.js';
import { createWrk } from '../load/wrk.js';
import { cpuSeconds, processTree, rssBytes } from '../proc-stats.js';

test('stopping a child also stops what it forked; the tree is measured as a whole', async (t) => {
  const children = new ChildGroup();
  t.after(() => children.killAllNow());
  // A shell that forks a grandchild and reports its pid.
  const child = children.spawn('tree', '/bin/sh', ['-c', 'sleep 60 & echo "$!"; wait']);
  const grandchild = Number(await child.waitForLine('grandchild pid', (l) => /^\d+$/.test(l), 5000));
  assert.deepEqual(processTree(child.pid).sort(), [child.pid, grandchild].sort());
  assert.ok(rssBytes(child.pid) > 0);
  assert.ok(cpuSeconds(child.pid) >= 0);
  await children.stop(child);
  await waitFor('the grandchild to be gone', () => !isAlive(grandchild), { timeout: 5000 });
  assert.deepEqual(processTree(child.pid), []);
});

test('wrk with the report script gives requests, percentiles and errors', async (t) => {
  const wrk = findExecutable('wrk');
  if (skipUnless(t, wrk ? undefined : 'wrk is not installed (apt-get install wrk)')) return;
  const dir = tempDir('tandem-bench-test-');
  t.after(dir.cleanup);
  const server = createServer((req, res) => {
    res.statusCode = req.url === '/fail' ? 500 : 200;
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const children = new ChildGroup();
  t.after(() => children.killAllNow());
  const gen = createWrk(wrk!, dir.path);
  assert.match(await gen.version(), /^wrk \d/);
  const settings = { connections: 2, durationSec: 1, threads: 1, timeoutSec: 2 };
  const ok = await gen.run({ ...settings, url: `http://127.0.0.1:${port}/` }, children);
  assert.ok(ok.requests > 0 && ok.rps > 0, JSON.stringify(ok));
  assert.ok(
    ok.latencyMs.p50 > 0 && ok.latencyMs.p999 >= ok.latencyMs.p99 && ok.latencyMs.p99 >= ok.latencyMs.p50,
  );
  assert.equal(ok.errors.total, 0);
  const failing = await gen.run({ ...settings, url: `http://127.0.0.1:${port}/fail` }, children);
  assert.equal(failing.errors.status, failing.requests);
});
