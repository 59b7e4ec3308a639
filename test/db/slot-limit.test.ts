/**
 * The WAL a primary keeps for an absent replica is bounded (database.maxSlotWalKeepSize): past
 * it PostgreSQL invalidates the replica's slot instead of filling its disk, and the replica, once
 * back, is cloned afresh on its own (its old data directory kept aside) and streams again.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { type DbNodeHandle, nodeDataDir, startDbNode } from '../../src/db/cluster/db-node.js';
import { slotName } from '../../src/db/engines/postgres.js';
import { readSecret } from '../../src/db/secrets.js';
import { createLogger } from '../../src/log.js';
import { freePort, tempDir, waitFor } from '../helpers/index.js';
import { databaseOnlyConfig } from '../helpers/stack.js';

const quiet = createLogger('test');

test('a replica away past maxSlotWalKeepSize: its slot is invalidated, and back it is cloned afresh', async (t) => {
  const dir = tempDir();
  const [p1, p2] = [await freePort(), await freePort()];
  const file = await databaseOnlyConfig(dir.path, {
    maxSlotWalKeepSize: '64MB',
    nodes: [
      { name: 'web-01', port: p1, role: 'primary' },
      { name: 'web-02', port: p2, role: 'replica' },
    ],
  });
  const config = loadConfig({ file, dataDir: join(dir.path, 'data') });
  const handles: DbNodeHandle[] = [];
  const clients: pg.Client[] = [];
  t.after(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    for (const h of handles.reverse()) await h.stop();
    dir.cleanup();
  });
  const client = async (port: number) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: readSecret(config.paths.dataDir, 'db-superuser')!,
      database: 'app',
    });
    c.on('error', () => undefined); // a node restarting ends its sessions: the queries say so
    clients.push(c);
    await c.connect();
    return c;
  };
  const slot = slotName('web-02');

  handles.push(await startDbNode(config, 'web-01', quiet, () => undefined));
  const replica = await startDbNode(config, 'web-02', quiet, () => undefined);
  const w = await client(p1);
  assert.equal((await w.query('SHOW max_slot_wal_keep_size')).rows[0].max_slot_wal_keep_size, '64MB');
  await w.query('CREATE TABLE t (id int primary key)');
  await w.query('INSERT INTO t VALUES (1)');
  const r1 = await client(p2);
  await waitFor(
    'the first row on the replica',
    async () => (await r1.query('SELECT count(*)::int AS n FROM t')).rows[0].n === 1,
  );
  await replica.stop();

  // While the replica is away: writes, WAL switched past 64 MB, checkpoints.
  const walStatus = async () =>
    (await w.query('SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [slot])).rows[0]
      ?.wal_status;
  assert.equal(await walStatus(), 'reserved');
  let id = 2;
  await waitFor(
    "the primary to invalidate the absent replica's slot",
    async () => {
      for (let i = 0; i < 3; i++) {
        await w.query('INSERT INTO t VALUES ($1)', [id++]);
        await w.query('SELECT pg_switch_wal()');
      }
      await w.query('CHECKPOINT');
      return (await walStatus()) === 'lost';
    },
    { timeout: 30_000, interval: 100 },
  );
  await w.query('INSERT INTO t VALUES ($1)', [id]);

  // Back: it starts from its old data, finds the WAL it needs gone, and is cloned afresh.
  const steps: string[] = [];
  handles.push(await startDbNode(config, 'web-02', quiet, (m) => steps.push(m)));
  let r2 = await client(p2);
  await waitFor(
    'every row on the replica again',
    async () => {
      try {
        return (await r2.query('SELECT count(*)::int AS n FROM t')).rows[0].n === id;
      } catch {
        r2 = await client(p2).catch(() => r2); // the replica restarts while it is cloned
        return false;
      }
    },
    { timeout: 60_000, interval: 200 },
  ).catch(async (err) => {
    throw new Error(`${(err as Error).message}; its steps:\n  ${steps.join('\n  ')}`);
  });
  assert.ok(
    steps.some((s) => /cannot catch up with web-01: .*cloning afresh/.test(s)),
    `steps:\n  ${steps.join('\n  ')}`,
  );
  assert.equal(await walStatus(), 'reserved', 'a new slot keeps WAL for the new copy');
  assert.equal((await r2.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
  const kept = readdirSync(dirname(nodeDataDir(config, 'web-02'))).filter((f) => f.includes('.old-'));
  assert.equal(kept.length, 1, 'the old data directory is kept aside, not deleted');
});
