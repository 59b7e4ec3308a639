/**
 * A database failover seen from the whole stack: `tandem up`, a user written through the load
 * balancer, the primary's PostgreSQL killed with SIGKILL; the application writes again through
 * the writer endpoint on the new primary, and the old primary comes back as a replica. Before
 * that, pgbench runs clean through the writer endpoint.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readSecret } from '../../src/db/secrets.js';
import { skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { Stack, allocatePorts, stackConfig, writeConfig } from '../helpers/stack.js';

async function addUser(site: string, name: string): Promise<{ status: number; dbNode: string | null }> {
  const res = await fetch(`${site}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, email: `${name.toLowerCase()}@example.com` }),
    signal: AbortSignal.timeout(5000),
  });
  await res.arrayBuffer();
  return { status: res.status, dbNode: res.headers.get('x-db-node') };
}

test('database failover under the whole stack: writes resume on the new primary, the old one rejoins', async (t) => {
  const dir = tempDir();
  const ports = await allocatePorts();
  const dataDir = join(dir.path, 'data');
  const stack = new Stack(writeConfig(dir.path, stackConfig(ports)), dataDir);
  t.after(async () => {
    await stack.kill();
    dir.cleanup();
  });
  const site = `http://127.0.0.1:${ports.lb}`;
  await stack.ready();
  assert.deepEqual(await addUser(site, 'Before'), { status: 201, dbNode: 'web-01 (primary)' });

  // Any client works through the writer endpoint: pgbench, 4 clients for 10 s, runs clean.
  const pgbench = '/usr/lib/postgresql/15/bin/pgbench';
  if (!skipUnless(t, existsSync(pgbench) ? undefined : 'pgbench of PostgreSQL 15 is not installed')) {
    const env = { ...process.env, PGPASSWORD: readSecret(dataDir, 'db-app')! };
    const args = ['-h', '127.0.0.1', '-p', String(ports.dbEndpoints[0]), '-U', 'app', 'app'];
    const init = spawnSync(pgbench, ['-i', '-s', '1', '-q', ...args], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(init.status, 0, init.stderr);
    const run = spawnSync(pgbench, ['-c', '4', '-T', '10', ...args], {
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /number of failed transactions: 0 /);
    t.diagnostic(run.stdout.split('\n').find((l) => l.startsWith('tps')) ?? '');
  }

  const primary = stack.status().components.find((c) => c.id === 'db web-01')!;
  const enginePid = primary.details['enginePid'] as number;
  const killedAt = Date.now();
  process.kill(enginePid, 'SIGKILL');

  const after = await waitFor(
    'a write through the load balancer to succeed on the new primary',
    async () => {
      const r = await addUser(site, 'After');
      return r.status === 201 ? r : undefined;
    },
    { timeout: 20_000, interval: 100 },
  );
  const seconds = (Date.now() - killedAt) / 1000;
  t.diagnostic(`the application wrote again ${seconds.toFixed(2)} s after the primary's SIGKILL`);
  assert.equal(after.dbNode, 'web-02 (primary)');
  assert.ok(seconds < 5, `writes resumed after ${seconds} s`);

  // The old primary rejoins as a replica, and a read from it sees the write made after the failover.
  let last = '';
  await waitFor(
    'web-01 to answer reads as a replica with the user written after the failover',
    async () => {
      const res = await fetch(`${site}/api/users`, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      last = `${res.status} ${res.headers.get('x-db-node')} ${text.slice(0, 300)}`;
      const body = JSON.parse(text) as { users: { name: string }[] };
      return (
        res.headers.get('x-db-node') === 'web-01 (replica)' && body.users.some((u) => u.name === 'After')
      );
    },
    { timeout: 60_000, interval: 200 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last answer: ${last}`);
  });
  const roles = Object.fromEntries(stack.status().components.map((c) => [c.id, c.role]));
  assert.equal(roles['db web-01'], 'replica');
  assert.equal(roles['db web-02'], 'primary');
  assert.equal(await stack.stop(), 0, stack.output);
});
