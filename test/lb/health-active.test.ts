/**
 * Active health checks: what an HTTP check sends and expects (method, expectStatus, expectBody),
 * the TCP check, and the schedule (fastInterval, downInterval). Real servers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { validateConfig } from '../../src/config/load.js';
import type { HealthCheckConfig } from '../../src/config/schema.js';
import { ConfigError } from '../../src/errors.js';
import { UpstreamServer } from '../../src/lb/backend/upstream-server.js';
import { createHealthCheck } from '../../src/lb/health/create-health-check.js';
import type { HealthChange } from '../../src/lb/health/health-check.js';
import { waitFor } from '../helpers/index.js';
import { fetch, rawConfig, startLb } from './fixtures.js';
import { configWith } from './health-fixtures.js';

/** An HTTP server whose answer to every request the test sets; it records each request. */
interface Target {
  port: number;
  status: number;
  body: string;
  /** Method, path and arrival time (performance.now()) of every request. */
  seen: Array<{ method: string; path: string; at: number }>;
}

async function startTarget(t: TestContext): Promise<Target> {
  const target: Target = { port: 0, status: 200, body: 'ok\n', seen: [] };
  const server = createHttpServer((req, res) => {
    target.seen.push({ method: req.method ?? '', path: req.url ?? '', at: performance.now() });
    res.writeHead(target.status, { 'content-type': 'text/plain' });
    res.end(target.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  target.port = (server.address() as { port: number }).port;
  return target;
}

/** The healthCheck section of a backend, through the real schema (defaults filled in). */
function healthConfig(section: Record<string, unknown>): HealthCheckConfig {
  const raw = {
    servers: [{ name: 'web-01', port: 1, app: { port: 2, processes: 1 } }],
    loadBalancers: [{ name: 'lb-01', frontends: [{ port: 3, backend: 'web' }] }],
    backends: [{ name: 'web', healthCheck: section, servers: [{ name: 'web-01' }] }],
  };
  return validateConfig(raw).backends[0]!.healthCheck;
}

/** Checks 127.0.0.1:port with `section` (as written in tandem.yaml); stopped after the test. */
function watch(t: TestContext, port: number, section: Record<string, unknown>) {
  const server = new UpstreamServer({
    name: 'web-01',
    backend: 'web',
    host: '127.0.0.1',
    port,
    weight: 1,
    backup: false,
  });
  const changes: HealthChange[] = [];
  const check = createHealthCheck(server, healthConfig(section), (c) => changes.push(c));
  t.after(() => {
    check.stop();
    server.pool.destroy();
  });
  check.start();
  return { server, changes, check };
}

test('expectStatus: only the listed codes and ranges pass', async (t) => {
  const target = await startTarget(t);
  target.status = 404;
  // 404 passes only because it is listed; the default (200-399) would fail it.
  const { server, check } = watch(t, target.port, {
    expectStatus: '200-299,404',
    interval: 20,
    rise: 1,
    fall: 1,
  });
  await check.firstResult;
  assert.equal(server.up, true);
  assert.equal(server.check.lastResult, 'ok');

  // A 302 passes by default, but is not listed here.
  target.status = 302;
  await waitFor('server down on a 302', () => !server.up);
  assert.equal(server.check.lastError, 'HTTP 302');

  target.status = 204;
  await waitFor('server up on a 204', () => server.up);
});

test('a 500 marks a server down; expectStatus as a list', async (t) => {
  const target = await startTarget(t);
  target.status = 500;
  const { server, check } = watch(t, target.port, { expectStatus: [200, '500-503'], interval: 20 });
  await check.firstResult;
  assert.equal(server.up, true, 'a listed 500 passes');
  target.status = 200;
  await waitFor('a few more checks', () => target.seen.length >= 3);
  assert.equal(server.up, true);

  const plain = await startTarget(t);
  plain.status = 500;
  const other = watch(t, plain.port, { interval: 20 });
  await other.check.firstResult;
  assert.equal(other.server.up, false);
  assert.equal(other.server.check.lastError, 'HTTP 500');
});

test('expectBody: a substring, or a /regex/, must be in the body', async (t) => {
  const target = await startTarget(t);
  target.body = '{"status":"starting"}';
  const { server, check, changes } = watch(t, target.port, {
    expectBody: '"status":"ready"',
    interval: 20,
    rise: 2,
    fall: 2,
  });
  await check.firstResult;
  assert.equal(server.up, false, 'HTTP 200 with the wrong body fails');
  assert.equal(server.check.lastError, 'HTTP 200, body does not contain "\\"status\\":\\"ready\\""');
  assert.equal(changes[0]!.reason, server.check.lastError);

  target.body = '{"db":"ok","status":"ready"}';
  await waitFor('server up once the body matches', () => server.up);

  const re = await startTarget(t);
  re.body = 'DATABASE: OK\nCACHE: DOWN\n';
  const byRegex = watch(t, re.port, { expectBody: '/^cache: up$/im', interval: 20, rise: 1, fall: 1 });
  await byRegex.check.firstResult;
  assert.equal(byRegex.server.up, false);
  assert.equal(byRegex.server.check.lastError, 'HTTP 200, body does not match /^cache: up$/im');
  re.body = 'DATABASE: OK\nCache: Up\n';
  await waitFor('server up once the regex matches', () => byRegex.server.up);
});

test('method: the check is sent with the configured method', async (t) => {
  const target = await startTarget(t);
  const { server, check } = watch(t, target.port, { method: 'HEAD', path: '/ready', interval: 20 });
  await check.firstResult;
  assert.equal(server.up, true);
  await waitFor('three checks', () => target.seen.length >= 3);
  assert.deepEqual(new Set(target.seen.map((s) => s.method)), new Set(['HEAD']));
});

test('type tcp: a connection that opens passes, whatever the server speaks', async (t) => {
  // Not HTTP at all: an HTTP check of this server fails, a TCP check passes.
  const sockets = new Set<Socket>();
  let accepted = 0;
  const raw = createNetServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => sockets.delete(s));
    s.on('close', () => sockets.delete(s));
    s.end('220 hello, this is not HTTP\r\n');
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    raw.close();
  });
  const port = (raw.address() as { port: number }).port;

  const tcp = watch(t, port, { type: 'tcp', interval: 20, fall: 2 });
  await tcp.check.firstResult;
  assert.equal(tcp.server.up, true);
  assert.deepEqual(tcp.changes[0], {
    backend: 'web',
    server: 'web-01',
    up: true,
    initial: true,
    consecutive: 1,
    reason: 'connected',
  });
  await waitFor('several connections', () => accepted >= 3);

  const http = watch(t, port, { interval: 60_000 });
  await http.check.firstResult;
  assert.equal(http.server.up, false);

  // The listener goes away: connections are refused, the TCP check takes the server down.
  await new Promise<void>((r) => {
    raw.close(() => r());
    for (const s of sockets) s.destroy();
  });
  await waitFor('server down', () => !tcp.server.up);
  assert.equal(tcp.server.check.lastError, 'connect ECONNREFUSED');
});

