import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { UpstreamServer } from '../../src/lb/backend/upstream-server.js';
import type { HealthChange } from '../../src/lb/health/health-check.js';
import { HttpHealthCheck } from '../../src/lb/health/http-check.js';
import { freePort, waitFor } from '../helpers/index.js';
import { startBackend } from './fixtures.js';

const CONFIG = { path: '/healthz', interval: 30, timeout: 300, rise: 2, fall: 3 };

function check(t: TestContext, port: number, config = CONFIG) {
  const server = new UpstreamServer({
    name: 'web-01',
    backend: 'web',
    host: '127.0.0.1',
    port,
    weight: 1,
    backup: false,
  });
  const changes: HealthChange[] = [];
  const hc = new HttpHealthCheck(server, config, (c) => changes.push(c));
  t.after(() => {
    hc.stop();
    server.pool.destroy();
  });
  return { server, changes, hc };
}

test('the first check decides at once: up on success', async (t) => {
  const backend = await startBackend(t, 'web-01');
  const { server, changes, hc } = check(t, backend.port, { ...CONFIG, interval: 60_000 });
  hc.start();
  await hc.firstResult;
  assert.equal(server.up, true);
  assert.equal(server.check.lastResult, 'ok');
  assert.equal(server.check.lastError, null);
  assert.equal(server.check.consecutive, 1);
  assert.ok(server.check.lastCheckAt > 0);
  assert.deepEqual(changes, [
    { backend: 'web', server: 'web-01', up: true, initial: true, consecutive: 1, reason: 'HTTP 200' },
  ]);
  assert.equal(backend.checks, 1);
});

test('the first check decides at once: down on a refused connection', async (t) => {
  const { server, changes, hc } = check(t, await freePort(), { ...CONFIG, interval: 60_000 });
  hc.start();
  await hc.firstResult;
  assert.equal(server.up, false);
  assert.equal(server.check.lastResult, 'fail');
  assert.equal(server.check.lastError, 'connect ECONNREFUSED');
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.up, false);
  assert.equal(changes[0]!.initial, true);
});

test('fall failures take a server down, rise successes bring it back; a 5xx fails', async (t) => {
  const backend = await startBackend(t, 'web-01');
  const { server, changes, hc } = check(t, backend.port);
  hc.start();
  await hc.firstResult;
  assert.equal(server.up, true);

  backend.healthStatus = 503;
  await waitFor('server down', () => !server.up);
  assert.equal(server.check.lastError, 'HTTP 503');
  assert.deepEqual(changes[1], {
    backend: 'web',
    server: 'web-01',
    up: false,
    initial: false,
    consecutive: 3,
    reason: 'HTTP 503',
  });

  backend.healthStatus = 302;
  await waitFor('server up', () => server.up);
  assert.deepEqual(changes[2], {
    backend: 'web',
    server: 'web-01',
    up: true,
    initial: false,
    consecutive: 2,
    reason: 'HTTP 302',
  });
  assert.equal(changes.length, 3);
});

test('a check without an answer fails after timeout', async (t) => {
  // A TCP server that accepts and never answers.
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.resume();
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const { server, hc } = check(t, port, { ...CONFIG, timeout: 100, interval: 60_000 });
  hc.start();
  await hc.firstResult;
  assert.equal(server.up, false);
  assert.equal(server.check.lastError, 'timeout after 100ms');
  assert.ok(server.check.lastDurationMs >= 90, `took ${server.check.lastDurationMs}ms`);
  await waitFor('check connection closed', () => [...sockets].every((s) => s.readableEnded));
});

test('checks of one server never overlap, and stop() ends them', async (t) => {
  const sockets = new Set<import('node:net').Socket>();
  let open = 0;
  let maxOpen = 0;
  const silent = createServer((s) => {
    sockets.add(s);
    s.resume();
    open++;
    maxOpen = Math.max(maxOpen, open);
    s.on('close', () => open--);
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  // Interval shorter than the timeout: a naive timer would pile checks up.
  const { server, hc } = check(t, port, { ...CONFIG, interval: 10, timeout: 60 });
  hc.start();
  await waitFor('several checks', () => server.check.consecutive >= 4);
  hc.stop();
  await waitFor('connections closed', () => open === 0);
  assert.equal(maxOpen, 1);
});
