/**
 * The log a primary keeps for an absent replica is bounded, so that the primary's disk does not
 * fill up: PostgreSQL invalidates a replica's slot past database.maxSlotWalKeepSize, MariaDB
 * purges binary logs older than database.binlogExpireDays. A replica that comes back after the
 * log it needs is gone is cloned afresh on its own (its old data directory kept aside) and
 * replicates again, with every row.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { type DbNodeHandle, nodeDataDir, startDbNode } from '../../src/db/cluster/db-node.js';
import { NodeAgent } from '../../src/db/cluster/node-agent.js';
import { slotName } from '../../src/db/engines/postgres.js';
import { readSecret } from '../../src/db/secrets.js';
import { createLogger } from '../../src/log.js';
import { freePort, promSample, skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { type Engine, type SqlSession, connect } from '../helpers/sql.js';
import { primaryAndReplica } from '../helpers/stack.js';

const quiet = createLogger('test');
const MARIADBD = ['/usr/sbin/mariadbd', '/usr/bin/mariadbd'].find((p) => existsSync(p));

interface Case {
  title: string;
  engine: Engine;
  /** Why the engine cannot be tested here, or undefined. */
  missing: string | undefined;
  /** The retention setting of the test's config. */
  setting: Record<string, unknown>;
  /** Checks on the primary that the engine got the setting. */
  checkSetting(w: SqlSession): Promise<void>;
  /** While the replica is away: rows written with `insert`, the log moved past what is kept. */
  dropLog(w: SqlSession, insert: () => Promise<void>): Promise<void>;
  /** What the agent says when it finds the log gone. */
  said: RegExp;
  /** More checks once the replica is back. */
  afterBack?(w: SqlSession): Promise<void>;
  /** The primary's /metrics with the replica streaming, away past the limit, and back. */
  checkMetrics(before: string, away: string, back: string): void;
}

const ON_SLOT = 'node="web-01",replica="web-02"';

const slot = slotName('web-02');
const walStatus = async (w: SqlSession) =>
  (await w.query('SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1', [slot]))[0]?.[
    'wal_status'
  ];

const cases: Case[] = [
  {
    title:
      'PostgreSQL: a replica away past maxSlotWalKeepSize: its slot is invalidated, and back it is cloned afresh',
    engine: 'postgres',
    missing: undefined,
    setting: { maxSlotWalKeepSize: '64MB' },
    async checkSetting(w) {
      const [row] = await w.query('SHOW max_slot_wal_keep_size');
      assert.equal(row!['max_slot_wal_keep_size'], '64MB');
      assert.equal(await walStatus(w), 'reserved');
    },
    async dropLog(w, insert) {
      await waitFor(
        "the primary to invalidate the absent replica's slot",
        async () => {
          for (let i = 0; i < 3; i++) {
            await insert();
            await w.query('SELECT pg_switch_wal()');
          }
          await w.query('CHECKPOINT');
          return (await walStatus(w)) === 'lost';
        },
        { timeout: 30_000, interval: 100 },
      );
    },
    said: /cannot catch up with web-01: the primary no longer has WAL file .*cloning afresh/,
    async afterBack(w) {
      assert.equal(await walStatus(w), 'reserved', 'a new slot keeps WAL for the new copy');
    },
    checkMetrics(before, away, back) {
      assert.equal(promSample(before, 'tandem_db_slot_lost', ON_SLOT), 0, before);
      const safe = promSample(before, 'tandem_db_slot_safe_bytes', ON_SLOT)!;
      const retained = promSample(before, 'tandem_db_slot_retained_bytes', ON_SLOT)!;
      // Counted by PostgreSQL from the WAL segment boundaries: 64 MB give or take two segments.
      assert.ok(safe > 0 && safe <= 96 * 1024 * 1024, `safe ${safe}`);
      assert.ok(retained >= 0 && retained < 64 * 1024 * 1024, `retained ${retained}`);
      assert.ok(promSample(before, 'tandem_db_log_bytes', 'node="web-01"')! >= 16 * 1024 * 1024, before);
      assert.equal(promSample(away, 'tandem_db_slot_lost', ON_SLOT), 1, away);
      assert.equal(promSample(away, 'tandem_db_slot_retained_bytes', ON_SLOT), undefined, 'nothing retained');
      assert.equal(promSample(away, 'tandem_db_slot_safe_bytes', ON_SLOT), undefined);
      assert.equal(promSample(back, 'tandem_db_slot_lost', ON_SLOT), 0, back);
    },
  },
  {
    title: 'MariaDB: binary logs expire; a replica away past that is cloned afresh when it is back',
    engine: 'mysql',
    missing: MARIADBD ? undefined : 'mariadbd (apt-get install mariadb-server)',
    setting: { engine: 'mysql', binlogExpireDays: 1 },
    async checkSetting(w) {
      const [row] = await w.query('SELECT @@binlog_expire_logs_seconds AS s');
      assert.equal(Number(row!['s']), 86400);
    },
    async dropLog(w, insert) {
      for (let i = 0; i < 3; i++) {
        await insert();
        await w.query('FLUSH BINARY LOGS');
      }
      // What expiry does to files older than binlogExpireDays: all but the current one go. A file
      // stays until InnoDB has made its transactions durable (its binlog checkpoint).
      const current = String((await w.query('SHOW MASTER STATUS'))[0]!['File']);
      await waitFor('every binary log before the current one purged', async () => {
        await w.query(`PURGE BINARY LOGS TO '${current}'`);
        return (await w.query('SHOW BINARY LOGS')).length === 1;
      });
    },
    said: /cannot catch up with web-01: the primary no longer has the binary log it needs .*cloning afresh/,
    checkMetrics(before, away) {
      const bytes = (text: string) => promSample(text, 'tandem_db_log_bytes', 'node="web-01"');
      assert.ok(bytes(before)! > 0, before);
      assert.ok(bytes(away)! < bytes(before)!, 'the purged binary logs are gone from the disk');
      assert.doesNotMatch(before, /tandem_db_slot_/, 'MariaDB has no slots');
    },
  },
];

