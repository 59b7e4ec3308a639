/**
 * Passive health (ejection on the proxy's own failures, growing ejection time, maxEjectedPercent)
 * and the panic threshold, through the load balancer with real backends on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { Agent, createServer } from 'node:http';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import { waitFor } from '../helpers/index.js';
import { fetch, type RunningLb, startBackend, startLb } from './fixtures.js';
import { configWith } from './health-fixtures.js';

/** Sends GET / until `done()` holds (at most `max` requests); every answer must be a 200. */
async function requestUntil(
  lb: RunningLb,
  what: string,
  done: () => boolean | Promise<boolean>,
  max = 200,
): Promise<number> {
  for (let i = 0; i < max; i++) {
    if (await done()) return i;
    const r = await fetch(lb.port, '/');
    assert.equal(r.status, 200, `request ${i} while waiting for ${what}: ${r.text}`);
  }
  assert.ok(await done(), `${what}: not after ${max} requests`);
  return max;
}

/** The `ejected for …` log lines of `server`. */
function ejections(lb: RunningLb, server: string): string[] {
  return lb.log.lines.filter((l) => l.includes(`server ${server} ejected for`));
}

test('connection errors eject a server that its active check still calls up', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
        // Checks so rare that web-01 stays "up" for the whole test.
        healthCheck: { interval: 60_000 },
      },
      { passiveHealth: { consecutiveErrors: 3, baseEjectionTime: '30s' } },
    ),
  );
  await a.stop();
  // Each request sent to web-01 is refused there and retried on web-02.
  await requestUntil(lb, 'web-01 ejected', async () => (await lb.server('web-01')).ejected);
  const s1 = await lb.server('web-01');
  assert.equal(s1.state, 'up', 'the active check has not noticed anything');
  assert.equal(s1.failures, 3);
  const until = Date.parse(s1.ejectedUntil!);
  assert.ok(until > Date.now() + 25_000 && until <= Date.now() + 30_000, s1.ejectedUntil!);
  assert.deepEqual(ejections(lb, 'web-01').length, 1);
  assert.match(
    ejections(lb, 'web-01')[0]!,
    /^warn backend web: server web-01 ejected for 30s \(3 connection errors in a row, the last connect ECONNREFUSED; ejection 1 in a row\)$/,
  );
  // Ejected: no more attempts on web-01.
  for (let i = 0; i < 10; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-02');
  assert.equal((await lb.server('web-01')).failures, 3);
  assert.equal((await lb.server('web-02')).ejected, false);
  assert.equal((await lb.server('web-02')).ejectedUntil, null);
});

test('ejection time grows with each ejection in a row, and shrinks back once the server behaves', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const base = 300;
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
        healthCheck: { interval: 60_000 },
      },
      { passiveHealth: { consecutiveErrors: 2, baseEjectionTime: base, maxEjectionTime: 700 } },
    ),
  );
  await a.stop();
  const ejectOnce = async (n: number) => {
    await waitFor('web-01 back in rotation', async () => !(await lb.server('web-01')).ejected, {
      interval: 5,
    });
    await requestUntil(lb, `ejection ${n}`, () => ejections(lb, 'web-01').length === n);
    return ejections(lb, 'web-01')[n - 1]!;
  };
  assert.match(await ejectOnce(1), /ejected for 300ms .*ejection 1 in a row/);
  assert.match(await ejectOnce(2), /ejected for 600ms .*ejection 2 in a row/);
  // Capped at maxEjectionTime.
  assert.match(await ejectOnce(3), /ejected for 700ms .*ejection 3 in a row/);
  await waitFor('ejection over', async () => !(await lb.server('web-01')).ejected, { timeout: 2000 });
  assert.ok(lb.log.lines.some((l) => l.includes('server web-01 is back in rotation after its ejection')));

  // In rotation without an ejection for 3 × baseEjectionTime: three steps off the count of 3.
  await a.restart();
  const behaving = Date.now();
  await requestUntil(lb, 'web-01 serving again', () => a.requests >= 1);
  await waitFor('three base ejection times', () => Date.now() - behaving > 3 * base + 50, { timeout: 3000 });
  await a.stop();
  assert.match(await ejectOnce(4), /ejected for 300ms .*ejection 1 in a row/);
});

test('maxEjectedPercent: never more than that share of the servers is ejected', async (t) => {
  const live = await startBackend(t, 'web-04');
  const dead = [
    await startBackend(t, 'web-01'),
    await startBackend(t, 'web-02'),
    await startBackend(t, 'web-03'),
  ];
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [...dead, live].map((s) => ({ name: s.name, port: s.port })),
        healthCheck: { interval: 60_000 },
      },
      {
        passiveHealth: { consecutiveErrors: 1, baseEjectionTime: '30s', maxEjectedPercent: 50 },
        panicThreshold: 0,
      },
    ),
  );
  for (const d of dead) await d.stop();
  const ejected = async () =>
    (await lb.handle.status()).backends[0]!.servers.filter((s) => s.ejected).map((s) => s.name);
  await requestUntil(lb, 'two servers ejected', async () => (await ejected()).length === 2);
  // The third dead server keeps failing (its requests are retried on web-04) but stays in.
  const out = await ejected();
  const third = ['web-01', 'web-02', 'web-03'].find((n) => !out.includes(n))!;
  await requestUntil(lb, `more failures on ${third}`, async () => (await lb.server(third)).failures >= 3);
  const still = await ejected();
  assert.equal(still.length, 2, `ejected: ${still.join(', ')}`);
  assert.equal((await lb.server(third)).ejected, false);
  assert.ok(
    lb.log.lines.some((l) =>
      l.includes(
        `server ${third} not ejected (1 connection error in a row, the last connect ECONNREFUSED): 2 of 4 servers are ejected, maxEjectedPercent is 50`,
      ),
    ),
    lb.log.lines.join('\n'),
  );
});

