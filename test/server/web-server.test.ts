import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { PortInUseError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import type { AppEndpoint } from '../../src/server/app-supervisor.js';
import { WebServer } from '../../src/server/web-server.js';
import { freePort, tempDir, waitFor } from '../helpers/index.js';
import { fetchRaw } from './fixtures.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

interface Echo {
  upstream: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyLength: number;
  bodySha256: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** An application process stand-in: answers with what it received (or runs `handler`). */
async function upstream(t: TestContext, name: string, handler?: Handler) {
  let connections = 0;
  const server = createServer(
    handler ??
      ((req, res) => {
        const hash = createHash('sha256');
        let length = 0;
        req.on('data', (c: Buffer) => {
          hash.update(c);
          length += c.length;
        });
        req.on('end', () => {
          const echo: Echo = {
            upstream: name,
            method: req.method ?? '',
            url: req.url ?? '',
            headers: req.headers as Record<string, string>,
            bodyLength: length,
            bodySha256: hash.digest('hex'),
          };
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(echo));
        });
      }),
  );
  server.on('connection', () => {
    connections += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  const port = (server.address() as { port: number }).port;
  return { port, endpoint: { index: 0, host: '127.0.0.1', port }, connections: () => connections };
}

/** A web server for web-01 in front of `endpoints` (mutable: tests change it). */
async function web(t: TestContext, endpoints: AppEndpoint[]) {
  const dir = tempDir('tandem-web-');
  t.after(dir.cleanup);
  mkdirSync(join(dir.path, 'public'));
  writeFileSync(join(dir.path, 'public', 'style.css'), 'h1 { color: blue; }');
  const server = new WebServer({
    name: 'web-01',
    host: '127.0.0.1',
    port: 0,
    staticRoot: join(dir.path, 'public'),
    upstreams: () => endpoints,
    log: quiet,
  });
  await server.listen();
  t.after(() => server.close());
  return { server, port: Number(new URL(server.address).port) };
}

async function echo(port: number, path = '/', opts: Parameters<typeof fetchRaw>[2] = {}) {
  const res = await fetchRaw(port, path, opts);
  assert.equal(res.status, 200, res.body);
  assert.equal(res.headers['x-served-by'], 'web-01');
  return JSON.parse(res.body) as Echo;
}

test('static files first, everything else round robin over the running processes', async (t) => {
  const a = await upstream(t, 'a');
  const b = await upstream(t, 'b');
  const { port } = await web(t, [
    { ...a.endpoint, index: 0 },
    { ...b.endpoint, index: 1 },
  ]);

  const css = await fetchRaw(port, '/style.css');
  assert.equal(css.status, 200);
  assert.equal(css.body, 'h1 { color: blue; }');
  assert.equal(css.headers['x-served-by'], 'web-01');

  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push((await echo(port, `/page?i=${i}`)).upstream);
  assert.deepEqual(seen, ['a', 'b', 'a', 'b']);
  const posted = await echo(port, '/style.css', { method: 'POST', body: 'x' });
  assert.equal(posted.method, 'POST', 'a POST to a static path goes to the application');
  assert.equal(posted.url, '/style.css');
});

test('X-Forwarded-* are added when absent, passed through when present; hop-by-hop headers are not', async (t) => {
  const a = await upstream(t, 'a');
  const { port } = await web(t, [a.endpoint]);

  const added = await echo(port, '/x', { headers: { host: 'example.test:8080' } });
  assert.equal(added.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(added.headers['x-forwarded-proto'], 'http');
  assert.equal(added.headers['x-forwarded-host'], 'example.test:8080');
  assert.equal(added.headers['host'], 'example.test:8080', 'the Host header is kept');

  const passed = await echo(port, '/x', {
    headers: {
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'shop.example',
      connection: 'keep-alive, x-hop',
      'x-hop': 'secret',
      'proxy-authorization': 'Basic abc',
      'x-custom': 'kept',
    },
  });
  assert.equal(passed.headers['x-forwarded-for'], '203.0.113.7');
  assert.equal(passed.headers['x-forwarded-proto'], 'https');
  assert.equal(passed.headers['x-forwarded-host'], 'shop.example');
  assert.equal(passed.headers['x-hop'], undefined);
  assert.equal(passed.headers['proxy-authorization'], undefined);
  assert.equal(passed.headers['x-custom'], 'kept');
});

test('request and response bodies stream through, in both framings', async (t) => {
  const a = await upstream(t, 'a');
  const { port } = await web(t, [a.endpoint]);

  const body = randomBytes(2 * 1024 * 1024);
  const sized = await echo(port, '/upload', {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(sized.bodyLength, body.length);
  assert.equal(sized.bodySha256, createHash('sha256').update(body).digest('hex'));

  // Chunked request body (no Content-Length), written in pieces.
  const chunked = await new Promise<Echo>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/chunks', agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve(JSON.parse(text) as Echo));
    });
    req.on('error', reject);
    req.write('hello ');
    req.write('chunked ');
    req.end('world');
  });
  assert.equal(chunked.headers['transfer-encoding'], 'chunked');
  assert.equal(chunked.bodyLength, 'hello chunked world'.length);

  const large = randomBytes(3 * 1024 * 1024);
  const big = await upstream(t, 'big', (_req, res) => {
    res.writeHead(201, 'Made It', { 'set-cookie': ['a=1', 'b=2'], 'x-app': 'yes' });
    res.write(large.subarray(0, 1024));
    res.end(large.subarray(1024));
  });
  const { port: port2 } = await web(t, [big.endpoint]);
  const answer = await new Promise<{
    status: number;
    message: string;
    headers: IncomingMessage['headers'];
    body: Buffer;
  }>((resolve, reject) => {
    request({ host: '127.0.0.1', port: port2, path: '/', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          message: res.statusMessage ?? '',
          headers: res.headers,
          body: Buffer.concat(chunks),
        }),
      );
    })
      .on('error', reject)
      .end();
  });
  assert.equal(answer.status, 201);
  assert.equal(answer.message, 'Made It');
  assert.deepEqual(answer.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(answer.headers['x-app'], 'yes');
  assert.equal(answer.headers['x-served-by'], 'web-01');
  assert.ok(answer.body.equals(large));
});

