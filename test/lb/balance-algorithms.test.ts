import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createBalancer } from '../../src/lb/balance/create-balancer.js';
import { FirstBalancer } from '../../src/lb/balance/first.js';
import { HashBalancer } from '../../src/lb/balance/hash.js';
import { LeastConnBalancer } from '../../src/lb/balance/leastconn.js';
import { RandomBalancer } from '../../src/lb/balance/random.js';
import { RoundRobinBalancer } from '../../src/lb/balance/roundrobin.js';
import { SourceBalancer } from '../../src/lb/balance/source.js';
import { StaticRoundRobinBalancer } from '../../src/lb/balance/static-rr.js';
import { seededRandom } from '../helpers/index.js';
import { picks, request, servers, tally, TestServer } from './balance-fixtures.js';

describe('roundrobin: weights changed at run time', () => {
  test('a new weight counts from the next pick, and the order stays smooth', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    const b = new RoundRobinBalancer(list);
    assert.deepEqual(picks(b, 3), ['a', 'b', 'c']);
    list[0]!.weight = 5;
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    assert.deepEqual(picks(b, 14), [...cycle, ...cycle]);
    list[0]!.weight = 1;
    assert.deepEqual(picks(b, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
    list[1]!.weight = 0;
    assert.deepEqual(picks(b, 4), ['a', 'c', 'a', 'c']);
  });

  test('a change in the middle of a cycle: shares follow the new weights at once, never bunched', () => {
    const list = servers([
      ['a', 5],
      ['b', 1],
      ['c', 1],
    ]);
    const b = new RoundRobinBalancer(list);
    assert.deepEqual(picks(b, 3), ['a', 'a', 'b']);
    list[0]!.weight = 1;
    list[2]!.weight = 2;
    // 1:1:2 from here on: every 40 picks within 2 of 10:10:20, and c never three times in a row.
    const after = picks(b, 400);
    for (let i = 0; i < after.length; i += 40) {
      const counts = tally(after.slice(i, i + 40));
      for (const [name, want] of [
        ['a', 10],
        ['b', 10],
        ['c', 20],
      ] as const)
        assert.ok(Math.abs((counts[name] ?? 0) - want) <= 2, `${name} at ${i}: ${JSON.stringify(counts)}`);
    }
    assert.ok(!after.join('').includes('ccc'), after.join(''));
  });
});

describe('static-rr', () => {
  test('weights 5:1:1 laid out once: a,a,b,a,c,a,a every cycle; run-time weight changes do not count', () => {
    const list = servers([
      ['a', 5],
      ['b', 1],
      ['c', 1],
    ]);
    const b = new StaticRoundRobinBalancer(list);
    const cycle = ['a', 'a', 'b', 'a', 'c', 'a', 'a'];
    assert.deepEqual(picks(b, 14), [...cycle, ...cycle]);
    list[0]!.weight = 1; // static: still 5 turns for a
    assert.deepEqual(picks(b, 7), cycle);
  });

  test('a server that is down (or at weight 0) loses its turns and gets them back when it returns', () => {
    const list = servers([
      ['a', 2],
      ['b', 1],
      ['c', 1],
    ]);
    const b = new StaticRoundRobinBalancer(list);
    assert.deepEqual(picks(b, 8), ['a', 'b', 'c', 'a', 'a', 'b', 'c', 'a']);
    list[1]!.up = false;
    assert.deepEqual(picks(b, 6), ['a', 'c', 'a', 'a', 'c', 'a']);
    list[1]!.up = true;
    list[2]!.weight = 0;
    assert.deepEqual(picks(b, 6), ['a', 'b', 'a', 'a', 'b', 'a']);
    for (const s of list) s.up = false;
    assert.equal(b.pick(request()), undefined);
  });

  test('createBalancer lays the cycle out with the configured weights', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
    ]);
    const b = createBalancer(
      {
        name: 'web',
        balance: 'static-rr',
        hashOn: undefined,
        allBackups: false,
        preempt: true,
        servers: [{ weight: 2 }, { weight: 1 }],
      },
      list,
    );
    assert.deepEqual(picks(b, 6), ['a', 'b', 'a', 'a', 'b', 'a']);
  });
});

