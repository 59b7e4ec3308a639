import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { fetch, startLb } from './fixtures.js';
import { configWith, startHoldingBackend } from './protocol-fixtures.js';

test('maxconn: requests past it wait in the backend queue and go, oldest first, as slots free', async (t) => {
  const a = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { servers: [{ maxconn: 1 }] }),
  );
  const queued = async () => (await lb.handle.status()).backends[0]!.queued;

  const first = fetch(lb.port, '/1');
  await waitFor('/1 at the server', () => a.seen.length === 1);
  const second = fetch(lb.port, '/2');
  await waitFor('/2 queued', async () => (await queued()) === 1);
  const third = fetch(lb.port, '/3');
  await waitFor('/3 queued', async () => (await queued()) === 2);
  assert.deepEqual(a.seen, ['/1'], 'nothing past maxconn reached the server');
  assert.equal((await lb.server('web-01')).inFlight, 1);

  a.answer('/1');
  assert.equal((await first).text, 'web-01');
  await waitFor('/2 dispatched', () => a.seen.length === 2);
  assert.deepEqual(a.seen, ['/1', '/2']);
  assert.equal(await queued(), 1);

  a.answer('/2');
  await waitFor('/3 dispatched', () => a.seen.length === 3);
  a.answer('/3');
  assert.deepEqual(
    (await Promise.all([second, third])).map((r) => r.status),
    [200, 200],
  );
  assert.equal(a.peak, 1, 'never more than maxconn requests at the server at once');
  assert.equal(await queued(), 0);
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);
});

test('a server at its maxconn is skipped while another has room', async (t) => {
  const a = await startHoldingBackend(t, 'web-01');
  const b = await startHoldingBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
      },
      { servers: [{ maxconn: 1 }] },
    ),
  );
  // Round robin starts with web-01: this one fills it.
  const held = fetch(lb.port, '/held');
  await waitFor('web-01 full', () => a.held.length === 1);
  const others = [0, 1, 2, 3].map((i) => fetch(lb.port, `/o${i}`));
  await waitFor('4 requests at web-02', () => b.held.length === 4);
  assert.deepEqual(a.seen, ['/held']);
  for (let i = 0; i < 4; i++) b.answer();
  for (const r of await Promise.all(others)) assert.equal(r.text, 'web-02');
  assert.equal((await lb.handle.status()).backends[0]!.queued, 0);
  a.answer();
  assert.equal((await held).text, 'web-01');
});

test('queue full: 503 at once; waiting longer than queue.timeout: 503', async (t) => {
  const a = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: a.port }] },
      { servers: [{ maxconn: 1 }], backend: { queue: { size: 1, timeout: '300ms' } } },
    ),
  );
  const first = fetch(lb.port, '/1');
  await waitFor('/1 at the server', () => a.seen.length === 1);
  const sentAt = Date.now();
  const waiting = fetch(lb.port, '/2');
  await waitFor('/2 queued', async () => (await lb.handle.status()).backends[0]!.queued === 1);

  const full = await fetch(lb.port, '/3');
  assert.equal(full.status, 503);
  assert.equal(full.headers['retry-after'], '1');
  assert.equal(
    full.text,
    '503 Service Unavailable: every server of backend "web" is at its maxconn and the queue is full\n',
  );

  const timedOut = await waiting;
  const waited = Date.now() - sentAt;
  assert.equal(timedOut.status, 503);
  assert.equal(
    timedOut.text,
    '503 Service Unavailable: no server of backend "web" had a free slot within 300ms\n',
  );
  assert.ok(waited >= 280 && waited < 3000, `answered after ${waited}ms`);
  assert.equal((await lb.handle.status()).backends[0]!.queued, 0);
  assert.deepEqual(a.seen, ['/1'], 'the turned-away requests never reached the server');

  a.answer();
  assert.equal((await first).status, 200);
  // The slot is free again: the next request goes straight through.
  const next = fetch(lb.port, '/4');
  await waitFor('/4 at the server', () => a.seen.length === 2);
  a.answer();
  assert.equal((await next).status, 200);
});

test('a client that gives up while queued leaves the queue; its request never reaches the server', async (t) => {
  const a = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { servers: [{ maxconn: 1 }] }),
  );
  const first = fetch(lb.port, '/1');
  await waitFor('/1 at the server', () => a.seen.length === 1);
  const gone = request({ host: '127.0.0.1', port: lb.port, path: '/gone', agent: false });
  gone.on('error', () => undefined);
  gone.end();
  await waitFor('/gone queued', async () => (await lb.handle.status()).backends[0]!.queued === 1);
  gone.destroy();
  await waitFor('queue empty again', async () => (await lb.handle.status()).backends[0]!.queued === 0);
  const third = fetch(lb.port, '/3');
  await waitFor('/3 queued', async () => (await lb.handle.status()).backends[0]!.queued === 1);
  a.answer('/1');
  await first;
  await waitFor('/3 dispatched', () => a.seen.length === 2);
  assert.deepEqual(a.seen, ['/1', '/3']);
  a.answer('/3');
  assert.equal((await third).status, 200);
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);
});
