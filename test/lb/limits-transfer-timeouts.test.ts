/**
 * The client and server timeouts of a transfer under way (HAProxy's `timeout client` and `timeout
 * server`): a client that stops sending its body or stops taking its answer, a server that stops
 * taking a body or stalls mid-answer. Each side is blamed only for its own silence.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { execFile, execFileSync } from 'node:child_process';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { skipUnless, waitFor } from '../helpers/index.js';
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
    // `/big/<n>`: n bytes instead.
    const n = /^\/big\/(\d+)$/.exec(req.url ?? '')?.[1];
    const length = n === undefined ? size : Number(n);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(length) });
    let left = length;
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

/**
 * A network namespace of the test's own, linked to this host by a veth pair whose host side sends
 * at `rate` (tc tbf): a client there is on a slow link. Removed after the test. A string says why
 * this machine cannot (it needs root, `ip` and `tc`).
 */
function slowLink(t: TestContext, rate: string): { ns: string; hostIp: string } | string {
  if (process.getuid?.() !== 0) return 'root (for a network namespace)';
  for (const tool of ['ip', 'tc']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch {
      return `the ${tool} command (iproute2)`;
    }
  }
  const id = process.pid % 100_000;
  const ns = `tandem-t${id}`;
  const octet = id % 250;
  const hostIp = `10.213.${octet}.1`;
  const run = (...args: string[]): void => {
    execFileSync(args[0]!, args.slice(1), { stdio: 'ignore' });
  };
  run('ip', 'netns', 'add', ns);
  t.after(() => run('ip', 'netns', 'del', ns));
  run('ip', 'link', 'add', `tdm${id}a`, 'type', 'veth', 'peer', 'name', `tdm${id}b`);
  run('ip', 'link', 'set', `tdm${id}b`, 'netns', ns);
  run('ip', 'addr', 'add', `${hostIp}/30`, 'dev', `tdm${id}a`);
  run('ip', 'link', 'set', `tdm${id}a`, 'up');
  run('ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `10.213.${octet}.2/30`, 'dev', `tdm${id}b`);
  run('ip', 'netns', 'exec', ns, 'ip', 'link', 'set', `tdm${id}b`, 'up');
  run(
    'tc',
    'qdisc',
    'add',
    'dev',
    `tdm${id}a`,
    'root',
    'tbf',
    'rate',
    rate,
    'burst',
    '32kbit',
    'latency',
    '20ms',
  );
  return { ns, hostIp };
}

/** GETs `path` from host:port and prints the body bytes received (the whole body, or until the connection closes). */
const COUNTING_CLIENT = `
const [host, port, path, size] = process.argv.slice(1);
const socket = require('node:net').connect(Number(port), host);
socket.write('GET ' + path + ' HTTP/1.1\\r\\nHost: slow.test\\r\\n\\r\\n');
let head = Buffer.alloc(0);
let body = -1;
const done = () => { console.log(String(Math.max(body, 0))); process.exit(0); };
socket.on('data', (d) => {
  if (body < 0) {
    head = Buffer.concat([head, d]);
    const end = head.indexOf('\\r\\n\\r\\n');
    if (end < 0) return;
    body = head.length - end - 4;
  } else body += d.length;
  if (body >= Number(size)) done();
});
socket.on('close', done);
socket.on('error', () => undefined);
setTimeout(done, 20000);
`;

test('keepAliveTimeout counts from when the last answer is all out: a client on a slow link gets the end of it', async (t) => {
  const link = slowLink(t, '8mbit');
  if (skipUnless(t, typeof link === 'string' ? link : undefined)) return;
  const { ns, hostIp } = link as { ns: string; hostIp: string };
  const big = await startBigBackend(t, 0);
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: big.port }], keepAliveTimeout: 30 },
      { lb: { clientTimeout: '5s' }, frontend: { host: hostIp } },
    ),
  );
  // 3 MiB at 8 Mbit/s: about 3 s. The proxy reads the end of the answer from its server while
  // the kernel still holds some of it for the client: that end waits in the proxy, at this pace
  // longer than the keep-alive timeout, and must still go out whole.
  const size = 3 * MiB;
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        COUNTING_CLIENT,
        hostIp,
        String(lb.port),
        `/big/${size}`,
        String(size),
      ],
      { timeout: 30_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    ),
  );
  assert.equal(Number(out.trim()), size, 'body bytes received');
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