describe('leastconn', () => {
  test('the server with the fewest requests in flight; equal loads take turns', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    const [a, b, c] = list as [TestServer, TestServer, TestServer];
    const lb = new LeastConnBalancer(list);
    assert.deepEqual(picks(lb, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
    a.inFlight = 2;
    c.inFlight = 1;
    assert.deepEqual(picks(lb, 3), ['b', 'b', 'b']);
    b.inFlight = 1;
    assert.deepEqual(picks(lb, 4), ['b', 'c', 'b', 'c']);
    b.up = false;
    assert.deepEqual(picks(lb, 2), ['c', 'c']);
  });

  test('weighted: lowest inFlight / weight', () => {
    const list = servers([
      ['a', 1],
      ['b', 4],
    ]);
    const [a, b] = list as [TestServer, TestServer];
    const lb = new LeastConnBalancer(list);
    a.inFlight = 1;
    b.inFlight = 3; // 3/4 < 1/1
    assert.equal(lb.pick(request())?.name, 'b');
    b.inFlight = 5; // 5/4 > 1/1
    assert.equal(lb.pick(request())?.name, 'a');
    // Requests that stay in flight end up spread 1:4.
    a.inFlight = 0;
    b.inFlight = 0;
    for (let i = 0; i < 50; i++) lb.pick(request())!.inFlight++;
    assert.deepEqual([a.inFlight, b.inFlight], [10, 40]);
  });

  test('exclude leaves the failed server out of a retry even when it is the least loaded', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
    ]);
    list[1]!.inFlight = 5;
    const lb = new LeastConnBalancer(list);
    assert.equal(lb.pick(request(), list[0])?.name, 'b');
  });
});

describe('first', () => {
  test('the first server in config order with a free slot; a server without maxconn always has one', () => {
    const list = [
      new TestServer('a', 1, false, 2),
      new TestServer('b', 1, false, 1),
      new TestServer('c', 1, false, undefined),
    ];
    const [a, b, c] = list as [TestServer, TestServer, TestServer];
    const lb = new FirstBalancer(list);
    const sequence: string[] = [];
    for (let i = 0; i < 6; i++) {
      const s = lb.pick(request())!;
      s.inFlight++;
      sequence.push(s.name);
    }
    assert.deepEqual(sequence, ['a', 'a', 'b', 'c', 'c', 'c']);
    a.inFlight--; // a frees a slot: it is first again
    assert.equal(lb.pick(request())?.name, 'a');
    a.up = false;
    b.inFlight = 0;
    assert.equal(lb.pick(request())?.name, 'b');
    b.weight = 0;
    assert.equal(lb.pick(request())?.name, 'c');
    c.up = false;
    assert.equal(lb.pick(request()), undefined);
  });

  test('every server full: no pick (the request waits in the backend queue)', () => {
    const list = [new TestServer('a', 1, false, 1), new TestServer('b', 1, false, 2)];
    list[0]!.inFlight = 1;
    list[1]!.inFlight = 2;
    const lb = new FirstBalancer(list);
    assert.equal(lb.pick(request()), undefined);
    list[1]!.inFlight = 1;
    assert.equal(lb.pick(request())?.name, 'b');
  });
});

describe('random with two choices', () => {
  test('idle servers get shares that follow their weights', () => {
    const list = servers([
      ['a', 3],
      ['b', 1],
    ]);
    const lb = new RandomBalancer(list, {}, seededRandom(1));
    const counts = tally(picks(lb, 20_000));
    const share = counts['a']! / 20_000;
    assert.ok(Math.abs(share - 0.75) < 0.02, `a's share ${share}`);
  });

  test('the more loaded of the two draws never wins: a busy server gets nothing while others are idle', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 1],
    ]);
    list[0]!.inFlight = 10;
    const lb = new RandomBalancer(list, {}, seededRandom(2));
    const counts = tally(picks(lb, 3000));
    assert.equal(counts['a'], undefined);
    for (const name of ['b', 'c', 'd'])
      assert.ok(Math.abs(counts[name]! - 1000) < 120, JSON.stringify(counts));
  });

  test('under load, two choices keep the servers far more even than one random choice', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 1],
      ['e', 1],
    ]);
    const lb = new RandomBalancer(list, {}, seededRandom(3));
    const oneChoice = [0, 0, 0, 0, 0];
    const random = seededRandom(4);
    /** Ends one request in flight, chosen uniformly among all of them, once 50 are in flight. */
    const finishOne = (loads: number[]): number[] => {
      const total = loads.reduce((x, y) => x + y, 0);
      if (total < 50) return loads;
      let r = Math.floor(random() * total);
      const i = loads.findIndex((n) => (r -= n) < 0);
      loads[i]!--;
      return loads;
    };
    const spread = (loads: number[]) => Math.max(...loads) - Math.min(...loads);
    let twoSum = 0;
    let oneSum = 0;
    for (let i = 0; i < 5000; i++) {
      finishOne(list.map((s) => s.inFlight)).forEach((n, k) => (list[k]!.inFlight = n));
      finishOne(oneChoice);
      lb.pick(request())!.inFlight++;
      oneChoice[Math.floor(random() * 5)]!++;
      if (i >= 500) {
        twoSum += spread(list.map((s) => s.inFlight));
        oneSum += spread(oneChoice);
      }
    }
    // About 2.7 against 7.2 requests between the busiest and the idlest server, on average.
    assert.ok(twoSum * 2 < oneSum, `two choices: ${twoSum / 4500}, one: ${oneSum / 4500}`);
  });

  test('one eligible server: always that one; none: undefined', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
    ]);
    const lb = new RandomBalancer(list, {}, seededRandom(5));
    list[0]!.up = false;
    assert.deepEqual(picks(lb, 3), ['b', 'b', 'b']);
    assert.equal(lb.pick(request(), list[1]), undefined);
  });
});

