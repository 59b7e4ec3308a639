/**
 * The load balancer with worker processes: the workers accept the client connections on the
 * sockets the primary shares with them, and every worker sees each health and operator change;
 * counters are summed over the workers; a worker that dies is replaced. Real processes, real
 * sockets on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { test } from 'node:test';
import type { ResolvedConfig } from '../../src/config/load.js';
import { startLoadBalancer } from '../../src/lb/load-balancer.js';
import {
  WORKER_MALLOC_ENV,
  WORKER_SEMI_SPACE_MIB,
  workerEnv,
  workerExecArgv,
} from '../../src/lb/workers/worker-pool.js';
import type { LbStatus } from '../../src/lb/stats/status.js';
import { isAlive, waitFor } from '../helpers/index.js';
import { admin, adminPort, getVia } from './admin-fixtures.js';
import {
  type ConfigOptions,
  fetch,
  memoryLogger,
  rawConfig,
  resolveTestConfig,
  type RunningLb,
  startBackend,
  startLb,
  type TestBackend,
} from './fixtures.js';

const WORKERS = 3;
/** Client connections of the one-worker test. */
const CONNECTIONS = 4 * WORKERS;

/** A config with `workers` set, and `backend`'s keys merged into backend `web`. */
async function workersConfig(
  opts: ConfigOptions,
  workers: number | 'auto',
  backend: Record<string, unknown> = {},
): Promise<ResolvedConfig> {
  const raw = await rawConfig(opts);
  (raw['loadBalancers'] as Array<Record<string, unknown>>)[0]!['workers'] = workers;
  Object.assign((raw['backends'] as Array<Record<string, unknown>>)[0]!, backend);
  return resolveTestConfig(raw);
}

async function threeBackends(t: TestContext): Promise<TestBackend[]> {
  return [await startBackend(t, 'web-01'), await startBackend(t, 'web-02'), await startBackend(t, 'web-03')];
}

