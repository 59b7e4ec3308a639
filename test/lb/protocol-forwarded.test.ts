import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { type TestContext, test } from 'node:test';
import { forwardedElement } from '../../src/lb/proxy/forwarded.js';
import { isValidRequestId, nextRequestId } from '../../src/lb/proxy/request-id.js';
import { fetch, startBackend, startLb } from './fixtures.js';
import { configWith } from './protocol-fixtures.js';

interface Echo {
  headers: Record<string, string>;
}

test('Forwarded: the client chain is kept and this hop is added (for, proto, host)', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: a.port }] }, {}));
  const r = await fetch(lb.port, '/echo', {
    headers: { host: 'shop.example', forwarded: 'for=198.51.100.7;proto=https' },
  });
  const seen = (JSON.parse(r.text) as Echo).headers;
  assert.equal(seen['forwarded'], 'for=198.51.100.7;proto=https, for=127.0.0.1;proto=http;host=shop.example');
  assert.equal(seen['x-forwarded-for'], '127.0.0.1');

  const plain = await fetch(lb.port, '/echo', { headers: { host: 'shop.example:8080' } });
  assert.equal(
    (JSON.parse(plain.text) as Echo).headers['forwarded'],
    'for=127.0.0.1;proto=http;host="shop.example:8080"',
  );
});

test('Forwarded: an IPv6 client is bracketed and quoted', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { frontend: { host: '::1' } }),
  );
  const r = await new Promise<string>((resolve, reject) => {
    const req = request({ host: '::1', port: lb.port, path: '/echo', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
  const seen = (JSON.parse(r) as Echo).headers;
  assert.equal(seen['forwarded'], `for="[::1]";proto=http;host="[::1]:${lb.port}"`);
  assert.equal(seen['x-forwarded-for'], '::1');
});

test('forwardedElement quotes and escapes what is not a token', () => {
  assert.equal(
    forwardedElement('192.0.2.60', 'http', 'example.com'),
    'for=192.0.2.60;proto=http;host=example.com',
  );
  assert.equal(forwardedElement('2001:db8::1', 'https', undefined), 'for="[2001:db8::1]";proto=https');
  assert.equal(forwardedElement(undefined, 'http', 'a"b\\c'), 'for=unknown;proto=http;host="a\\"b\\\\c"');
});

/** A backend answering with the request id it got (and one of its own in the same header). */
async function idBackend(t: TestContext) {
  const got: Array<string | string[] | undefined> = [];
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    got.push(req.headers['x-request-id']);
    res.setHeader('x-request-id', 'from-the-server');
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return { got, port: (server.address() as { port: number }).port };
}

test('request id: generated when absent or invalid, kept when valid; the server and the client get the same', async (t) => {
  const b = await idBackend(t);
  const lb = await startLb(t, await configWith({ servers: [{ name: 'web-01', port: b.port }] }, {}));

  const r1 = await fetch(lb.port, '/');
  const r2 = await fetch(lb.port, '/');
  const id1 = r1.headers['x-request-id'] as string;
  const id2 = r2.headers['x-request-id'] as string;
  assert.match(id1, /^[\w-]+-[0-9a-z]+$/);
  assert.notEqual(id1, id2);
  assert.deepEqual(b.got, [id1, id2]);

  const kept = await fetch(lb.port, '/', { headers: { 'x-request-id': 'a1b2c3-from-the-client' } });
  assert.equal(kept.headers['x-request-id'], 'a1b2c3-from-the-client');
  assert.equal(b.got[2], 'a1b2c3-from-the-client');

  for (const bad of ['two words', 'x'.repeat(201), 'a,b']) {
    const r = await fetch(lb.port, '/', { headers: { 'x-request-id': bad } });
    const id = r.headers['x-request-id'] as string;
    assert.notEqual(id, bad);
    assert.match(id, /^[\w-]+-[0-9a-z]+$/);
    assert.equal(b.got.at(-1), id, 'the server got the replacement only');
  }
});

test('requestIdHeader names the header; false and forwarded: false turn both off', async (t) => {
  const a = await startBackend(t, 'web-01');
  const named = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { requestIdHeader: 'X-Trace' } }),
  );
  const r = await fetch(named.port, '/echo', { headers: { 'x-trace': 'trace-1' } });
  assert.equal((JSON.parse(r.text) as Echo).headers['x-trace'], 'trace-1');
  assert.equal(r.headers['x-trace'], 'trace-1');
  assert.equal(r.headers['x-request-id'], undefined);

  const off = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: a.port }] },
      { lb: { requestIdHeader: false, forwarded: false } },
    ),
  );
  const plain = await fetch(off.port, '/echo', { headers: { 'x-request-id': 'passes as is' } });
  const seen = (JSON.parse(plain.text) as Echo).headers;
  assert.equal(seen['x-request-id'], 'passes as is');
  assert.equal(seen['forwarded'], undefined);
  assert.equal(plain.headers['x-request-id'], undefined);
});

test('generated request ids are valid and unique', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 1000; i++) ids.add(nextRequestId());
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.ok(isValidRequestId(id), id);
});
