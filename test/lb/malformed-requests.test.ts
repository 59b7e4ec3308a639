/**
 * Bad input through raw sockets: a corpus of malformed and request-smuggling inputs, each answered
 * with the right status and a closed connection, while the backend — a recording relay in front of
 * a real node:http server — receives nothing (or, for valid pipelined requests, exactly the
 * requests the proxy understood). Then a bounded fuzz loop of random mutations of a valid request.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { type TestContext, test } from 'node:test';
import { seededRandom, waitFor } from '../helpers/index.js';
import { fetch } from './fixtures.js';
import { type RawBackend, rawExchange, startRawBackend, startTcpLb } from './tcp-fixtures.js';

const H = 'Host: t\r\n';
const CHUNKED = 'Transfer-Encoding: chunked\r\n';
/** A request smuggled in a body: it must never reach the server as a request. */
const EVIL = `GET /evil HTTP/1.1\r\n${H}\r\n`;

interface Case {
  name: string;
  /** Bytes the client sends (latin1), all in one write. */
  send: string;
  /** Status of each response, in order. */
  statuses: number[];
  /** Request lines (`METHOD /path`) the server must get, in order; default none at all. */
  forwarded?: string[];
  /** Text the server must get (a normalised framing header, say). */
  serverSees?: string[];
  /** Keep the connection open after the responses (the last request was valid and keep-alive). */
  open?: boolean;
}

const post = (headers: string, body: string, version = '1.1') =>
  `POST /evil HTTP/${version}\r\n${H}${headers}\r\n${body}`;
const get = (path: string, headers = '') => `GET ${path} HTTP/1.1\r\n${H}${headers}\r\n`;

