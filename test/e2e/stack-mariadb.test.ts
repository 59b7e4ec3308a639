/**
 * The whole stack on MariaDB (`database.engine: mysql`), for real: `tandem up` with the demo app,
 * whose unchanged code reaches the database through tandem/db and the load balancer's writer and
 * reader endpoints. A user posted through the load balancer is read back (from the replica, and
 * at once with its GTID position, even while the replica's SQL thread is stopped); the page and
 * the delete work; the stack stops cleanly.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { isGtidPosition } from '../../src/db/client.js';
import { findMariaDbBinaries } from '../../src/db/engines/mariadb-binaries.js';
import { readSecret } from '../../src/db/secrets.js';
import { skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { sql } from '../helpers/sql.js';
import {
  alive,
  allocatePorts,
  processesMentioning,
  Stack,
  stackConfig,
  writeConfig,
} from '../helpers/stack.js';

function mariaDbMissing(): string | undefined {
  try {
    findMariaDbBinaries();
    return undefined;
  } catch (err) {
    return `MariaDB (apt-get install mariadb-server): ${(err as Error).message}`;
  }
}

interface Answer {
  status: number;
  dbNode: string | null;
  headers: Headers;
  body: string;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { redirect: 'manual', ...init, signal: AbortSignal.timeout(5000) });
  return {
    status: res.status,
    dbNode: res.headers.get('x-db-node'),
    headers: res.headers,
    body: await res.text(),
  };
}

function userNames(a: Answer): string[] {
  return (JSON.parse(a.body) as { users: { name: string }[] }).users.map((u) => u.name);
}

test('the stack on MariaDB: the demo app writes, reads its writes, deletes, and stops cleanly', async (t) => {
  if (skipUnless(t, mariaDbMissing())) return;
  const dir = tempDir();
  const ports = await allocatePorts();
  const config = stackConfig(ports);
  (config['database'] as Record<string, unknown>)['engine'] = 'mysql';
  const file = writeConfig(dir.path, config);
  const dataDir = join(dir.path, 'data');
  const site = `http://127.0.0.1:${ports.lb}`;
  const stack = new Stack(file, dataDir);
  const seen: number[] = [];
  t.after(async () => {
    await stack.kill(seen);
    dir.cleanup();
  });
  // Tandem starts each MariaDB node with report_host = the node's name.
  const node = (i: 0 | 1, role: string) => new RegExp(`^web-0${i + 1} \\(${role}\\)$`);

  await stack.ready(180_000);
  const roles = Object.fromEntries(stack.status().components.map((c) => [c.id, [c.state, c.role]]));
  assert.deepEqual(roles['db web-01'], ['running', 'primary']);
  assert.deepEqual(roles['db web-02'], ['running', 'replica']);
  seen.push(...stack.pids());

  const health = await call(`${site}/healthz`);
  assert.equal(health.status, 200, health.body);
  assert.deepEqual((JSON.parse(health.body) as { db: unknown }).db, { writer: 'up', reader: 'up' });

  // POST through the load balancer: written on the primary, with its GTID position.
  const created = await call(`${site}/api/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'Ada Lovelace', email: 'ada@example.com' }),
  });
  assert.equal(created.status, 201, created.body);
  assert.match(created.dbNode ?? '', node(0, 'primary'));
  const position = created.headers.get('x-db-position');
  assert.ok(isGtidPosition(position), `X-DB-Position is a GTID position: ${position}`);
  const ada = JSON.parse(created.body) as { id: number; name: string; email: string; created_at: string };
  assert.equal(typeof ada.id, 'number');
  assert.deepEqual([ada.name, ada.email], ['Ada Lovelace', 'ada@example.com']);
  assert.ok(
    Math.abs(Date.parse(ada.created_at) - Date.now()) < 60_000,
    `created_at in UTC: ${ada.created_at}`,
  );

  // GET it back: with the position at once; without, from the replica once it has replayed it.
  const mine = await call(`${site}/api/users`, { headers: { 'x-db-after': position! } });
  assert.equal(mine.status, 200, mine.body);
  assert.deepEqual(userNames(mine), ['Ada Lovelace']);
  assert.match(mine.dbNode ?? '', /\((replica|primary)\)$/);
  const fromReplica = await waitFor('the user listed by a replica read', async () => {
    const r = await call(`${site}/api/users`);
    return userNames(r).includes('Ada Lovelace') && node(1, 'replica').test(r.dbNode ?? '') ? r : undefined;
  });
  assert.deepEqual(JSON.parse(fromReplica.body), { users: [ada] }, 'the same user, read from the replica');
  for (const junk of ['0/3000060', 'garbage', "0-1-1' OR 1=1 --"]) {
    const r = await call(`${site}/api/users`, { headers: { 'x-db-after': junk } });
    assert.equal(r.status, 200, `X-DB-After: ${junk} is ignored`);
  }

  // Read-your-writes while the replica applies nothing: the form post's cookie brings the read to
  // a node that has the write.
  const admin = {
    engine: 'mysql' as const,
    port: ports.db[1],
    password: readSecret(dataDir, 'db-superuser')!,
  };
  await sql(admin, 'STOP SLAVE SQL_THREAD');
  try {
    const post = await call(`${site}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'name=Grace+Hopper&email=grace%40example.com',
    });
    assert.equal(post.status, 303, post.body);
    const cookie = post.headers.get('set-cookie')?.split(';')[0] ?? '';
    assert.match(cookie, /^tandem-pos=\d+-\d+-\d+/);
    const stale = await call(`${site}/api/users`);
    t.diagnostic(`plain read while the replica's SQL thread is stopped: answered by ${stale.dbNode}`);
    if (node(1, 'replica').test(stale.dbNode ?? ''))
      assert.ok(!userNames(stale).includes('Grace Hopper'), 'the stopped replica does not have her');
    const page = await call(`${site}/`, { headers: { cookie } });
    assert.equal(page.status, 200);
    assert.match(page.body, /Grace Hopper/);
    assert.match(page.dbNode ?? '', node(0, 'primary'), 'the writer answered, after the bounded wait');
  } finally {
    await sql(admin, 'START SLAVE SQL_THREAD');
  }

  // DELETE through the load balancer.
  const gone = await call(`${site}/api/users/${ada.id}`, { method: 'DELETE' });
  assert.equal(gone.status, 204);
  assert.match(gone.dbNode ?? '', node(0, 'primary'));
  assert.equal((await call(`${site}/api/users/${ada.id}`, { method: 'DELETE' })).status, 404);
  await waitFor('the replica to replay the delete', async () => {
    const r = await call(`${site}/api/users`);
    return node(1, 'replica').test(r.dbNode ?? '') && !userNames(r).includes('Ada Lovelace');
  });

  const pids = stack.pids();
  assert.equal(await stack.stop(), 0, stack.output);
  assert.match(stack.output, /Tandem stopped/);
  await waitFor('every process of the stack to be gone', () => alive(pids).length === 0, { timeout: 10_000 });
  assert.deepEqual(processesMentioning(dataDir), []);
});