for (const c of cases) {
  test(c.title, async (t) => {
    if (skipUnless(t, c.missing)) return;
    const dir = tempDir();
    const api = await freePort();
    const { config, p1, p2 } = await primaryAndReplica(dir.path, c.setting, { apiPort: api });
    const handles: DbNodeHandle[] = [];
    const sessions: SqlSession[] = [];
    t.after(async () => {
      for (const s of sessions) await s.end().catch(() => undefined);
      for (const h of handles.reverse()) await h.stop();
      dir.cleanup();
    });
    const session = async (port: number) => {
      const password = readSecret(config.paths.dataDir, 'db-superuser')!;
      const s = await connect({ engine: c.engine, port, password, timeoutMs: 3000 });
      sessions.push(s);
      return s;
    };
    const count = async (s: SqlSession) => Number((await s.query('SELECT count(*) AS n FROM t'))[0]!['n']);

    const primary = new NodeAgent(config, 'web-01', quiet, () => undefined); // with its API
    handles.push(primary);
    await primary.start();
    const metrics = async () => (await fetch(`http://127.0.0.1:${api}/metrics`)).text();
    const replica = await startDbNode(config, 'web-02', quiet, () => undefined);
    const w = await session(p1);
    await c.checkSetting(w);
    await w.query('CREATE TABLE t (id int primary key)');
    let rows = 0;
    const insert = async () => {
      await w.query('INSERT INTO t VALUES ($1)', [++rows]);
    };
    await insert();
    const r1 = await session(p2);
    await waitFor('the first row on the replica', async () => (await count(r1)) === 1);
    const before = await metrics();
    await replica.stop();

    await c.dropLog(w, insert);
    await insert();
    const away = await metrics();

    // Back: it starts from its old data, finds the log it needs gone, and is cloned afresh.
    const steps: string[] = [];
    const back = new NodeAgent(config, 'web-02', quiet, (m) => steps.push(m), { api: false });
    handles.push(back);
    await back.start();
    let r2 = await session(p2);
    /** Rows on the replica; a session the replica's restarts closed is opened again. */
    const replicaRows = async () => {
      try {
        return await count(r2);
      } catch {
        r2 = await session(p2).catch(() => r2);
        return -1;
      }
    };
    // Cloned afresh and running again (rows can show while the clone is loaded, before a restart).
    await waitFor(
      'the replica cloned afresh, running, with every row',
      async () =>
        steps.some((s) => c.said.test(s)) &&
        back.snapshot().activity === 'running' &&
        (await replicaRows()) === rows,
      { timeout: 60_000, interval: 200 },
    ).catch(async (err) => {
      throw new Error(`${(err as Error).message}; its steps:\n  ${steps.join('\n  ')}`);
    });
    assert.ok(
      steps.some((s) => c.said.test(s)),
      `steps:\n  ${steps.join('\n  ')}`,
    );
    const kept = readdirSync(dirname(nodeDataDir(config, 'web-02'))).filter((f) => f.includes('.old-'));
    assert.equal(kept.length, 1, 'the old data directory is kept aside, not deleted');
    await c.afterBack?.(w);
    c.checkMetrics(before, away, await metrics());
    // It replicates again: a new row arrives.
    await insert();
    await waitFor('a new row on the replica', async () => (await replicaRows()) === rows);
  });
}