describe('source', () => {
  const ips = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);

  test('a client IP always goes to the same server, on any balancer built from the same servers', () => {
    const one = new SourceBalancer(
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
    );
    const two = new SourceBalancer(
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
    );
    for (const ip of ips.slice(0, 200)) {
      const ctx = request({ ip });
      const first = one.pick(ctx)!.name;
      assert.equal(one.pick(ctx)!.name, first);
      assert.equal(two.pick(ctx)!.name, first);
      assert.equal(
        one.pick(request({ ip: `::ffff:${ip}` }))!.name,
        first,
        'IPv4-mapped IPv6 is the same client',
      );
    }
  });

  test('clients spread over the servers by weight', () => {
    const lb = new SourceBalancer(
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
        ['d', 2],
      ]),
    );
    const counts = tally(ips.map((ip) => lb.pick(request({ ip }))!.name));
    for (const name of ['a', 'b', 'c'])
      assert.ok(Math.abs(counts[name]! / 10_000 - 0.2) < 0.04, JSON.stringify(counts));
    assert.ok(Math.abs(counts['d']! / 10_000 - 0.4) < 0.05, JSON.stringify(counts));
  });

  test('a server going down moves only its own clients, and they come back when it returns', () => {
    const list = servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
      ['d', 1],
    ]);
    const lb = new SourceBalancer(list);
    const before = ips.map((ip) => lb.pick(request({ ip }))!.name);
    list[2]!.up = false;
    const during = ips.map((ip) => lb.pick(request({ ip }))!.name);
    list[2]!.up = true;
    const after = ips.map((ip) => lb.pick(request({ ip }))!.name);
    for (let i = 0; i < ips.length; i++) {
      if (before[i] !== 'c') assert.equal(during[i], before[i]);
      else assert.notEqual(during[i], 'c');
    }
    assert.deepEqual(after, before);
  });
});

describe('hash: keys', () => {
  const three = () =>
    servers([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);

  test('uri: the path without the query string', () => {
    const lb = new HashBalancer(three(), { type: 'uri' });
    const names = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const first = lb.pick(request({ url: `/page/${i}` }))!.name;
      names.add(first);
      assert.equal(lb.pick(request({ url: `/page/${i}?q=${i}` }))!.name, first);
      assert.equal(lb.pick(request({ url: `/page/${i}?other` }))!.name, first);
    }
    assert.equal(names.size, 3, 'paths spread over every server');
  });

  test('header: by name, case-insensitive; a request without it is balanced round robin', () => {
    const lb = new HashBalancer(three(), { type: 'header', name: 'X-User-Id' });
    for (let i = 0; i < 30; i++) {
      const ctx = request({ headers: { 'x-user-id': `user-${i}` } });
      const first = lb.pick(ctx)!.name;
      assert.deepEqual(picks(lb, 3, ctx), [first, first, first]);
    }
    assert.deepEqual(picks(lb, 6), ['a', 'b', 'c', 'a', 'b', 'c']);
    assert.deepEqual(picks(lb, 3, request({ headers: { 'x-user-id': '' } })), ['a', 'b', 'c']);
  });

  test('cookie: the value of one cookie among others', () => {
    const lb = new HashBalancer(three(), { type: 'cookie', name: 'session' });
    const names = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const first = lb.pick(request({ headers: { cookie: `session=s${i}` } }))!.name;
      names.add(first);
      const other = request({ headers: { cookie: `theme=dark; session="s${i}"; lang=en` } });
      assert.equal(lb.pick(other)!.name, first);
    }
    assert.ok(names.size > 1);
    assert.deepEqual(picks(lb, 3, request({ headers: { cookie: 'sessionx=1; theme=dark' } })), [
      'a',
      'b',
      'c',
    ]);
  });
});