test('fastInterval and downInterval: checks speed up while a server changes state, slow down while it is down', async (t) => {
  const target = await startTarget(t);
  const { server, check, changes } = watch(t, target.port, {
    interval: 400,
    fastInterval: 20,
    downInterval: 250,
    rise: 3,
    fall: 3,
  });
  await check.firstResult;
  assert.equal(server.up, true);

  // Going down: one failure at the next regular check, then two more fastInterval apart.
  target.status = 503;
  const firstFail = await waitFor('first failed check', () =>
    server.check.lastResult === 'fail' ? performance.now() : 0,
  );
  await waitFor('server down', () => !server.up);
  const goingDown = performance.now() - firstFail;
  // With `interval` alone this would take two more intervals (800 ms).
  assert.ok(goingDown < 350, `down ${Math.round(goingDown)}ms after the first failure`);
  assert.equal(changes.at(-1)!.consecutive, 3);

  // Steadily down: checks downInterval apart, not interval (400) nor fastInterval (20).
  const downSince = target.seen.length;
  await waitFor('three checks while down', () => target.seen.length >= downSince + 3, { timeout: 5000 });
  const times = target.seen.slice(downSince - 1, downSince + 3).map((s) => s.at);
  for (let i = 1; i < times.length; i++) {
    const gap = times[i]! - times[i - 1]!;
    assert.ok(gap >= 200 && gap < 380, `gap while down: ${Math.round(gap)}ms`);
  }

  // Coming back: the first success at the next check, the two more fastInterval apart.
  target.status = 200;
  const firstOk = await waitFor('first successful check', () =>
    server.check.lastResult === 'ok' ? performance.now() : 0,
  );
  await waitFor('server up', () => server.up);
  const comingUp = performance.now() - firstOk;
  assert.ok(comingUp < 350, `up ${Math.round(comingUp)}ms after the first success`);
});

