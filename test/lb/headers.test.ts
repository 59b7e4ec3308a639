import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../src/lb/proxy/headers.js';

type Pairs = Array<[string, string]>;

/** Raw header list from [name, value] pairs, and back. */
const raw = (pairs: Pairs): string[] => pairs.flat();
function pairs(list: string[]): Pairs {
  const out: Pairs = [];
  for (let i = 0; i < list.length; i += 2) out.push([list[i]!, list[i + 1]!]);
  return out;
}

function forward(input: Pairs): { headers: Pairs; body: boolean } {
  const out: string[] = [];
  const body = upstreamRequestHeaders(raw(input), '10.0.0.9', 'http', '127.0.0.1:8081', out);
  return { headers: pairs(out), body };
}

test('request: hop-by-hop fields go, X-Forwarded-* are added, Host is kept', () => {
  const { headers, body } = forward([
    ['Host', 'example.test'],
    ['Connection', 'keep-alive, X-Secret'],
    ['Keep-Alive', 'timeout=5'],
    ['Proxy-Connection', 'keep-alive'],
    ['TE', 'trailers'],
    ['Trailer', 'X-Checksum'],
    ['Upgrade', 'websocket'],
    ['X-Secret', 'drop me'],
    ['Accept', '*/*'],
  ]);
  assert.equal(body, false);
  assert.deepEqual(headers, [
    ['Host', 'example.test'],
    ['Accept', '*/*'],
    ['X-Forwarded-For', '10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'example.test'],
  ]);
});

test('request: X-Forwarded-For is appended to; forged Proto and Host are replaced', () => {
  const { headers } = forward([
    ['host', 'a.test'],
    ['x-forwarded-for', '1.1.1.1'],
    ['X-Forwarded-For', '2.2.2.2'],
    ['X-Forwarded-Proto', 'https'],
    ['X-Forwarded-Host', 'evil.test'],
  ]);
  assert.deepEqual(headers, [
    ['host', 'a.test'],
    ['X-Forwarded-For', '1.1.1.1, 2.2.2.2, 10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'a.test'],
  ]);
});

test('request: Connection cannot hide X-Forwarded-For or Content-Length', () => {
  const { headers, body } = forward([
    ['Host', 'a.test'],
    ['Connection', 'x-forwarded-for, content-length'],
    ['X-Forwarded-For', '1.1.1.1'],
    ['Content-Length', '3'],
  ]);
  assert.equal(body, true);
  assert.deepEqual(headers, [
    ['Host', 'a.test'],
    ['Content-Length', '3'],
    ['X-Forwarded-For', '10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['X-Forwarded-Host', 'a.test'],
  ]);
});

test('request: body detection, chunked re-encoding, Host fallback', () => {
  assert.equal(forward([['Content-Length', '0']]).body, false);
  const chunked = forward([['Transfer-Encoding', 'chunked']]);
  assert.equal(chunked.body, true);
  assert.deepEqual(chunked.headers, [
    ['Host', '127.0.0.1:8081'],
    ['X-Forwarded-For', '10.0.0.9'],
    ['X-Forwarded-Proto', 'http'],
    ['Transfer-Encoding', 'chunked'],
  ]);
});

test('response: hop-by-hop fields go, repeated fields stay; Connection: close while closing', () => {
  const input = raw([
    ['Content-Type', 'text/plain'],
    ['Connection', 'keep-alive, X-Internal'],
    ['Keep-Alive', 'timeout=5'],
    ['Transfer-Encoding', 'chunked'],
    ['Trailer', 'X-Checksum'],
    ['X-Internal', '1'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
  ]);
  assert.deepEqual(pairs(clientResponseHeaders(input, false)), [
    ['Content-Type', 'text/plain'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
  ]);
  assert.deepEqual(pairs(clientResponseHeaders(['Content-Length', '2'], true)), [
    ['Content-Length', '2'],
    ['Connection', 'close'],
  ]);
});
