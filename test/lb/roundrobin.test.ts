import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BalancedServer, PickContext } from '../../src/lb/balance/balancer.js';
import { RoundRobinBalancer } from '../../src/lb/balance/roundrobin.js';

/** A test server: `up` and `weight` drive the balancer's view of it. */
class S implements BalancedServer {
  up = true;
  inFlight = 0;
  maxConn = undefined;
  constructor(
    readonly name: string,
    public weight: number,
    readonly backup: boolean,
  ) {}
  get effectiveWeight(): number {
    return this.weight;
  }
  get usable(): boolean {
    return this.up;
  }
}

const ctx: PickContext = { clientIp: '127.0.0.1', url: '/', header: () => undefined };

function servers(spec: Array<[name: string, weight: number, backup?: boolean]>): S[] {
  return spec.map(([name, weight, backup = false]) => new S(name, weight, backup));
}

function picks(b: RoundRobinBalancer<S>, n: number): string[] {
  return Array.from({ length: n }, () => b.pick(ctx)?.name ?? '-');
}

describe('smooth weighted round robin', () => {
  test('weights 5:1:1 give a,a,b,a,c,a,a, cycle after cycle', () => {
    const b = new RoundRobinBalancer(
      servers([
        ['a', 5],
        ['b', 1],
        ['c', 1],
      ]),
    );
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    assert.deepEqual(picks(b, 21), [...cycle, ...cycle, ...cycle]);
  });

  test('equal weights alternate in config order', () => {
    const b = new RoundRobinBalancer(
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
    );
    assert.deepEqual(picks(b, 9), ['a', 'b', 'c', 'a', 'b', 'c', 'a', 'b', 'c']);
    const two = new RoundRobinBalancer(
      servers([
        ['a', 3],
        ['b', 3],
      ]),
    );
    assert.deepEqual(picks(two, 6), ['a', 'b', 'a', 'b', 'a', 'b']);
  });

  test('weights 2:1 over 300 picks follow the weights exactly', () => {
    const b = new RoundRobinBalancer(
      servers([
        ['a', 2],
        ['b', 1],
      ]),
    );
    const counts = { a: 0, b: 0 } as Record<string, number>;
    for (const name of picks(b, 300)) counts[name]!++;
    assert.deepEqual(counts, { a: 200, b: 100 });
  });

  test('weight 0 is never picked', () => {
    const b = new RoundRobinBalancer(
      servers([
        ['a', 0],
        ['b', 1],
        ['c', 1],
      ]),
    );
    assert.deepEqual(picks(b, 6), ['b', 'c', 'b', 'c', 'b', 'c']);
    const none = new RoundRobinBalancer(servers([['a', 0]]));
    assert.equal(none.pick(ctx), undefined);
  });

  test('only servers that are up are picked; none up gives undefined', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    const b = new RoundRobinBalancer(list);
    list[1]!.up = false;
    assert.deepEqual(picks(b, 4), ['a', 'c', 'a', 'c']);
    list[1]!.up = true;
    assert.deepEqual(new Set(picks(b, 3)), new Set(['a', 'b', 'c']));
    for (const s of list) s.up = false;
    assert.equal(b.pick(ctx), undefined);
  });

  test('exclude leaves one server out of a pick (retry on another server)', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
    ]);
    const b = new RoundRobinBalancer(list);
    assert.equal(b.pick(ctx, list[0])?.name, 'b');
    assert.equal(b.pick(ctx, list[0])?.name, 'b');
    assert.equal(b.pick(ctx, list[1])?.name, 'a');
    assert.equal(new RoundRobinBalancer([list[0]!]).pick(ctx, list[0]), undefined);
  });
});

describe('active-passive: backups', () => {
  test('backups get traffic only when every active server is down, the first backup that is up', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['x', 1, true],
      ['y', 1, true],
    ]);
    const [a, b, x] = list as [S, S, S, S];
    const lb = new RoundRobinBalancer(list);
    assert.deepEqual(picks(lb, 4), ['a', 'b', 'a', 'b']);
    a.up = false;
    assert.deepEqual(picks(lb, 3), ['b', 'b', 'b']);
    b.up = false;
    assert.deepEqual(picks(lb, 3), ['x', 'x', 'x']);
    x.up = false;
    assert.deepEqual(picks(lb, 3), ['y', 'y', 'y']);
    x.up = true;
    assert.deepEqual(picks(lb, 2), ['x', 'x']);
    b.up = true;
    assert.deepEqual(picks(lb, 3), ['b', 'b', 'b']);
  });

  test('a backup with weight 0 is never picked', () => {
    const list = servers([
      ['a', 1],
      ['x', 0, true],
      ['y', 1, true],
    ]);
    list[0]!.up = false;
    assert.deepEqual(picks(new RoundRobinBalancer(list), 2), ['y', 'y']);
  });
});
