/**
 * Failover for real: three PostgreSQL nodes run by `tandem db` agents and a `tandem cluster`
 * manager, a writer inserting rows and logging every acknowledged id, a primary killed with
 * SIGKILL. Checks: a replica is promoted under a new term, writes work again within 5 s, the
 * old primary rejoins as a replica and gets rows written after the failover, the other replica
 * follows the new primary, no two nodes ever pass the primary check at once, and a switchover
 * loses no acknowledged write.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { readClusterState } from '../../src/db/cluster/cluster-state.js';
import { slotName } from '../../src/db/engines/postgres.js';
import { readSecret } from '../../src/db/secrets.js';
import { Component } from '../helpers/components.js';
import { freePort, isAlive, tempDir, waitFor } from '../helpers/index.js';
import { databaseOnlyConfig, processesMentioning } from '../helpers/stack.js';

interface Node {
  name: string;
  port: number;
  apiPort: number;
}

/** Inserts rows one by one into whichever node the cluster state names primary. */
class Writer {
  readonly acked: number[] = [];
  readonly ackTimes: number[] = [];
  /** The node that acknowledged each write. */
  readonly ackNodes: string[] = [];
  errors = 0;
  private running = true;
  private done: Promise<void> | undefined;

  constructor(
    private readonly nodes: Node[],
    private readonly dataDir: string,
    private readonly password: string,
  ) {}

