/**
 * Every L7 contender does the same work per request: it adds to the request what Tandem's load
 * balancer adds by default (X-Forwarded-For, -Proto, -Host, an RFC 7239 Forwarded element, a
 * request id) and sends the request id back to the client. Checked through the real proxies (the
 * benchmark's own configs) in front of two backends that record what they are sent.
 */
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { skipUnless, tempDir } from '../../test/helpers/index.js';
import type { BackendAddress } from '../backend/backends.js';
import { ChildGroup } from '../children.js';
import { CONTENDERS } from '../contenders/all.js';
import { HOST } from '../net.js';

interface Recorded {
  headers: IncomingHttpHeaders;
}

/** A backend as the benchmark's (`hello from NAME` on `/`, `ok` on /healthz) that records the requests to `/`. */
async function recordingBackend(name: string, seen: Recorded[]) {
  const body = Buffer.from(`hello from ${name}\n`);
  const server = createServer((req, res) => {
    if (req.url === '/') seen.push({ headers: req.headers });
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': req.url === '/' ? body.length : 3 });
    res.end(req.url === '/' ? body : 'ok\n');
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const address: BackendAddress = { name, port: (server.address() as AddressInfo).port, pid: process.pid };
  return {
    address,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

function get(port: number, host: string): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: HOST, port, path: '/', headers: { Host: host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

for (const contenderId of ['tandem-l7', 'haproxy-http', 'nginx', 'http-proxy-3']) {
  test(`${contenderId} adds the request fields Tandem adds and sends the request id back`, async (t) => {
    const contender = CONTENDERS.find((c) => c.id === contenderId)!;
    if (skipUnless(t, await contender.unavailable())) return;
    const dir = tempDir('tandem-bench-fields-');
    t.after(dir.cleanup);
    const seen: Recorded[] = [];
    const backends = await Promise.all(['web-01', 'web-02'].map((n) => recordingBackend(n, seen)));
    t.after(() => backends.forEach((b) => b.close()));
    const children = new ChildGroup();
    t.after(() => children.killAllNow());
    const running = await contender.start({
      backends: backends.map((b) => b.address),
      dir: dir.path,
      children,
      maxClientConnections: 1024,
      tandemWorkers: 1,
      tandemSpread: 'lopsided',
    });
    t.after(() => running.stop());

    seen.length = 0;
    const reply = await get(running.port, 'shop.example:8080');
    assert.equal(reply.status, 200);
    assert.equal(seen.length, 1, 'one request reached a backend');
    const sent = seen[0]!.headers;
    assert.equal(sent['x-forwarded-for'], '127.0.0.1');
    assert.equal(sent['x-forwarded-proto'], 'http');
    assert.equal(sent['x-forwarded-host'], 'shop.example:8080');
    assert.equal(sent['forwarded'], 'for=127.0.0.1;proto=http;host="shop.example:8080"');
    const id = sent['x-request-id'];
    assert.ok(typeof id === 'string' && id.length > 0, 'the backend was sent a request id');
    assert.equal(reply.headers['x-request-id'], id, 'the client gets the id the backend was sent');

    // Another request, another id.
    const again = await get(running.port, 'shop.example:8080');
    assert.equal(seen.length, 2);
    assert.notEqual(seen[1]!.headers['x-request-id'], id);
    assert.equal(again.headers['x-request-id'], seen[1]!.headers['x-request-id']);
  });
}
