import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError, PortInUseError } from '../../src/errors.js';
import { startLoadBalancer } from '../../src/lb/load-balancer.js';
import { freePort, freePorts, tempDir, waitFor } from '../helpers/index.js';
import { UP_SUMMARY } from '../helpers/stack.js';
import { TINY_APP } from '../server/fixtures.js';
import { count, getVia, resolve } from './admin-fixtures.js';
import { fetch, memoryLogger, rawConfig, startBackend, TANDEM_BIN, TEST_ADMIN_TOKEN } from './fixtures.js';

/** A backend that also streams: `/stream` sends its headers and a first line at once, the rest on `finish()`. */
interface StreamingBackend {
  name: string;
  port: number;
  /** Proxied requests (not health checks). */
  requests: number;
  /** Health check paths requested, in order. */
  checked: string[];
  /** Streams started and not finished yet. */
  streams: Array<() => void>;
  finish(): void;
}

async function streamingBackend(t: TestContext, name: string): Promise<StreamingBackend> {
  const backend: StreamingBackend = {
    name,
    port: 0,
    requests: 0,
    checked: [],
    streams: [],
    finish() {
      for (const end of backend.streams.splice(0)) end();
    },
  };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path.startsWith('/health')) {
      backend.checked.push(path);
      res.end('ok\n');
      return;
    }
    backend.requests++;
    if (path === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.write(`${name} part 1\n`);
      backend.streams.push(() => res.end(`${name} part 2\n`));
    } else if (path === '/never') {
      // No answer: the proxy's serverTimeout must fire.
    } else {
      res.end(name);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  backend.port = (server.address() as { port: number }).port;
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  );
  return backend;
}

