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