  start(): void {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    let client: pg.Client | undefined;
    let nodeName = '';
    let next = 1;
    const deadline = Date.now() + 120_000; // bounded, whatever happens
    while (this.running && Date.now() < deadline) {
      try {
        if (!client) {
          const primary = readClusterState(this.dataDir)!.primary;
          const node = this.nodes.find((n) => n.name === primary)!;
          nodeName = node.name;
          client = new pg.Client({
            host: '127.0.0.1',
            port: node.port,
            user: 'postgres',
            password: this.password,
            database: 'app',
            connectionTimeoutMillis: 500,
            query_timeout: 3000,
          });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query('INSERT INTO acked (id) VALUES ($1)', [next]);
        this.acked.push(next);
        this.ackTimes.push(Date.now());
        this.ackNodes.push(nodeName);
        next++;
      } catch (err) {
        this.errors++;
        // The write committed but its acknowledgement was lost with the connection: not
        // acknowledged, so not counted; go on with the next id.
        if ((err as { code?: string }).code === '23505') next++;
        await client?.end().catch(() => undefined);
        client = undefined;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  /** Time of the first write acknowledged by `node` after `t`. */
  firstAckAfter(t: number, node: string): number | undefined {
    return this.ackTimes.find((x, i) => x > t && this.ackNodes[i] === node);
  }
}

/** Polls every node's /primary check; remembers the largest number that passed at once. */
class SplitBrainWatch {
  maxPrimaries = 0;
  private running = true;
  private done: Promise<void> | undefined;
  constructor(private readonly nodes: Node[]) {}
  start(): void {
    this.done = (async () => {
      const deadline = Date.now() + 180_000;
      while (this.running && Date.now() < deadline) {
        const results = await Promise.all(
          this.nodes.map((n) =>
            fetch(`http://127.0.0.1:${n.apiPort}/primary`, { signal: AbortSignal.timeout(500) }).then(
              (r) => r.status === 200,
              () => false,
            ),
          ),
        );
        this.maxPrimaries = Math.max(this.maxPrimaries, results.filter(Boolean).length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

async function rows(port: number, password: string, sql: string): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'app' });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

async function isReplica(port: number, password: string): Promise<boolean> {
  return (await rows(port, password, 'SELECT pg_is_in_recovery() AS r'))[0]!['r'] === true;
}

for (const replication of ['async', 'sync'] as const) {
  test(`failover with ${replication} replication: promotion, rejoin, no split brain, switchover`, async (t) => {
    const dir = tempDir();
    const nodes: Node[] = [];
    for (const name of ['web-01', 'web-02', 'web-03'])
      nodes.push({ name, port: await freePort(), apiPort: await freePort() });
    const file = await databaseOnlyConfig(dir.path, {
      replication,
      failover: { checkInterval: '200ms', timeout: '1500ms' },
      nodes: nodes.map((n, i) => ({
        name: n.name,
        port: n.port,
        apiPort: n.apiPort,
        role: i === 0 ? 'primary' : 'replica',
      })),
    });
    const dataDir = join(dir.path, 'data');
    const common = ['-c', file, '-d', dataDir];
    const agents = new Map<string, Component>();
    let manager: Component | undefined = undefined;
    const writer: { w?: Writer } = {};
    const watch = new SplitBrainWatch(nodes);
    t.after(async () => {
      await writer.w?.stop();
      await watch.stop();
      await manager?.stop();
      for (const a of agents.values()) await a.stop();
      for (const pid of processesMentioning(dataDir)) process.kill(pid, 'SIGKILL');
      dir.cleanup();
    });
    const explain = (err: Error): never => {
      const tails = [...agents.entries(), ['manager', manager] as const]
        .map(
          ([n, c]) =>
            `--- ${n}:\n${(c?.output ?? '')
              .split('\n')
              .filter(
                (l) =>
                  !l.includes('postgres: ') ||
                  // Not the refusals of the test's own polling while a node starts: they hide the rest.
                  (!l.includes('the database system is starting up') &&
                    /FATAL|ERROR|PANIC|LOG: {2}(database system|started streaming|redo|promot|selected new timeline|consistent|entering standby|invalid record|restored)/.test(
                      l,
                    )),
              )
              .slice(-60)
              .join('\n')}`,
        )
        .join('\n');
      throw new Error(`${err.message}\n${tails}`);
    };
    const startAgent = async (name: string) => {
      const a = new Component(['db', '--node', name, ...common]);
      agents.set(name, a);
      await a.ready();
      return a;
    };

    // Bring the cluster up: primary, replicas, manager.
    await startAgent('web-01');
    await Promise.all([startAgent('web-02'), startAgent('web-03')]);
    manager = new Component(['cluster', ...common]);
    await manager.ready();
    const config = loadConfig({ file, dataDir });
    const password = readSecret(config.paths.dataDir, 'db-superuser')!;
    await rows(nodes[0]!.port, password, 'CREATE TABLE acked (id int PRIMARY KEY)');
    watch.start();
    writer.w = new Writer(nodes, dataDir, password);
    writer.w.start();
    await waitFor('writes to flow', () => writer.w!.acked.length > 50);

    // 1. SIGKILL the primary's PostgreSQL; its agent stays to rejoin it.
    const killedPid = agents.get('web-01')!.details['enginePid'] as number;
    assert.ok(isAlive(killedPid));
    const killAt = Date.now();
    process.kill(killedPid, 'SIGKILL');
    const s2 = await waitFor('a failover (term 2)', () => {
      const s = readClusterState(dataDir);
      return s && s.term === 2 ? s : undefined;
    }).catch(explain);
    assert.notEqual(s2.primary, 'web-01');
    const event = s2.history.at(-1)!;
    assert.equal(event.kind, 'failover');
    assert.equal(event.previous, 'web-01');
    await waitFor('writes to succeed on the new primary', () =>
      writer.w!.firstAckAfter(killAt, s2.primary),
    ).catch(explain);
    const recovery = writer.w.firstAckAfter(killAt, s2.primary)! - killAt;
    t.diagnostic(`writes succeeded on the new primary ${recovery} ms after the old primary's SIGKILL`);
    assert.ok(recovery < 5000, `writes back after ${recovery} ms`);

    // The old primary rejoins as a replica and receives what is written now.
    const newPrimary = nodes.find((n) => n.name === s2.primary)!;
    const other = nodes.find((n) => n.name !== s2.primary && n.name !== 'web-01')!;
    await waitFor('web-01 to rejoin as a replica', async () => isReplica(nodes[0]!.port, password), {
      timeout: 60_000,
    }).catch(explain);
    // Rewound, not cloned afresh: the new primary kept the WAL the rewind replays from.
    const rejoined = agents.get('web-01')!.output;
    assert.match(rejoined, /pg_rewind: Done!/);
    assert.doesNotMatch(rejoined, /cloning afresh/);
    await rows(newPrimary.port, password, 'CREATE TABLE after_failover (v text)');
    await rows(newPrimary.port, password, "INSERT INTO after_failover VALUES ('written after the failover')");
    for (const n of [nodes[0]!, other]) {
      await waitFor(`the row written after the failover on ${n.name}`, async () => {
        const r = await rows(n.port, password, 'SELECT count(*)::int AS c FROM after_failover').catch(() => [
          { c: 0 },
        ]);
        return r[0]!['c'] === 1;
      });
    }

    // 2. Switchover back to web-01 while writes go on: no acknowledged write lost.
    const sw = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const c = new Component(['db', 'switchover', '--to', 'web-01', ...common]);
      void c.exited.then((code) => resolve({ code, out: c.output }));
    });
    assert.equal(sw.code, 0, sw.out);
    const s3 = readClusterState(dataDir)!;
    assert.equal(s3.term, 3);
    assert.equal(s3.primary, 'web-01');
    assert.equal(s3.history.at(-1)!.kind, 'switchover');
    const beforeStop = writer.w.acked.length;
    await waitFor('writes to go on after the switchover', () => writer.w!.acked.length > beforeStop + 20);
    await waitFor(
      `${newPrimary.name} to be a replica again`,
      async () => isReplica(newPrimary.port, password),
      {
        timeout: 60_000,
      },
    );

    await writer.w.stop();
    await watch.stop();
    const present = new Set(
      (await rows(nodes[0]!.port, password, 'SELECT id FROM acked')).map((r) => r['id'] as number),
    );
    const lost = writer.w.acked.filter((id) => !present.has(id));
    t.diagnostic(
      `${replication}: ${writer.w.acked.length} acknowledged writes, ${lost.length} lost across a failover and a switchover; ` +
        `failover event: ${event.note}`,
    );
    if (replication === 'sync') assert.deepEqual(lost, [], 'sync replication loses no acknowledged write');
    assert.equal(watch.maxPrimaries, 1, 'never two nodes passing the primary check at once');
  });
}

test('the primary node vanishes without a word: failover after the timeout; when it returns it is fenced into a replica', async (t) => {
  const dir = tempDir();
  const nodes: Node[] = [];
  for (const name of ['web-01', 'web-02'])
    nodes.push({ name, port: await freePort(), apiPort: await freePort() });
  const file = await databaseOnlyConfig(dir.path, {
    failover: { checkInterval: '200ms', timeout: '1500ms' },
    nodes: nodes.map((n, i) => ({ ...n, role: i === 0 ? 'primary' : 'replica' })),
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
  const primary = await start(['db', '--node', 'web-01']);
  await start(['db', '--node', 'web-02']);
  await start(['cluster']);
  const password = readSecret(dataDir, 'db-superuser')!;
  await rows(nodes[0]!.port, password, 'CREATE TABLE t (v text)');
  // Replication is asynchronous: the table must be on the replica before the primary goes.
  await waitFor('the table on the replica', async () => {
    const r = await rows(nodes[1]!.port, password, "SELECT to_regclass('t') IS NOT NULL AS ok");
    return r[0]!['ok'] === true;
  });

  // The whole node goes: its agent and its PostgreSQL, both SIGKILLed, nobody tells the manager.
  const enginePid = primary.details['enginePid'] as number;
  const vanishedAt = Date.now();
  process.kill(primary.pid, 'SIGKILL');
  process.kill(enginePid, 'SIGKILL');
  const s2 = await waitFor('a failover after the timeout', () => {
    const s = readClusterState(dataDir);
    return s && s.term === 2 ? s : undefined;
  });
  const took = Date.now() - vanishedAt;
  t.diagnostic(`failover ${took} ms after the node vanished (timeout 1500 ms)`);
  assert.equal(s2.primary, 'web-02');
  assert.ok(took >= 1400, `the manager waited for the timeout (${took} ms)`);
  await rows(nodes[1]!.port, password, "INSERT INTO t VALUES ('after')");

  // The slot web-02 keeps for web-01 was made before web-02's promotion: it holds WAL from before
  // the fork, where a rewind of web-01 starts replaying.
  const slot = `'${slotName('web-01')}'`;
  const [kept] = await rows(
    nodes[1]!.port,
    password,
    `SELECT restart_lsn <= split_part(pg_read_file('pg_wal/00000002.history'), E'\t', 2)::pg_lsn AS ok
       FROM pg_replication_slots WHERE slot_name = ${slot}`,
  );
  assert.equal(kept?.['ok'], true, "web-02's slot for web-01 keeps WAL from before the fork");
  // Without that slot (an operator dropped it), web-02 recycles that WAL at its next checkpoint.
  await rows(nodes[1]!.port, password, `SELECT pg_drop_replication_slot(${slot})`);
  await rows(nodes[1]!.port, password, 'CREATE TABLE churn (i int)');
  for (let i = 0; i < 4; i++)
    await rows(nodes[1]!.port, password, `INSERT INTO churn VALUES (${i}); SELECT pg_switch_wal()`);
  await rows(nodes[1]!.port, password, 'CHECKPOINT');

  // The old node comes back on its own: it must not take writes as a second primary. Rewound, it
  // would wait for WAL no one has any more: it is cloned afresh instead, its old directory kept.
  const back = await start(['db', '--node', 'web-01']);
  assert.match(
    back.output,
    /web-02 no longer has the WAL this node needs to catch up \([0-9A-F]{24}\): cloning afresh/,
  );
  const aside = /kept the former data directory as (\S+)/.exec(back.output)?.[1];
  assert.ok(aside && existsSync(aside), back.output);
  assert.equal(await isReplica(nodes[0]!.port, password), true, 'the returning old primary is a replica');
  const api = await fetch(`http://127.0.0.1:${nodes[0]!.apiPort}/primary`);
  assert.equal(api.status, 503);
  await waitFor('the row written after the failover on the old primary', async () => {
    const r = await rows(nodes[0]!.port, password, 'SELECT count(*)::int AS c FROM t');
    return r[0]!['c'] === 1;
  });
  await assert.rejects(rows(nodes[0]!.port, password, "INSERT INTO t VALUES ('split brain')"), /read-only/);
  // Its lag, in bytes of WAL and seconds, for Prometheus; the primary says it is one.
  const metrics = await (await fetch(`http://127.0.0.1:${nodes[0]!.apiPort}/metrics`)).text();
  assert.match(metrics, /^tandem_db_replication_lag_bytes\{node="web-01"\} \d+$/m);
  assert.match(metrics, /^tandem_db_replication_lag_seconds\{node="web-01"\} [\d.]+$/m);
  assert.match(metrics, /^tandem_db_term\{node="web-01"\} 2$/m);
  const primaryMetrics = await (await fetch(`http://127.0.0.1:${nodes[1]!.apiPort}/metrics`)).text();
  assert.match(primaryMetrics, /^tandem_db_primary\{node="web-02"\} 1$/m);

  // The load balancers' checks come often and at once; they share the engine's answers instead of
  // opening one or two sessions each. Three bursts of 50 reader checks: if each asked for itself,
  // 300 sessions or more on web-01 and some checks failing; shared, a few (and the manager's
  // probes meanwhile).
  const sessions = async () =>
    Number(
      (await rows(nodes[0]!.port, password, 'SELECT sum(sessions)::int AS n FROM pg_stat_database'))[0]!['n'],
    );
  let last = await sessions();
  // A session is counted when its backend exits, after its client is done: wait until only the
  // background's few come in between two readings (each reading is a session itself).
  const settled = () =>
    waitFor('the session count to settle', async () => {
      const n = await sessions();
      const quiet = n - last <= 4;
      last = n;
      return quiet ? n : undefined;
    });
  const before = await settled();
  for (let burst = 0; burst < 3; burst++) {
    const statuses = await Promise.all(
      Array.from({ length: 50 }, () =>
        fetch(`http://127.0.0.1:${nodes[0]!.apiPort}/replica?maxLag=1000000000`).then((r) => r.status),
      ),
    );
    assert.deepEqual([...new Set(statuses)], [200], 'every check passes: web-01 is a replica within the lag');
  }
  const opened = (await settled()) - before;
  t.diagnostic(
    `150 reader checks opened ${opened} engine sessions (the readings and the manager's probes included)`,
  );
  assert.ok(opened < 60, `150 checks share the engine's answers: ${opened} sessions`);
});
