/**
 * TCP mode (layer 4) through real sockets: raw node:net backends behind a `mode: tcp` frontend.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { directRelayAvailable } from '../../src/lb/proxy/direct-relay.js';
import { waitFor } from '../helpers/index.js';
import { type RawBackend, rawExchange, startRawBackend, startTcpLb } from './tcp-fixtures.js';

/** Per-test bound: a hang fails the test instead of blocking the suite. */
const T = 20_000;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Answers the first bytes of each connection with the backend's name, then ends. */
function namer(socket: Socket, backend: RawBackend): void {
  socket.once('data', () => socket.end(`${backend.name}\n`));
}

/** Opens a connection and waits until it is established end to end (the backend echoed a byte). */
async function openEcho(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('data', () => resolve());
    socket.once('close', () => reject(new Error('closed before the echo')));
    socket.write('.');
  });
  return socket;
}

test('the bytes go directly between the handles on this Node.js, unless TANDEM_DIRECT_RELAY=0', () => {
  // The worker processes run the same Node.js with the same environment.
  assert.equal(directRelayAvailable, process.env['TANDEM_DIRECT_RELAY'] !== '0');
});

test(
  'bytes round-trip intact: 20 MiB up and echoed back down, with a half-close at the end',
  { timeout: T },
  async (t) => {
    const echo = await startRawBackend(t, 'echo-a');
    const lb = await startTcpLb(t, { servers: [{ name: 'echo-a', port: echo.port }] });
    const payload = randomBytes(20 * 1024 * 1024);
    const reply = await rawExchange(lb.port, payload, { end: true, timeout: 20_000 });
    assert.equal(reply.reset, false);
    assert.equal(reply.data.length, payload.length);
    assert.equal(sha256(reply.data), sha256(payload));
    assert.equal(sha256(echo.all()), sha256(payload));
    await waitFor('the session to be accounted', async () => (await lb.server('echo-a')).inFlight === 0);
    const s = await lb.server('echo-a');
    assert.equal(s.totalConnections, 1);
    assert.deepEqual(s.bytes, { in: payload.length, out: payload.length });
  },
);

/**
 * Writes `payload` to `socket` in 64 KiB chunks as fast as the socket takes them, then ends it;
 * `flushed()` counts the bytes handed to the kernel so far.
 */
function pumpAll(socket: Socket, payload: Buffer): { flushed: () => number } {
  let flushed = 0;
  let offset = 0;
  const pump = (): void => {
    while (offset < payload.length) {
      const chunk = payload.subarray(offset, offset + 65536);
      offset += chunk.length;
      const more = socket.write(chunk, (err) => {
        if (!err) flushed += chunk.length;
      });
      if (!more) {
        socket.once('drain', pump);
        return;
      }
    }
    socket.end();
  };
  pump();
  return { flushed: () => flushed };
}

/** Waits until `flushed()` stops growing (the writer is held back); returns where it stopped. */
async function heldBack(flushed: () => number): Promise<number> {
  let last = -1;
  let still = 0;
  await waitFor(
    'the writer to be held back',
    () => {
      const now = flushed();
      still = now === last && now > 0 ? still + 1 : 0;
      last = now;
      return still >= 6;
    },
    { timeout: 10_000, interval: 50 },
  );
  return last;
}

test(
  'backpressure: a client that does not read holds the server back; nothing is lost',
  { timeout: T },
  async (t) => {
    const size = 48 * 1024 * 1024;
    const payload = randomBytes(size);
    let source: { flushed: () => number } | undefined;
    const backend = await startRawBackend(t, 'source', (socket) => {
      socket.once('data', () => (source = pumpAll(socket, payload)));
    });
    const lb = await startTcpLb(t, { servers: [{ name: 'source', port: backend.port }] });
    const client = connect({ host: '127.0.0.1', port: lb.port });
    t.after(() => client.destroy());
    client.pause();
    client.write('go');
    await waitFor('the server to start sending', () => source !== undefined);
    const last = await heldBack(source!.flushed);
    // Kernel buffers on loopback hold a few MiB; a proxy that buffered in memory would take it all.
    assert.ok(last < size / 2, `the proxy took ${last} of ${size} bytes from the server`);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    const ended = once(client, 'end');
    client.resume();
    await ended;
    const got = Buffer.concat(chunks);
    assert.equal(got.length, size);
    assert.equal(sha256(got), sha256(payload));
  },
);