/** `n` keep-alive client connections, each its own agent, opened with one request each (at once). */
async function openConnections(t: TestContext, port: number, n: number): Promise<Agent[]> {
  const agents = Array.from({ length: n }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
  t.after(() => {
    for (const a of agents) a.destroy();
  });
  const first = await Promise.all(agents.map((a) => getVia(a, port, '/')));
  for (const r of first) assert.equal(r.status, 200);
  return agents;
}

/**
 * Keep-alive client connections until every worker holds at least two (the workers accept them
 * from one socket, whichever is first): a round of `WORKERS` at a time, at most 20 rounds.
 */
async function connectionsOnEveryWorker(t: TestContext, lb: RunningLb): Promise<Agent[]> {
  const agents: Agent[] = [];
  for (let round = 0; round < 20; round++) {
    agents.push(...(await openConnections(t, lb.port, WORKERS)));
    const workers = workersOf(await lb.handle.status());
    if (workers.every((w) => w.connections >= 2)) return agents;
  }
  assert.fail(`some worker never got a connection: ${JSON.stringify(workersOf(await lb.handle.status()))}`);
}

/**
 * One request on each connection (each must go over the connection opened before, so over the
 * worker that holds it): the servers that answered.
 */
async function onEveryConnection(
  agents: Agent[],
  port: number,
  sockets: Map<Agent, Socket>,
): Promise<string[]> {
  const replies = await Promise.all(agents.map((a) => getVia(a, port, '/')));
  return replies.map((r, i) => {
    assert.equal(r.status, 200, r.text);
    const before = sockets.get(agents[i]!);
    if (before === undefined) sockets.set(agents[i]!, r.socket);
    else assert.equal(r.socket, before, 'the request went over the connection opened before');
    return r.text;
  });
}

function workersOf(status: LbStatus): NonNullable<LbStatus['workers']> {
  assert.ok(status.workers, 'the status lists the workers');
  return status.workers;
}

test('health and operator changes reach every worker: connections spread over all of them follow each change', async (t) => {
  const backends = await threeBackends(t);
  const lb = await startLb(
    t,
    await workersConfig(
      { servers: backends.map((b) => ({ name: b.name, port: b.port })), healthCheck: { rise: 1, fall: 1 } },
      WORKERS,
    ),
  );
  const agents = await connectionsOnEveryWorker(t, lb);
  const sockets = new Map<Agent, Socket>();
  // Every worker holds some of the connections.
  const workers = workersOf(await lb.handle.status());
  assert.equal(workers.length, WORKERS);
  for (const w of workers) assert.equal(w.state, 'ready');
  assert.equal(
    workers.reduce((n, w) => n + w.connections, 0),
    agents.length,
  );
  // Two rounds: each worker keeps its own round robin, so a worker holding two connections may
  // see only two of the three servers in one round (at the same place in every worker's turn),
  // but sees all three over two.
  const firstRounds = [
    ...(await onEveryConnection(agents, lb.port, sockets)),
    ...(await onEveryConnection(agents, lb.port, sockets)),
  ];
  assert.deepEqual(new Set(firstRounds), new Set(['web-01', 'web-02', 'web-03']));

  // Drain (admin API): the answer means every worker has it.
  const port = adminPort(lb.config);
  assert.equal((await admin(port, 'POST', '/backends/web/servers/web-01/drain')).status, 200);
  for (let i = 0; i < 2; i++)
    for (const served of await onEveryConnection(agents, lb.port, sockets)) assert.notEqual(served, 'web-01');

  // A health change (the primary's checks): once the status says down, every worker knows.
  backends[1]!.healthStatus = 500;
  await waitFor('web-02 down', async () => (await lb.server('web-02')).state === 'down');
  for (let i = 0; i < 2; i++)
    assert.deepEqual(new Set(await onEveryConnection(agents, lb.port, sockets)), new Set(['web-03']));

  // Back in, and another one out: every connection goes to web-01 alone.
  assert.equal((await admin(port, 'POST', '/backends/web/servers/web-01/enable')).status, 200);
  assert.equal((await admin(port, 'POST', '/backends/web/servers/web-03/disable')).status, 200);
  assert.deepEqual(new Set(await onEveryConnection(agents, lb.port, sockets)), new Set(['web-01']));

  // A weight of 0 takes it out just as well, on every worker.
  assert.equal((await admin(port, 'POST', '/backends/web/servers/web-03/enable')).status, 200);
  const weight = await admin(port, 'POST', '/backends/web/servers/web-01/weight', { body: '{"weight": 0}' });
  assert.equal(weight.status, 200);
  assert.deepEqual(new Set(await onEveryConnection(agents, lb.port, sockets)), new Set(['web-03']));
});

test('/status, the admin API and /metrics sum the counters of every worker, and list the workers', async (t) => {
  const backends = await threeBackends(t);
  const lb = await startLb(
    t,
    await workersConfig({ servers: backends.map((b) => ({ name: b.name, port: b.port })) }, WORKERS),
  );
  // Requests over connections every worker holds some of: each worker counts some of them.
  const agents = await connectionsOnEveryWorker(t, lb);
  await onEveryConnection(agents, lb.port, new Map());
  await onEveryConnection(agents, lb.port, new Map());
  const total = 3 * agents.length;
  const served = backends.reduce((n, b) => n + b.requests, 0);
  assert.equal(served, total);

  const status = JSON.parse((await fetch(lb.statsPort, '/status')).text) as LbStatus;
  const servers = status.backends[0]!.servers;
  assert.equal(
    servers.reduce((n, s) => n + s.totalRequests, 0),
    total,
  );
  for (const s of servers) {
    const backend = backends.find((b) => b.name === s.name)!;
    assert.equal(s.totalRequests, backend.requests, s.name);
    assert.equal(s.responses['2xx'], backend.requests, s.name);
  }
  const workers = workersOf(status);
  assert.deepEqual(
    workers.map((w) => [w.id, w.state, w.restarts]),
    [
      [1, 'ready', 0],
      [2, 'ready', 0],
      [3, 'ready', 0],
    ],
  );
  assert.equal(new Set(workers.map((w) => w.pid)).size, WORKERS);
  assert.ok(!workers.some((w) => w.pid === process.pid), 'the workers are processes of their own');
  for (const w of workers) {
    const argv = readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0');
    assert.ok(
      argv.includes(`--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`),
      `worker ${w.id} runs with a small young generation`,
    );
    const environ = readFileSync(`/proc/${w.pid}/environ`, 'utf8').split('\0');
    for (const [name, value] of Object.entries(WORKER_MALLOC_ENV)) {
      if (process.env[name] === undefined) {
        assert.ok(environ.includes(`${name}=${value}`), `worker ${w.id} runs with ${name}=${value}`);
      }
    }
  }

  const viaAdmin = await admin(adminPort(lb.config), 'GET', '/backends/web');
  const adminServers = viaAdmin.json['servers'] as Array<{ totalRequests: number }>;
  assert.equal(
    adminServers.reduce((n, s) => n + s.totalRequests, 0),
    total,
  );

  const metrics = (await fetch(lb.statsPort, '/metrics')).text;
  const sum = [...metrics.matchAll(/^tandem_server_requests_total\{[^}]*\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
  assert.equal(sum, total);
  assert.match(
    metrics,
    new RegExp(`^tandem_http_request_duration_seconds_count\\{backend="web"\\} ${total}$`, 'm'),
  );
  for (const w of workers)
    assert.match(metrics, new RegExp(`^tandem_lb_worker_up\\{worker="${w.id}"\\} 1$`, 'm'));

  const page = (await fetch(lb.statsPort, '/')).text;
  assert.match(page, /<h2>Workers<\/h2>/);
  for (const w of workers) assert.ok(page.includes(`<td>${w.pid}</td>`), `worker ${w.id} on the page`);
});

test('a worker that dies is replaced; the others go on serving, and its counters are kept', async (t) => {
  const backends = await threeBackends(t);
  const lb = await startLb(
    t,
    await workersConfig({ servers: backends.map((b) => ({ name: b.name, port: b.port })) }, WORKERS),
  );
  for (let i = 0; i < 12; i++) assert.equal((await fetch(lb.port, '/')).status, 200);
  const before = await lb.handle.status();
  const victim = workersOf(before)[1]!;
  assert.ok(victim.pid !== null && isAlive(victim.pid));
  const counted = before.backends[0]!.servers.reduce((n, s) => n + s.totalRequests, 0);
  assert.equal(counted, 12);

  process.kill(victim.pid, 'SIGKILL');
  // Meanwhile, and after, every request is served.
  const replaced = await waitFor(
    'worker 2 replaced',
    async () => {
      assert.equal((await fetch(lb.port, '/')).status, 200);
      const w = workersOf(await lb.handle.status())[1]!;
      return w.state === 'ready' && w.pid !== victim.pid ? w : undefined;
    },
    { interval: 20 },
  );
  assert.equal(replaced.restarts, 1);
  assert.ok(
    lb.log.lines.some((l) =>
      l.startsWith(`warn worker 2 (pid ${victim.pid}) ended (signal SIGKILL); restarting it in `),
    ),
    lb.log.lines.join('\n'),
  );
  for (let i = 0; i < 3 * WORKERS; i++) assert.equal((await fetch(lb.port, '/')).status, 200);
  // What the dead worker had counted (as last read) still counts.
  const after = await lb.handle.status();
  const total = after.backends[0]!.servers.reduce((n, s) => n + s.totalRequests, 0);
  const served = backends.reduce((n, b) => n + b.requests, 0);
  assert.ok(total >= counted + 3 * WORKERS && total <= served, `counted ${total} of ${served}`);
});

test('least connections and maxconn need one count of requests in flight: one worker serves that frontend', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await workersConfig(
      {
        servers: [
          { name: 'web-01', port: a.port },
          { name: 'web-02', port: b.port },
        ],
      },
      WORKERS,
      { balance: 'leastconn' },
    ),
  );
  await openConnections(t, lb.port, CONNECTIONS);
  const connections = workersOf(await lb.handle.status()).map((w) => w.connections);
  assert.deepEqual(connections, [CONNECTIONS, 0, 0]);
  assert.ok(
    lb.log.lines.some((l) => l.endsWith('(leastconn, maxconn): frontend http (worker 1)')),
    lb.log.lines.join('\n'),
  );
});

test('close() stops every worker process; workers: 1 runs everything in this process', async (t) => {
  const a = await startBackend(t, 'web-01');
  const config = await workersConfig({ servers: [{ name: 'web-01', port: a.port }] }, WORKERS);
  const handle = await startLoadBalancer(config, 'lb-01', memoryLogger(), { drainTimeout: 1000 });
  t.after(() => handle.close());
  const port = config.loadBalancers[0]!.frontends[0]!.port;
  assert.equal((await fetch(port, '/')).text, 'web-01');
  const pids = workersOf(await handle.status()).map((w) => w.pid!);
  assert.ok(pids.every((p) => isAlive(p)));
  await handle.close();
  await waitFor('every worker gone', () => pids.every((p) => !isAlive(p)), { timeout: 5000 });

  const single = await workersConfig({ servers: [{ name: 'web-01', port: a.port }] }, 1);
  const one: RunningLb = await startLb(t, single);
  assert.equal((await fetch(one.port, '/')).text, 'web-01');
  const status = await one.handle.status();
  assert.equal(status.workers, undefined);
  assert.equal(status.pid, process.pid);
  assert.equal(status.backends[0]!.servers[0]!.totalRequests, 1);
});

test("workers get a small young generation unless the operator chose one, and not the test runner's flags", () => {
  assert.deepEqual(workerExecArgv(['--enable-source-maps', '--test-reporter=spec'], undefined), [
    '--enable-source-maps',
    `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
  ]);
  assert.deepEqual(workerExecArgv(['--max-semi-space-size=32'], undefined), ['--max-semi-space-size=32']);
  assert.deepEqual(workerExecArgv([], '--max_semi_space_size=4 --trace-warnings'), []);
  assert.deepEqual(workerExecArgv(['--inspect=9229'], '--trace-warnings'), [
    `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`,
  ]);
});

test("workers keep freed memory for glibc's malloc unless the operator set it", () => {
  const env = workerEnv({ PATH: '/bin', MALLOC_TOP_PAD_: '0' });
  assert.equal(env['PATH'], '/bin');
  assert.equal(env['MALLOC_TOP_PAD_'], '0');
  assert.equal(env['MALLOC_TRIM_THRESHOLD_'], String(32 * 1024 * 1024));
  assert.equal(env['MALLOC_ARENA_MAX'], '2');
  assert.equal(workerEnv({ MALLOC_ARENA_MAX: '8' })['MALLOC_ARENA_MAX'], '8');
});
