/**
 * Retries and redispatch: a backend killed under load loses no request; a request is sent again
 * only when that is safe (nothing sent yet, or idempotent without a body), never twice for a POST,
 * and each retry goes to a server the request has not failed on yet.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, createServer, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { isAlive, waitFor } from '../helpers/index.js';
import { fetch, startBackend, startLb } from './fixtures.js';
import { configWith, load } from './health-fixtures.js';

/** A backend web server in its own process (answers every request with its name). */
const BACKEND_PROCESS = `
const http = require('node:http');
const name = process.argv[1];
const server = http.createServer((req, res) => res.end(name));
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

async function startBackendProcess(
  t: TestContext,
  name: string,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['-e', BACKEND_PROCESS, name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(async () => {
    if (child.pid !== undefined && isAlive(child.pid)) {
      child.kill('SIGKILL');
      await waitFor(`${name} gone`, () => child.exitCode !== null || child.signalCode !== null);
    }
  });
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => (out += chunk));
  const port = await waitFor(`${name} listening`, () => (out.includes('\n') ? Number(out.trim()) : 0));
  return { child, port };
}

test('one of two backends SIGKILLed under a steady stream of GETs: every request is answered 200', async (t) => {
  const a = await startBackendProcess(t, 'web-01');
  const b = await startBackendProcess(t, 'web-02');
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
        // The active check takes a while to notice: until then, retries (and ejection) carry it.
        healthCheck: { interval: 500, rise: 2, fall: 3 },
      },
      {},
    ),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  t.after(() => agent.destroy());
  let killedAt = 0;
  const result = await load(lb.port, {
    count: 2000, // 200 requests/s for 10 s, as the issue asks
    rate: 200,
    maxMs: 20_000,
    agent,
    onSent: (n) => {
      if (n === 600) {
        b.child.kill('SIGKILL');
        killedAt = n;
      }
    },
  });
  assert.equal(killedAt, 600);
  assert.deepEqual([...result.statuses], [[200, result.sent]], JSON.stringify([...result.statuses]));
  assert.equal(result.sent, 2000);
  assert.ok(result.servedBy.get('web-02')! >= 100, `web-02 served ${result.servedBy.get('web-02')}`);
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  const web = (await lb.handle.status()).backends[0]!;
  assert.ok(
    web.retries >= 1 && web.retries === (await lb.server('web-02')).retries,
    `retries: ${web.retries}`,
  );
  assert.equal(web.redispatches, web.retries);
});

/**
 * A backend that reads each request whole, then resets the connection (`/never`: never answers;
 * `/healthz`: 200). It records every request it saw.
 */
async function startResetter(t: TestContext) {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    req.resume();
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url !== '/never') req.socket.resetAndDestroy();
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { seen, port: (server.address() as { port: number }).port };
}

test('a request that may have reached the server is sent again only if idempotent and bodyless; a POST never', async (t) => {
  const resetter = await startResetter(t);
  const other = await startBackend(t, 'web-02');
  // active-passive: every first attempt goes to web-01, a retry to web-02 (the backup).
  const lb = await startLb(
    t,
    await configWith(
      {
        mode: 'active-passive',
        servers: [
          { name: 'web-01', port: resetter.port },
          { name: 'web-02', port: other.port },
        ],
        serverTimeout: 300,
        healthCheck: { interval: 60_000 },
      },
      { passiveHealth: { consecutiveErrors: 0 } },
    ),
  );
  assert.equal((await lb.server('web-01')).state, 'up');

  // A POST with a body, reset after the server read it: 502, and it reached a server once.
  const post = await fetch(lb.port, '/orders', { method: 'POST', body: Buffer.from('{"qty":1}') });
  assert.equal(post.status, 502);
  // A POST without a body: no different.
  const empty = await fetch(lb.port, '/orders', { method: 'POST', headers: { 'content-length': '0' } });
  assert.equal(empty.status, 502);
  // A PUT is idempotent, but its body was streamed to web-01: it cannot be sent again.
  const put = await fetch(lb.port, '/item', { method: 'PUT', body: Buffer.from('x') });
  assert.equal(put.status, 502);
  // No answer within serverTimeout: the server may be working on it; 504, not retried.
  const slow = await fetch(lb.port, '/never');
  assert.equal(slow.status, 504);
  assert.deepEqual(resetter.seen, ['POST /orders', 'POST /orders', 'PUT /item', 'GET /never']);
  assert.equal(other.requests, 0, 'nothing was sent twice');

  // A GET (idempotent, no body) reset the same way is sent again, to web-02.
  const get = await fetch(lb.port, '/page');
  assert.equal(get.status, 200);
  assert.equal(get.text, 'web-02');
  const del = await fetch(lb.port, '/item', { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.deepEqual(resetter.seen.slice(4), ['GET /page', 'DELETE /item']);
  assert.equal(other.requests, 2);
  assert.equal((await lb.server('web-01')).retries, 2);
  assert.equal((await lb.server('web-01')).redispatches, 2);
  assert.ok(
    lb.log.lines.some((l) => l.includes('server web-01 failed: read ECONNRESET; retrying on web-02')),
  );
});

test('a reused keep-alive connection the server closed: sent again on the same server when it is the only one', async (t) => {
  // The server drops every connection at its second request without answering, as a server
  // closing an idle keep-alive connection just as the proxy reuses it would.
  const perSocket = new WeakMap<Socket, number>();
  let answered = 0;
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (n === 2) {
      req.socket.resetAndDestroy();
      return;
    }
    answered++;
    res.end('web-01');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  const port = (server.address() as { port: number }).port;
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port }], healthCheck: { interval: 60_000 } }, {}),
  );
  for (let i = 0; i < 4; i++) {
    const r = await fetch(lb.port, '/');
    assert.equal(r.status, 200, `request ${i}: ${r.text}`);
  }
  assert.equal(answered, 4);
  assert.ok((await lb.server('web-01')).retries >= 1);
  assert.equal((await lb.server('web-01')).redispatches, 0);
});

test('redispatch: each retry goes to a server the request has not failed on yet', async (t) => {
  const live = await startBackend(t, 'web-03');
  const dead = [await startBackend(t, 'web-01'), await startBackend(t, 'web-02')];
  const config = async (retries: number) =>
    configWith(
      {
        // Heavy dead servers: leaving out only the last failed one would bounce between them.
        servers: [
          ...dead.map((s) => ({ name: s.name, port: s.port, weight: 5 })),
          { name: live.name, port: live.port, weight: 1 },
        ],
        healthCheck: { interval: 60_000 },
      },
      { retries, passiveHealth: { consecutiveErrors: 0 } },
    );
  const lb = await startLb(t, await config(2));
  for (const d of dead) await d.stop();
  // Two dead servers, two retries: always enough, as long as no server is tried twice.
  for (let i = 0; i < 12; i++) {
    const r = await fetch(lb.port, '/');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'web-03');
  }
  const web = (await lb.handle.status()).backends[0]!;
  const failures = (await lb.server('web-01')).failures + (await lb.server('web-02')).failures;
  assert.ok(failures >= 12, `failures: ${failures}`);
  assert.equal(web.retries, failures);
  assert.equal(web.redispatches, failures);
  assert.equal((await lb.server('web-01')).retries, (await lb.server('web-01')).failures);
  assert.equal((await lb.server('web-03')).retries, 0);
  assert.ok(lb.log.lines.some((l) => l.includes('connect ECONNREFUSED; retrying on web-03')));

  // `retries` bounds the attempts: with one retry, a request whose two first picks are dead fails.
  const one = await startLb(t, await config(1));
  const statuses = new Set<number>();
  for (let i = 0; i < 9; i++) statuses.add((await fetch(one.port, '/')).status);
  assert.deepEqual([...statuses].sort(), [200, 502]);

  // No retries at all: a refused connection is a 502.
  const none = await startLb(t, await config(0));
  const noRetry = new Set<number>();
  for (let i = 0; i < 3; i++) noRetry.add((await fetch(none.port, '/')).status);
  assert.ok(noRetry.has(502), [...noRetry].join(', '));
  assert.equal((await none.handle.status()).backends[0]!.retries, 0);
});
