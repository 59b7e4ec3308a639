import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { startLoadBalancer } from '../../src/lb/load-balancer.js';
import { tempDir, waitFor } from '../helpers/index.js';
import { admin, adminPort, count, resolve } from './admin-fixtures.js';
import { configWith } from './balance-fixtures.js';
import {
  fetch,
  makeConfig,
  memoryLogger,
  rawConfig,
  startBackend,
  startLb,
  TEST_ADMIN_TOKEN,
} from './fixtures.js';

async function twoServers(t: Parameters<typeof startBackend>[0]) {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const lb = await startLb(
    t,
    await makeConfig({
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
    }),
  );
  return { a, b, lb, port: adminPort(lb.config) };
}

test('the admin API answers only requests carrying the right bearer token', async (t) => {
  const { lb, port } = await twoServers(t);
  const none = await admin(port, 'GET', '/backends', { token: null });
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Bearer realm=/);
  assert.match(String(none.json['error']), /Authorization: Bearer <token>/);
  for (const token of [
    'x' + TEST_ADMIN_TOKEN.slice(1),
    TEST_ADMIN_TOKEN.slice(0, -1),
    `${TEST_ADMIN_TOKEN}x`,
    '',
  ]) {
    const r = await admin(port, 'GET', '/backends', { token });
    assert.equal(r.status, 401, `token ${JSON.stringify(token)}`);
  }
  // Without the token nothing happens, and nothing is learnt about names.
  const refused = await admin(port, 'POST', '/backends/web/servers/web-01/disable', { token: 'wrong-token' });
  assert.equal(refused.status, 401);
  assert.equal((await lb.server('web-01')).adminState, 'ready');
  const unknown = await admin(port, 'GET', '/backends/nope', { token: 'wrong-token' });
  assert.equal(unknown.status, 401);

  const ok = await admin(port, 'GET', '/backends');
  assert.equal(ok.status, 200);
  assert.match(String(ok.headers['content-type']), /^application\/json/);
});

test('without admin.token, a token is generated once under the data dir (0600) and used', async (t) => {
  const a = await startBackend(t, 'web-01');
  const dir = tempDir();
  t.after(dir.cleanup);
  const raw = await rawConfig({ servers: [{ name: 'web-01', port: a.port }] });
  const lbRaw = (raw['loadBalancers'] as Array<{ admin: Record<string, unknown> }>)[0]!;
  delete lbRaw.admin['token'];
  const config = resolve(raw, dir.path);
  const file = join(dir.path, 'secrets', 'lb-lb-01-admin.token');

  const first = await startLoadBalancer(config, 'lb-01', memoryLogger());
  t.after(() => first.close());
  const token = readFileSync(file, 'utf8').trim();
  assert.match(token, /^[A-Za-z0-9_-]{40,}$/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir.path, 'secrets')).mode & 0o777, 0o700);
  assert.equal((await admin(adminPort(config), 'GET', '/backends', { token })).status, 200);
  assert.equal((await admin(adminPort(config), 'GET', '/backends')).status, 401);
  await first.close();

  // A restart keeps the token.
  const second = await startLoadBalancer(config, 'lb-01', memoryLogger());
  t.after(() => second.close());
  assert.equal(readFileSync(file, 'utf8').trim(), token);
  assert.equal((await admin(adminPort(config), 'GET', '/backends', { token })).status, 200);
});

test('GET /backends lists every server with its health, operator state, weight and counters', async (t) => {
  const { lb, port } = await twoServers(t);
  // Over one client connection, so through one worker, whose round robin takes turns.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  for (let i = 0; i < 4; i++) assert.equal((await fetch(lb.port, '/', { agent })).status, 200);
  const r = await admin(port, 'GET', '/backends');
  assert.equal(r.status, 200);
  const backends = r.json['backends'] as Array<{
    name: string;
    servers: Array<Record<string, unknown>>;
  }>;
  assert.deepEqual(
    backends.map((b) => b.name),
    ['web'],
  );
  const servers = backends[0]!.servers;
  assert.deepEqual(
    servers.map((s) => [s['name'], s['state'], s['adminState'], s['weight'], s['totalRequests']]),
    [
      ['web-01', 'up', 'ready', 1, 2],
      ['web-02', 'up', 'ready', 1, 2],
    ],
  );
  assert.deepEqual(servers[0]!['responses'], { '2xx': 2, '3xx': 0, '4xx': 0, '5xx': 0 });

  const one = await admin(port, 'GET', '/backends/web/servers/web-02');
  assert.equal(one.status, 200);
  assert.equal((one.json['server'] as Record<string, unknown>)['name'], 'web-02');
  assert.equal((await admin(port, 'GET', '/backends/web')).json['name'], 'web');
  const index = await admin(port, 'GET', '/');
  assert.ok((index.json['endpoints'] as string[]).includes('POST /reload'));
});

test('unknown backends, servers and actions are 404s naming them; wrong methods are 405s', async (t) => {
  const { port } = await twoServers(t);
  const noBackend = await admin(port, 'POST', '/backends/api/servers/web-01/drain');
  assert.equal(noBackend.status, 404);
  assert.equal(noBackend.json['error'], 'no backend named "api" (known: web)');
  const noServer = await admin(port, 'POST', '/backends/web/servers/web-09/drain');
  assert.equal(noServer.status, 404);
  assert.equal(noServer.json['error'], 'no server named "web-09" in backend "web" (known: web-01, web-02)');
  const noAction = await admin(port, 'POST', '/backends/web/servers/web-01/explode');
  assert.equal(noAction.status, 404);
  assert.match(String(noAction.json['error']), /no such action "explode" for server web\/web-01/);
  assert.equal((await admin(port, 'GET', '/nothing/here')).status, 404);
  const get = await admin(port, 'GET', '/backends/web/servers/web-01/drain');
  assert.equal(get.status, 405);
  assert.equal(get.headers['allow'], 'POST');
  assert.equal((await admin(port, 'DELETE', '/backends')).status, 405);
});

