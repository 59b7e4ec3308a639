/**
 * The proxy's own keep-alive connections to servers (proxy/upstream-connection.ts): every way a
 * response can be framed reaches the client whole, a connection is reused exactly when the server
 * keeps it, and a response that ends while its client is slow leaves the connection usable.
 * The server here is a raw TCP server that writes each answer byte for byte.
 */
import assert from 'node:assert/strict';
import { Agent, type IncomingMessage, request } from 'node:http';
import { createServer, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { getVia } from './admin-fixtures.js';
import { startLb } from './fixtures.js';
import { configWith } from './protocol-fixtures.js';

const BIG = 4 * 1024 * 1024;

/**
 * Answers by path, byte for byte. `HEAD /head` gets the same head as `GET /head`, without the body.
 * `later`: written 50 ms after `bytes` (the proxy reads them apart).
 */
function answer(method: string, path: string): { bytes: Buffer | string; close?: boolean; later?: string } {
  switch (path) {
    case '/healthz':
      return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok' };
    case '/length':
      return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Kind: length\r\n\r\nlength' };
    case '/chunked':
      return {
        bytes:
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n' +
          '3\r\nchu\r\n4;ext=1\r\nnked\r\n0\r\n\r\n',
      };
    case '/head':
      return {
        bytes: `HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n${method === 'HEAD' ? '' : '0123456789'}`,
      };
    case '/no-content':
      return { bytes: 'HTTP/1.1 204 No Content\r\nX-Kind: 204\r\n\r\n' };
    case '/not-modified':
      return { bytes: 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n' };
    case '/until-close':
      return {
        bytes: 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nthe body ends with the connection',
        close: true,
      };
    case '/many-headers': {
      let head = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n';
      for (let i = 1; i <= 80; i++) head += `X-Field-${i}: value ${i}\r\n`;
      return { bytes: `${head}\r\nmany` };
    }
    case '/many-headers-chunked': {
      // As many fields, and a body llhttp has to decode.
      let head = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n';
      for (let i = 1; i <= 80; i++) head += `X-Field-${i}: value ${i}\r\n`;
      return { bytes: `${head}\r\n4\r\nmany\r\n0\r\n\r\n` };
    }
    case '/split-head':
      return { bytes: 'HTTP/1.1 200 OK\r\nContent-Le', later: 'ngth: 5\r\nX-Kind: split\r\n\r\nsplit' };
    case '/hints-apart':
      return {
        bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n',
        later: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Kind: apart\r\n\r\napart',
      };
    case '/lookalike': {
      // A chunked body whose second read starts like a response head: it is body all the same.
      const inner = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';
      return {
        bytes: `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${inner.length.toString(16)}\r\n`,
        later: `${inner}\r\n0\r\n\r\n`,
      };
    }
    case '/two-lengths':
      return { bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nno' };
    case '/early-hints':
      return {
        bytes:
          'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal',
      };
    case '/big': {
      const body = Buffer.alloc(BIG, 'b');
      return {
        bytes: Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG}\r\n\r\n`), body]),
      };
    }
    case '/malformed':
      return { bytes: 'HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 2\r\n\r\nno' };
    default:
      return { bytes: 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n' };
  }
}

interface RawServer {
  port: number;
  /** `METHOD /path #connection` of every request but health checks, in order. */
  seen: string[];
}

/** A raw HTTP/1.1 server (bodiless requests only) that numbers the connections requests come on (health checks aside). */
async function rawServer(t: TestContext): Promise<RawServer> {
  const state: RawServer = { port: 0, seen: [] };
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    let id = 0;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const [method, path] = buffered.slice(0, buffered.indexOf('\r\n')).split(' ') as [string, string];
        buffered = buffered.slice(end + 4);
        if (path !== '/healthz') state.seen.push(`${method} ${path} #${(id ||= ++connections)}`);
        const a = answer(method, path);
        if (a.close) socket.end(a.bytes);
        else socket.write(a.bytes);
        const later = a.later;
        if (later !== undefined) setTimeout(() => socket.write(later), 50);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as { port: number }).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  );
  return state;
}

/**
 * A raw server behind a load balancer (`extra`: more of the backend's settings), and an agent that
 * keeps one connection to it: one client connection, so one worker and its one pool of
 * connections to the server.
 */
async function oneConnectionTo(t: TestContext, extra: Record<string, unknown> = {}) {
  const backend = await rawServer(t);
  const lb = await startLb(
    t,
    await configWith({ servers: [{ name: 'web-01', port: backend.port }], ...extra }, {}),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  return { backend, lb, agent };
}

/** One request over `agent`: status, headers and body. */
function via(
  agent: Agent,
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; headers: Record<string, unknown>; rawHeaders: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d: string) => (body += d));
      res.on('error', reject);
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

test('responses framed every way reach the client whole; the connection is reused exactly when the server keeps it', async (t) => {
  const { backend, lb, agent } = await oneConnectionTo(t);

  const length = await via(agent, lb.port, '/length');
  assert.equal(length.status, 200);
  assert.equal(length.body, 'length');
  assert.equal(length.headers['x-kind'], 'length');

  const chunked = await via(agent, lb.port, '/chunked');
  assert.equal(chunked.body, 'chunked');
  assert.equal(chunked.headers['x-kind'], 'chunked');

  const head = await via(agent, lb.port, '/head', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '10');
  assert.equal(head.body, '');

  const noContent = await via(agent, lb.port, '/no-content');
  assert.equal(noContent.status, 204);
  assert.equal(noContent.headers['x-kind'], '204');
  const notModified = await via(agent, lb.port, '/not-modified');
  assert.equal(notModified.status, 304);
  assert.equal(notModified.headers['etag'], '"v1"');

  // More header fields than the parser hands over at once (it flushes them in parts).
  const many = await via(agent, lb.port, '/many-headers');
  assert.equal(many.body, 'many');
  const fields = many.rawHeaders.filter((_, i) => i % 2 === 0 && many.rawHeaders[i]!.startsWith('X-Field-'));
  assert.deepEqual(
    fields,
    Array.from({ length: 80 }, (_, i) => `X-Field-${i + 1}`),
  );
  assert.equal(many.headers['x-field-80'], 'value 80');
  const manyChunked = await via(agent, lb.port, '/many-headers-chunked');
  assert.equal(manyChunked.body, 'many');
  assert.equal(manyChunked.headers['x-field-80'], 'value 80');

  // A head in two reads, and the final head read apart from an informational one.
  const split = await via(agent, lb.port, '/split-head');
  assert.equal(split.body, 'split');
  assert.equal(split.headers['x-kind'], 'split');
  const apart = await via(agent, lb.port, '/hints-apart');
  assert.equal(apart.status, 200);
  assert.equal(apart.body, 'apart');
  assert.equal(apart.headers['x-kind'], 'apart');
  const lookalike = await via(agent, lb.port, '/lookalike');
  assert.equal(lookalike.body, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');

  // An informational answer first: the final one reaches the client.
  const hints = await via(agent, lb.port, '/early-hints');
  assert.equal(hints.status, 200);
  assert.equal(hints.body, 'final');

  // All of these on one connection to the server.
  assert.deepEqual(backend.seen, [
    'GET /length #1',
    'GET /chunked #1',
    'HEAD /head #1',
    'GET /no-content #1',
    'GET /not-modified #1',
    'GET /many-headers #1',
    'GET /many-headers-chunked #1',
    'GET /split-head #1',
    'GET /hints-apart #1',
    'GET /lookalike #1',
    'GET /early-hints #1',
  ]);

  // A body that ends with the connection: whole, and that connection is not used again.
  const untilClose = await via(agent, lb.port, '/until-close');
  assert.equal(untilClose.body, 'the body ends with the connection');
  assert.equal((await via(agent, lb.port, '/length')).body, 'length');
  assert.deepEqual(backend.seen.slice(-2), ['GET /until-close #1', 'GET /length #2']);
});

test('a response that ends while its client holds it back leaves the connection usable for the next request', async (t) => {
  // A server timeout far longer than the test: a stuck connection could only end by it.
  const { backend, lb, agent } = await oneConnectionTo(t, { serverTimeout: 60_000 });

  // The client reads nothing until the proxy has had to stop passing the body on, then all of it.
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: lb.port, path: '/big', agent }, (r) => {
      r.pause();
      resolve(r);
    });
    req.on('error', reject);
    req.end();
  });
  let last = -1;
  let since = Date.now();
  await waitFor('the proxy to stop sending', () => {
    const now = res.socket.bytesRead;
    if (now !== last) {
      last = now;
      since = Date.now();
    }
    return Date.now() - since > 200;
  });
  assert.ok(last < BIG, `the client connection took ${last} bytes while the client read none`);
  let got = 0;
  res.on('data', (d: Buffer) => (got += d.length));
  const ended = new Promise((resolve) => res.on('end', resolve));
  res.resume();
  await ended;
  assert.equal(got, BIG);

  // Over the same client connection (so the same worker), and the same server connection.
  const next = await Promise.race([
    getVia(agent, lb.port, '/length'),
    new Promise<never>((_, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
      t.after(() => clearTimeout(timer));
    }),
  ]);
  assert.equal(next.text, 'length');
  assert.deepEqual(backend.seen, ['GET /big #1', 'GET /length #1']);
});

test('a malformed response on a connection whose last response had a Content-Length body is still caught: 502', async (t) => {
  // The proxy relays Content-Length bodies without the parser, which is stopped after each such
  // head and reset: a later response on the connection must be checked as strictly as the first.
  const { backend: server, lb, agent } = await oneConnectionTo(t);
  const first = await via(agent, lb.port, '/length');
  assert.equal(first.body, 'length');
  const bad = await via(agent, lb.port, '/malformed');
  assert.equal(bad.status, 502);
  assert.doesNotMatch(bad.body, /^no$/);
  assert.deepEqual(server.seen, ['GET /length #1', 'GET /malformed #1']);
});

test('a response with two Content-Length fields is refused (502), even equal ones, after one read the common way', async (t) => {
  const { lb, agent } = await oneConnectionTo(t);
  assert.equal((await via(agent, lb.port, '/length')).body, 'length');
  const bad = await via(agent, lb.port, '/two-lengths');
  assert.equal(bad.status, 502);
  assert.doesNotMatch(bad.body, /^no$/);
});