/** GET `path`; resolves once the first chunk of the body arrived, with the rest to come. */
function startStream(port: number, path: string): Promise<{ first: string; rest: Promise<string> }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      const rest = new Promise<string>((done, fail) => {
        res.on('end', () => done(body));
        res.on('error', fail);
        res.on('aborted', () => fail(new Error('response aborted')));
      });
      res.once('data', (d: string) => {
        body += d;
        res.on('data', (more: string) => {
          body += more;
        });
        resolvePromise({ first: d, rest });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

type Raw = Record<string, unknown> & {
  servers: Array<Record<string, unknown>>;
  loadBalancers: Array<Record<string, unknown> & { frontends: Array<Record<string, unknown>> }>;
  backends: Array<Record<string, unknown> & { servers: Array<Record<string, unknown>> }>;
};

test('a reload applies weights, added and removed servers, health checks and timeouts, dropping nothing', async (t) => {
  const s1 = await streamingBackend(t, 'web-01');
  const s2 = await streamingBackend(t, 'web-02');
  const s3 = await streamingBackend(t, 'web-03');
  const raw = (await rawConfig({
    servers: [
      { name: 'web-01', port: s1.port },
      { name: 'web-02', port: s2.port },
      { name: 'web-03', port: s3.port },
    ],
    serverTimeout: 5000,
    // The client's keep-alive connection must outlive the test on a slow machine.
    keepAliveTimeout: 60_000,
  })) as Raw;
  // web-03 is in `servers` but not yet in the backend.
  raw.backends[0]!.servers.pop();
  raw.backends[0]!['healthCheck'] = { path: '/health-a', interval: 50, timeout: 500, rise: 1, fall: 1 };
  const log = memoryLogger();
  const handle = await startLoadBalancer(resolve(raw), 'lb-01', log, { drainTimeout: 2000 });
  t.after(() => handle.close());
  const port = raw.loadBalancers[0]!.frontends[0]!['port'] as number;

  // A keep-alive client connection, and a long streaming response in flight.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const kept = await getVia(agent, port, '/');
  assert.equal(kept.status, 200);
  const stream = await startStream(port, '/stream');
  const streaming = [s1, s2].find((s) => s.streams.length === 1)!;
  const staying = streaming === s1 ? s2 : s1;
  assert.equal(stream.first, `${streaming.name} part 1\n`);

  // The reload: the streaming server leaves, web-03 joins, the other one gets weight 3, the checks
  // change path, the server timeout drops to 300 ms.
  const next = structuredClone(raw);
  next.backends[0]!.servers = [
    { name: staying.name, weight: 3 },
    { name: 'web-03', weight: 1 },
  ];
  next.backends[0]!['healthCheck'] = { path: '/health-b', interval: 50, timeout: 500, rise: 1, fall: 1 };
  next.loadBalancers[0]!['serverTimeout'] = 300;
  next.loadBalancers[0]!['maxBodySize'] = 1000;
  const result = await handle.reload(resolve(next));
  assert.deepEqual(
    result.changes.sort(),
    [
      'backend web: healthCheck.path: /health-a → /health-b',
      `backend web: server ${staying.name} weight: 1 → 3`,
      `backend web: server ${streaming.name} removed; its requests in flight finish`,
      'backend web: server web-03 added',
      'maxBodySize: unset → 1000',
      'serverTimeout: 5000 → 300',
    ].sort(),
  );
  assert.ok(log.lines.some((l) => l.startsWith('info config reloaded (test config): ')));

  // New checks, on the new path, bring web-03 up.
  await waitFor('web-03 up', async () =>
    (await handle.status()).backends[0]!.servers.some((s) => s.name === 'web-03' && s.state === 'up'),
  );
  const checked = s3.checked.length;
  await waitFor('more checks', () => s3.checked.length > checked && staying.checked.at(-1) === '/health-b');
  assert.ok(s3.checked.every((p) => p === '/health-b'));
  assert.deepEqual(
    (await handle.status()).backends[0]!.servers.map((s) => [s.name, s.weight, s.state]),
    [
      [staying.name, 3, 'up'],
      ['web-03', 1, 'up'],
    ],
  );

  // New requests follow the new weights and never reach the removed server.
  const before = streaming.requests;
  const served: string[] = [];
  for (let i = 0; i < 40; i++) served.push((await fetch(port, '/')).text);
  const shares = count(served);
  assert.equal(streaming.requests, before);
  assert.equal(shares[streaming.name], undefined);
  assert.ok(shares[staying.name]! >= 28 && shares[staying.name]! <= 32, JSON.stringify(shares));

  // The new server timeout applies.
  const t0 = Date.now();
  const slow = await fetch(port, '/never');
  assert.equal(slow.status, 504);
  assert.ok(Date.now() - t0 < 3000, `504 after ${Date.now() - t0} ms`);
  // And so does the new body size limit.
  const big = await fetch(port, '/', { method: 'POST', body: Buffer.alloc(2000) });
  assert.equal(big.status, 413);

  // The keep-alive connection from before the reload still works, on the same socket.
  const again = await getVia(agent, port, '/');
  assert.equal(again.status, 200);
  assert.equal(again.socket, kept.socket);

  // The streaming response from before the reload completes.
  streaming.finish();
  assert.equal(await stream.rest, `${streaming.name} part 1\n${streaming.name} part 2\n`);
});

test('a frontend added by a reload listens; a removed one stops accepting; the others go on', async (t) => {
  const a = await startBackend(t, 'web-01');
  const raw = (await rawConfig({ servers: [{ name: 'web-01', port: a.port }] })) as Raw;
  const handle = await startLoadBalancer(resolve(raw), 'lb-01', memoryLogger(), { drainTimeout: 2000 });
  t.after(() => handle.close());
  const port = raw.loadBalancers[0]!.frontends[0]!['port'] as number;
  const extra = await freePort();

  const next = structuredClone(raw);
  next.loadBalancers[0]!.frontends.push({ name: 'alt', host: '127.0.0.1', port: extra, backend: 'web' });
  const added = await handle.reload(resolve(next));
  assert.deepEqual(added.changes, [`frontend alt: added on 127.0.0.1:${extra} (backend web)`]);
  assert.equal((await fetch(extra, '/')).text, 'web-01');
  assert.deepEqual(
    (await handle.status()).frontends.map((f) => f.name),
    ['http', 'alt'],
  );

  const removed = await handle.reload(resolve(raw));
  assert.deepEqual(removed.changes, [
    `frontend alt: removed (127.0.0.1:${extra}); its connections finish first`,
  ]);
  await waitFor('the removed frontend to refuse connections', () =>
    fetch(extra, '/').then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
    ),
  );
  assert.equal((await fetch(port, '/')).text, 'web-01');
  const same = await handle.reload(resolve(raw));
  assert.deepEqual(same.changes, ['no change']);
});

test('an invalid config, or one that cannot be applied, is rejected whole and the running one stays', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, 'tandem.yaml');
  const raw = (await rawConfig({
    servers: [
      { name: 'web-01', port: a.port },
      { name: 'web-02', port: b.port },
    ],
  })) as Raw;
  writeFileSync(file, JSON.stringify(raw));
  const log = memoryLogger();
  const handle = await startLoadBalancer(resolve(raw, dir.path, file), 'lb-01', log, {
    drainTimeout: 2000,
    // Re-read the file as `tandem lb` does.
    loadConfig: () => loadConfig({ file, dataDir: dir.path }),
  });
  t.after(() => handle.close());
  const port = raw.loadBalancers[0]!.frontends[0]!['port'] as number;
  const statsPort = (raw.loadBalancers[0]!['stats'] as { port: number }).port;

  // Invalid: rejected with the validation message, nothing changes.
  const bad = structuredClone(raw);
  bad.backends[0]!.servers[0]!['weight'] = -1;
  writeFileSync(file, JSON.stringify(bad));
  await assert.rejects(handle.reload(), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /backends\[0\]\.servers\[0\]\.weight: must be an integer ≥ 0 \(got -1\)/);
    return true;
  });
  assert.ok(
    log.lines.some((l) =>
      /^error reload rejected; the running config stays in force: invalid config .*weight: must be an integer ≥ 0/s.test(
        l,
      ),
    ),
  );
  writeFileSync(file, 'backends: [unclosed');
  await assert.rejects(handle.reload(), ConfigError);

  // Valid but not applicable (a new frontend on a port in use): the weight change in the same
  // reload is not applied either.
  const taken = createNetServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  t.after(() => taken.close());
  const takenPort = (taken.address() as { port: number }).port;
  const clash = structuredClone(raw);
  clash.backends[0]!.servers[0]!['weight'] = 0;
  clash.loadBalancers[0]!.frontends.push({ name: 'alt', host: '127.0.0.1', port: takenPort, backend: 'web' });
  writeFileSync(file, JSON.stringify(clash));
  await assert.rejects(handle.reload(), PortInUseError);
  assert.equal((await handle.status()).backends[0]!.servers[0]!.weight, 1);
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) served.add((await fetch(port, '/')).text);
  assert.deepEqual([...served].sort(), ['web-01', 'web-02']);

  const metrics = (await fetch(statsPort, '/metrics')).text;
  assert.match(metrics, /^tandem_config_reloads_total\{result="rejected"\} 3$/m);
  assert.match(metrics, /^tandem_config_reloads_total\{result="applied"\} 0$/m);

  // And a good one after all that applies.
  const good = structuredClone(raw);
  good.backends[0]!.servers[0]!['weight'] = 0;
  writeFileSync(file, JSON.stringify(good));
  assert.deepEqual((await handle.reload()).changes, ['backend web: server web-01 weight: 1 → 0']);
  for (let i = 0; i < 3; i++) assert.equal((await fetch(port, '/')).text, 'web-02');
});

interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function tandem(t: TestContext, args: string[]): Child {
  const proc = spawn(process.execPath, [TANDEM_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, stdout: () => out, stderr: () => err, exited };
}

test('tandem lb reloads on SIGHUP, and `tandem reload` validates then applies through the admin API', async (t) => {
  const a = await startBackend(t, 'web-01');
  const b = await startBackend(t, 'web-02');
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, 'tandem.yaml');
  const data = join(dir.path, 'data');
  const raw = (await rawConfig({
    servers: [
      { name: 'web-01', port: a.port },
      { name: 'web-02', port: b.port },
    ],
  })) as Raw;
  // No token in the config: `tandem reload` reads the generated one from the data dir.
  delete (raw.loadBalancers[0]!['admin'] as Record<string, unknown>)['token'];
  writeFileSync(file, JSON.stringify(raw));
  const port = raw.loadBalancers[0]!.frontends[0]!['port'] as number;
  const lb = tandem(t, ['lb', '--name', 'lb-01', '-c', file, '-d', data]);
  await waitFor('ready', () => lb.stdout().includes('ready on'));

  // SIGHUP with a changed weight.
  const drained = structuredClone(raw);
  drained.backends[0]!.servers[0]!['weight'] = 0;
  writeFileSync(file, JSON.stringify(drained));
  lb.proc.kill('SIGHUP');
  await waitFor('the reload', () => lb.stdout().includes('config reloaded'));
  assert.match(lb.stdout(), /backend web: server web-01 weight: 1 → 0/);
  for (let i = 0; i < 3; i++) assert.equal((await fetch(port, '/')).text, 'web-02');

  // SIGHUP with an invalid config: logged, and the load balancer goes on as it was.
  writeFileSync(file, 'servers: 3\n');
  lb.proc.kill('SIGHUP');
  await waitFor('the rejection', () => lb.stderr().includes('reload rejected'));
  assert.match(lb.stderr(), /the running config stays in force: invalid config .*\n {2}- servers: /);
  assert.equal((await fetch(port, '/')).text, 'web-02');
  assert.equal(lb.proc.exitCode, null);

  // `tandem reload` with an invalid config: exit 2, nothing asked of the load balancer.
  const invalid = tandem(t, ['reload', '-c', file, '-d', data]);
  assert.equal(await invalid.exited, 2);
  assert.match(invalid.stderr(), /tandem: invalid config/);
  assert.doesNotMatch(invalid.stderr(), /\n\s+at /);

  // `tandem reload` with a good one.
  writeFileSync(file, JSON.stringify(raw));
  const ok = tandem(t, ['reload', '-c', file, '-d', data]);
  assert.equal(await ok.exited, 0, ok.stderr());
  assert.match(ok.stdout(), new RegExp(`^lb-01: reloaded ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\n`));
  assert.match(ok.stdout(), /^ {2}- backend web: server web-01 weight: 0 → 1$/m);
  const served = new Set<string>();
  for (let i = 0; i < 4; i++) served.add((await fetch(port, '/')).text);
  assert.deepEqual([...served].sort(), ['web-01', 'web-02']);

  lb.proc.kill('SIGTERM');
  assert.equal(await lb.exited, 0);
  // With the load balancer gone, `tandem reload` says so (exit 3).
  const gone = tandem(t, ['reload', '-c', file, '-d', data]);
  assert.equal(await gone.exited, 3);
  assert.match(
    gone.stderr(),
    /lb-01: no answer from its admin API at http:\/\/127\.0\.0\.1:\d+\/reload \(connect ECONNREFUSED\)/,
  );
});

