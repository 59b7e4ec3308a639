/**
 * response-head.ts reads common response heads without llhttp. It must never read a head llhttp
 * would read differently or reject: over many generated heads (valid ones, and each mutated by
 * bytes inserted, removed or replaced where parsers tend to differ), every head it accepts is also
 * parsed by llhttp, Node's strict parser, and both give the same status, reason, fields,
 * keep-alive, body length and head length. What it leaves alone goes to llhttp in the proxy.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type HttpParser, responseParser } from '../../src/lb/proxy/http-parser.js';
import { clientResponseHeaders } from '../../src/lb/proxy/headers.js';
import {
  MAX_SIMPLE_HEAD,
  passedHead,
  responseFields,
  type ScannedResponseHead,
  scanResponseHead,
  type ResponseFields,
} from '../../src/lb/proxy/response-head.js';
import { seededRandom } from '../helpers/index.js';

/** The head at the start of `buf` with its strings, as the proxy reads it without llhttp; undefined if left to llhttp. */
function simpleResponseHead(buf: Buffer): (ScannedResponseHead & ResponseFields) | undefined {
  const head = scanResponseHead(buf);
  return head === undefined ? undefined : { ...head, ...responseFields(buf, head) };
}

interface LlhttpHead {
  status: number;
  message: string;
  headers: string[];
  keepAlive: boolean;
  upgrade: boolean;
  /** Bytes execute() took: the head's length, as the head callback stops it there. */
  end: number;
}

/** What llhttp makes of the head at the start of `buf`: its head, or the error. */
function llhttp(buf: Buffer): LlhttpHead | Error | undefined {
  let head: Omit<LlhttpHead, 'end'> | undefined;
  let parts: string[] = [];
  const parser: HttpParser = responseParser({
    onHeaders(headers) {
      parts = parts.concat(headers);
    },
    onHeadersComplete(_ma, _mi, headers, _m, _u, status, message, upgrade, keepAlive) {
      head = { status, message, headers: parts.concat(headers ?? []), keepAlive, upgrade };
      return 2; // stop after the head, as the proxy does for a Content-Length body
    },
    onBody() {},
    onMessageComplete() {},
  });
  try {
    const ret = parser.execute(buf);
    if (ret instanceof Error) return ret;
    return head === undefined ? undefined : { ...head, end: ret };
  } finally {
    parser.close();
  }
}

function contentLength(headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2)
    if (headers[i]!.toLowerCase() === 'content-length') return Number(headers[i + 1]);
  return -1;
}

/** Checks that llhttp reads `buf` as simpleResponseHead did, when it did; returns whether it did. */
function agrees(buf: Buffer): boolean {
  const fast = simpleResponseHead(buf);
  if (fast === undefined) return false;
  const slow = llhttp(buf);
  const shown = JSON.stringify(buf.toString('latin1'));
  assert.ok(
    slow !== undefined && !(slow instanceof Error),
    `llhttp rejects what was read without it: ${shown} (${String(slow)})`,
  );
  assert.equal(slow.upgrade, false, shown);
  assert.deepEqual(
    {
      status: fast.status,
      message: fast.message,
      headers: fast.headers,
      keepAlive: fast.keepAlive,
      end: fast.end,
    },
    {
      status: slow.status,
      message: slow.message,
      headers: slow.headers,
      keepAlive: slow.keepAlive,
      end: slow.end,
    },
    shown,
  );
  assert.equal(fast.length, contentLength(slow.headers), shown);
  return true;
}

const VALID = [
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nDate: Fri, 04 Dec 2026 20:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n',
  'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc',
  'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 5\r\nRetry-After: 1\r\n\r\nbusy!',
  'HTTP/1.1 301 \r\nLocation: /elsewhere\r\nContent-Length:0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/; HttpOnly\r\nSet-Cookie: b=2\r\nX-Empty:\r\nX-Tabs:\tin\tside\r\nContent-Length: 10\r\n\r\n0123456789',
  'HTTP/1.1 200 Ça va\r\nX-Latin: caf\xe9\r\ncontent-length: 2\r\n\r\nok',
];

/** Bytes where parsers tend to part ways. */
const TRICKY = [0, 9, 10, 13, 32, 34, 40, 44, 47, 58, 59, 61, 64, 127, 128, 255, 43, 45, 48, 57];
const LINES = [
  'Transfer-Encoding: chunked',
  'Content-Length: 7',
  'Content-Length: +7',
  'Content-Length: 0x7',
  'Connection: upgrade',
  'Upgrade: websocket',
  'Proxy-Connection: keep-alive',
  ' folded',
  '\tfolded',
  'X-Dup: 1',
  'Connection: close',
  'Connection: keep-alive, close',
  'content-LENGTH: 12',
  'X-Sp : 1',
  'X-No-Colon',
  ': no name',
  'Keep-Alive: timeout=9',
  'TE: trailers',
  'Trailer: X-Sum',
  'X-Request-Id: from-the-server',
  'x-request-ID:abc',
  'X-Tight:no-space',
  'X-Wide:  \t two',
  'Date: Sat, 05 Dec 2026 12:00:00 GMT',
];

function mutate(base: string, rnd: () => number): Buffer {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  let bytes = [...Buffer.from(base, 'latin1')];
  const edits = 1 + Math.floor(rnd() * 3);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rnd() * bytes.length);
    const r = rnd();
    if (r < 0.3) bytes.splice(at, 0, pick(TRICKY));
    else if (r < 0.5) bytes.splice(at, 1);
    else if (r < 0.7) bytes[at] = pick(TRICKY);
    else {
      // A whole line, at a line start.
      const text = Buffer.from(bytes).toString('latin1');
      const starts = [...text.matchAll(/\r\n/g)].map((m) => m.index + 2).filter((i) => i < text.length);
      const where = pick(starts);
      bytes = [...Buffer.from(`${text.slice(0, where)}${pick(LINES)}\r\n${text.slice(where)}`, 'latin1')];
    }
  }
  return Buffer.from(bytes);
}

