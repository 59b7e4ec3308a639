import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { startLb } from './fixtures.js';
import { configWith, RawClient } from './protocol-fixtures.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const accept = (key: string) =>
  createHash('sha1')
    .update(key + GUID)
    .digest('base64');

/**
 * A WebSocket-ish backend: an upgrade to `/chat` gets a real 101 handshake answer and an echo of
 * every byte after it; `/refuse` gets a 403 with a body. Plain requests get 426.
 */
async function wsBackend(t: TestContext) {
  const seen: { headers: IncomingHttpHeaders[]; sockets: Set<Socket> } = { headers: [], sockets: new Set() };
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required\n');
  });
  server.on('upgrade', (req, socket: Socket, head: Buffer) => {
    seen.headers.push(req.headers);
    socket.on('error', () => undefined);
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nno chat\n');
      return;
    }
    seen.sockets.add(socket);
    socket.on('close', () => seen.sockets.delete(socket));
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept(String(req.headers['sec-websocket-key']))}\r\n\r\n`,
    );
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of seen.sockets) s.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { seen, port: (server.address() as { port: number }).port };
}

function handshake(path: string, key: string): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nX-Request-Id: ws-1\r\n\r\n`
  );
}

test('WebSocket: the 101 handshake goes through and bytes are tunnelled both ways', async (t) => {
  const backend = await wsBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  const key = randomBytes(16).toString('base64');
  client.write(handshake('/chat', key));
  const head = await client.until('\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head, /\r\nUpgrade: websocket\r\n/i);
  assert.match(head, /\r\nConnection: Upgrade\r\n/i);
  assert.ok(head.includes(`\r\nSec-WebSocket-Accept: ${accept(key)}\r\n`), head);
  assert.match(head, /\r\nX-Request-Id: ws-1\r\n/);

  const seen = backend.seen.headers[0]!;
  assert.equal(seen['upgrade'], 'websocket');
  assert.equal(seen['connection'], 'Upgrade');
  assert.equal(seen['sec-websocket-key'], key);
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen['host'], 'ws.test');
  assert.equal((await lb.server('web-01')).inFlight, 1, 'an open tunnel holds a slot');

  const headLength = head.length;
  client.write('ping 1');
  await waitFor('echo', () => client.text().slice(headLength) === 'ping 1');
  // 4 MiB each way, with backpressure through the tunnel.
  const big = randomBytes(4 * 1024 * 1024);
  client.write(big);
  await waitFor('the big echo', () => client.length === headLength + 6 + big.length, { timeout: 20_000 });
  assert.ok(
    client
      .bytes()
      .subarray(headLength + 6)
      .equals(big),
    'echo intact',
  );

  client.socket.end();
  await client.untilClosed();
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
  await waitFor('backend side closed', () => backend.seen.sockets.size === 0);
});

test('an upgrade the server refuses: its answer is relayed and the connection closed', async (t) => {
  const backend = await wsBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  client.write(handshake('/refuse', randomBytes(16).toString('base64')));
  const got = await client.untilClosed();
  assert.match(got, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(got, /\r\nConnection: close\r\n/i);
  assert.match(got, /\r\n\r\nno chat\n$/);
  assert.equal((await lb.server('web-01')).responses['4xx'], 1);
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
});

test('tunnelTimeout: a tunnel stays open while bytes flow, and closes once idle that long', async (t) => {
  const backend = await wsBackend(t);
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: backend.port }] },
      { lb: { tunnelTimeout: '500ms' } },
    ),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write(handshake('/chat', randomBytes(16).toString('base64')));
  await client.until('\r\n\r\n');
  // Traffic every 150ms for ~1.2 s: more than twice the timeout, never idle that long.
  let lastEcho = 0;
  for (let i = 0; i < 8; i++) {
    const before = client.length;
    client.write('.');
    await waitFor('echo', () => client.length === before + 1);
    lastEcho = Date.now();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 150);
      t.after(() => clearTimeout(timer));
    });
    assert.equal(client.closed, false, `closed while active (round ${i})`);
  }
  await client.untilClosed(5000);
  // From the last byte seen (a late wake-up of this process only makes it look longer).
  const idle = Date.now() - lastEcho;
  assert.ok(idle >= 450 && idle < 3000, `closed after ${idle}ms idle`);
  await waitFor('slot released', async () => (await lb.server('web-01')).inFlight === 0);
});

test('close() ends open tunnels after the drain time instead of waiting for them', async (t) => {
  const backend = await wsBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  client.write(handshake('/chat', randomBytes(16).toString('base64')));
  assert.match(await client.until('\r\n\r\n'), /^HTTP\/1\.1 101 /);
  const start = Date.now();
  // startLb's drain timeout is 2 s; tunnelTimeout is the default hour.
  await Promise.race([
    lb.handle.close(),
    new Promise<never>((_, reject) => {
      const timer = setTimeout(() => reject(new Error('close() still waiting after 6 s')), 6000);
      t.after(() => clearTimeout(timer));
    }),
  ]);
  assert.ok(Date.now() - start < 4000, `close() took ${Date.now() - start}ms`);
  await client.untilClosed();
});
