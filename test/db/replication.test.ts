/**
 * Database nodes for real: a PostgreSQL primary and a streaming replica made by each clone
 * method, a row written on the primary read on the replica, clean stop, data kept on restart.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { type DbNodeHandle, startDbNode } from '../../src/db/cluster/db-node.js';
import { findPostgresBinaries } from '../../src/db/engines/binaries.js';
import { readSecret } from '../../src/db/secrets.js';
import { createLogger } from '../../src/log.js';
import { isAlive, skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { primaryAndReplica } from '../helpers/stack.js';

const quiet = createLogger('test');

async function cluster(cloneMethod: 'copy' | 'pg_basebackup') {
  const dir = tempDir();
  const { config, p1, p2 } = await primaryAndReplica(dir.path, { cloneMethod });
  const superuser = () => readSecret(config.paths.dataDir, 'db-superuser')!;
  const client = async (port: number) => {
    const c = new pg.Client({
      host: '127.0.0.1',
      port,
      user: 'postgres',
      password: superuser(),
      database: 'app',
    });
    await c.connect();
    return c;
  };
  return { dir, config, p1, p2, client };
}

for (const method of ['copy', 'pg_basebackup'] as const) {
  test(`primary + replica cloned with ${method}: replication, roles, clean stop, restart keeps rows`, async (t) => {
    if (method === 'pg_basebackup') {
      const bins = await findPostgresBinaries();
      if (
        skipUnless(
          t,
          bins.pgBasebackup ? undefined : `pg_basebackup of PostgreSQL ${bins.major} is not installed`,
        )
      )
        return;
    }
    const { dir, config, p1, p2, client } = await cluster(method);
    const handles: DbNodeHandle[] = [];
    t.after(async () => {
      for (const h of handles.reverse()) await h.stop();
      dir.cleanup();
    });
    const steps: string[] = [];
    const primary = await startDbNode(config, 'web-01', quiet, (m) => steps.push(m));
    handles.push(primary);
    const replica = await startDbNode(config, 'web-02', quiet, (m) => steps.push(m));
    handles.push(replica);
    assert.ok(
      steps.some((s) =>
        s.includes(
          `cloning the replica from web-01 (${method === 'copy' ? 'backup API + file copy' : 'pg_basebackup'})`,
        ),
      ),
      steps.join('\n'),
    );
    assert.equal(await primary.role(), 'primary');
    assert.equal(await replica.role(), 'replica');

    // Running as root, the engine runs as an unprivileged user.
    if (process.getuid?.() === 0) {
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${primary.engine.pid}/status`, 'utf8'))?.[1];
      assert.notEqual(uid, '0', 'postgres does not run as root');
    }
    // Secrets are private.
    const mode =
      (await import('node:fs')).statSync(join(config.paths.dataDir, 'secrets', 'db-replication.password'))
        .mode & 0o777;
    assert.equal(mode, 0o600);

    const w = await client(p1);
    await w.query('CREATE TABLE t (id int primary key, v text)');
    await w.query("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
    const slot = await w.query("SELECT active FROM pg_replication_slots WHERE slot_name = 'tandem_web_02'");
    assert.equal(slot.rows[0]?.active, true, 'the replica streams through its slot');
    await w.end();

    const r = await client(p2);
    await waitFor(
      'rows to reach the replica',
      async () => (await r.query('SELECT count(*)::int AS n FROM t')).rows[0].n === 2,
    );
    await assert.rejects(r.query("INSERT INTO t VALUES (3, 'three')"), /read-only transaction/);
    await r.end();

    // Clean stop, then start again from the same data: nothing lost.
    const enginePids = handles.map((h) => h.engine.pid!);
    await replica.stop();
    await primary.stop();
    handles.length = 0;
    assert.deepEqual(enginePids.filter(isAlive), []);
    const steps2: string[] = [];
    handles.push(await startDbNode(config, 'web-01', quiet, (m) => steps2.push(m)));
    handles.push(await startDbNode(config, 'web-02', quiet, (m) => steps2.push(m)));
    assert.ok(!steps2.some((s) => /initialising|cloning/.test(s)), 'restart reuses the data dirs');
    const r2 = await client(p2);
    assert.equal((await r2.query('SELECT count(*)::int AS n FROM t')).rows[0].n, 2);
    assert.equal((await r2.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);
    await r2.end();
  });
}

test('a database port already in use is reported with the node name', async (t) => {
  const { dir, config, p1 } = await cluster('copy');
  const { createServer } = await import('node:net');
  const blocker = createServer().listen(p1, '127.0.0.1');
  t.after(() => {
    blocker.close();
    dir.cleanup();
  });
  await assert.rejects(
    startDbNode(config, 'web-01', quiet, () => undefined),
    {
      code: 'TANDEM_ERR_PORT_IN_USE',
      message: new RegExp(`database node web-01: cannot listen on 127\\.0\\.0\\.1:${p1}`),
    },
  );
});
