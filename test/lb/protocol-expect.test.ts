import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { type TestContext, test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { fetch, startLb } from './fixtures.js';
import { configWith, RawClient } from './protocol-fixtures.js';

/**
 * A backend that decides on `Expect: 100-continue` itself: `/reject` gets a 401 without the body
 * being read, anything else a 100 Continue once the test calls `proceed()`, then the body's length.
 */
async function expectBackend(t: TestContext) {
  const seen = { expectations: 0, bodies: 0, plain: 0, proceed: () => undefined as void };
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    seen.plain++;
    res.end('plain\n');
  });
  server.on('checkContinue', (req, res) => {
    seen.expectations++;
    if (req.url === '/reject') {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Basic realm="t"' });
      res.end('log in first\n');
      return;
    }
    seen.proceed = () => res.writeContinue();
    let length = 0;
    req.on('data', (d: Buffer) => (length += d.length));
    req.on('end', () => {
      seen.bodies++;
      res.end(`got ${length} bytes\n`);
    });
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

const expectRequest = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: expect.test\r\nContent-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;

test('Expect: 100-continue goes to the server; the client gets 100 Continue only when the server sends it', async (t) => {
  const backend = await expectBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  client.write(expectRequest('/accept', 11));
  await waitFor('the server to get the expectation', () => backend.seen.expectations === 1);
  // A whole other exchange through the proxy: time enough for a 100 to reach the client, had it been sent.
  assert.equal((await fetch(lb.port, '/plain')).text, 'plain\n');
  assert.equal(client.length, 0, 'no 100 Continue before the server sent one');
  backend.seen.proceed();
  await client.until('\r\n\r\n');
  assert.equal(client.text(), 'HTTP/1.1 100 Continue\r\n\r\n');
  client.write('hello world');
  const got = await client.until('bytes\n');
  assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[\s\S]*got 11 bytes\n$/);
  assert.equal(backend.seen.bodies, 1);

  // The connection stays usable.
  client.write('GET /plain HTTP/1.1\r\nHost: expect.test\r\n\r\n');
  await client.until('plain\n');
});

test('Expect: 100-continue refused by the server: its final answer goes to the client, no 100, no body sent', async (t) => {
  const backend = await expectBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, {}));
  const client = await RawClient.connect(t, lb.port);
  client.write(expectRequest('/reject', 5000));
  const got = await client.until('log in first\n');
  assert.match(got, /^HTTP\/1\.1 401 Unauthorized\r\n/);
  assert.doesNotMatch(got, /100 Continue/);
  assert.match(got, /\r\nwww-authenticate: Basic realm="t"\r\n/i);
  // The body was never sent: the proxy must not keep the connection for a next request.
  assert.match(got, /\r\nConnection: close\r\n/i);
  await client.untilClosed();
  assert.equal(backend.seen.expectations, 1);
  assert.equal(backend.seen.bodies, 0);
});

test('Expect: 100-continue with a Content-Length over maxBodySize: 413 at once, no 100, no server contacted', async (t) => {
  const backend = await expectBackend(t);
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: backend.port }] }, { lb: { maxBodySize: 100 } }),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write(expectRequest('/accept', 101));
  const got = await client.untilClosed();
  assert.match(got, /^HTTP\/1\.1 413 /);
  assert.equal(backend.seen.expectations, 0);
});