test(
  'backpressure the other way: a server that does not read holds the client back; nothing is lost',
  { timeout: T },
  async (t) => {
    const size = 48 * 1024 * 1024;
    const payload = randomBytes(size);
    // Every connection the server gets (health checks too) is left unread until told.
    const backend = await startRawBackend(t, 'sink', (socket) => socket.pause());
    const lb = await startTcpLb(t, { servers: [{ name: 'sink', port: backend.port }] });
    const client = connect({ host: '127.0.0.1', port: lb.port, allowHalfOpen: true });
    client.on('error', () => client.destroy());
    t.after(() => client.destroy());
    const writer = pumpAll(client, payload);
    const last = await heldBack(writer.flushed);
    assert.ok(last < size / 2, `the proxy took ${last} of ${size} bytes from the client`);
    for (const s of backend.sockets) s.resume();
    await waitFor('every byte at the server', () => backend.all().length >= size, { timeout: 15_000 });
    const got = backend.all();
    assert.equal(got.length, size);
    assert.equal(sha256(got), sha256(payload));
  },
);

test(
  'backpressure on small chunks: a held write keeps its bytes while other sessions relay',
  { timeout: T },
  async (t) => {
    // One process, so that both sessions go through the same relay memory; the server trickles
    // small records (one per turn of the event loop), so that the proxy reads and writes them one
    // by one, until the client, which does not read, is full.
    // Records until the server is held back, then a few more.
    const record = (i: number) => `record ${String(i).padStart(8, '0')} ${'.'.repeat(40)}\n`;
    let sent = 0;
    let heldAt = 0;
    const backend = await startRawBackend(t, 'mixed', (socket) => {
      socket.once('data', (first: Buffer) => {
        if (first.toString() !== 'S') {
          socket.write(first);
          socket.pipe(socket);
          return;
        }
        const next = (): void => {
          if (heldAt > 0 && sent === heldAt + 1000) {
            socket.end();
            return;
          }
          if (!socket.write(record(sent++))) {
            heldAt ||= sent;
            socket.once('drain', next);
          } else setImmediate(next);
        };
        next();
      });
    });
    const lb = await startTcpLb(t, { servers: [{ name: 'mixed', port: backend.port }], workers: 1 });
    const slow = connect({ host: '127.0.0.1', port: lb.port });
    t.after(() => slow.destroy());
    slow.pause();
    slow.write('S');
    await waitFor('the server to be held back', () => heldAt > 0, { timeout: 15_000 });
    // Another session's small chunks pass through the proxy while the slow one's write is held.
    const echo = await openEcho(lb.port);
    t.after(() => echo.destroy());
    let echoed = '';
    echo.on('data', (c: Buffer) => (echoed += c.toString()));
    let expected = '';
    for (let i = 0; i < 200; i++) {
      const message = `echo ${i} ${randomBytes(20).toString('hex')}`;
      expected += message;
      echo.write(message);
      await waitFor('the echo', () => echoed.length === expected.length, { interval: 1, timeout: 2000 });
    }
    assert.equal(echoed, expected);
    const chunks: Buffer[] = [];
    slow.on('data', (c: Buffer) => chunks.push(c));
    const ended = once(slow, 'end');
    slow.resume();
    await ended;
    const got = Buffer.concat(chunks).toString();
    const want = Array.from({ length: sent }, (_, i) => record(i)).join('');
    assert.equal(got.length, want.length);
    assert.ok(got === want, 'the records arrived changed');
  },
);

test(
  'half-close: the client ends its side and still gets the answer; the server ends first and still gets data',
  { timeout: T },
  async (t) => {
    // Answers only after the client's FIN: how many bytes it got.
    const counter = await startRawBackend(t, 'counter', (socket) => {
      let n = 0;
      socket.on('data', (c: Buffer) => (n += c.length));
      socket.on('end', () => socket.end(`got ${n}\n`));
    });
    // Sends a greeting and its FIN at once, then keeps reading.
    let lateBytes = '';
    const greeter = await startRawBackend(t, 'greeter', (socket) => {
      socket.end('hello\n');
      socket.on('data', (c: Buffer) => (lateBytes += c.toString()));
    });
    const lbA = await startTcpLb(t, { servers: [{ name: 'counter', port: counter.port }] });
    const reply = await rawExchange(lbA.port, Buffer.alloc(100_000, 7), { end: true });
    assert.equal(reply.data.toString(), 'got 100000\n');

    const lbB = await startTcpLb(t, { servers: [{ name: 'greeter', port: greeter.port }] });
    const client = connect({ host: '127.0.0.1', port: lbB.port, allowHalfOpen: true });
    t.after(() => client.destroy());
    const closed = once(client, 'close');
    let greeting = '';
    client.on('data', (c: Buffer) => (greeting += c.toString()));
    await once(client, 'end');
    assert.equal(greeting, 'hello\n');
    // Our side is still open: what we send now still reaches the server.
    client.end('after your FIN\n');
    await waitFor('the late bytes at the server', () => lateBytes === 'after your FIN\n');
    await closed;
  },
);