test('connections to the processes are kept alive and reused', async (t) => {
  const a = await upstream(t, 'a');
  const { port } = await web(t, [a.endpoint]);
  for (let i = 0; i < 10; i++) await echo(port, `/n${i}`);
  assert.equal(a.connections(), 1);
});

test('a reused keep-alive connection reset before any answer is retried for a GET', async (t) => {
  const perConnection = new WeakMap<object, number>();
  const flaky = await upstream(t, 'flaky', (req, res) => {
    const n = (perConnection.get(req.socket) ?? 0) + 1;
    perConnection.set(req.socket, n);
    if (n > 1) {
      req.socket.destroy(); // the second request on a connection: reset, as a process closing idle sockets would
      return;
    }
    res.end(`answer on request ${n}`);
  });
  const { port } = await web(t, [flaky.endpoint]);
  for (let i = 0; i < 3; i++) {
    const res = await fetchRaw(port, '/');
    assert.equal(res.status, 200);
    assert.equal(res.body, 'answer on request 1');
  }
  assert.equal(flaky.connections(), 3);
  // A POST is not sent twice: its body may have been taken.
  const post = await fetchRaw(port, '/', { method: 'POST', body: 'once' });
  assert.equal(post.status, 502);
});

test('a refused connection is retried on the next process', async (t) => {
  const live = await upstream(t, 'live');
  const deadPort = await freePort();
  const { port } = await web(t, [
    { index: 0, host: '127.0.0.1', port: deadPort },
    { ...live.endpoint, index: 1 },
  ]);
  for (let i = 0; i < 4; i++) {
    const answer = await echo(port, '/retry', { method: 'POST', body: `body ${i}` });
    assert.equal(answer.upstream, 'live');
    assert.equal(answer.bodyLength, `body ${i}`.length, 'the body reached the live process whole');
  }
});

