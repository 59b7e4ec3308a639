/**
 * The client side of the HTTP proxy (src/lb/proxy/client-connection.ts), through real sockets:
 * response framing for HTTP/1.1 and HTTP/1.0 clients, keep-alive and its headers, pipelined
 * requests with bodies, a body the server did not wait for, requests split over many packets and
 * header sections larger than the parser hands over at once.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { startBackend, startLb } from './fixtures.js';
import { configWith, RawClient, serveForTest } from './protocol-fixtures.js';

/** What the framing backend saw: request lines with their bodies' lengths, in order. */
interface FramingBackend {
  port: number;
  seen: string[];
}

/**
 * A backend with answers of every framing: `/length` (Content-Length), `/chunked` (no length:
 * chunked to the proxy), `/204`, `/304`, `/early` (answers at once without reading the body),
 * `/body` (echoes the length of the body it read); anything else `ok`.
 */
async function startFramingBackend(t: TestContext): Promise<FramingBackend> {
  const backend: FramingBackend = { port: 0, seen: [] };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      res.end('ok');
      return;
    }
    if (url === '/early') {
      backend.seen.push(`${req.method} ${url}`);
      res.writeHead(200, { 'content-length': '5' });
      res.end('early');
      return;
    }
    let length = 0;
    req.on('data', (chunk: Buffer) => (length += chunk.length));
    req.on('end', () => {
      backend.seen.push(`${req.method} ${url} ${length}`);
      if (url === '/length') {
        res.writeHead(200, { 'content-length': '6' });
        res.end('length');
      } else if (url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('part one, ');
        setTimeout(() => res.end('part two'), 20);
      } else if (url === '/204') {
        res.writeHead(204);
        res.end();
      } else if (url === '/304') {
        res.writeHead(304, { etag: '"x"' });
        res.end();
      } else if (url === '/body') {
        res.end(`got ${length}`);
      } else {
        res.end('ok');
      }
    });
  });
  backend.port = await serveForTest(t, server);
  return backend;
}

async function framingLb(t: TestContext): Promise<{ backend: FramingBackend; port: number }> {
  const backend = await startFramingBackend(t);
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: backend.port }] },
      { lb: { keepAliveTimeout: '7s' } },
    ),
  );
  return { backend, port: lb.port };
}

/** The head (status line and fields) and body of the first response in `text`. */
function split(text: string): { head: string; body: string } {
  const end = text.indexOf('\r\n\r\n');
  return { head: text.slice(0, end + 2), body: text.slice(end + 4) };
}