test('every head read without llhttp is read the same by llhttp', () => {
  for (const head of VALID)
    assert.ok(agrees(Buffer.from(head, 'latin1')), `not read: ${JSON.stringify(head)}`);
  const rnd = seededRandom(20261204);
  let read = 0;
  let leftToLlhttp = 0;
  const N = 30_000;
  for (let k = 0; k < N; k++) {
    if (agrees(mutate(VALID[k % VALID.length]!, rnd))) read++;
    else leftToLlhttp++;
  }
  // Both kinds are well represented, so the comparison means something.
  assert.ok(read > N / 10, `only ${read} of ${N} mutated heads were read without llhttp`);
  assert.ok(leftToLlhttp > N / 10, `only ${leftToLlhttp} of ${N} mutated heads were left to llhttp`);
});

test('heads outside the common case are left to llhttp', () => {
  const ok = 'Content-Length: 2\r\n\r\nok';
  const left = [
    `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n`,
    `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${ok}`, // two lengths, even equal ones
    `HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end`, // no length
    `HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n${ok}`,
    `HTTP/1.1 200 OK\nX-A: 1\r\n${ok}`, // bare LF
    `HTTP/1.1 200 OK\r\nX-A : 1\r\n${ok}`,
    `HTTP/1.1 200 OK\r\nX-A: 1 \r\n${ok}`, // whitespace at a value's end
    `HTTP/1.1 200 OK\r\nConnection: keep-alive, Upgrade\r\nUpgrade: h2c\r\n${ok}`,
    `HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n${ok}`,
    `HTTP/1.1 101 Switching Protocols\r\n${ok}`,
    `HTTP/1.1 204 No Content\r\n${ok}`,
    `HTTP/1.1 304 Not Modified\r\n${ok}`,
    `HTTP/2.0 200 OK\r\n${ok}`,
    `HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456\r\n\r\n`,
    `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n`, // the head is not all in
    `HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(MAX_SIMPLE_HEAD)}\r\n${ok}`,
  ];
  for (const head of left)
    assert.equal(simpleResponseHead(Buffer.from(head, 'latin1')), undefined, JSON.stringify(head));
});

test('what follows the head is the body: the head length and the body length are given', () => {
  const head = simpleResponseHead(
    Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1', 'latin1'),
  );
  assert.ok(head !== undefined);
  assert.equal(head.end, 38);
  assert.equal(head.length, 5);
  assert.equal(head.keepAlive, true);
});

const REQUEST_ID = { name: 'X-Request-Id', lower: 'x-request-id' };

/**
 * The head the proxy sends on for `buf` when its strings are made (FrontRequest#writeHead's part
 * of it: the status line and the fields clientResponseHeaders keeps), then `tail`.
 */
function rebuilt(buf: Buffer, withId: boolean, tail: string): string | undefined {
  const head = simpleResponseHead(buf);
  if (head === undefined) return undefined;
  const fields = clientResponseHeaders(
    head.headers,
    false,
    withId ? REQUEST_ID : undefined,
    withId ? 'the-id' : undefined,
  );
  let text = `HTTP/1.1 ${head.status} ${head.message}\r\n`;
  for (let i = 0; i < fields.length; i += 2) text += `${fields[i]}: ${fields[i + 1]}\r\n`;
  return text + tail;
}

test('a head passed on as bytes is the head rebuilt from its strings, byte for byte', () => {
  const rnd = seededRandom(20261205);
  const tail = 'Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n';
  let compared = 0;
  const N = 20_000;
  for (let k = 0; k < N; k++) {
    const buf = k < VALID.length ? Buffer.from(VALID[k]!, 'latin1') : mutate(VALID[k % VALID.length]!, rnd);
    const withId = k % 2 === 0;
    const expected = rebuilt(buf, withId, tail);
    const head = scanResponseHead(buf);
    if (head === undefined) {
      assert.equal(expected, undefined);
      continue;
    }
    const passed = passedHead(
      buf,
      head,
      withId ? 'x-request-id' : undefined,
      withId ? `X-Request-Id: the-id\r\n${tail}` : tail,
    );
    assert.equal(passed.toString('latin1'), expected, JSON.stringify(buf.toString('latin1')));
    compared++;
  }
  assert.ok(compared > N / 10, `only ${compared} of ${N} heads were passed on as bytes`);
});

test("passing a head on drops its hop-by-hop fields and the server's request id, and says HTTP/1.1", () => {
  const buf = Buffer.from(
    'HTTP/1.0 200 Fine\r\nConnection: keep-alive\r\nX-A:1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n' +
      'Trailer: X-Sum\r\nx-request-id: theirs\r\nContent-Length: 2\r\nX-B: \t2\r\n\r\nok',
    'latin1',
  );
  const head = scanResponseHead(buf);
  assert.ok(head !== undefined);
  assert.equal(head.hasDate, false);
  assert.equal(
    passedHead(buf, head, 'x-request-id', 'X-Request-Id: ours\r\n\r\n').toString('latin1'),
    'HTTP/1.1 200 Fine\r\nX-A: 1\r\nContent-Length: 2\r\nX-B: 2\r\nX-Request-Id: ours\r\n\r\n',
  );
});
