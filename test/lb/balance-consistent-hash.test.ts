import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HashBalancer } from '../../src/lb/balance/hash.js';
import { request, servers, type TestServer } from './balance-fixtures.js';

const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function route(lb: HashBalancer<TestServer>): string[] {
  return KEYS.map((k) => lb.pick(request({ headers: { 'x-user': k } }))!.name);
}

function byHeader(list: TestServer[]): HashBalancer<TestServer> {
  return new HashBalancer(list, { type: 'header', name: 'x-user' });
}

const FIVE: Array<[string, number]> = [
  ['web-01', 1],
  ['web-02', 1],
  ['web-03', 1],
  ['web-04', 1],
  ['web-05', 1],
];

test('10,000 keys over 5 servers: each gets about a fifth', () => {
  const counts = new Map<string, number>();
  for (const name of route(byHeader(servers(FIVE)))) counts.set(name, (counts.get(name) ?? 0) + 1);
  for (const [name, n] of counts) assert.ok(Math.abs(n / KEYS.length - 0.2) < 0.05, `${name}: ${n}`);
});

test('removing one of 5 servers moves only its keys, about 1/5 of them; adding it back restores them', () => {
  const before = route(byHeader(servers(FIVE)));
  const after = route(byHeader(servers(FIVE.filter(([name]) => name !== 'web-03'))));
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(before[i], 'web-03', `key ${KEYS[i]} moved from ${before[i]} to ${after[i]}`);
  }
  const share = moved / KEYS.length;
  assert.ok(share > 0.15 && share < 0.25, `moved ${share}`);
  // Its keys spread over the other four rather than all landing on one neighbour.
  const receivers = new Set(after.filter((_, i) => before[i] === 'web-03'));
  assert.ok(receivers.size >= 3, `keys went to ${[...receivers].join(', ')}`);
  assert.deepEqual(route(byHeader(servers(FIVE))), before);
});

test('a server that is down: its keys go to the next server on the ring, the others stay', () => {
  const list = servers(FIVE);
  const lb = byHeader(list);
  const before = route(lb);
  list[1]!.up = false;
  const during = route(lb);
  // Same as a ring without web-02.
  assert.deepEqual(during, route(byHeader(servers(FIVE.filter(([name]) => name !== 'web-02')))));
  for (let i = 0; i < KEYS.length; i++) if (before[i] !== 'web-02') assert.equal(during[i], before[i]);
  list[1]!.up = true;
  assert.deepEqual(route(lb), before);
});

test('weights: twice the weight, twice the keys; a weight raised at run time takes keys only for itself', () => {
  const list = servers([
    ['a', 1],
    ['b', 1],
    ['c', 2],
  ]);
  const lb = byHeader(list);
  const before = route(lb);
  const c = before.filter((n) => n === 'c').length / KEYS.length;
  assert.ok(Math.abs(c - 0.5) < 0.05, `c's share ${c}`);
  list[0]!.weight = 2;
  const after = route(lb);
  let moved = 0;
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    assert.equal(after[i], 'a', 'keys only move to the server whose weight grew');
  }
  const a = after.filter((n) => n === 'a').length / KEYS.length;
  assert.ok(Math.abs(a - 1 / 3) < 0.05 && moved > 0, `a's share ${a}`);
});

test('exclude: a retry goes to the next server on the ring', () => {
  const list = servers(FIVE);
  const lb = byHeader(list);
  for (const key of KEYS.slice(0, 100)) {
    const ctx = request({ headers: { 'x-user': key } });
    const first = lb.pick(ctx)!;
    const retry = lb.pick(ctx, first)!;
    assert.notEqual(retry, first);
    first.up = false;
    assert.equal(lb.pick(ctx), retry);
    first.up = true;
  }
});