test(
  'a server that resets its connection mid-answer: the client gets a reset, not a clean end',
  { timeout: T },
  async (t) => {
    const backend = await startRawBackend(t, 'crasher', (socket) => {
      socket.once('data', () => {
        socket.write('partial answer');
        setTimeout(() => socket.resetAndDestroy(), 50);
      });
    });
    const lb = await startTcpLb(t, { servers: [{ name: 'crasher', port: backend.port }] });
    const reply = await rawExchange(lb.port, 'go');
    assert.equal(reply.data.toString(), 'partial answer');
    assert.equal(reply.reset, true, 'the client saw a clean end: it cannot tell the answer was cut short');
  },
);

test(
  'a client that resets its connection: the server gets a reset, not a clean end',
  { timeout: T },
  async (t) => {
    const seen: string[] = [];
    // Only the connection that carries data: the health checks connect and close too.
    const backend = await startRawBackend(t, 'listener', (socket) => {
      socket.once('data', () => {
        socket.on('error', (err: NodeJS.ErrnoException) => seen.push(err.code ?? err.message));
        socket.on('end', () => seen.push('end'));
      });
    });
    const lb = await startTcpLb(t, { servers: [{ name: 'listener', port: backend.port }] });
    const client = connect({ host: '127.0.0.1', port: lb.port });
    client.on('error', () => {});
    client.write('half a request');
    await waitFor('the bytes at the server', () => backend.all().toString() === 'half a request');
    client.resetAndDestroy();
    await waitFor('the server to hear of it', () => seen.length > 0);
    assert.deepEqual(seen, ['ECONNRESET']);
  },
);

test(
  'connections are balanced by the backend algorithm (round robin, weighted)',
  { timeout: T },
  async (t) => {
    const a = await startRawBackend(t, 'tcp-a', namer);
    const b = await startRawBackend(t, 'tcp-b', namer);
    const c = await startRawBackend(t, 'tcp-c', namer);
    const lb = await startTcpLb(t, {
      servers: [
        { name: 'tcp-a', port: a.port, weight: 2 },
        { name: 'tcp-b', port: b.port },
        { name: 'tcp-c', port: c.port },
      ],
    });
    const order: string[] = [];
    for (let i = 0; i < 8; i++) order.push((await rawExchange(lb.port, 'x')).data.toString().trim());
    // Smooth weighted round robin with weights 2:1:1.
    assert.deepEqual(order, ['tcp-a', 'tcp-b', 'tcp-c', 'tcp-a', 'tcp-a', 'tcp-b', 'tcp-c', 'tcp-a']);
    assert.equal((await lb.server('tcp-a')).totalConnections, 4);
    assert.equal((await lb.server('tcp-b')).totalConnections, 2);
  },
);

test('a server its health check marks down gets no connections', { timeout: T }, async (t) => {
  const a = await startRawBackend(t, 'tcp-a', namer);
  const b = await startRawBackend(t, 'tcp-b', namer);
  const lb = await startTcpLb(t, {
    servers: [
      { name: 'tcp-a', port: a.port },
      { name: 'tcp-b', port: b.port },
    ],
  });
  await b.stopListening();
  await waitFor('tcp-b down', async () => (await lb.server('tcp-b')).state === 'down');
  const before = await lb.server('tcp-b');
  for (let i = 0; i < 6; i++) assert.equal((await rawExchange(lb.port, 'x')).data.toString(), 'tcp-a\n');
  const after = await lb.server('tcp-b');
  assert.equal(after.totalConnections, before.totalConnections, 'no connection was even attempted');
  assert.equal((await lb.server('tcp-a')).totalConnections, 6);
});

test(
  'a connect failure goes to another server; with none left the client is closed',
  { timeout: T },
  async (t) => {
    const a = await startRawBackend(t, 'tcp-a', namer);
    const b = await startRawBackend(t, 'tcp-b', namer);
    // Checks far apart: the servers stay "up" after they stop listening.
    const lb = await startTcpLb(t, {
      servers: [
        { name: 'tcp-a', port: a.port },
        { name: 'tcp-b', port: b.port },
      ],
      healthCheck: { interval: 60_000 },
    });
    await a.stopListening();
    for (let i = 0; i < 4; i++) assert.equal((await rawExchange(lb.port, 'x')).data.toString(), 'tcp-b\n');
    const a1 = await lb.server('tcp-a');
    assert.ok(a1.failures >= 1);
    assert.equal(a1.redispatches, a1.failures, 'every failed connect went to the other server');
    assert.ok(
      lb.log.lines.some((l) => /server tcp-a failed: connect ECONNREFUSED; retrying on tcp-b/.test(l)),
      lb.log.lines.join('\n'),
    );
    await b.stopListening();
    const reply = await rawExchange(lb.port, 'x');
    assert.equal(reply.data.length, 0);
    assert.equal(b.withData, 4, 'the dead servers got nothing');
  },
);

