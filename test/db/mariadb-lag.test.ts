/**
 * MariaDB replication lag in bytes, next to transactions and seconds: the bytes of the primary's
 * binary log a replica has not applied yet, counted across files, and unknown (never a wrong
 * number) when the primary no longer lists the replica's file.
 *
 * For real: two nodes and the cluster manager as `tandem db` / `tandem cluster` processes, the
 * replica's SQL thread stopped while rows of a known size are written on the primary; the replica
 * agent's `/metrics`, `tandem db status` (text and JSON) and the manager's report say the same.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { binlogBytesBehind } from '../../src/db/engines/mariadb-driver.js';
import { toolErrorLines } from '../../src/db/engines/mariadb.js';
import { readSecret } from '../../src/db/secrets.js';
import { Component } from '../helpers/components.js';
import { freePort, promSample, skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { sql } from '../helpers/sql.js';
import { TANDEM, databaseOnlyConfig, processesMentioning } from '../helpers/stack.js';

const MARIADBD = ['/usr/sbin/mariadbd', '/usr/bin/mariadbd'].find((p) => existsSync(p));

test('binary log bytes behind: summed across files; null when the file is not the primary’s', () => {
  const files = [
    { name: 'db-01-bin.000001', size: 1000 },
    { name: 'db-01-bin.000002', size: 500 },
    { name: 'db-01-bin.000003', size: 385 },
  ];
  const at = (file: string, offset: number) => binlogBytesBehind(files, { file, offset });
  assert.equal(at('db-01-bin.000003', 385), 0, 'caught up');
  assert.equal(at('db-01-bin.000003', 300), 85);
  assert.equal(at('db-01-bin.000001', 400), 600 + 500 + 385, 'across files');
  assert.equal(at('db-01-bin.000001', 1000), 500 + 385, 'at the end of a rotated file');
  assert.equal(at('db-01-bin.000003', 400), 0, 'a replica seen a moment after the primary');
  assert.equal(at('db-01-bin.000002', 501), null, 'past the end of a file that is not the last');
  assert.equal(at('db-01-bin.000000', 4), null, 'purged');
  assert.equal(at('db-02-bin.000003', 4), null, "another node's binary log");
  assert.equal(binlogBytesBehind(files, undefined), null, 'not replicating yet');
  assert.equal(binlogBytesBehind(undefined, { file: 'db-01-bin.000003', offset: 4 }), null, 'no primary');
  assert.equal(binlogBytesBehind([], { file: 'db-01-bin.000003', offset: 4 }), null);
});

/** A node's gauge in a Prometheus text exposition, or undefined when it is absent. */
function gauge(text: string, name: string, node: string): number | undefined {
  return promSample(text, name, `node="${node}"`);
}

test('a failed MariaDB tool is reported by its error lines, not the page of advice after them', () => {
  // What mariadb-install-db printed when two instances shared /tmp (before each got its own).
  const output = [
    'Installing MariaDB/MySQL system tables in /d/db-02 ...',
    "2026-12-03 23:59:34 1 [Warning] Could not remove temporary table: '/tmp/#sql-temptable-1da9-1-3', error: 2",
    "ERROR: 1051  Unknown table 'mysql.tmp_user_sys'",
    '2026-12-03 23:59:34 0 [ERROR] Aborting',
    'Installation of system tables failed!  Examine the logs in',
    '',
    ...Array.from({ length: 20 }, (_, i) => `advice line ${i}`),
  ].join('\n');
  assert.deepEqual(toolErrorLines(output), [
    "ERROR: 1051  Unknown table 'mysql.tmp_user_sys'",
    '2026-12-03 23:59:34 0 [ERROR] Aborting',
    'Installation of system tables failed!  Examine the logs in',
  ]);
  // Nothing says ERROR: the last lines, blank ones left out.
  assert.deepEqual(toolErrorLines('a\n\nb\nc\n', 2), ['b', 'c']);
});