/** A backend whose `/` answers 500 while `broken`; /healthz always passes. */
async function startFlaky(t: TestContext, name: string) {
  const flaky = { name, port: 0, broken: false, requests: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    flaky.requests++;
    res.writeHead(flaky.broken ? 500 : 200);
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  flaky.port = (server.address() as { port: number }).port;
  return flaky;
}

test('consecutive5xx: 5xx answers in a row eject a server, and are relayed, not retried', async (t) => {
  const a = await startFlaky(t, 'web-01');
  const b = await startFlaky(t, 'web-02');
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
        healthCheck: { interval: 60_000 },
      },
      { passiveHealth: { consecutive5xx: 3, baseEjectionTime: '30s' } },
    ),
  );
  a.broken = true;
  const statuses: number[] = [];
  for (let i = 0; i < 12 && !(await lb.server('web-01')).ejected; i++)
    statuses.push((await fetch(lb.port, '/')).status);
  assert.equal((await lb.server('web-01')).ejected, true);
  // A 5xx answer is relayed, not retried: the client saw web-01's three 500s.
  assert.equal(statuses.filter((s) => s === 500).length, 3);
  assert.ok(
    lb.log.lines.some((l) =>
      l.includes('server web-01 ejected for 30s (3 5xx answers in a row, the last HTTP 500'),
    ),
  );
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-02');
});

test('a 2xx answer resets the count: errors must come in a row', async (t) => {
  const a = await startFlaky(t, 'web-01');
  const lb = await startLb(
    t,
    await configWith(
      { servers: [{ name: 'web-01', port: a.port }], healthCheck: { interval: 60_000 } },
      { passiveHealth: { consecutive5xx: 2, maxEjectedPercent: 100 } },
    ),
  );
  for (let i = 0; i < 6; i++) {
    a.broken = i % 2 === 0;
    await fetch(lb.port, '/');
  }
  assert.equal((await lb.server('web-01')).ejected, false);
  a.broken = true;
  await fetch(lb.port, '/');
  await fetch(lb.port, '/');
  assert.equal((await lb.server('web-01')).ejected, true);
  // The only server, ejected (maxEjectedPercent 100): 503 until the ejection ends.
  assert.equal((await fetch(lb.port, '/')).status, 503);
});

test('panic threshold: below it, traffic spreads over every server, health ignored', async (t) => {
  const backends = [
    await startBackend(t, 'web-01'),
    await startBackend(t, 'web-02'),
    await startBackend(t, 'web-03'),
    await startBackend(t, 'web-04'),
  ];
  const lb = await startLb(
    t,
    await configWith(
      {
        servers: backends.map((s) => ({ name: s.name, port: s.port })),
        healthCheck: { interval: 30, rise: 1, fall: 1 },
      },
      { panicThreshold: 50 },
    ),
  );
  const panic = async () => (await lb.handle.status()).backends[0]!.panic;
  assert.equal(await panic(), false);
  // Over one client connection, so through one worker (each worker balances its own requests).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const served = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await fetch(lb.port, '/', { agent });
      assert.equal(r.status, 200);
      seen.add(r.text);
    }
    return [...seen].sort();
  };

  // Two of four healthy: 50 %, not below the threshold: only the healthy ones take traffic.
  backends[0]!.healthStatus = 500;
  backends[1]!.healthStatus = 500;
  await waitFor(
    'two servers down',
    async () => (await lb.server('web-01')).state === 'down' && (await lb.server('web-02')).state === 'down',
  );
  assert.equal(await panic(), false);
  assert.deepEqual(await served(8), ['web-03', 'web-04']);

  // One of four: panic. The servers still answer requests (only their health endpoint fails).
  backends[2]!.healthStatus = 500;
  await waitFor('panic', () => panic());
  assert.equal((await lb.server('web-03')).state, 'down');
  assert.deepEqual(await served(8), ['web-01', 'web-02', 'web-03', 'web-04']);
  assert.ok(
    lb.log.lines.some((l) =>
      l.includes('backend web: PANIC: 1 of 4 servers healthy, below panicThreshold 50%'),
    ),
  );

  // Healthy again: out of panic, down servers get nothing.
  backends[2]!.healthStatus = 200;
  await waitFor('out of panic', async () => !(await panic()));
  assert.deepEqual(await served(8), ['web-03', 'web-04']);

  // No healthy server at all is not panic: 503, as always.
  for (const b of backends) b.healthStatus = 500;
  await waitFor('every server down', async () =>
    (await lb.handle.status()).backends[0]!.servers.every((s) => s.state === 'down'),
  );
  assert.equal(await panic(), false);
  assert.equal((await fetch(lb.port, '/')).status, 503);
});