test(
  'maxconn: a full server gets no new connection; a free slot takes the next one',
  { timeout: T },
  async (t) => {
    const a = await startRawBackend(t, 'tcp-a');
    const b = await startRawBackend(t, 'tcp-b');
    const lb = await startTcpLb(t, {
      servers: [
        { name: 'tcp-a', port: a.port, maxconn: 1 },
        { name: 'tcp-b', port: b.port, maxconn: 1 },
      ],
    });
    const first = await openEcho(lb.port);
    const second = await openEcho(lb.port);
    t.after(() => {
      first.destroy();
      second.destroy();
    });
    assert.equal((await lb.server('tcp-a')).inFlight, 1);
    assert.equal((await lb.server('tcp-b')).inFlight, 1);
    // Both full: the third client is closed without reaching any server.
    const third = await rawExchange(lb.port, 'x');
    assert.equal(third.data.length, 0);
    assert.equal(
      (await lb.server('tcp-a')).totalConnections + (await lb.server('tcp-b')).totalConnections,
      2,
    );
    first.destroy();
    await waitFor(
      'a free slot',
      async () => (await lb.server('tcp-a')).inFlight + (await lb.server('tcp-b')).inFlight === 1,
    );
    const fourth = await rawExchange(lb.port, 'y', { end: true });
    assert.equal(fourth.data.toString(), 'y');
  },
);

test('tunnelTimeout closes a connection idle both ways; traffic keeps it open', { timeout: T }, async (t) => {
  const echo = await startRawBackend(t, 'echo-a');
  const lb = await startTcpLb(t, { servers: [{ name: 'echo-a', port: echo.port }], tunnelTimeout: 400 });
  const busy = await openEcho(lb.port);
  t.after(() => busy.destroy());
  let busyClosed = false;
  busy.on('close', () => (busyClosed = true));
  let echoed = 0;
  busy.on('data', () => echoed++);
  const idle = rawExchange(lb.port, 'x', { timeout: 5000 });
  // A byte every 100ms for 1.2 s, three times the timeout: the busy connection stays open.
  for (let i = 0; i < 12; i++) {
    busy.write('.');
    await waitFor('the echo', () => echoed >= i + 1, { interval: 10, timeout: 2000 });
    await new Promise((r) => setTimeout(r, 100));
  }
  const reply = await idle;
  assert.equal(reply.data.toString(), 'x');
  assert.ok(reply.ms >= 350 && reply.ms < 1100, `the idle one closed after ${reply.ms}ms`);
  assert.equal(busyClosed, false);
  await waitFor('the busy connection to time out once quiet', () => busyClosed, { timeout: 5000 });
});

test(
  'close(): stops accepting, lets an open connection finish, then resets what is left',
  { timeout: T },
  async (t) => {
    const echo = await startRawBackend(t, 'echo-a');
    const lb = await startTcpLb(t, { servers: [{ name: 'echo-a', port: echo.port }], drainTimeout: 800 });
    const finishing = await openEcho(lb.port);
    const lingering = await openEcho(lb.port);
    t.after(() => {
      finishing.destroy();
      lingering.destroy();
    });
    let lingeringClosed = false;
    lingering.on('close', () => (lingeringClosed = true));
    const closed = lb.handle.close();
    // No new connections, once the workers have heard of the close (they hold the listening socket
    // too, so it is refused within one message to them rather than at the call).
    await waitFor('new connections refused', () => refused(lb.port), { timeout: 2000 });
    // The open one still works.
    const got: Buffer[] = [];
    finishing.on('data', (c: Buffer) => got.push(c));
    const finished = once(finishing, 'close');
    finishing.end('still here');
    await finished;
    assert.equal(Buffer.concat(got).toString(), 'still here');
    assert.equal(lingeringClosed, false);
    await closed;
    await waitFor('the lingering connection to be closed', () => lingeringClosed);
    await waitFor('its server side to be closed too', () => echo.sockets.size === 0);
  },
);

/** True when a connection to 127.0.0.1:port is refused; one that is accepted is closed at once. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}