test('POST …/weight sets the weight (0–256) and the next requests follow it; bad values are 400s', async (t) => {
  const { lb, port } = await twoServers(t);
  for (const [body, message] of [
    ['{"weight": -1}', 'weight: must be an integer between 0 and 256 (got -1)'],
    ['{"weight": 257}', 'weight: must be an integer between 0 and 256 (got 257)'],
    ['{"weight": 1.5}', 'weight: must be an integer between 0 and 256 (got 1.5)'],
    ['{"weight": "3"}', 'weight: must be an integer between 0 and 256 (got "3")'],
    ['{"wieght": 3}', 'the body must be JSON like {"weight": 3} (got "{\\"wieght\\": 3}")'],
    ['three', 'the body must be JSON like {"weight": 3} (got "three")'],
    ['', 'the body must be JSON like {"weight": 3} (got an empty body)'],
  ] as const) {
    const r = await admin(port, 'POST', '/backends/web/servers/web-01/weight', { body });
    assert.equal(r.status, 400, body);
    assert.equal(r.json['error'], message);
  }
  assert.equal((await lb.server('web-01')).weight, 1);

  const set = await admin(port, 'POST', '/backends/web/servers/web-01/weight', { body: '{"weight": 3}' });
  assert.equal(set.status, 200);
  assert.equal((set.json['server'] as Record<string, unknown>)['weight'], 3);
  assert.ok(lb.log.lines.some((l) => /admin \(127\.0\.0\.1\): server web\/web-01 weight 1 → 3/.test(l)));
  const served = [];
  for (let i = 0; i < 40; i++) served.push((await fetch(lb.port, '/')).text);
  const shares = count(served);
  assert.ok(shares['web-01']! >= 28 && shares['web-01']! <= 32, JSON.stringify(shares));

  await admin(port, 'POST', '/backends/web/servers/web-01/weight', { body: '{"weight": 0}' });
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-02');
});

test('drain: the in-flight request finishes on the drained server while new requests go elsewhere; enable brings it back', async (t) => {
  const { a, b, lb, port } = await twoServers(t);
  const held = fetch(lb.port, '/hold');
  const holder = await waitFor('the held request to reach a server', () =>
    a.held.length === 1 ? a : b.held.length === 1 ? b : undefined,
  );
  const other = holder === a ? b : a;
  const r = await admin(port, 'POST', `/backends/web/servers/${holder.name}/drain`);
  assert.equal(r.status, 200);
  assert.equal((r.json['server'] as Record<string, unknown>)['adminState'], 'drain');
  assert.equal((await lb.server(holder.name)).inFlight, 1);

  const before = holder.requests;
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/')).text, other.name);
  assert.equal(holder.requests, before);
  // Health checks go on while draining.
  const checks = holder.checks;
  await waitFor('a health check of the drained server', () => holder.checks > checks);
  assert.equal((await lb.server(holder.name)).state, 'up');

  holder.release();
  const reply = await held;
  assert.equal(reply.status, 200);
  assert.equal(reply.text, holder.name);
  assert.equal(holder.abandoned, 0);

  assert.equal((await admin(port, 'POST', `/backends/web/servers/${holder.name}/enable`)).status, 200);
  // Over one client connection, so through one worker (each worker balances its own requests).
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) served.add((await fetch(lb.port, '/', { agent })).text);
  assert.deepEqual([...served].sort(), ['web-01', 'web-02']);
});

test('disable puts a server in maintenance (no requests at all) until enable', async (t) => {
  const { b, lb, port } = await twoServers(t);
  const r = await admin(port, 'POST', '/backends/web/servers/web-02/disable');
  assert.equal(r.status, 200);
  assert.equal((await lb.server('web-02')).adminState, 'maint');
  assert.ok(lb.log.lines.some((l) => /server web\/web-02 maint \(was ready\)/.test(l)));
  const before = b.requests;
  for (let i = 0; i < 6; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-01');
  assert.equal(b.requests, before);

  await admin(port, 'POST', '/backends/web/servers/web-01/disable');
  const none = await fetch(lb.port, '/');
  assert.equal(none.status, 503);

  await admin(port, 'POST', '/backends/web/servers/web-02/enable');
  assert.equal((await lb.server('web-02')).adminState, 'ready');
  for (let i = 0; i < 3; i++) assert.equal((await fetch(lb.port, '/')).text, 'web-02');
});

test('a drained server gets no new requests from clients pinned to it by a sticky cookie either', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const config = await configWith(
    {
      servers: [
        { name: 'web-01', port: a.port },
        { name: 'web-02', port: b.port },
      ],
    },
    { stickyCookie: { name: 'SRV' } },
  );
  const lb = await startLb(t, config);
  const first = await fetch(lb.port, '/');
  const cookie = String(first.headers['set-cookie']?.[0] ?? '').split(';', 1)[0]!;
  assert.match(cookie, /^SRV=/);
  const pinned = first.text;
  for (let i = 0; i < 3; i++) assert.equal((await fetch(lb.port, '/', { headers: { cookie } })).text, pinned);

  await admin(adminPort(config), 'POST', `/backends/web/servers/${pinned}/drain`);
  const other = pinned === 'web-01' ? 'web-02' : 'web-01';
  for (let i = 0; i < 3; i++) assert.equal((await fetch(lb.port, '/', { headers: { cookie } })).text, other);
});
