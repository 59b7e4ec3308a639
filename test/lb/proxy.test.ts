import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { PortInUseError } from '../../src/errors.js';
import { startLoadBalancer } from '../../src/lb/load-balancer.js';
import type { LbStatus } from '../../src/lb/stats/status.js';
import { freePort, waitFor } from '../helpers/index.js';
import { fetch, makeConfig, memoryLogger, startBackend, startLb } from './fixtures.js';

test('equal weights split 20 requests exactly 10/10, over reused upstream connections', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
    }),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const served: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await fetch(lb.port, '/', { agent });
    assert.equal(r.status, 200);
    served.push(r.text);
  }
  assert.deepEqual(served.slice(0, 4), ['web-01', 'web-02', 'web-01', 'web-02']);
  assert.equal(a.requests, 10);
  assert.equal(b.requests, 10);
  // Keep-alive upstream: sequential requests reuse one connection per server.
  assert.equal(a.sockets.size, 1);
  assert.equal(b.sockets.size, 1);

  const s1 = await lb.server('web-01');
  assert.equal(s1.totalRequests, 10);
  assert.equal(s1.responses['2xx'], 10);
  assert.equal(s1.inFlight, 0);
  assert.equal(s1.failures, 0);
  assert.equal(s1.state, 'up');
});

test('a stopped server is marked down after `fall` failed checks, gets no requests, and comes back after `rise`', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
      healthCheck: { interval: 30, rise: 2, fall: 3 },
    }),
  );
  assert.deepEqual(lb.changes.map((c) => [c.server, c.up, c.initial]).sort(), [
    ['web-01', true, true],
    ['web-02', true, true],
  ]);

  await b.stop();
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  const down = lb.changes.find((c) => c.server === 'web-02' && !c.up && !c.initial)!;
  assert.equal(down.consecutive, 3);
  assert.equal(down.reason, 'connect ECONNREFUSED');
  assert.equal((await lb.server('web-02')).check.lastError, 'connect ECONNREFUSED');

  const before = b.requests;
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-01');
  assert.equal(b.requests, before);

  await b.restart();
  await waitFor('web-02 up', async () => (await lb.server('web-02')).state === 'up');
  const up = lb.changes.findLast((c) => c.server === 'web-02')!;
  assert.equal(up.up, true);
  assert.equal(up.consecutive, 2);
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) served.add((await fetch(lb.port, '/')).text);
  assert.deepEqual([...served].sort(), ['web-01', 'web-02']);
});

test('active-passive: the backup takes traffic only while the active server is down', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      mode: 'active-passive',
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
      healthCheck: { interval: 30, rise: 1, fall: 1 },
    }),
  );
  for (let i = 0; i < 4; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-01');
  a.healthStatus = 500;
  await waitFor('web-01 down', async () => (await lb.server('web-01')).state === 'down');
  for (let i = 0; i < 4; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-02');
  a.healthStatus = 200;
  await waitFor('web-01 up', async () => (await lb.server('web-01')).state === 'up');
  for (let i = 0; i < 4; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-01');
  assert.equal((await lb.server('web-02')).backup, true);
});

test('503 with Retry-After when no server is up', async (t) => {
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: await freePort() }] }));
  assert.equal((await lb.server('web-01')).state, 'down');
  const r = await fetch(lb.port, '/');
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.equal(r.text, '503 Service Unavailable: no server is up in backend "web"\n');
});

