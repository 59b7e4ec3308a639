/**
 * `npm run soak:failover [-- --kills 10 --mode sync|async|both --nodes 3 --engine postgres|mysql]`
 *
 * Repeated failovers with a real engine (PostgreSQL by default, or MariaDB): three nodes under `tandem db` agents and a
 * `tandem cluster` manager; a writer inserts rows one at a time into whichever node the cluster
 * state names primary and logs every acknowledged id; the primary's engine is killed with
 * SIGKILL, again and again. After each kill: the time until a write succeeds on the new primary,
 * and, at the end, every acknowledged id that is missing from the final primary. Sync mode must
 * lose none (the script exits 1 if it does); async mode reports what it lost. Bounded: each kill
 * waits at most 60 s for its failover and rejoin.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { readClusterState } from '../src/db/cluster/cluster-state.js';
import { readSecret } from '../src/db/secrets.js';
import { freePort } from '../test/helpers/ports.js';
import { type Engine, type SqlSession, connect as connectSql, isDuplicateKey } from '../test/helpers/sql.js';

const TANDEM = fileURLToPath(new URL('../../bin/tandem.js', import.meta.url));

async function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Proc {
  child: ChildProcess;
  details: Record<string, unknown>;
  ready: Promise<void>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [TANDEM, ...args], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const proc: Proc = { child, details: {}, ready: Promise.resolve() };
  proc.ready = new Promise((resolve, reject) => {
    child.on('message', (m: { type: string; details?: Record<string, unknown> }) => {
      if (m.details) proc.details = { ...proc.details, ...m.details };
      if (m.type === 'ready') resolve();
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
  return proc;
}

async function soak(
  engine: Engine,
  mode: 'sync' | 'async',
  kills: number,
  nodeCount: number,
): Promise<{ lost: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-soak-'));
  chmodSync(dir, 0o755); // the engine's unprivileged user must reach it (mkdtemp makes it 0700)
  const dataDir = join(dir, 'data');
  const nodes: { name: string; port: number; apiPort: number }[] = [];
  for (let i = 1; i <= nodeCount; i++)
    nodes.push({ name: `db-0${i}`, port: await freePort(), apiPort: await freePort() });
  const file = join(dir, 'tandem.yaml');
  writeFileSync(
    file,
    stringify({
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
        engine,
        replication: mode,
        endpoints: { enabled: false },
        failover: { checkInterval: '200ms', timeout: '1500ms' },
        nodes: nodes.map((n, i) => ({ ...n, role: i === 0 ? 'primary' : 'replica' })),
      },
    }),
  );
  const common = ['-c', file, '-d', dataDir];
  const agents = new Map<string, Proc>();
  const procs: Proc[] = [];
  try {
    for (const [i, n] of nodes.entries()) {
      const a = start(['db', '--node', n.name, ...common]);
      agents.set(n.name, a);
      procs.push(a);
      if (i === 0) await a.ready;
    }
    await Promise.all([...agents.values()].map((a) => a.ready));
    const manager = start(['cluster', ...common]);
    procs.push(manager);
    await manager.ready;
    const password = readSecret(dataDir, 'db-superuser')!;
    const connect = (port: number) => connectSql({ engine, port, password, timeoutMs: 500 });
    const setup = await connect(nodes[0]!.port);
    await setup.query('CREATE TABLE acked (id int PRIMARY KEY)');
    await setup.end();

    // The writer: one row at a time into the current primary, every acknowledged id logged.
    const acked: number[] = [];
    const ackAt: { t: number; node: string }[] = [];
    let running = true;
    const writer = (async () => {
      let client: SqlSession | undefined;
      let node = '';
      let next = 1;
      while (running) {
        try {
          if (!client) {
            node = readClusterState(dataDir)!.primary;
            client = await connect(nodes.find((n) => n.name === node)!.port);
          }
          await client.query('INSERT INTO acked (id) VALUES ($1)', [next]);
          acked.push(next);
          ackAt.push({ t: Date.now(), node });
          next++;
        } catch (err) {
          if (isDuplicateKey(err)) next++; // committed, acknowledgement lost
          await client?.end().catch(() => undefined);
          client = undefined;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      await client?.end().catch(() => undefined);
    })();

    const rows: string[] = [];
    for (let k = 1; k <= kills; k++) {
      await until('writes to flow', () => (acked.length > k * 200 ? true : undefined));
      const before = readClusterState(dataDir)!;
      const enginePid = agents.get(before.primary)!.details['enginePid'] as number;
      const killedAt = Date.now();
      process.kill(enginePid, 'SIGKILL');
      const after = await until('a failover', () => {
        const s = readClusterState(dataDir);
        return s && s.term > before.term ? s : undefined;
      });
      const back = await until('a write on the new primary', () =>
        ackAt.find((a) => a.t > killedAt && a.node === after.primary),
      );
      // The old primary must be a replica again before the next kill.
      await until(`${before.primary} to rejoin`, async () => {
        const api = nodes.find((n) => n.name === before.primary)!.apiPort;
        const r = await fetch(`http://127.0.0.1:${api}/replica`, { signal: AbortSignal.timeout(1000) });
        return r.status === 200 ? true : undefined;
      });
      const event = after.history.at(-1)!;
      rows.push(
        `  kill ${String(k).padStart(2)}: ${before.primary} → ${after.primary} (term ${after.term}), writes back after ${back.t - killedAt} ms; ${event.note}`,
      );
      console.log(rows.at(-1));
    }
    running = false;
    await writer;
    const final = readClusterState(dataDir)!.primary;
    const c = await connect(nodes.find((n) => n.name === final)!.port);
    const present = new Set((await c.query('SELECT id FROM acked')).map((r) => Number(r['id'])));
    await c.end();
    const lost = acked.filter((id) => !present.has(id));
    console.log(
      `${mode}: ${kills} kills, ${acked.length} acknowledged writes, ${lost.length} lost${lost.length ? ` (ids ${lost.slice(0, 20).join(', ')}${lost.length > 20 ? ', …' : ''})` : ''}`,
    );
    return { lost: lost.length };
  } finally {
    for (const p of procs.reverse()) {
      if (p.child.exitCode === null) {
        p.child.kill('SIGTERM');
        await new Promise((r) => p.child.once('exit', r));
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const { values } = parseArgs({
  options: {
    kills: { type: 'string' },
    mode: { type: 'string' },
    nodes: { type: 'string' },
    engine: { type: 'string' },
  },
});
const engine: Engine = values.engine === 'mysql' || values.engine === 'mariadb' ? 'mysql' : 'postgres';
const label = engine === 'mysql' ? 'MariaDB' : 'PostgreSQL';
const kills = Number(values.kills ?? 10);
const nodeCount = Number(values.nodes ?? 3);
const modes: ('sync' | 'async')[] =
  values.mode === 'sync' ? ['sync'] : values.mode === 'async' ? ['async'] : ['sync', 'async'];
let failed = false;
for (const mode of modes) {
  console.log(
    `== ${label}, ${mode} replication, ${nodeCount} nodes, ${kills} kills of the primary's engine (SIGKILL)`,
  );
  const r = await soak(engine, mode, kills, nodeCount);
  if (mode === 'sync' && r.lost > 0) failed = true;
}
if (failed) {
  console.log('FAILED: sync replication lost acknowledged writes');
  process.exitCode = 1;
}