test('502 with a short text when no process runs or none answers', async (t) => {
  const endpoints: AppEndpoint[] = [];
  const { port } = await web(t, endpoints);
  const none = await fetchRaw(port, '/');
  assert.equal(none.status, 502);
  assert.equal(none.body, '502 Bad Gateway: no application process is running on web-01\n');
  assert.equal(none.headers['x-served-by'], 'web-01');
  assert.equal(none.headers['content-type'], 'text/plain; charset=utf-8');

  endpoints.push({ index: 0, host: '127.0.0.1', port: await freePort() });
  const refused = await fetchRaw(port, '/');
  assert.equal(refused.status, 502);
  assert.equal(refused.body, '502 Bad Gateway: no application process answered on web-01\n');
  assert.equal(refused.headers['x-served-by'], 'web-01');
  // Static files do not need an application process.
  assert.equal((await fetchRaw(port, '/style.css')).status, 200);
});

test('a process dying mid-response cuts that response only', async (t) => {
  const crashing = await upstream(t, 'crash', (req, res) => {
    if (req.url === '/ok') {
      res.end('fine');
      return;
    }
    res.writeHead(200, { 'content-length': 1000 });
    res.write('partial');
    setImmediate(() => res.socket?.destroy());
  });
  const { port } = await web(t, [crashing.endpoint]);
  await assert.rejects(fetchRaw(port, '/crash'), /aborted|socket hang up|ECONNRESET/);
  const after = await fetchRaw(port, '/ok');
  assert.equal(after.body, 'fine');
  assert.equal(after.headers['x-served-by'], 'web-01');

  // A process that dies before answering: 502.
  const dying = await upstream(t, 'dying', (req) => req.socket.destroy());
  const { port: port2 } = await web(t, [dying.endpoint]);
  const res = await fetchRaw(port2, '/', { method: 'POST', body: 'x' });
  assert.equal(res.status, 502);
  assert.match(res.body, /^502 Bad Gateway: the application process on web-01 failed/);
});

test('a client going away mid-request does not disturb the server', async (t) => {
  let upstreamGotRequest = false;
  let upstreamSawClose = false;
  const slow = await upstream(t, 'slow', (req, res) => {
    if (req.url === '/ok') {
      res.end('fine');
      return;
    }
    upstreamGotRequest = true;
    req.on('data', () => {});
    req.on('close', () => {
      upstreamSawClose = true;
    });
  });
  const { port } = await web(t, [slow.endpoint]);
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/upload',
    headers: { 'content-length': 100_000 },
    agent: false,
  });
  const clientError = new Promise<Error>((resolve) => req.on('error', resolve));
  req.write('only the start');
  await waitFor('the process got the request', () => upstreamGotRequest);
  req.destroy();
  await clientError;
  await waitFor('the process saw the request go away', () => upstreamSawClose);
  assert.equal((await fetchRaw(port, '/ok')).body, 'fine');
});

test('an unparsable request gets a 400 that says who answered', async (t) => {
  const a = await upstream(t, 'a');
  const { port } = await web(t, [a.endpoint]);
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(answer, /\r\nX-Served-By: web-01\r\n/);
});

test('a port in use is reported as PortInUseError', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => blocker.close(resolve)));
  const port = (blocker.address() as { port: number }).port;
  const server = new WebServer({
    name: 'web-01',
    host: '127.0.0.1',
    port,
    staticRoot: '/nonexistent',
    upstreams: () => [],
    log: quiet,
  });
  await assert.rejects(server.listen(), (err: unknown) => {
    assert.ok(err instanceof PortInUseError);
    assert.equal(err.code, 'TANDEM_ERR_PORT_IN_USE');
    assert.match(err.message, new RegExp(`web-01 web server: cannot listen on 127\\.0\\.0\\.1:${port}`));
    return true;
  });
});