test('the server receives X-Forwarded-*, no hop-by-hop fields, and the original Host', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const r = await fetch(lb.port, '/echo', {
    headers: {
      host: 'shop.example',
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      connection: 'close, x-private',
      'x-private': 'secret',
      'proxy-connection': 'keep-alive',
      'x-custom': 'kept',
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-served-by'], 'web-01');
  const seen = JSON.parse(r.text) as { headers: Record<string, string> };
  assert.equal(seen.headers['host'], 'shop.example');
  assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.equal(seen.headers['x-forwarded-host'], 'shop.example');
  assert.equal(seen.headers['x-custom'], 'kept');
  assert.equal(seen.headers['x-private'], undefined);
  assert.equal(seen.headers['proxy-connection'], undefined);
  // The client's Connection (close) is hop-by-hop: not passed on. Upstream the request is HTTP/1.1
  // without one, which keeps the connection (reuse: upstream-connections.test.ts).
  assert.equal(seen.headers['connection'], undefined);
});

test('a 5 MiB request body streams to the server intact (chunked and with Content-Length)', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const body = randomBytes(5 * 1024 * 1024);
  const sha256 = createHash('sha256').update(body).digest('hex');
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += 64 * 1024) chunks.push(body.subarray(i, i + 64 * 1024));

  const chunked = await fetch(lb.port, '/upload', { method: 'POST', body: chunks });
  assert.equal(chunked.status, 200);
  assert.deepEqual(JSON.parse(chunked.text), { length: body.length, sha256 });

  const sized = await fetch(lb.port, '/upload', {
    method: 'PUT',
    headers: { 'content-length': String(body.length) },
    body,
  });
  assert.deepEqual(JSON.parse(sized.text), { length: body.length, sha256 });
});

test('504 when the server sends no response headers within serverTimeout', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await makeConfig({ servers: [{ name: 'web-01', port: a.port }], serverTimeout: 200 }),
  );
  const r = await fetch(lb.port, '/never');
  assert.equal(r.status, 504);
  assert.match(r.text, /^504 Gateway Timeout/);
  assert.equal((await lb.server('web-01')).failures, 1);
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);
  assert.ok(
    lb.log.lines.some((l) => l.includes('no response within 200ms')),
    lb.log.lines.join('\n'),
  );
});

test('502 when the server drops the connection', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const r = await fetch(lb.port, '/reset');
  assert.equal(r.status, 502);
  assert.match(r.text, /^502 Bad Gateway/);
  assert.equal((await fetch(lb.port, '/')).status, 200);
});

test('a server that drops the connection mid-body: the client connection is cut, the proxy lives on', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  await assert.rejects(fetch(lb.port, '/partial'));
  await waitFor('failure counted', async () => (await lb.server('web-01')).failures === 1);
  assert.equal((await fetch(lb.port, '/')).status, 200);
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);
});

test('a client that goes away mid-request: the upstream request is abandoned too', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const req = request({ host: '127.0.0.1', port: lb.port, path: '/hold', agent: false });
  req.on('error', () => undefined);
  req.end();
  await waitFor('request held by the server', () => a.held.length === 1);
  req.destroy();
  await waitFor('server saw the request abandoned', () => a.abandoned === 1);
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);
  assert.equal((await fetch(lb.port, '/')).status, 200);
});

test('a refused connection is retried once on another server', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
      // Checks so rare that web-01 is still "up" when its requests are refused.
      healthCheck: { interval: 60_000 },
    }),
  );
  await a.stop();
  for (let i = 0; i < 4; i++) {
    const r = await fetch(lb.port, '/', { method: 'GET' });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'web-02');
  }
  // A POST with a body is retried too: nothing of it was sent before the connect failed.
  for (let i = 0; i < 2; i++) {
    const r = await fetch(lb.port, '/upload', { method: 'POST', body: Buffer.from('hello') });
    assert.equal(r.status, 200);
    assert.equal(JSON.parse(r.text).length, 5);
  }
  const s1 = await lb.server('web-01');
  assert.equal(s1.state, 'up');
  assert.ok(s1.failures >= 1, `failures: ${s1.failures}`);
  assert.equal(s1.inFlight, 0);
  assert.equal((await lb.server('web-02')).inFlight, 0);
  assert.ok(lb.log.lines.some((l) => l.includes('connect ECONNREFUSED; retrying on web-02')));
});