test('SIGHUP to `tandem up` is forwarded to its load balancers, which reload', async (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  writeFileSync(join(dir.path, 'app.mjs'), TINY_APP);
  mkdirSync(join(dir.path, 'public'));
  const [web1, web2, app1, app2, front, stats, adminApi] = (await freePorts(7)) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const raw = {
    servers: [
      { name: 'web-01', port: web1, app: { port: app1, processes: 1 } },
      { name: 'web-02', port: web2, app: { port: app2, processes: 1 } },
    ],
    codebase: { static: join(dir.path, 'public'), command: ['node', 'app.mjs'], dir: dir.path },
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ name: 'http', port: front, backend: 'web' }],
        stats: { port: stats },
        admin: { port: adminApi, token: TEST_ADMIN_TOKEN },
      },
    ],
    backends: [
      {
        name: 'web',
        healthCheck: { path: '/healthz', interval: 100, timeout: 1000, rise: 1, fall: 2 },
        servers: [
          { name: 'web-01', weight: 1 },
          { name: 'web-02', weight: 1 },
        ],
      },
    ],
  };
  const file = join(dir.path, 'tandem.yaml');
  writeFileSync(file, JSON.stringify(raw));
  const data = join(dir.path, 'data');
  const up = tandem(t, ['up', '-c', file, '-d', data]);
  await waitFor('the stack', () => UP_SUMMARY.test(up.stdout()), { timeout: 60_000 });
  const servedBy = async () =>
    (JSON.parse((await fetch(front, '/')).text) as { env: { TANDEM_SERVER_NAME: string } }).env
      .TANDEM_SERVER_NAME;
  const before = new Set<string>();
  for (let i = 0; i < 4; i++) before.add(await servedBy());
  assert.deepEqual([...before].sort(), ['web-01', 'web-02']);

  raw.backends[0]!.servers[0]!.weight = 0;
  writeFileSync(file, JSON.stringify(raw));
  up.proc.kill('SIGHUP');
  await waitFor('the forwarded reload', () =>
    up.stdout().includes('lb lb-01         SIGHUP: reloading the config'),
  );
  const lbLog = join(data, 'logs', 'lb-lb-01.log');
  await waitFor('the load balancer to reload', () => readFileSync(lbLog, 'utf8').includes('config reloaded'));
  assert.match(readFileSync(lbLog, 'utf8'), /backend web: server web-01 weight: 1 → 0/);
  for (let i = 0; i < 4; i++) assert.equal(await servedBy(), 'web-02');
  assert.equal(up.proc.exitCode, null, 'SIGHUP does not stop the stack');

  up.proc.kill('SIGTERM');
  assert.equal(await up.exited, 0, up.stderr());
});
