/**
 * The database cluster's shared state under `<dataDir>/cluster/`:
 *
 * - `state.json`, written only by the cluster manager (and created once at bootstrap): which node
 *   is primary, under which term (a number that only grows), and the history of changes.
 * - `nodes/<name>.json`, written only by that node's agent: what it is doing now.
 * - `requests/switchover.json`, written by `tandem db switchover`, consumed by the manager.
 *
 * One writer per file, each write atomic (write + rename), so no locks are needed. The files are
 * the cluster's source of truth on one machine; across machines they would live in a consensus
 * store (etcd, Consul), which Tandem does not ship yet.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One change of primary. */
export interface ClusterEvent {
  term: number;
  /** `bootstrap`, `failover` (the primary failed) or `switchover` (asked for). */
  kind: 'bootstrap' | 'failover' | 'switchover';
  primary: string;
  previous: string | null;
  at: string;
  /** WAL position of the new primary when it took over. */
  lsn: string | null;
  /**
   * What the old primary had written (as last seen) that the new primary did not have: what
   * asynchronous replication may have lost, in `lostUnit`. 0 when nothing was lost; null: unknown.
   */
  lost: number | null;
  /** Bytes of WAL (PostgreSQL) or transactions (MariaDB). */
  lostUnit: 'bytes' | 'transactions';
  note: string;
}

export interface ClusterState {
  term: number;
  primary: string;
  /** Set by the manager during a switchover: this primary must stop so the target can catch up. */
  demote: string | null;
  /** Set by the manager when no replica qualifies for promotion; cleared once one is promoted. */
  blocked: string | null;
  history: ClusterEvent[];
}

export type NodeActivity =
  'starting' | 'cloning' | 'rejoining' | 'running' | 'demoting' | 'stopped' | 'failed';

/** What a node's agent reports about itself. */
export interface NodeReport {
  name: string;
  pid: number;
  enginePid: number | null;
  activity: NodeActivity;
  /** Role the engine runs as, when it runs. */
  role: 'primary' | 'replica' | null;
  /** The term the node follows (the primary it streams from or is). */
  term: number;
  /** Last WAL position at a clean stop (for switchover). */
  stopLsn: string | null;
  updatedAt: string;
  message: string | null;
}

export function clusterDir(dataDir: string): string {
  return join(dataDir, 'cluster');
}

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (err instanceof SyntaxError) return undefined; // a torn write cannot happen (rename), but be safe
    throw err;
  }
}

function writeJson(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

export function readClusterState(dataDir: string): ClusterState | undefined {
  return readJson<ClusterState>(join(clusterDir(dataDir), 'state.json'));
}

/** Creates the state at bootstrap (term 1, the configured primary) unless it exists; returns it. */
export function initClusterState(dataDir: string, primary: string): ClusterState {
  mkdirSync(join(clusterDir(dataDir), 'nodes'), { recursive: true });
  mkdirSync(join(clusterDir(dataDir), 'requests'), { recursive: true });
  const state: ClusterState = {
    term: 1,
    primary,
    demote: null,
    blocked: null,
    history: [
      {
        term: 1,
        kind: 'bootstrap',
        primary,
        previous: null,
        at: new Date().toISOString(),
        lsn: null,
        lost: 0,
        lostUnit: 'bytes',
        note: 'cluster created',
      },
    ],
  };
  try {
    writeFileSync(join(clusterDir(dataDir), 'state.json'), `${JSON.stringify(state, null, 2)}\n`, {
      flag: 'wx',
    });
    return state;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readClusterState(dataDir)!;
  }
}

/** Only the cluster manager calls this. */
export function writeClusterState(dataDir: string, state: ClusterState): void {
  writeJson(join(clusterDir(dataDir), 'state.json'), state);
}

export function readNodeReport(dataDir: string, node: string): NodeReport | undefined {
  return readJson<NodeReport>(join(clusterDir(dataDir), 'nodes', `${node}.json`));
}

/** Only the node's own agent calls this. */
export function writeNodeReport(dataDir: string, report: NodeReport): void {
  mkdirSync(join(clusterDir(dataDir), 'nodes'), { recursive: true });
  writeJson(join(clusterDir(dataDir), 'nodes', `${report.name}.json`), report);
}

export interface SwitchoverRequest {
  to: string | null;
  requestedAt: string;
}

export function requestSwitchover(dataDir: string, to: string | null): void {
  mkdirSync(join(clusterDir(dataDir), 'requests'), { recursive: true });
  writeJson(join(clusterDir(dataDir), 'requests', 'switchover.json'), {
    to,
    requestedAt: new Date().toISOString(),
  } satisfies SwitchoverRequest);
}

/** The pending switchover request, removed as it is taken. */
export function takeSwitchoverRequest(dataDir: string): SwitchoverRequest | undefined {
  const file = join(clusterDir(dataDir), 'requests', 'switchover.json');
  const req = readJson<SwitchoverRequest>(file);
  if (req) rmSync(file, { force: true });
  return req;
}

/** The manager's heartbeat: written every check, read by agents deciding whether to wait for it. */
export function writeManagerHeartbeat(dataDir: string): void {
  mkdirSync(clusterDir(dataDir), { recursive: true });
  writeJson(join(clusterDir(dataDir), 'manager.json'), { pid: process.pid, at: Date.now() });
}

/** True if a cluster manager wrote its heartbeat in the last 5 seconds. */
export function managerAlive(dataDir: string, withinMs = 5000): boolean {
  const hb = readJson<{ pid: number; at: number }>(join(clusterDir(dataDir), 'manager.json'));
  return hb !== undefined && Date.now() - hb.at < withinMs;
}