const corpus: Case[] = [
  // Framing: Content-Length and Transfer-Encoding.
  { name: 'CL then TE', send: post(`Content-Length: 5\r\n${CHUNKED}`, `0\r\n\r\n${EVIL}`), statuses: [400] },
  { name: 'TE then CL', send: post(`${CHUNKED}Content-Length: 5\r\n`, `0\r\n\r\n${EVIL}`), statuses: [400] },
  {
    name: 'two different Content-Lengths',
    send: post('Content-Length: 5\r\nContent-Length: 40\r\n', `hello${EVIL}`),
    statuses: [400],
  },
  {
    name: 'two equal Content-Lengths',
    send: post('Content-Length: 5\r\nContent-Length: 5\r\n', 'hello'),
    statuses: [400],
  },
  { name: 'Content-Length list', send: post('Content-Length: 5, 5\r\n', 'hello'), statuses: [400] },
  { name: 'Content-Length +5', send: post('Content-Length: +5\r\n', 'hello'), statuses: [400] },
  { name: 'Content-Length 0x5', send: post('Content-Length: 0x5\r\n', 'hello'), statuses: [400] },
  { name: 'Content-Length -1', send: post('Content-Length: -1\r\n', 'hello'), statuses: [400] },
  { name: 'Content-Length "5 5"', send: post('Content-Length: 5 5\r\n', 'hello'), statuses: [400] },
  {
    name: 'Content-Length overflow',
    send: post(`Content-Length: ${'9'.repeat(30)}\r\n`, 'hello'),
    statuses: [400],
  },
  {
    name: 'TE chunked, chunked',
    send: post('Transfer-Encoding: chunked, chunked\r\n', '0\r\n\r\n'),
    statuses: [400],
  },
  { name: 'TE twice', send: post(`${CHUNKED}${CHUNKED}`, '0\r\n\r\n'), statuses: [400] },
  {
    name: 'TE chunked not last',
    send: post('Transfer-Encoding: chunked, gzip\r\n', '0\r\n\r\n'),
    statuses: [400],
  },
  {
    name: 'TE gzip, chunked (unsupported coding)',
    send: post('Transfer-Encoding: gzip, chunked\r\n', `0\r\n\r\n${EVIL}`),
    statuses: [501],
  },
  { name: 'TE gzip alone', send: post('Transfer-Encoding: gzip\r\n', `0\r\n\r\n${EVIL}`), statuses: [400] },
  { name: 'TE identity', send: post('Transfer-Encoding: identity\r\n', 'hello'), statuses: [400] },
  { name: 'TE xchunked', send: post('Transfer-Encoding: xchunked\r\n', `0\r\n\r\n${EVIL}`), statuses: [400] },
  {
    name: 'TE chunked with parameter',
    send: post('Transfer-Encoding: chunked;q=1\r\n', '0\r\n\r\n'),
    statuses: [400],
  },
  {
    name: 'TE chunked + trailing tab',
    send: post('Transfer-Encoding: chunked\t\r\n', `0\r\n\r\n${EVIL}`),
    statuses: [400],
  },
  { name: 'TE empty', send: post('Transfer-Encoding: \r\n', EVIL), statuses: [400] },
  {
    name: 'TE space before colon',
    send: post('Transfer-Encoding : chunked\r\n', '0\r\n\r\n'),
    statuses: [400],
  },
  { name: 'TE vertical tab', send: post('Transfer-Encoding: \x0bchunked\r\n', '0\r\n\r\n'), statuses: [400] },
  { name: 'TE in HTTP/1.0', send: post(CHUNKED, `0\r\n\r\n${EVIL}`, '1.0'), statuses: [400] },
  // Header names and values.
  { name: 'header name with a space', send: get('/evil', 'Foo Bar: x\r\n'), statuses: [400] },
  { name: 'header name with @', send: get('/evil', 'Foo@: x\r\n'), statuses: [400] },
  { name: 'empty header name', send: get('/evil', ': x\r\n'), statuses: [400] },
  { name: 'NUL in a header name', send: get('/evil', 'Fo\x00o: x\r\n'), statuses: [400] },
  { name: 'NUL in a header value', send: get('/evil', 'Foo: a\x00b\r\n'), statuses: [400] },
  { name: 'control char in a value', send: get('/evil', 'Foo: a\x01b\r\n'), statuses: [400] },
  { name: 'DEL in a value', send: get('/evil', 'Foo: a\x7fb\r\n'), statuses: [400] },
  { name: 'bare CR in a value', send: get('/evil', 'Foo: a\rb\r\n'), statuses: [400] },
  { name: 'obsolete line folding (space)', send: get('/evil', 'Foo: a\r\n b\r\n'), statuses: [400] },
  { name: 'obsolete line folding (tab)', send: get('/evil', 'Foo: a\r\n\tb\r\n'), statuses: [400] },
  { name: 'whitespace before the first header', send: `GET /evil HTTP/1.1\r\n ${H}\r\n`, statuses: [400] },
  // Line endings.
  { name: 'bare LF everywhere', send: `GET /evil HTTP/1.1\nHost: t\n\n`, statuses: [400] },
  { name: 'bare LF after the request line', send: `GET /evil HTTP/1.1\n${H}\r\n`, statuses: [400] },
  { name: 'bare LF ending the headers', send: `GET /evil HTTP/1.1\r\n${H}\n`, statuses: [400] },
  { name: 'bare CR after the request line', send: `GET /evil HTTP/1.1\r${H}\r\n`, statuses: [400] },
  // Chunked bodies.
  { name: 'chunk size not hex', send: post(CHUNKED, `zz\r\nhello\r\n0\r\n\r\n`), statuses: [400] },
  { name: 'chunk size negative', send: post(CHUNKED, `-5\r\nhello\r\n0\r\n\r\n`), statuses: [400] },
  { name: 'chunk size 0x5', send: post(CHUNKED, `0x5\r\nhello\r\n0\r\n\r\n`), statuses: [400] },
  { name: 'chunk size + space', send: post(CHUNKED, `5 \r\nhello\r\n0\r\n\r\n`), statuses: [400] },
  {
    name: 'chunk size overflow',
    send: post(CHUNKED, `${'f'.repeat(20)}\r\nhello\r\n0\r\n\r\n`),
    statuses: [400],
  },
  {
    name: 'chunk line of 70 KB (extensions)',
    send: post(CHUNKED, `5;${'a'.repeat(70_000)}\r\nhello\r\n0\r\n\r\n`),
    statuses: [413],
  },
  { name: 'bad chunk extension', send: post(CHUNKED, `5;a=\x01\r\nhello\r\n0\r\n\r\n`), statuses: [400] },
  {
    name: 'chunk longer than its size',
    send: post(CHUNKED, `5\r\nhello${EVIL}\r\n0\r\n\r\n`),
    statuses: [400],
  },
  { name: 'bare LF after a chunk size', send: post(CHUNKED, `5\nhello\r\n0\r\n\r\n`), statuses: [400] },
  { name: 'bare LF after chunk data', send: post(CHUNKED, `5\r\nhello\n0\r\n\r\n`), statuses: [400] },
  { name: 'bare LF in the last chunk', send: post(CHUNKED, `5\r\nhello\r\n0\n\n`), statuses: [400] },
  {
    name: 'a good chunk, then a bad one',
    send: post(CHUNKED, `5\r\nhello\r\nzz\r\n${EVIL}`),
    statuses: [400],
  },
  // Request line.
  { name: 'extra token after the version', send: `GET /evil HTTP/1.1 x\r\n${H}\r\n`, statuses: [400] },
  { name: 'lower-case method', send: `get /evil HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'unknown method', send: `FOO /evil HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'space in the target', send: `GET /ev il HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'NUL in the target', send: `GET /ev\x00il HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'control char in the target', send: `GET /ev\x01il HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'tab in the target', send: `GET /ev\til HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: '8-bit byte in the target', send: `GET /ev\xe9il HTTP/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'lower-case protocol', send: `GET /evil http/1.1\r\n${H}\r\n`, statuses: [400] },
  { name: 'HTTP/1.2', send: `GET /evil HTTP/1.2\r\n${H}\r\n`, statuses: [400] },
  { name: 'HTTP/3.1', send: `GET /evil HTTP/3.1\r\n${H}\r\n`, statuses: [400] },
  {
    name: 'TLS ClientHello on the HTTP port',
    send: '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03',
    statuses: [400],
  },
  { name: 'HTTP/0.9', send: 'GET /evil\r\n\r\n', statuses: [400] },
  { name: 'HTTP/2.0 request line', send: `GET /evil HTTP/2.0\r\n${H}\r\n`, statuses: [505] },
  {
    name: 'HTTP/2 connection preface',
    send: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00',
    statuses: [505],
  },
  { name: 'CONNECT', send: `CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n`, statuses: [501] },
  // Host.
  { name: 'no Host in HTTP/1.1', send: 'GET /evil HTTP/1.1\r\n\r\n', statuses: [400] },
  { name: 'two Hosts', send: `GET /evil HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, statuses: [400] },
  { name: 'Host with a path', send: `GET /evil HTTP/1.1\r\nHost: a/b\r\n\r\n`, statuses: [400] },
  { name: 'Host with userinfo', send: `GET /evil HTTP/1.1\r\nHost: u@a\r\n\r\n`, statuses: [400] },
  { name: 'Host with a space', send: `GET /evil HTTP/1.1\r\nHost: a b\r\n\r\n`, statuses: [400] },
  // Upgrade requests go through the same checks.
  {
    name: 'Upgrade request with two Hosts',
    send: `GET /evil HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`,
    statuses: [400],
  },
  {
    name: 'Upgrade request with an unsupported TE',
    send: post(
      'Transfer-Encoding: gzip, chunked\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n',
      `0\r\n\r\n${EVIL}`,
    ),
    statuses: [501],
  },
  {
    name: 'Upgrade request in HTTP/2.0',
    send: `GET /evil HTTP/2.0\r\n${H}Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n`,
    statuses: [505],
  },
  // Pipelining: what follows a rejected request is never sent on.
  {
    name: 'pipelined after a CL+TE body',
    send: post(`Content-Length: 6\r\n${CHUNKED}`, `0\r\n\r\nX`) + EVIL,
    statuses: [400],
  },
  {
    name: 'pipelined after an unsupported TE',
    send: post('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n') + EVIL,
    statuses: [501],
  },
  {
    name: 'pipelined after two Hosts',
    send: `GET /evil HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n${EVIL}`,
    statuses: [400],
  },
  {
    name: 'valid pipelined requests',
    send: get('/a') + get('/b', 'Connection: close\r\n'),
    statuses: [200, 200],
    forwarded: ['GET /a', 'GET /b'],
  },
  {
    name: 'valid request, then a malformed one',
    send: get('/a') + get('/evil', 'Foo Bar: x\r\n'),
    statuses: [200, 400],
    forwarded: ['GET /a'],
  },
  {
    name: 'valid POST, then a smuggling attempt',
    send:
      `POST /a HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello` +
      post(`Content-Length: 5\r\n${CHUNKED}`, `0\r\n\r\n${EVIL}`),
    statuses: [200, 400],
    forwarded: ['POST /a'],
  },
  // Accepted as the RFCs allow, and sent on normalised.
  {
    name: 'TE with a leading tab (OWS) is chunked',
    send: `POST /ok HTTP/1.1\r\n${H}Transfer-Encoding:\tchunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    statuses: [200],
    forwarded: ['POST /ok'],
    serverSees: ['\r\nTransfer-Encoding: chunked\r\n', '\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  },
  {
    name: 'TE CHUNKED in capitals is chunked',
    send: `POST /ok HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    statuses: [200],
    forwarded: ['POST /ok'],
    serverSees: ['\r\nTransfer-Encoding: chunked\r\n'],
  },
  {
    name: 'CL with spaces around it',
    send: `POST /ok HTTP/1.1\r\n${H}Content-Length:   5  \r\nConnection: close\r\n\r\nhello`,
    statuses: [200],
    forwarded: ['POST /ok'],
    serverSees: ['\r\nContent-Length: 5\r\n'],
  },
  {
    name: 'chunk extension and leading zeros',
    send: `POST /ok HTTP/1.1\r\n${H}${CHUNKED}Connection: close\r\n\r\n${'0'.repeat(1000)}5;ext=1\r\nhello\r\n0\r\n\r\n`,
    statuses: [200],
    forwarded: ['POST /ok'],
    serverSees: ['\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  },
  {
    name: 'empty line before the request line',
    send: `\r\nGET /ok HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    statuses: [200],
    forwarded: ['GET /ok'],
  },
];

/** Statuses of the HTTP/1.1 status lines in `text` (the bodies here never contain one). */
function statusesOf(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** `METHOD /path` of each request line in what the server got. */
function requestLines(text: string): string[] {
  return [...text.matchAll(/(?:^|\r\n)([A-Z]+) (\S+) HTTP\/1\.1\r\n/g)].map((m) => `${m[1]} ${m[2]}`);
}

/** What the recording relay got since `mark` (per-connection lengths), as one latin1 text. */
function since(backend: RawBackend, mark: number[]): string {
  return backend
    .received()
    .map((b, i) => b.subarray(mark[i] ?? 0).toString('latin1'))
    .join('');
}

/**
 * The backend: a real node:http server answering `ok METHOD /path` (after reading the body), behind
 * a recording TCP relay that the load balancer connects to.
 */
async function recordingBackend(t: TestContext): Promise<RawBackend> {
  const http: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end(`ok ${req.method} ${req.url}`));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    http.closeAllConnections();
    http.close();
  });
  const httpPort = (http.address() as { port: number }).port;
  return startRawBackend(t, 'recorder', (socket) => {
    const up = connect({ host: '127.0.0.1', port: httpPort });
    up.on('error', () => socket.destroy());
    socket.on('close', () => up.destroy());
    up.on('close', () => socket.destroy());
    socket.pipe(up);
    up.pipe(socket);
  });
}

test(
  'malformed and smuggling requests: the right answer, a closed connection, nothing sent on',
  { timeout: 60_000 },
  async (t) => {
    const backend = await recordingBackend(t);
    const lb = await startTcpLb(t, { mode: 'http', servers: [{ name: 'recorder', port: backend.port }] });
    for (const c of corpus) {
      await t.test(c.name, async () => {
        const mark = backend.received().map((b) => b.length);
        const reply = await rawExchange(lb.port, c.send, { timeout: 5000 });
        const text = reply.data.toString('latin1');
        assert.deepEqual(statusesOf(text), c.statuses, `answer: ${JSON.stringify(text.slice(0, 300))}`);
        const last = text.slice([...text.matchAll(/HTTP\/1\.1 \d{3} /g)].at(-1)?.index ?? 0);
        assert.match(last, /\r\nConnection: close\r\n/i, 'the last answer closes the connection');
        assert.match(
          last,
          /\r\n(Content-Length: \d+|Transfer-Encoding: chunked)\r\n/i,
          'the answer is framed',
        );
        // Whatever the server got is in by the time the exchange is over; an abandoned attempt is
        // accounted when its connection closes.
        await waitFor(
          'the exchange to be over on the server side',
          async () => (await lb.server('recorder')).inFlight === 0,
        );
        const got = since(backend, mark);
        assert.deepEqual(
          requestLines(got),
          c.forwarded ?? [],
          `the server got: ${JSON.stringify(got.slice(0, 300))}`,
        );
        assert.doesNotMatch(got, /evil/, 'nothing of a rejected request reached the server');
        if (c.forwarded === undefined) assert.equal(got, '', 'the server got nothing');
        for (const s of c.serverSees ?? [])
          assert.ok(got.includes(s), `the server got ${JSON.stringify(s)} in ${JSON.stringify(got)}`);
      });
    }
    // After all that, the proxy still serves.
    const ok = await fetch(lb.port, '/after');
    assert.equal(ok.status, 200);
    assert.equal(ok.text, 'ok GET /after');
  },
);

const SPICE = [
  '\r',
  '\n',
  '\r\n',
  '\x00',
  ' ',
  '\t',
  ':',
  ',',
  ';',
  '0',
  'f',
  '-',
  '+',
  '\x7f',
  '\xff',
  'chunked',
  'Content-Length: 3\r\n',
  'Transfer-Encoding: chunked\r\n',
  '\r\n\r\n',
];

/** One random mutation (1-3 edits) of `base`: replace, insert, delete, duplicate or cut. */
function mutate(base: string, rnd: () => number): string {
  let s = base;
  const edits = 1 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * (s.length + 1));
    const spice = SPICE[Math.floor(rnd() * SPICE.length)]!;
    switch (Math.floor(rnd() * 5)) {
      case 0:
        s = s.slice(0, at) + spice + s.slice(at + 1);
        break;
      case 1:
        s = s.slice(0, at) + spice + s.slice(at);
        break;
      case 2:
        s = s.slice(0, at) + s.slice(at + 1 + Math.floor(rnd() * 4));
        break;
      case 3: {
        const end = Math.min(s.length, at + 1 + Math.floor(rnd() * 30));
        s = s.slice(0, end) + s.slice(at, end) + s.slice(end);
        break;
      }
      default:
        s = s.slice(0, Math.max(1, at));
    }
  }
  return s;
}

test(
  'fuzz: thousands of random mutations of a valid request never crash the proxy',
  { timeout: 60_000 },
  async (t) => {
    const backend = await recordingBackend(t);
    const lb = await startTcpLb(t, { mode: 'http', servers: [{ name: 'recorder', port: backend.port }] });
    const seed = Number(process.env['TANDEM_FUZZ_SEED'] ?? Date.now() % 1_000_000);
    const rnd = seededRandom(seed);
    const base =
      `POST /fuzz?x=1 HTTP/1.1\r\n${H}${CHUNKED}Content-Type: text/plain\r\nX-Pad: a, b;c=d\r\n\r\n` +
      `5;e=f\r\nhello\r\n3\r\nabc\r\n0\r\nTrailer: v\r\n\r\n` +
      `GET /next HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\nhi`;
    const total = 3000;
    const concurrency = 16;
    const deadline = Date.now() + 40_000;
    let sent = 0;
    let answered = 0;
    const worker = async () => {
      while (sent < total && Date.now() < deadline) {
        sent++;
        // Half-close after the bytes: an incomplete request ends at EOF instead of a timeout.
        const reply = await rawExchange(lb.port, mutate(base, rnd), { end: true, timeout: 10_000 });
        if (reply.data.length > 0) answered++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    assert.equal(sent, total, `seed ${seed}: only ${sent} of ${total} mutations within the time bound`);
    t.diagnostic(
      `seed ${seed}: ${answered} of ${total} mutations got an answer before the connection closed`,
    );
    // Still alive and serving.
    const ok = await fetch(lb.port, '/after');
    assert.equal(ok.status, 200, `seed ${seed}`);
    assert.equal(ok.text, 'ok GET /after');
  },
);
