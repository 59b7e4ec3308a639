import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BackendConfig } from '../../src/config/schema.js';
import type { Balancer, PickContext } from '../../src/lb/balance/balancer.js';
import { createBalancer } from '../../src/lb/balance/create-balancer.js';
import { request, servers, type TestServer } from './balance-fixtures.js';

const ALGORITHMS: BackendConfig['balance'][] = [
  'roundrobin',
  'static-rr',
  'leastconn',
  'first',
  'source',
  'hash',
  'random',
];

/** Actives a, b and backups x, y under `balance`, with the backend's backup options. */
function setup(balance: BackendConfig['balance'], options: { allBackups?: boolean; preempt?: boolean } = {}) {
  const list = servers([
    ['a', 1],
    ['b', 1],
    ['x', 1, true],
    ['y', 1, true],
  ]);
  const lb = createBalancer(
    {
      name: 'web',
      balance,
      hashOn: balance === 'hash' ? { type: 'uri' } : undefined,
      allBackups: options.allBackups ?? false,
      preempt: options.preempt ?? true,
    },
    list,
  );
  const [a, b, x, y] = list as [TestServer, TestServer, TestServer, TestServer];
  return { lb, a, b, x, y };
}

/** Each pick from another client and path, so hashing algorithms spread too. */
function contexts(n: number): PickContext[] {
  return Array.from({ length: n }, (_, i) => request({ ip: `192.0.2.${i + 1}`, url: `/item/${i}` }));
}

/** The set of servers `n` picks (with varied clients) went to. */
function served(lb: Balancer<TestServer>, n = 40): string[] {
  return [...new Set(contexts(n).map((ctx) => lb.pick(ctx)?.name ?? '-'))].sort();
}

describe('backups (every algorithm)', () => {
  for (const balance of ALGORITHMS) {
    test(`${balance}: backups only when every active server is down, the first usable one; traffic returns`, () => {
      const { lb, a, b, x } = setup(balance);
      const active = served(lb);
      assert.ok(
        active.every((n) => n === 'a' || n === 'b'),
        `actives up: ${active}`,
      );
      a.up = false;
      assert.deepEqual(served(lb), ['b']);
      b.up = false;
      assert.deepEqual(served(lb), ['x']);
      x.up = false;
      assert.deepEqual(served(lb), ['y']);
      x.up = true;
      assert.deepEqual(served(lb), ['x'], 'the first backup in config order');
      b.up = true;
      assert.deepEqual(served(lb), ['b'], 'traffic goes back to the active server (preempt)');
    });
  }
});

describe('allBackups', () => {
  for (const balance of ALGORITHMS.filter((b) => b !== 'first')) {
    test(`${balance}: with every active server down, traffic spreads over every usable backup`, () => {
      const { lb, a, b, y } = setup(balance, { allBackups: true });
      a.up = false;
      b.up = false;
      assert.deepEqual(served(lb), ['x', 'y']);
      y.up = false;
      assert.deepEqual(served(lb), ['x']);
      a.up = true;
      assert.deepEqual(served(lb), ['a']);
    });
  }

  test('first: backups fill up in config order too', () => {
    const { lb, a, b, x } = setup('first', { allBackups: true });
    a.up = false;
    b.up = false;
    x.maxConn = 1;
    assert.deepEqual(served(lb), ['x']);
    x.inFlight = 1;
    assert.deepEqual(served(lb), ['y']);
  });
});

describe('preempt: false (nopreempt)', () => {
  for (const balance of ALGORITHMS) {
    test(`${balance}: once a backup took over it keeps the traffic while usable`, () => {
      const { lb, a, b, x, y } = setup(balance, { preempt: false });
      assert.ok(served(lb).every((n) => n === 'a' || n === 'b'));
      a.up = false;
      b.up = false;
      assert.deepEqual(served(lb), ['x']);
      a.up = true;
      b.up = true;
      assert.deepEqual(served(lb), ['x'], 'the actives are back, the backup keeps the traffic');
      x.up = false;
      assert.deepEqual(served(lb), ['y']);
      x.up = true;
      assert.deepEqual(served(lb), ['y'], 'the backup that took over keeps it');
      y.up = false;
      x.up = false;
      const back = served(lb);
      assert.ok(
        back.every((n) => n === 'a' || n === 'b'),
        `no backup usable: ${back}`,
      );
      x.up = true;
      y.up = true;
      assert.ok(
        served(lb).every((n) => n === 'a' || n === 'b'),
        'the actives hold it again',
      );
    });
  }

  test('with allBackups, the backups keep the traffic spread over them', () => {
    const { lb, a, b } = setup('roundrobin', { preempt: false, allBackups: true });
    a.up = false;
    b.up = false;
    assert.deepEqual(served(lb), ['x', 'y']);
    a.up = true;
    assert.deepEqual(served(lb), ['x', 'y']);
  });

  test('a retry that leaves out the only usable active server is no takeover', () => {
    const { lb, a, b } = setup('roundrobin', { preempt: false });
    b.up = false;
    assert.equal(lb.pick(request(), a)?.name, 'x');
    assert.equal(lb.pick(request())?.name, 'a');
  });
});
