/**
 * The MariaDB engine (`database.engine: mysql`) under the same cluster logic as PostgreSQL, for
 * real: `tandem up` with MariaDB nodes, a writer inserting through the load balancer's `writer`
 * endpoint and logging every acknowledged id, the primary's mariadbd killed with SIGKILL.
 *
 * - sync (semi-synchronous, 2 nodes): writes back within 5 s through the same endpoint; the old
 *   primary rejoins by GTID and gets rows written after the failover; it refuses writes; a
 *   switchover back; no acknowledged write lost; never two nodes passing the primary check.
 * - async (3 nodes), with the replicas' replication stopped so the primary's last writes reach
 *   nobody: the failover event counts the lost transactions, the other replica follows the new
 *   primary, and the old primary, holding transactions the new one never got, is re-cloned with
 *   its old data directory kept aside.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readClusterState } from '../../src/db/cluster/cluster-state.js';
import { readSecret } from '../../src/db/secrets.js';
import { Component } from '../helpers/components.js';
import { freePort, skipUnless, tempDir, waitFor } from '../helpers/index.js';
import { type SqlSession, connect, isDuplicateKey, sql } from '../helpers/sql.js';
import { Stack, TANDEM, writeConfig } from '../helpers/stack.js';

const MARIADBD = ['/usr/sbin/mariadbd', '/usr/bin/mariadbd'].find((p) => existsSync(p));

interface Node {
  name: string;
  port: number;
  apiPort: number;
}

/** Inserts rows one at a time through an endpoint, logging every acknowledged id. */
class Writer {
  readonly acked: number[] = [];
  readonly ackTimes: number[] = [];
  private running = true;
  private done: Promise<void> | undefined;
  constructor(
    private readonly port: number,
    private readonly password: string,
  ) {}
  start(): void {
    this.done = (async () => {
      let s: SqlSession | undefined;
      let next = 1;
      const deadline = Date.now() + 120_000;
      while (this.running && Date.now() < deadline) {
        try {
          s ??= await connect({ engine: 'mysql', port: this.port, user: 'app', password: this.password });
          await s.query('INSERT INTO acked (id) VALUES ($1)', [next]);
          this.acked.push(next);
          this.ackTimes.push(Date.now());
          next++;
        } catch (err) {
          if (isDuplicateKey(err)) next++; // committed, its acknowledgement lost: not counted
          await s?.end();
          s = undefined;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      await s?.end();
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

/** Polls every node's /primary check; the most that passed at once. */
class SplitBrainWatch {
  maxPrimaries = 0;
  private running = true;
  private done: Promise<void> | undefined;
  constructor(private readonly nodes: Node[]) {}
  start(): void {
    this.done = (async () => {
      const deadline = Date.now() + 180_000;
      while (this.running && Date.now() < deadline) {
        const ok = await Promise.all(
          this.nodes.map((n) =>
            fetch(`http://127.0.0.1:${n.apiPort}/primary`, { signal: AbortSignal.timeout(500) }).then(
              (r) => r.status === 200,
              () => false,
            ),
          ),
        );
        this.maxPrimaries = Math.max(this.maxPrimaries, ok.filter(Boolean).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

async function startStack(t: import('node:test').TestContext, replication: 'sync' | 'async', count: number) {
  const dir = tempDir();
  const nodes: Node[] = [];
  for (let i = 1; i <= count; i++)
    nodes.push({ name: `db-0${i}`, port: await freePort(), apiPort: await freePort() });
  const writerPort = await freePort();
  const file = writeConfig(dir.path, {
    servers: [{ name: 'web-01', port: await freePort(), app: { port: await freePort(), processes: 1 } }],
    codebase: {
      static: dir.path,
      command: [
        process.execPath,
        '-e',
        "require('http').createServer((q, s) => s.end('ok')).listen(process.env.PORT, '127.0.0.1')",
      ],
    },
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ port: await freePort(), backend: 'web' }],
        stats: { port: await freePort() },
        admin: { port: await freePort() },
      },
    ],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }] }],
    database: {
      engine: 'mysql',
      replication,
      failover: { checkInterval: '200ms', timeout: '1500ms' },
      endpoints: { writer: { port: writerPort }, reader: { port: await freePort() } },
      nodes: nodes.map((n, i) => ({ ...n, role: i === 0 ? 'primary' : 'replica' })),
    },
  });
  const dataDir = join(dir.path, 'data');
  const stack = new Stack(file, dataDir);
  t.after(async () => {
    await stack.kill();
    dir.cleanup();
  });
  await stack.ready();
  const admin = readSecret(dataDir, 'db-superuser')!;
  const app = readSecret(dataDir, 'db-app')!;
  const enginePid = (node: string) =>
    stack.status().components.find((c) => c.id === `db ${node}`)!.details['enginePid'] as number;
  const direct = (node: Node, text: string, params?: unknown[]) =>
    sql({ engine: 'mysql', port: node.port, password: admin }, text, params);
  const api = (node: Node, path: string) =>
    fetch(`http://127.0.0.1:${node.apiPort}${path}`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status,
      () => 0,
    );
  return { dir, file, dataDir, stack, nodes, writerPort, admin, app, enginePid, direct, api };
}

test('MariaDB, sync replication: SIGKILL of the primary loses no acknowledged write; rejoin; switchover', async (t) => {
  if (skipUnless(t, MARIADBD ? undefined : 'mariadbd (apt-get install mariadb-server)')) return;
  const s = await startStack(t, 'sync', 2);
  const [first, second] = s.nodes as [Node, Node];
  await sql(
    { engine: 'mysql', port: s.writerPort, user: 'app', password: s.app },
    'CREATE TABLE acked (id INT PRIMARY KEY)',
  );
  const writer = new Writer(s.writerPort, s.app);
  const watch = new SplitBrainWatch(s.nodes);
  writer.start();
  watch.start();
  await waitFor('writes to flow', () => writer.acked.length > 200);

  const killedAt = Date.now();
  process.kill(s.enginePid(first.name), 'SIGKILL');
  const after = await waitFor('a failover', () => {
    const st = readClusterState(s.dataDir);
    return st && st.term === 2 ? st : undefined;
  });
  assert.equal(after.primary, second.name);
  const back = await waitFor('a write acknowledged after the kill', () =>
    writer.ackTimes.find((x) => x > killedAt + 50),
  );
  t.diagnostic(`writes through the writer endpoint back ${back - killedAt} ms after the SIGKILL`);
  assert.ok(back - killedAt < 5000, `writes back within 5 s (${back - killedAt} ms)`);
  const event = after.history.at(-1)!;
  assert.equal(event.kind, 'failover');
  assert.equal(event.lostUnit, 'transactions');

  // The old primary rejoins as a replica and gets what was written after the failover.
  await waitFor(`${first.name} to be a replica`, async () => (await s.api(first, '/replica')) === 200, {
    timeout: 60_000,
  });
  await sql(
    { engine: 'mysql', port: s.writerPort, user: 'app', password: s.app },
    'CREATE TABLE after_failover (v TEXT)',
  );
  await waitFor('the table written after the failover on the old primary', async () => {
    const r = await s.direct(
      first,
      "SELECT COUNT(*) AS c FROM information_schema.TABLES WHERE TABLE_NAME = 'after_failover'",
    );
    return Number(r[0]!['c']) === 1;
  });
  await assert.rejects(
    sql(
      { engine: 'mysql', port: first.port, user: 'app', password: s.app },
      "INSERT INTO after_failover VALUES ('x')",
    ),
    /read-only/i,
    'the old primary refuses writes',
  );
  assert.equal(await s.api(first, '/primary'), 503);
  // Its lag, in transactions and seconds, for Prometheus.
  const metrics = await (await fetch(`http://127.0.0.1:${first.apiPort}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`^tandem_db_replication_lag_transactions\\{node="${first.name}"\\} [\\d.]+$`, 'm'),
  );
  assert.match(
    metrics,
    new RegExp(`^tandem_db_replication_lag_seconds\\{node="${first.name}"\\} [\\d.]+$`, 'm'),
  );
  assert.match(metrics, /^tandem_db_primary\{node="db-01"\} 0$/m);
  // And in bytes: its coordinates are in the new primary's binary log now.
  await waitFor('the rejoined replica to report its lag in bytes', async () => {
    const text = await (await fetch(`http://127.0.0.1:${first.apiPort}/metrics`)).text();
    return new RegExp(`^tandem_db_replication_lag_bytes\\{node="${first.name}"\\} \\d+$`, 'm').test(text);
  });

  // Switchover back while writes go on.
  const sw = new Component(['db', 'switchover', '--to', first.name, '-c', s.file, '-d', s.dataDir]);
  assert.equal(await sw.exited, 0, sw.output);
  const s3 = readClusterState(s.dataDir)!;
  assert.equal(s3.term, 3);
  assert.equal(s3.primary, first.name);
  const n = writer.acked.length;
  await waitFor('writes after the switchover', () => writer.acked.length > n + 50);
  // The new primary waits for the replica's acknowledgement, and `tandem db status` says so.
  const status = spawnSync(process.execPath, [TANDEM, 'db', 'status', '-c', s.file, '-d', s.dataDir], {
    encoding: 'utf8',
  });
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /, sync replication,/);
  const replicaRow = status.stdout.split('\n').find((l) => l.trim().startsWith(`${s.nodes[1]!.name} `));
  assert.match(replicaRow ?? '', /replica .* semi-sync\s*$/, status.stdout);

  await writer.stop();
  await watch.stop();
  const present = new Set((await s.direct(first, 'SELECT id FROM app.acked')).map((r) => Number(r['id'])));
  const lost = writer.acked.filter((id) => !present.has(id));
  t.diagnostic(
    `${writer.acked.length} acknowledged writes, ${lost.length} lost across a failover and a switchover`,
  );
  assert.deepEqual(lost, [], 'semi-synchronous replication loses no acknowledged write');
  assert.equal(watch.maxPrimaries, 1, 'never two nodes passing the primary check at once');
});

test('MariaDB, async replication: lost transactions are counted; the diverged old primary is re-cloned', async (t) => {
  if (skipUnless(t, MARIADBD ? undefined : 'mariadbd (apt-get install mariadb-server)')) return;
  const s = await startStack(t, 'async', 3);
  const [first, second, third] = s.nodes as [Node, Node, Node];
  // Each instance has its own temporary directory: two replicas cloned at once in the shared
  // /tmp could break each other's initialisation.
  const tmpdirs = await Promise.all(
    s.nodes.map(async (n) => String((await s.direct(n, 'SELECT @@tmpdir AS d'))[0]!['d'])),
  );
  assert.equal(new Set(tmpdirs).size, 3, tmpdirs.join(', '));
  for (const [i, d] of tmpdirs.entries()) assert.match(d, new RegExp(`${s.nodes[i]!.name}\\.tmp$`));
  const w = { engine: 'mysql' as const, port: s.writerPort, user: 'app', password: s.app };
  await sql(w, 'CREATE TABLE t (id INT PRIMARY KEY)');
  await sql(w, 'INSERT INTO t VALUES (1)');
  await waitFor('the row on both replicas', async () => {
    const counts = await Promise.all(
      [second, third].map(async (n) =>
        Number((await s.direct(n, 'SELECT COUNT(*) AS c FROM app.t'))[0]!['c']),
      ),
    );
    return counts.every((c) => c === 1);
  });
  // Replication stops: the next writes are acknowledged (async) but reach no replica.
  for (const n of [second, third]) await s.direct(n, 'STOP SLAVE');
  for (let id = 2; id <= 6; id++) await sql(w, 'INSERT INTO t VALUES ($1)', [id]);
  // The manager has seen the primary's last position: it reports both replicas 5 behind, and
  // the bytes of those 5 transactions in the primary's binary log.
  await waitFor(
    'the manager to see the replicas 5 transactions behind',
    () => {
      const cluster = s.stack.status().components.find((c) => c.id === 'cluster');
      const nodes = (cluster?.details['nodes'] ?? []) as {
        name: string;
        lag: number | null;
        lagBytes: number | null;
      }[];
      return nodes.filter((n) => n.lag === 5 && n.lagBytes !== null && n.lagBytes > 0).length === 2;
    },
    { timeout: 15_000 },
  );
  const status = spawnSync(process.execPath, [TANDEM, 'status', '-c', s.file, '-d', s.dataDir], {
    encoding: 'utf8',
  }).stdout;
  for (const n of [second, third])
    assert.match(status, new RegExp(`^ {2}${n.name} +replica +5 tx / [1-9]\\d* B( |$)`, 'm'), status);

  process.kill(s.enginePid(first.name), 'SIGKILL');
  const after = await waitFor('a failover', () => {
    const st = readClusterState(s.dataDir);
    return st && st.term === 2 ? st : undefined;
  });
  const event = after.history.at(-1)!;
  t.diagnostic(`failover event: ${event.note}`);
  assert.equal(event.lostUnit, 'transactions');
  assert.equal(event.lost, 5, 'the five writes no replica got are counted');
  const survivor = after.primary === second.name ? third : second;
  const promoted = after.primary === second.name ? second : third;

  await sql(w, 'INSERT INTO t VALUES (100)').catch(async () => {
    await waitFor('the writer endpoint on the new primary', async () =>
      sql(w, 'INSERT INTO t VALUES (100)').then(
        () => true,
        () => false,
      ),
    );
  });
  // The other replica follows the new primary.
  await waitFor(`${survivor.name} to get the write made after the failover`, async () => {
    const r = await s.direct(survivor, 'SELECT COUNT(*) AS c FROM app.t WHERE id = 100');
    return Number(r[0]!['c']) === 1;
  });
  // The old primary holds transactions 2..6 that the new primary never had: re-cloned, old dir kept.
  await waitFor(`${first.name} to be a replica again`, async () => (await s.api(first, '/replica')) === 200, {
    timeout: 90_000,
  });
  const ids = (await s.direct(first, 'SELECT id FROM app.t ORDER BY id')).map((r) => Number(r['id']));
  assert.deepEqual(ids, [1, 100], `${first.name} now has the new primary's history`);
  const dbDir = join(s.dataDir, 'db');
  assert.ok(
    readdirSync(dbDir).some((d) => d.startsWith(`${first.name}.old-`)),
    `the old data directory is kept aside in ${dbDir}`,
  );
  assert.equal((await s.direct(promoted, 'SELECT COUNT(*) AS c FROM app.t'))[0]!['c'], 2);
});

test('engine mysql with a binDir without MariaDB: tandem up says what is missing and how to install it', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const file = writeConfig(dir.path, {
    servers: [{ name: 'web-01', port: await freePort(), app: { port: await freePort(), processes: 1 } }],
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ port: await freePort(), backend: 'web' }],
        stats: { port: await freePort() },
        admin: { port: await freePort() },
      },
    ],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }] }],
    database: {
      engine: 'mysql',
      binDir: dir.path,
      nodes: [{ name: 'db-01', port: await freePort(), role: 'primary' }],
    },
  });
  const up = new Stack(file, join(dir.path, 'data'));
  const code = await up.exited;
  assert.notEqual(code, 0);
  assert.match(up.output, /no mariadbd or mysqld in/);
  assert.match(up.output, /apt-get install mariadb-server/);
  assert.doesNotMatch(up.output, /\n\s+at /, 'no stack trace');
});