test('HTTP/1.1 client: Content-Length passed on; a body without one goes chunked; keep-alive headers and Date added', async (t) => {
  const { port } = await framingLb(t);
  const client = await RawClient.connect(t, port);

  client.write('GET /length HTTP/1.1\r\nHost: f.test\r\n\r\n');
  const first = split(await client.until('\r\n\r\nlength'));
  assert.match(first.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(first.head, /\r\ncontent-length: 6\r\n/i);
  assert.doesNotMatch(first.head, /transfer-encoding/i);
  assert.match(first.head, /\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT\r\n/);
  assert.match(first.head, /\r\nConnection: keep-alive\r\nKeep-Alive: timeout=7\r\n/);
  assert.equal(first.body, 'length');

  // The same connection: the proxy kept it.
  const before = client.length;
  client.write('GET /chunked HTTP/1.1\r\nHost: f.test\r\n\r\n');
  await client.until('0\r\n\r\n');
  const second = split(client.bytes().subarray(before).toString('latin1'));
  assert.match(second.head, /\r\nTransfer-Encoding: chunked\r\n/);
  assert.doesNotMatch(second.head, /content-length/i);
  const decoded = second.body.replace(/[0-9a-f]+\r\n([^]*?)\r\n/g, '$1');
  assert.equal(decoded, 'part one, part two');
  assert.equal(client.closed, false);
});

test('HTTP/1.0 client: a body without length ends with the connection; keep-alive only when asked for', async (t) => {
  const { port } = await framingLb(t);

  const plain = await RawClient.connect(t, port);
  plain.write('GET /chunked HTTP/1.0\r\nHost: f.test\r\n\r\n');
  const closed = split(await plain.untilClosed());
  assert.match(closed.head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(closed.head, /transfer-encoding/i);
  assert.match(closed.head, /\r\nConnection: close\r\n/);
  assert.equal(closed.body, 'part one, part two');

  const keep = await RawClient.connect(t, port);
  keep.write('GET /length HTTP/1.0\r\nHost: f.test\r\nConnection: keep-alive\r\n\r\n');
  const kept = split(await keep.until('\r\n\r\nlength'));
  assert.match(kept.head, /\r\nConnection: keep-alive\r\n/);
  keep.write('GET /length HTTP/1.0\r\nHost: f.test\r\n\r\n');
  const text = await keep.untilClosed();
  assert.equal(text.split('HTTP/1.1 200 OK').length - 1, 2, 'two answers on one connection, then closed');
});

test('no body for HEAD, 204 and 304, and the connection goes on', async (t) => {
  const { port } = await framingLb(t);
  const client = await RawClient.connect(t, port);
  client.write('HEAD /length HTTP/1.1\r\nHost: f.test\r\n\r\n');
  const head = await client.until('\r\n\r\n');
  assert.match(head, /\r\ncontent-length: 6\r\n/i);
  client.write('GET /204 HTTP/1.1\r\nHost: f.test\r\n\r\nGET /304 HTTP/1.1\r\nHost: f.test\r\n\r\n');
  await client.until(/HTTP\/1\.1 304 [^]*\r\n\r\n$/);
  client.write('GET /length HTTP/1.1\r\nHost: f.test\r\nConnection: close\r\n\r\n');
  const text = await client.untilClosed();
  // Every answer head is followed directly by the next one: no body, no chunk framing.
  const parts = text.split('\r\n\r\n');
  assert.equal(parts.length, 5, JSON.stringify(text));
  assert.match(parts[1]!, /^HTTP\/1\.1 204 /);
  assert.match(parts[2]!, /^HTTP\/1\.1 304 /);
  assert.doesNotMatch(parts[1]! + parts[2]!, /transfer-encoding|content-length/i);
  assert.equal(parts[4], 'length');
});

test('pipelined requests with bodies: each reaches the server whole and in order, answers come back in order', async (t) => {
  const { backend, port } = await framingLb(t);
  const client = await RawClient.connect(t, port);
  const post = (body: string) =>
    `POST /body HTTP/1.1\r\nHost: f.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const chunked =
    'POST /body HTTP/1.1\r\nHost: f.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n';
  client.write(
    post('x'.repeat(10)) +
      chunked +
      post('y'.repeat(20_000)) +
      'GET /length HTTP/1.1\r\nHost: f.test\r\n\r\n',
  );
  const text = await client.until('length');
  const bodies = [...text.matchAll(/\r\n\r\n([0-9a-f]+\r\n)?(got \d+|length)/g)].map((m) => m[2]);
  assert.deepEqual(bodies, ['got 10', 'got 5', 'got 20000', 'length']);
  assert.deepEqual(backend.seen, ['POST /body 10', 'POST /body 5', 'POST /body 20000', 'GET /length 0']);
});

test('a client that pipelines thousands of requests and reads nothing for a while gets every answer, whole and in order', async (t) => {
  // Small answers (each head and body go out in one write); far more of them than the kernel
  // buffers hold, so that the proxy's writes to the client back up and it stops reading requests.
  const N = 20_000;
  const body = (i: number) => `answer ${i} `.padEnd(1000, '.');
  let answered = 0;
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    answered++;
    res.end(body(Number(req.url!.slice(3))));
  });
  const backendPort = await serveForTest(t, server);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backendPort }] }, {}));
  const client = connect({ host: '127.0.0.1', port: lb.port });
  t.after(() => client.destroy());
  client.pause();
  let requests = '';
  for (let i = 0; i < N; i++) requests += `GET /n/${i} HTTP/1.1\r\nHost: p.test\r\n\r\n`;
  client.write(requests);
  // Held back: the server answered some, not all, and no more for a while.
  let last = -1;
  let still = 0;
  await waitFor(
    'the proxy to stop taking requests',
    () => {
      still = answered === last && answered > 0 ? still + 1 : 0;
      last = answered;
      return still >= 6;
    },
    { timeout: 20_000, interval: 50 },
  );
  assert.ok(answered < N, `the proxy took all ${N} requests from a client that reads nothing`);
  const chunks: Buffer[] = [];
  let length = 0;
  client.on('data', (c: Buffer) => {
    chunks.push(c);
    length += c.length;
  });
  client.resume();
  const lastBody = body(N - 1);
  await waitFor(
    'every answer',
    () => length >= N * 1000 && Buffer.concat(chunks.slice(-2)).toString('latin1').endsWith(lastBody),
    { timeout: 30_000 },
  );
  const text = () => Buffer.concat(chunks).toString('latin1');
  const bodies = text()
    .split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/)
    .slice(1);
  assert.equal(bodies.length, N);
  for (let i = 0; i < N; i++)
    if (bodies[i] !== body(i)) assert.fail(`answer ${i} is ${JSON.stringify(bodies[i]?.slice(0, 40))}`);
});

test('a server that answers before the request body: the rest of the body is dropped, the connection goes on', async (t) => {
  const { backend, port } = await framingLb(t);
  const client = await RawClient.connect(t, port);
  client.write('POST /early HTTP/1.1\r\nHost: f.test\r\nContent-Length: 300000\r\n\r\n');
  client.write(Buffer.alloc(1000, 'a'));
  await client.until('\r\n\r\nearly');
  // The rest of that body, then the next request, on the same connection.
  client.write(Buffer.alloc(299_000, 'b'));
  client.write('GET /length HTTP/1.1\r\nHost: f.test\r\n\r\n');
  await client.until('\r\n\r\nlength');
  assert.equal(client.closed, false);
  assert.deepEqual(backend.seen, ['POST /early', 'GET /length 0']);
});

test('a request sent one byte at a time, and a header section of many fields and a long target', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: a.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  const request = 'GET /echo HTTP/1.1\r\nHost: slow.test\r\nX-One: 1\r\n\r\n';
  client.socket.setNoDelay(true);
  for (const c of request) {
    client.write(c);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const slow = await client.until(/\}$/);
  const echoed = JSON.parse(split(slow).body) as { url: string; headers: Record<string, string> };
  assert.equal(echoed.url, '/echo');
  assert.equal(echoed.headers['x-one'], '1');

  // 60 fields (the parser hands them over, with the target, 32 at a time) and a 4 KiB value, in
  // two packets.
  const long = 'z'.repeat(4096);
  const fields = Array.from({ length: 60 }, (_, i) => `X-Field-${i}: value-${i}\r\n`).join('');
  const big = `GET /echo HTTP/1.1\r\nHost: many.test\r\nX-Long: ${long}\r\n${fields}Connection: close\r\n\r\n`;
  const other = await RawClient.connect(t, lb.port);
  other.write(big.slice(0, 2000));
  await new Promise((resolve) => setTimeout(resolve, 20));
  other.write(big.slice(2000));
  const many = JSON.parse(split(await other.untilClosed()).body) as {
    url: string;
    headers: Record<string, string>;
  };
  assert.equal(many.url, '/echo');
  assert.equal(many.headers['x-long'], long);
  for (let i = 0; i < 60; i++) assert.equal(many.headers[`x-field-${i}`], `value-${i}`);
});
