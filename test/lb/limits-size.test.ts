import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type TestContext, test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { fetch, startBackend, startLb } from './fixtures.js';
import { configWith, RawClient } from './protocol-fixtures.js';

test('maxHeaderSize: a header section larger than it gets 431 and never reaches the server', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { maxHeaderSize: 4096 } }),
  );
  const big = await RawClient.connect(t, lb.port);
  big.write(`GET / HTTP/1.1\r\nHost: big.test\r\nX-Big: ${'b'.repeat(5000)}\r\n\r\n`);
  assert.match(await big.untilClosed(), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.equal(a.requests, 0);

  const ok = await fetch(lb.port, '/', { headers: { 'x-big': 'b'.repeat(3000) } });
  assert.equal(ok.status, 200);
  assert.equal(a.requests, 1);
});

test('maxHeaders: more header fields than it gets 431 and the connection closed', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { maxHeaders: 20 } }),
  );
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-F${i}: ${i}\r\n`).join('');
  const many = await RawClient.connect(t, lb.port);
  // Host + 20 = 21 fields.
  many.write(`GET / HTTP/1.1\r\nHost: many.test\r\n${fields(20)}\r\n`);
  const got = await many.untilClosed();
  assert.match(got, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.match(got, /\r\nConnection: close\r\n/i);
  assert.match(got, /431 Request Header Fields Too Large: more than 20 header fields\n$/);
  assert.equal(a.requests, 0);

  const enough = await RawClient.connect(t, lb.port);
  enough.write(`GET / HTTP/1.1\r\nHost: ok.test\r\n${fields(18)}Connection: close\r\n\r\n`);
  assert.match(await enough.untilClosed(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*web-01$/);
  assert.equal(a.requests, 1);
});

test('maxBodySize: a Content-Length over it gets 413 before any server is contacted', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { maxBodySize: 1000 } }),
  );
  const client = await RawClient.connect(t, lb.port);
  // Only the headers: the answer must not wait for the body.
  client.write('POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: 1001\r\n\r\n');
  const got = await client.untilClosed();
  assert.match(got, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  assert.match(got, /413 Content Too Large: the request body is larger than 1000 bytes\n$/);
  assert.equal(a.requests, 0);

  const exact = await fetch(lb.port, '/upload', { method: 'POST', body: Buffer.alloc(1000, 1) });
  assert.equal(exact.status, 200);
  assert.equal(JSON.parse(exact.text).length, 1000);
});

/** A backend recording how each upload ended; `/early` answers before reading the body. */
async function uploadBackend(t: TestContext) {
  const seen = { started: 0, completed: 0, aborted: 0, bytes: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    seen.started++;
    if (req.url === '/early') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('early answer, still streaming\n');
    }
    req.on('data', (d: Buffer) => (seen.bytes += d.length));
    req.on('end', () => {
      seen.completed++;
      res.end('done\n');
    });
    req.on('aborted', () => seen.aborted++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { seen, port: (server.address() as { port: number }).port };
}

const chunk = (n: number) => `${n.toString(16)}\r\n${'c'.repeat(n)}\r\n`;

test('maxBodySize: a chunked body growing past it is cut: 413, and the server never gets a complete request', async (t) => {
  const up = await uploadBackend(t);
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: up.port }] }, { lb: { maxBodySize: 1000 } }),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write('POST /upload HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  client.write(chunk(600));
  await waitFor('600 bytes at the server', () => up.seen.bytes === 600);
  client.write(chunk(600));
  const got = await client.untilClosed();
  assert.match(got, /^HTTP\/1\.1 413 Payload Too Large\r\n/);
  await waitFor('the server saw the upload aborted', () => up.seen.aborted === 1);
  assert.equal(up.seen.completed, 0);
  assert.equal(up.seen.bytes, 600, 'not a byte past the limit reached the server');
  assert.equal((await lb.server('web-01')).failures, 0, 'the cut is not a failure of the server');
  await waitFor('in-flight back to 0', async () => (await lb.server('web-01')).inFlight === 0);

  // Within the limit, chunked passes.
  const ok = await RawClient.connect(t, lb.port);
  ok.write(
    'POST /upload HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
  );
  ok.write(`${chunk(500)}${chunk(500)}0\r\n\r\n`);
  assert.match(await ok.untilClosed(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*done\n/);
});

test('maxBodySize: past it after the response started, the client connection is closed', async (t) => {
  const up = await uploadBackend(t);
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: up.port }] }, { lb: { maxBodySize: 1000 } }),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write('POST /early HTTP/1.1\r\nHost: up.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  client.write(chunk(600));
  await client.until('early answer');
  client.write(chunk(600));
  const got = await client.untilClosed();
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(got, /413/);
  assert.doesNotMatch(got, /done/);
  await waitFor('the server saw the upload aborted', () => up.seen.aborted === 1);
  assert.equal(up.seen.completed, 0);
});
