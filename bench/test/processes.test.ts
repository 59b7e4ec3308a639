import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { isAlive, skipUnless, tempDir, waitFor } from '../../test/helpers/index.js';
import { startBackends } from '../backend/backends.js';
import { ChildGroup } from '../children.js';
import { parseWorkerConnections, tandemL7 } from '../contenders/tandem.js';
import { findExecutable } from '../executables.js';
import { createWrk } from '../load/wrk.js';
import { HOST } from '../net.js';
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

test("Tandem's connections per worker, read from its metrics, add up to the client connections open", async (t) => {
  const dir = tempDir('tandem-bench-test-');
  t.after(dir.cleanup);
  const children = new ChildGroup();
  t.after(() => children.killAllNow());
  const backends = await startBackends(children);
  const running = await tandemL7.start({
    backends,
    dir: dir.path,
    children,
    maxClientConnections: 100,
    tandemWorkers: 2,
    tandemSpread: 'off',
  });
  t.after(() => running.stop());
  // Twelve keep-alive connections, each answered once and held open.
  const sockets = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const s = connect(running.port, HOST);
      s.setEncoding('latin1');
      let got = '';
      await new Promise<void>((resolve, reject) => {
        s.on('data', (d: string) => {
          got += d;
          if (got.includes('\r\n\r\n')) resolve();
        });
        s.on('error', reject);
        s.write(`GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n`);
      });
      return s;
    }),
  );
  t.after(() => sockets.forEach((s) => s.destroy()));
  const split = await waitFor('12 connections over the workers', async () => {
    const w = await running.workerConnections!();
    return w !== undefined && w.length === 2 && w[0]! + w[1]! === 12 ? w : undefined;
  });
  assert.equal(split.length, 2);
  assert.deepEqual(
    parseWorkerConnections(
      '# TYPE tandem_lb_worker_connections gauge\ntandem_lb_worker_connections{worker="2"} 5\n' +
        'tandem_lb_worker_connections{worker="1"} 7\ntandem_lb_worker_up{worker="1"} 1\n',
    ),
    [7, 5],
  );
  assert.equal(parseWorkerConnections('tandem_lb_up 1\n'), undefined);
});
