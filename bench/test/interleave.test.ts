import assert from 'node:assert/strict';
import { test } from 'node:test';
import { roundOrder } from '../benchmark.js';

test('interleaved rounds: each contender runs once per round, and the round leader moves down the list', () => {
  const ids = ['direct', 'tandem-l7', 'haproxy-http'];
  const rounds = [0, 1, 2, 3].map((r) => roundOrder(ids, r));
  for (const order of rounds) assert.deepEqual([...order].sort(), [...ids].sort());
  assert.deepEqual(
    rounds.map((o) => o[0]),
    ['direct', 'tandem-l7', 'haproxy-http', 'direct'],
  );
  // Relative order is kept: each contender follows the same one (a rotation, not a shuffle).
  assert.deepEqual(rounds[1], ['tandem-l7', 'haproxy-http', 'direct']);
  assert.deepEqual(roundOrder([], 2), []);
});

test('interleaved rounds: a Tandem contender runs right beside its HAProxy, which one first alternating by round', () => {
  const ids = ['direct', 'tandem-l7', 'tandem-l4', 'haproxy-http', 'haproxy-tcp', 'nginx'];
  const partner: Record<string, string> = { 'tandem-l7': 'haproxy-http', 'tandem-l4': 'haproxy-tcp' };
  const rounds = [0, 1, 2, 3, 4].map((r) => roundOrder(ids, r, (id) => partner[id]));
  for (const order of rounds) {
    assert.deepEqual([...order].sort(), [...ids].sort());
    for (const [t, h] of Object.entries(partner)) {
      assert.equal(
        Math.abs(order.indexOf(t) - order.indexOf(h)),
        1,
        `${t} beside ${h} in ${order.join(',')}`,
      );
    }
  }
  // Four groups (direct, the two pairs, nginx), rotated one place per round; the reference first
  // in even rounds.
  assert.deepEqual(rounds[0], ['direct', 'haproxy-http', 'tandem-l7', 'haproxy-tcp', 'tandem-l4', 'nginx']);
  assert.deepEqual(rounds[1], ['tandem-l7', 'haproxy-http', 'tandem-l4', 'haproxy-tcp', 'nginx', 'direct']);
  assert.deepEqual(rounds[2], ['haproxy-tcp', 'tandem-l4', 'nginx', 'direct', 'haproxy-http', 'tandem-l7']);
  // A partner that is not in the list (HAProxy not installed): the contender stands alone.
  assert.deepEqual(
    roundOrder(['direct', 'tandem-l7'], 1, (id) => partner[id]),
    ['tandem-l7', 'direct'],
  );
});
