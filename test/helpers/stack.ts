/** Runs `tandem up` as a real process for end-to-end tests, and inspects what it started. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { type ResolvedConfig, loadConfig } from '../../src/config/load.js';
import { isAlive, waitFor } from './index.js';
import { freePort, freePortRange } from './ports.js';

export { freePortRange };

export const ROOT = join(import.meta.dirname, '../../..');
/** The whole summary `tandem up` prints once the stack is up, from its first line to its last. */
export const UP_SUMMARY = /Tandem is up[^]*\nLogs: /;

export const TANDEM = join(ROOT, 'bin/tandem.js');

export interface StackPorts {
  lb: number;
  stats: number;
  admin: number;
  web: [number, number];
  app: [number, number];
  db: [number, number];
  dbApi: [number, number];
  /** The database writer and reader endpoints on the load balancer. */
  dbEndpoints: [number, number];
}

export async function allocatePorts(): Promise<StackPorts> {
  const [lb, stats, w1, w2, d1, d2, admin, a1, a2, e1, e2] = await Promise.all(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(() => freePort()),
  );
  return {
    lb: lb!,
    stats: stats!,
    admin: admin!,
    web: [w1!, w2!],
    app: [await freePortRange(2), await freePortRange(2)],
    db: [d1!, d2!],
    dbApi: [a1!, a2!],
    dbEndpoints: [e1!, e2!],
  };
}

/** The default topology on the given ports, with fast health checks for tests. */
export function stackConfig(
  ports: StackPorts,
  overrides: { restartDelay?: string } = {},
): Record<string, unknown> {
  const restart = { initialDelay: overrides.restartDelay ?? '500ms', maxDelay: '10s' };
  return {
    servers: [
      { name: 'web-01', port: ports.web[0], app: { port: ports.app[0], processes: 2, restart } },
      { name: 'web-02', port: ports.web[1], app: { port: ports.app[1], processes: 2, restart } },
    ],
    codebase: { static: join(ROOT, 'app/public'), dir: ROOT, command: ['node', 'dist/app/server.js'] },
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ name: 'http', port: ports.lb, backend: 'web' }],
        stats: { port: ports.stats },
        admin: { port: ports.admin },
      },
    ],
    backends: [
      {
        name: 'web',
        balance: 'roundrobin',
        healthCheck: { path: '/healthz', interval: '200ms', timeout: '500ms', rise: 2, fall: 2 },
        servers: [
          { name: 'web-01', weight: 1 },
          { name: 'web-02', weight: 1 },
        ],
      },
    ],
    database: {
      nodes: [
        { name: 'web-01', port: ports.db[0], apiPort: ports.dbApi[0], role: 'primary' },
        { name: 'web-02', port: ports.db[1], apiPort: ports.dbApi[1], role: 'replica' },
      ],
      endpoints: { writer: { port: ports.dbEndpoints[0] }, reader: { port: ports.dbEndpoints[1] } },
      failover: { checkInterval: '200ms', timeout: '1500ms' },
    },
  };
}

/**
 * A config file for tests of the database alone: the given `database` section (its endpoints off,
 * since no load balancer runs) plus the smallest valid rest, on free ports, never started.
 */
export async function databaseOnlyConfig(dir: string, database: Record<string, unknown>): Promise<string> {
  return writeConfig(dir, {
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
    database: { endpoints: { enabled: false }, ...database },
  });
}

/**
 * A database-only config in `dir` with a primary `web-01` and a replica `web-02` on free ports,
 * plus `database` (engine, settings); `primary`: more keys of the primary's node (apiPort).
 */
export async function primaryAndReplica(
  dir: string,
  database: Record<string, unknown> = {},
  primary: Record<string, unknown> = {},
): Promise<{ config: ResolvedConfig; p1: number; p2: number }> {
  const [p1, p2] = [await freePort(), await freePort()];
  const file = await databaseOnlyConfig(dir, {
    ...database,
    nodes: [
      { name: 'web-01', port: p1, role: 'primary', ...primary },
      { name: 'web-02', port: p2, role: 'replica' },
    ],
  });
  return { config: loadConfig({ file, dataDir: join(dir, 'data') }), p1, p2 };
}

export function writeConfig(dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/** A running `tandem up`. */
export class Stack {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(
    readonly configFile: string,
    readonly dataDir: string,
  ) {
    this.child = spawn(process.execPath, [TANDEM, 'up', '-c', configFile, '-d', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  /**
   * Waits for the whole "Tandem is up" summary (it ends with the "Logs:" line); throws with the
   * output at once if `tandem up` exits first.
   */
  async ready(timeout = 120_000): Promise<void> {
    let stop = false;
    const gone = this.exited.then((code) => {
      if (stop) return;
      throw new Error(`tandem up exited (code ${code}) before it was up:\n${this.output}`);
    });
    try {
      await Promise.race([
        gone,
        waitFor('tandem up to print "Tandem is up"', () => UP_SUMMARY.test(this.output), {
          timeout,
          interval: 100,
        }),
      ]);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('timed out'))
        err.message += `; its output so far:\n${this.output}`;
      throw err;
    } finally {
      stop = true;
    }
  }

  status(): StackStatus {
    const r = spawnSync(
      process.execPath,
      [TANDEM, 'status', '--json', '-c', this.configFile, '-d', this.dataDir],
      {
        encoding: 'utf8',
      },
    );
    return JSON.parse(r.stdout) as StackStatus;
  }

  /** Every pid the stack reported: components, database engines, application processes. */
  pids(): number[] {
    const s = this.status();
    const out: number[] = [s.pid];
    for (const c of s.components ?? []) {
      if (c.pid) out.push(c.pid);
      const d = c.details ?? {};
      if (typeof d['enginePid'] === 'number') out.push(d['enginePid']);
      if (Array.isArray(d['appPids']))
        out.push(...(d['appPids'] as number[]).filter((p) => typeof p === 'number'));
    }
    return out;
  }

  /** SIGTERM and wait for exit; returns the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }

  /** Hard cleanup for t.after: kill everything that is left. */
  async kill(pids: number[] = []): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 30_000))]);
    }
    for (const pid of [...pids, ...processesMentioning(this.dataDir)]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

export interface StackStatus {
  running: boolean;
  pid: number;
  state: string;
  components: {
    id: string;
    state: string;
    pid: number | null;
    role: string | null;
    address: string;
    details: Record<string, unknown>;
  }[];
  health: Record<string, { name: string; state: string }[]>;
}

/** Pids of processes whose command line mentions `text` (e.g. a test's data dir). */
export function processesMentioning(text: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(text)) out.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Pids from `pids` still alive. */
export function alive(pids: number[]): number[] {
  return pids.filter(isAlive);
}