test('MariaDB: lag in bytes of binary log in /metrics, tandem db status and the manager report', async (t) => {
  if (skipUnless(t, MARIADBD ? undefined : 'mariadbd (apt-get install mariadb-server)')) return;
  const dir = tempDir();
  const [primary, replica] = [
    { name: 'db-01', port: await freePort(), apiPort: await freePort() },
    { name: 'db-02', port: await freePort(), apiPort: await freePort() },
  ];
  const file = await databaseOnlyConfig(dir.path, {
    engine: 'mysql',
    failover: { checkInterval: '200ms', timeout: '1500ms' },
    nodes: [
      { ...primary, role: 'primary' },
      { ...replica, role: 'replica' },
    ],
  });
  const dataDir = join(dir.path, 'data');
  const common = ['-c', file, '-d', dataDir];
  const procs: Component[] = [];
  t.after(async () => {
    for (const p of procs.reverse()) await p.stop();
    for (const pid of processesMentioning(dataDir)) process.kill(pid, 'SIGKILL');
    dir.cleanup();
  });
  const start = async (args: string[]) => {
    const c = new Component([...args, ...common]);
    procs.push(c);
    await c.ready();
    return c;
  };
  await start(['db', '--node', primary.name]);
  await start(['db', '--node', replica.name]);
  const manager = await start(['cluster']);
  const admin = readSecret(dataDir, 'db-superuser')!;
  const app = readSecret(dataDir, 'db-app')!;
  const onPrimary = (text: string, params?: unknown[]) =>
    sql({ engine: 'mysql', port: primary.port, user: 'app', password: app }, text, params);
  const onReplicaAsAdmin = (text: string) =>
    sql({ engine: 'mysql', port: replica.port, password: admin }, text);
  const primaryLog = async () => {
    const r = (await sql({ engine: 'mysql', port: primary.port, password: admin }, 'SHOW MASTER STATUS'))[0]!;
    return { file: String(r['File']), position: Number(r['Position']) };
  };
  const metrics = async () => {
    const text = await (await fetch(`http://127.0.0.1:${replica.apiPort}/metrics`)).text();
    return {
      text,
      bytes: gauge(text, 'tandem_db_replication_lag_bytes', replica.name),
      transactions: gauge(text, 'tandem_db_replication_lag_transactions', replica.name),
      seconds: gauge(text, 'tandem_db_replication_lag_seconds', replica.name),
    };
  };
  const dbStatus = (...args: string[]) => {
    const r = spawnSync(process.execPath, [TANDEM, 'db', 'status', ...args, ...common], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  /** The replica's row of `tandem db status`, by column header. */
  const statusRow = () => {
    const lines = dbStatus().split('\n');
    const header = lines.find((l) => l.trim().startsWith('NODE'))!;
    const row = lines.find((l) => l.trim().startsWith(replica.name))!;
    const columns = header.trim().split(/\s{2,}/);
    const cells = row.trim().split(/\s{2,}/);
    return Object.fromEntries(columns.map((c, i) => [c, cells[i]]));
  };
  const managerReport = () =>
    (
      (manager.details['nodes'] ?? []) as { name: string; lag: number | null; lagBytes?: number | null }[]
    ).find((n) => n.name === replica.name);

  await onPrimary('CREATE TABLE payload (id INT PRIMARY KEY, body TEXT NOT NULL)');
  await waitFor('the replica to apply everything', async () => {
    const m = await metrics();
    return m.bytes === 0 && m.transactions === 0;
  });

  // Replay stops; the replica still receives. Rows of a known size are written on the primary.
  await onReplicaAsAdmin('STOP SLAVE SQL_THREAD');
  const before = await primaryLog();
  const rows = 20;
  const size = 1000;
  for (let id = 1; id <= rows; id++)
    await onPrimary('INSERT INTO payload VALUES ($1, $2)', [id, 'x'.repeat(size)]);
  const after = await primaryLog();
  assert.equal(after.file, before.file, 'no rotation in between (the expected bytes are one subtraction)');
  const written = after.position - before.position;
  t.diagnostic(`${rows} rows of ${size} bytes: ${written} bytes of binary log`);
  assert.ok(written >= rows * size);

  const behind = await waitFor('the replica agent to report the bytes written', async () => {
    const m = await metrics();
    return m.bytes === written && m.transactions === rows ? m : undefined;
  });
  assert.ok(behind.bytes! >= rows * size, 'at least the payload written');
  assert.ok(behind.bytes! < 4 * rows * size, 'and not much more: only the rows written');
  const row = statusRow();
  assert.equal(row['LAG TX'], String(rows), JSON.stringify(row));
  assert.equal(row['LAG BYTES'], String(written), JSON.stringify(row));
  assert.equal(row['SYNC'], 'async', 'async replication: the primary waits for no replica');
  const json = JSON.parse(dbStatus('--json')) as {
    nodes: { name: string; lag: number; lagUnit: string; lagBytes: number }[];
  };
  assert.deepEqual(
    json.nodes.filter((n) => n.name === replica.name).map((n) => [n.lag, n.lagUnit, n.lagBytes]),
    [[rows, 'transactions', written]],
  );
  await waitFor('the manager to report the same lag', () => {
    const r = managerReport();
    return r?.lag === rows && r.lagBytes === written;
  });

  // The primary moves on to new files and purges the one the replica's replay stopped in: the
  // bytes are unknown, not a wrong number; the transactions are still counted.
  let next = rows;
  await waitFor(
    "the primary to purge the replica's file",
    async () => {
      await onPrimary('INSERT INTO payload VALUES ($1, $2)', [++next, 'y']);
      await sql({ engine: 'mysql', port: primary.port, password: admin }, 'FLUSH BINARY LOGS');
      const current = await primaryLog();
      await sql(
        { engine: 'mysql', port: primary.port, password: admin },
        `PURGE BINARY LOGS TO '${current.file}'`,
      );
      const listed = await sql({ engine: 'mysql', port: primary.port, password: admin }, 'SHOW BINARY LOGS');
      return !listed.some((l) => l['Log_name'] === before.file);
    },
    { interval: 200 },
  );
  const purged = await waitFor('the agent to stop reporting bytes', async () => {
    const m = await metrics();
    return m.bytes === undefined && m.transactions !== undefined && m.transactions > rows ? m : undefined;
  });
  assert.equal(purged.transactions, next, purged.text);
  const unknown = statusRow();
  assert.equal(unknown['LAG BYTES'], '-', JSON.stringify(unknown));
  assert.ok(Number(unknown['LAG TX']) > rows, JSON.stringify(unknown));

  // Replay resumes (from the relay log): back to 0 bytes, 0 transactions.
  await onReplicaAsAdmin('START SLAVE SQL_THREAD');
  const resumed = await waitFor('the replica to catch up', async () => {
    const m = await metrics();
    return m.bytes === 0 && m.transactions === 0 ? m : undefined;
  });
  assert.ok(resumed.seconds !== undefined, resumed.text);
  const caughtUp = statusRow();
  assert.deepEqual([caughtUp['LAG TX'], caughtUp['LAG BYTES']], ['0', '0'], JSON.stringify(caughtUp));
  await waitFor('the manager to report it caught up', () => {
    const r = managerReport();
    return r?.lag === 0 && r.lagBytes === 0;
  });
});
