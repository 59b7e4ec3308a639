/**
 * The client and server timeouts of a transfer under way (HAProxy's `timeout client` and `timeout
 * server`): a client that stops sending its body or stops taking its answer, a server that stops
 * taking a body or stalls mid-answer. Each side is blamed only for its own silence.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { startBackend, startLb } from './fixtures.js';
import { configWith, RawClient, serveForTest, startHoldingBackend } from './protocol-fixtures.js';

const MiB = 1024 * 1024;

/** A server whose `/big` answers `size` bytes (Content-Length), written with backpressure; it records when an answer is cut. */
async function startBigBackend(
  t: TestContext,
  size: number,
): Promise<{ port: number; cutAt: number | undefined; finished: number }> {
  const state = { port: 0, cutAt: undefined as number | undefined, finished: 0 };
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  const server: Server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    res.on('close', () => {
      if (res.writableFinished) state.finished++;
      else state.cutAt ??= Date.now();
    });
    pump();
  });
  state.port = await serveForTest(t, server);
  return state;
}

/** Connects and sends `request`; the socket reads nothing until the test resumes it. */
async function nonReadingClient(t: TestContext, port: number, request: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  socket.pause();
  socket.on('error', () => undefined);
  t.after(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(request);
  return socket;
}

function sleep(t: TestContext, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    t.after(() => clearTimeout(timer));
  });
}

test('clientTimeout: a client that stops sending its request body gets 408 at the deadline; its server is not blamed', async (t) => {
  const a = await startBackend(t, 'web-01');
  // serverTimeout shorter than clientTimeout: the wait is the client's, so the server timer must not fire.
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: a.port }], serverTimeout: 300 },
      { lb: { clientTimeout: '1s' } },
    ),
  );
  const client = await RawClient.connect(t, lb.port);
  const start = Date.now();
  client.write(
    'POST /upload HTTP/1.1\r\nHost: slow.test\r\nContent-Length: 10000\r\n\r\n' + 'a'.repeat(1000),
  );
  const got = await client.untilClosed(6000);
  const elapsed = Date.now() - start;
  assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.match(got, /the rest of the request body did not arrive in time/);
  assert.ok(elapsed >= 900 && elapsed < 3500, `answered after ${elapsed}ms`);
  // The proxy's side of the close may come just after the client's.
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
  assert.equal((await lb.server('web-01')).failures, 0, 'the server is not blamed for the client');
  assert.ok(
    lb.log.lines.some((l) =>
      /client 127\.0\.0\.1 sent no more of the body of POST \/upload .*clientTimeout/.test(l),
    ),
    lb.log.lines.join('\n'),
  );
});

test('clientTimeout: a client that stops taking a large answer is cut, and the server connection and slot are freed', async (t) => {
  const big = await startBigBackend(t, 256 * MiB);
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: big.port }], serverTimeout: 10_000 },
      { lb: { clientTimeout: '1s' } },
    ),
  );
  const start = Date.now();
  const socket = await nonReadingClient(t, lb.port, 'GET /big HTTP/1.1\r\nHost: big.test\r\n\r\n');
  await waitFor('the proxy to cut the answer the client does not take', () => big.cutAt, {
    timeout: 8000,
    interval: 20,
  });
  const elapsed = big.cutAt! - start;
  assert.ok(elapsed >= 900 && elapsed < 5000, `cut after ${elapsed}ms`);
  // The client, reading at last, finds its connection closed before the 256 MiB came.
  let received = 0;
  socket.on('data', (d: Buffer) => (received += d.length));
  socket.resume();
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  assert.ok(received < 256 * MiB, `received ${received} bytes`);
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
  assert.equal((await lb.server('web-01')).failures, 0, 'the server is not blamed for the client');
  assert.equal(big.finished, 0);
});

test('clientTimeout: a slow client that keeps taking its answer is not cut', async (t) => {
  const size = 64 * MiB;
  const big = await startBigBackend(t, size);
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: big.port }] }, { lb: { clientTimeout: '800ms' } }),
  );
  const socket = await nonReadingClient(
    t,
    lb.port,
    'GET /big HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n',
  );
  let received = 0;
  socket.on('data', (d: Buffer) => (received += d.length));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  // About 2.6 s of reading in bursts: 20 ms of reading, then 400 ms of nothing (half the timeout).
  for (let i = 0; i < 6; i++) {
    await sleep(t, 400);
    socket.resume();
    await sleep(t, 20);
    socket.pause();
  }
  assert.equal(big.cutAt, undefined, 'the answer was cut while the client kept taking it');
  assert.ok(received < size, 'the answer took longer than the bursts (else the test proves nothing)');
  socket.resume();
  await Promise.race([closed, sleep(t, 10_000)]);
  assert.ok(received > size, `received ${received} bytes`);
  assert.equal(big.cutAt, undefined);
  assert.equal(big.finished, 1);
});

test('serverTimeout: a server that stalls mid-answer has its client connection cut after it, and is blamed', async (t) => {
  const b = await startHoldingBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: b.port }], serverTimeout: 600 },
      { lb: { clientTimeout: '10s' } },
    ),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write('GET /stalls HTTP/1.1\r\nHost: stall.test\r\n\r\n');
  await waitFor('the request at the server', () => b.held[0], { timeout: 3000, interval: 10 });
  const h = b.held[0]!;
  h.res.writeHead(200, { 'content-length': '100000' });
  h.res.write('x'.repeat(1000));
  const start = Date.now();
  const got = await client.untilClosed(6000);
  const elapsed = Date.now() - start;
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(
    got.length - got.indexOf('\r\n\r\n') - 4,
    1000,
    'the client got what the server sent, and no more',
  );
  assert.ok(elapsed >= 500 && elapsed < 3500, `cut after ${elapsed}ms`);
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
  assert.equal((await lb.server('web-01')).failures, 1);
  assert.ok(
    lb.log.lines.some((l) => /no data for 600ms mid-response \(serverTimeout\)/.test(l)),
    lb.log.lines.join('\n'),
  );
});

test('serverTimeout: a server that stops taking a request body gets a 504 for it, not the client a 408', async (t) => {
  // Takes the connection and never reads from it.
  const held: Socket[] = [];
  const server = createTcpServer((s) => {
    s.pause();
    held.push(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of held) s.destroy();
    server.close();
  });
  const port = (server.address() as { port: number }).port;
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port }], serverTimeout: 700 },
      { lb: { clientTimeout: '10s' }, backend: { healthCheck: { type: 'tcp', interval: '60s' } } },
    ),
  );
  const client = await RawClient.connect(t, lb.port);
  const size = 64 * MiB;
  client.write(`POST /upload HTTP/1.1\r\nHost: body.test\r\nContent-Length: ${size}\r\n\r\n`);
  client.write(Buffer.alloc(size, 0x61));
  const got = await client.until(/\r\n\r\n[\s\S]*\n/, 8000);
  assert.match(got, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  const s = await lb.server('web-01');
  assert.equal(s.failures, 1);
});

test('clientTimeout: not a duration is a config error naming the key', async () => {
  await assert.rejects(
    configWith({ servers: [{ name: 'web-01', port: 1 }] }, { lb: { clientTimeout: 'a while' } }),
    (err: Error & { problems?: string[] }) => {
      assert.deepEqual(err.problems, [
        'loadBalancers[0].clientTimeout: must be a duration: a number of milliseconds or a string like "500ms", "2s", "1m"',
      ]);
      return true;
    },
  );
});
