import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type TestContext, test } from 'node:test';
import { fetch, startBackend, startLb } from './fixtures.js';
import { configWith, RawClient } from './protocol-fixtures.js';

/**
 * Sends a request's headers one byte every 50 ms (they would take 11 s; bounded by their length)
 * until the proxy closes the connection: what came back, how long after the first byte, and
 * whether every byte went out.
 */
async function trickleHeaders(
  t: TestContext,
  client: RawClient,
): Promise<{ got: string; elapsed: number; allSent: boolean }> {
  const start = Date.now();
  const text = 'GET / HTTP/1.1\r\nHost: slow.test\r\nX-Padding: ' + 'a'.repeat(200);
  let i = 0;
  const drip = setInterval(() => {
    if (client.closed || i >= text.length) clearInterval(drip);
    else client.write(text[i++]!);
  }, 50);
  t.after(() => clearInterval(drip));
  const got = await client.untilClosed(8000);
  return { got, elapsed: Date.now() - start, allSent: i >= text.length };
}

test('headersTimeout: a client trickling its headers (Slowloris) gets 408 and is cut at the deadline', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { headersTimeout: '1s' } }),
  );
  const client = await RawClient.connect(t, lb.port);
  const { got, elapsed, allSent } = await trickleHeaders(t, client);
  assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(elapsed >= 900 && elapsed < 3500, `cut after ${elapsed}ms`);
  assert.ok(!allSent, 'cut before the headers were complete');
  assert.equal(a.requests, 0);
});

test('headersTimeout: a later request on a keep-alive connection, trickled, gets 408 at its own deadline', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: a.port }], keepAliveTimeout: 60_000 },
      { lb: { headersTimeout: '1s' } },
    ),
  );
  const client = await RawClient.connect(t, lb.port);
  // Two requests answered: from the second on, the connection keeps its parser between requests.
  client.write('GET / HTTP/1.1\r\nHost: first.test\r\n\r\nGET / HTTP/1.1\r\nHost: second.test\r\n\r\n');
  await client.until(/web-01[\s\S]*web-01/);
  // Right after the second answer the third request trickles in: the parser is most often still
  // the connection's (the sweep, which would put it back, comes every 100 ms here).
  const { got, elapsed, allSent } = await trickleHeaders(t, client);
  assert.match(got, /\r\n\r\nweb-01HTTP\/1\.1 408 Request Timeout\r\n/);
  assert.ok(elapsed >= 900 && elapsed < 3500, `cut after ${elapsed}ms`);
  assert.ok(!allSent, 'cut before the headers were complete');
  assert.equal(a.requests, 2);
});

test('headersTimeout: a connection that sends nothing is closed too; a slow but timely client is served', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }] }, { lb: { headersTimeout: '1s' } }),
  );
  const silent = await RawClient.connect(t, lb.port);
  const start = Date.now();

  const timely = await RawClient.connect(t, lb.port);
  timely.write('GET / HTTP/1.1\r\nHost: ok.test\r\n');
  await new Promise<void>((resolve) => {
    // The rest of the headers 300ms later, well within the timeout.
    const timer = setTimeout(resolve, 300);
    t.after(() => clearTimeout(timer));
  });
  timely.write('Connection: close\r\n\r\n');
  assert.match(await timely.untilClosed(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nweb-01$/);

  await silent.untilClosed(8000);
  const elapsed = Date.now() - start;
  assert.ok(elapsed >= 900 && elapsed < 3500, `closed after ${elapsed}ms`);
});

test('keepAliveTimeout: an idle keep-alive client connection is closed after it', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }], keepAliveTimeout: 300 }, {}),
  );
  const client = await RawClient.connect(t, lb.port);
  client.write('GET / HTTP/1.1\r\nHost: ka.test\r\n\r\n');
  await client.until('web-01');
  assert.match(client.text(), /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(client.text(), /\r\nConnection: keep-alive\r\n/i);
  const idleSince = Date.now();
  await client.untilClosed(4000);
  const idle = Date.now() - idleSince;
  assert.ok(idle >= 250 && idle < 2500, `closed after ${idle}ms idle`);
});

test('serverTimeout counts silence: a slow upload longer than it passes, a silent server still gets 504', async (t) => {
  const a = await startBackend(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: a.port }], serverTimeout: 400 }, {}),
  );

  // 8 chunks 150ms apart: 1.05 s of upload, never 400ms without a byte.
  const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: lb.port, path: '/upload', method: 'POST', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    let sent = 0;
    const tick = setInterval(() => {
      req.write(Buffer.alloc(1000, 0x61));
      if (++sent === 8) {
        clearInterval(tick);
        req.end();
      }
    }, 150);
    t.after(() => clearInterval(tick));
  });
  assert.equal(reply.status, 200);
  assert.equal(JSON.parse(reply.body).length, 8000);

  const silent = await fetch(lb.port, '/never', { method: 'POST', body: Buffer.from('x') });
  assert.equal(silent.status, 504);
});

test('invalid timeouts and limits are config errors naming the key', async () => {
  await assert.rejects(
    configWith(
      { servers: [{ name: 'web-01', port: 1 }] },
      {
        lb: { headersTimeout: 'soon', maxHeaders: 0, maxBodySize: -1, requestIdHeader: 'X Bad' },
        backend: { queue: { size: -1 } },
      },
    ),
    (err: Error & { problems?: string[] }) => {
      assert.deepEqual(err.problems, [
        'loadBalancers[0].headersTimeout: must be a duration: a number of milliseconds or a string like "500ms", "2s", "1m"',
        'loadBalancers[0].maxHeaders: must be an integer ≥ 1 (got 0)',
        'loadBalancers[0].maxBodySize: must be an integer ≥ 0 (got -1)',
        'loadBalancers[0].requestIdHeader: must be a header name like X-Request-Id, or false (got "X Bad")',
        'backends[0].queue.size: must be an integer ≥ 0 (got -1)',
      ]);
      return true;
    },
  );
});
