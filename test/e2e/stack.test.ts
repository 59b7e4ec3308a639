/**
 * The whole stack, for real: `tandem up` on loopback with its own ports and data dir; traffic
 * through the load balancer; the read/write split; an application crash; stop; restart.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { readSecret } from '../../src/db/secrets.js';
import { tempDir, waitFor } from '../helpers/index.js';
import {
  alive,
  allocatePorts,
  processesMentioning,
  Stack,
  stackConfig,
  writeConfig,
} from '../helpers/stack.js';

async function get(
  url: string,
): Promise<{ status: number; servedBy: string | null; dbNode: string | null; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return {
    status: res.status,
    servedBy: res.headers.get('x-served-by'),
    dbNode: res.headers.get('x-db-node'),
    body: await res.text(),
  };
}

function serverHealth(stack: Stack, server: string): string | undefined {
  const s = stack.status();
  return Object.values(s.health ?? {})
    .flat()
    .find((x) => x.name === server)?.state;
}

test('the default stack: round robin, read/write split, crash and recovery, clean stop, data kept across restart', async (t) => {
  const dir = tempDir();
  const ports = await allocatePorts();
  const config = writeConfig(dir.path, stackConfig(ports, { restartDelay: '3s' }));
  const dataDir = join(dir.path, 'data');
  const site = `http://127.0.0.1:${ports.lb}`;
  let stack = new Stack(config, dataDir);
  const seen: number[] = [];
  t.after(async () => {
    await stack.kill(seen);
    dir.cleanup();
  });

  await t.test('tandem up brings the stack up and prints the URL', async () => {
    await stack.ready();
    assert.match(stack.output, new RegExp(`http://127\\.0\\.0\\.1:${ports.lb}/`));
    for (const step of [
      'initialising the database cluster',
      'cloning the replica',
      'starting 2 application processes',
      'waiting for health checks',
      'every server passes its health checks',
      'Tandem is up',
    ]) {
      assert.ok(stack.output.includes(step), `progress shows "${step}":\n${stack.output}`);
    }
    const s = stack.status();
    assert.equal(s.running, true);
    const roles = Object.fromEntries(s.components.map((c) => [c.id, [c.state, c.role]]));
    assert.deepEqual(roles['db web-01'], ['running', 'primary']);
    assert.deepEqual(roles['db web-02'], ['running', 'replica']);
    seen.push(...stack.pids());
  });

  await t.test('20 requests through the load balancer: 10 to web-01, 10 to web-02', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const r = await get(`${site}/api/users`);
      assert.equal(r.status, 200, r.body);
      counts[r.servedBy ?? 'none'] = (counts[r.servedBy ?? 'none'] ?? 0) + 1;
    }
    assert.deepEqual(counts, { 'web-01': 10, 'web-02': 10 });
  });

  await t.test('a user written through the load balancer is read back from the replica', async () => {
    const res = await fetch(`${site}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.com' }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('x-db-node'), 'web-01 (primary)');
    const created = (await res.json()) as { id: number; name: string };
    const read = await waitFor('the new user to be listed by a replica read', async () => {
      const r = await get(`${site}/api/users`);
      const users = (JSON.parse(r.body) as { users: { id: number }[] }).users;
      return users.some((u) => u.id === created.id) ? r : undefined;
    });
    assert.equal(read.dbNode, 'web-02 (replica)');
    const page = await get(`${site}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Ada Lovelace/);
    assert.match(page.body, /web-0[12]/);
  });

  await t.test(
    'read-your-writes: after a form post, the next page read sees the new user even while the replica lags',
    async () => {
      const replica = new pg.Client({
        host: '127.0.0.1',
        port: ports.db[1],
        user: 'postgres',
        password: readSecret(dataDir, 'db-superuser')!,
        database: 'app',
      });
      replica.on('error', () => undefined);
      await replica.connect();
      try {
        await replica.query('SELECT pg_wal_replay_pause()');
        const post = await fetch(`${site}/users`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'name=Grace+Hopper&email=grace%40example.com',
          redirect: 'manual',
        });
        assert.equal(post.status, 303);
        const cookie = post.headers.get('set-cookie')?.split(';')[0];
        assert.match(cookie ?? '', /^tandem-pos=/);
        // The replica has not replayed the insert: a plain read there misses it.
        const onReplica = await replica.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM users WHERE name = $1',
          ['Grace Hopper'],
        );
        assert.equal(onReplica.rows[0]!.n, 0, 'the paused replica does not have the new user');
        const res = await fetch(`${site}/api/users`, { headers: { cookie: cookie! } });
        assert.match(await res.text(), /Grace Hopper/);
        assert.equal(res.headers.get('x-db-node'), 'web-01 (primary)');
      } finally {
        await replica.query('SELECT pg_wal_replay_resume()');
        await replica.end();
      }
    },
  );

  await t.test(
    'web-02 application processes killed: web-01 answers everything until web-02 is back',
    async () => {
      const web02 = stack.status().components.find((c) => c.id === 'server web-02')!;
      const appPids = web02.details['appPids'] as number[];
      assert.equal(appPids.length, 2);
      for (const pid of appPids) process.kill(pid, 'SIGKILL');
      await waitFor('the load balancer to mark web-02 down', () => serverHealth(stack, 'web-02') === 'down', {
        timeout: 5000,
      });
      for (let i = 0; i < 20; i++) {
        const r = await get(`${site}/api/users`);
        assert.equal(r.status, 200, `request ${i}: ${r.status} ${r.body}`);
        assert.equal(r.servedBy, 'web-01');
      }
      await waitFor('web-02 to be up again', () => serverHealth(stack, 'web-02') === 'up', {
        timeout: 30_000,
      });
      const servedBy = new Set<string | null>();
      for (let i = 0; i < 4; i++) servedBy.add((await get(`${site}/api/users`)).servedBy);
      assert.ok(servedBy.has('web-02'), 'web-02 takes requests again');
      seen.push(...stack.pids());
    },
  );

  await t.test('stop: exit 0 and no process left', async () => {
    const pids = stack.pids();
    assert.equal(await stack.stop(), 0, stack.output);
    assert.match(stack.output, /Tandem stopped/);
    await waitFor('every process of the stack to be gone', () => alive(pids).length === 0, {
      timeout: 10_000,
    });
    assert.deepEqual(processesMentioning(dataDir), []);
  });

  await t.test('tandem up again reuses the data: the user is still there', async () => {
    stack = new Stack(config, dataDir);
    await stack.ready();
    assert.doesNotMatch(stack.output, /initialising the database cluster|cloning the replica/);
    const r = await waitFor('the user to be listed after the restart', async () => {
      const res = await get(`${site}/api/users`);
      return res.body.includes('Ada Lovelace') ? res : undefined;
    });
    assert.equal(r.status, 200);
    const pids = stack.pids();
    assert.equal(await stack.stop(), 0, stack.output);
    await waitFor('every process of the stack to be gone', () => alive(pids).length === 0, {
      timeout: 10_000,
    });
  });
});

test('a port already in use: a clear error naming the component, nothing left running', async (t) => {
  const dir = tempDir();
  const ports = await allocatePorts();
  const blocker = createServer().listen(ports.lb, '127.0.0.1');
  const dataDir = join(dir.path, 'data');
  mkdirSync(dataDir);
  const stack = new Stack(writeConfig(dir.path, stackConfig(ports)), dataDir);
  t.after(async () => {
    blocker.close();
    await stack.kill();
    dir.cleanup();
  });
  const code = await stack.exited;
  assert.equal(code, 1, stack.output);
  assert.match(stack.output, new RegExp(`lb lb-01.*127\\.0\\.0\\.1:${ports.lb}.*already in use`));
  assert.doesNotMatch(stack.output, /\n\s+at /, 'no stack trace');
  await waitFor('no process of the stack left', () => processesMentioning(dataDir).length === 0, {
    timeout: 10_000,
  });
});