test('the backend runs the configured check: expectBody through the load balancer', async (t) => {
  const good = await startTarget(t);
  good.body = 'ready';
  const bad = await startTarget(t);
  bad.body = 'maintenance';
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: good.port },
          { name: 'web-02', port: bad.port },
        ],
      },
      { healthCheck: { expectBody: 'ready', method: 'GET', path: '/status' } },
    ),
  );
  assert.equal((await lb.server('web-01')).state, 'up');
  assert.equal((await lb.server('web-02')).state, 'down');
  assert.equal((await lb.server('web-02')).check.lastError, 'HTTP 200, body does not contain "ready"');
  for (let i = 0; i < 4; i++) assert.equal((await fetch(lb.port, '/')).status, 200);
  // Every proxied request went to web-01: web-02 only ever saw checks of /status.
  assert.equal(good.seen.filter((s) => s.path === '/').length, 4);
  assert.ok(bad.seen.length >= 1);
  assert.deepEqual(new Set(bad.seen.map((s) => s.path)), new Set(['/status']));
});

test('config: expectStatus is normalised, bad values and HEAD with expectBody are refused', async () => {
  assert.equal(healthConfig({}).expectStatus, '200-399');
  assert.equal(
    healthConfig({ expectStatus: [200, '300 - 302', '404,410'] }).expectStatus,
    '200,300-302,404,410',
  );
  assert.equal(healthConfig({ expectStatus: 204 }).expectStatus, '204');
  assert.equal(healthConfig({}).fastInterval, undefined);
  assert.equal(healthConfig({ fastInterval: '200ms' }).fastInterval, 200);
  assert.equal(healthConfig({}).method, 'GET');
  assert.equal(healthConfig({}).type, 'http');

  const problems = (section: Record<string, unknown>): string[] => {
    try {
      healthConfig(section);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.problems;
    }
    assert.fail('config accepted');
  };
  assert.deepEqual(problems({ expectStatus: '399-200' }), [
    'backends[0].healthCheck.expectStatus: must be HTTP status codes or ranges like 200-399, or a list of them (got "399-200")',
  ]);
  assert.deepEqual(problems({ expectStatus: [200, 'ok'] }), [
    'backends[0].healthCheck.expectStatus: must be HTTP status codes or ranges like 200-399, or a list of them (got "ok")',
  ]);
  assert.deepEqual(problems({ method: 'HEAD', expectBody: 'ok' }), [
    'backends[0].healthCheck.expectBody: cannot be checked with method HEAD (a HEAD response has no body)',
  ]);
  assert.match(
    problems({ expectBody: '/(unclosed/' })[0]!,
    /^backends\[0\]\.healthCheck\.expectBody: must be a valid regular expression: /,
  );
  assert.match(problems({ type: 'udp' })[0]!, /^backends\[0\]\.healthCheck\.type: must be http or tcp/);
  assert.match(
    problems({ method: 'get' })[0]!,
    /^backends\[0\]\.healthCheck\.method: must be an HTTP method in capitals/,
  );
  assert.match(
    problems({ downInterval: 'soon' })[0]!,
    /^backends\[0\]\.healthCheck\.downInterval: must be a duration/,
  );
  // The raw config of the fixtures stays valid with every new key at its default.
  validateConfig(await rawConfig({ servers: [{ name: 'web-01', port: 1 }] }));
});