test('the stats port serves GET /status as JSON, and 404 elsewhere', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port, weight: 3 },
        { name: 'web-02', port: await freePort() },
      ],
    }),
  );
  await fetch(lb.port, '/');
  const r = await fetch(lb.statsPort, '/status');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const status = JSON.parse(r.text) as LbStatus;
  assert.equal(status.name, 'lb-01');
  assert.equal(status.pid, process.pid);
  assert.deepEqual(status.frontends, [{ name: 'http', address: `127.0.0.1:${lb.port}`, backend: 'web' }]);
  const [web] = status.backends;
  assert.equal(web!.name, 'web');
  assert.equal(web!.balance, 'roundrobin');
  assert.equal(web!.mode, 'active-active');
  const [s1, s2] = web!.servers;
  assert.deepEqual(
    { ...s1!, check: { ...s1!.check, lastCheckAt: null, lastDurationMs: null } },
    {
      name: 'web-01',
      address: `127.0.0.1:${a.port}`,
      weight: 3,
      backup: false,
      state: 'up',
      adminState: 'ready',
      inFlight: 0,
      totalRequests: 1,
      responses: { '2xx': 1, '3xx': 0, '4xx': 0, '5xx': 0 },
      failures: 0,
      retries: 0,
      redispatches: 0,
      ejected: false,
      ejectedUntil: null,
      totalConnections: 0,
      bytes: { in: 0, out: 0 },
      check: { lastResult: 'ok', lastError: null, lastCheckAt: null, lastDurationMs: null, consecutive: 1 },
    },
  );
  assert.ok(!Number.isNaN(Date.parse(s1!.check.lastCheckAt!)));
  assert.equal(typeof s1!.check.lastDurationMs, 'number');
  assert.equal(s2!.state, 'down');
  assert.equal(s2!.check.lastResult, 'fail');
  assert.equal(s2!.check.lastError, 'connect ECONNREFUSED');

  assert.equal((await fetch(lb.statsPort, '/nope')).status, 404);
  assert.equal((await fetch(lb.statsPort, '/status', { method: 'POST' })).status, 405);
});

test('close() lets an in-flight request finish, then releases every port', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await makeConfig({ servers: [{ name: 'web-01', port: a.port }] }));
  const agent = new Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  // An idle keep-alive connection from the client must not hold close() up.
  assert.equal((await fetch(lb.port, '/', { agent })).status, 200);
  const pending = fetch(lb.port, '/hold');
  await waitFor('request held by the server', () => a.held.length === 1);
  assert.equal((await lb.server('web-01')).inFlight, 1);
  const closed = lb.handle.close();
  // No new connections once closing.
  await waitFor('frontend refuses connections', () =>
    fetch(lb.port, '/').then(
      () => false,
      () => true,
    ),
  );
  a.release();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal(r.text, 'web-01');
  assert.equal(r.headers['connection'], 'close');
  await closed;
  // Every port is free again.
  for (const port of [lb.port, lb.statsPort]) {
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
  }
});

test('a frontend port in use fails start with PortInUseError naming the component', async (t) => {
  const a = await startBackend(t, 'web-01');
  const config = await makeConfig({ servers: [{ name: 'web-01', port: a.port }] });
  const taken = createServer();
  const port = config.loadBalancers[0]!.frontends[0]!.port;
  await new Promise<void>((r) => taken.listen(port, '127.0.0.1', r));
  t.after(() => taken.close());
  await assert.rejects(startLoadBalancer(config, 'lb-01', memoryLogger()), (err: Error) => {
    assert.ok(err instanceof PortInUseError);
    assert.equal(err.code, 'TANDEM_ERR_PORT_IN_USE');
    assert.match(
      err.message,
      new RegExp(
        `^lb-01 frontend http: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`,
      ),
    );
    return true;
  });
  // The stats port was never bound; the health checks were stopped (the test process can exit).
  const stats = config.loadBalancers[0]!.stats.port;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(stats, '127.0.0.1', () => probe.close(() => resolve()));
  });
});
