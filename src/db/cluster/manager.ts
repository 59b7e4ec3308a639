/**
 * The cluster manager (`tandem cluster`): checks every database node, and when the primary fails
 * promotes the most up-to-date replica, under a new term, and records the change. It also runs
 * switchovers asked for with `tandem db switchover`.
 *
 * It is the only writer of the cluster state. Agents follow the state: the new primary's peers
 * follow it, and the old primary, when it returns, is rewound into a replica (fencing).
 */
import type { ResolvedConfig } from '../../config/load.js';
import type { DbNodeConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { EngineDriver, NodeProbe as EngineProbe } from '../engines/engine.js';
import {
  type ClusterEvent,
  type ClusterState,
  readClusterState,
  readNodeReport,
  takeSwitchoverRequest,
  writeClusterState,
  writeManagerHeartbeat,
} from './cluster-state.js';
import { createDriver, engineLabel } from './db-node.js';

/** One check of one node. */
export interface NodeProbe {
  name: string;
  ok: boolean;
  role: 'primary' | 'replica' | null;
  /** Written (primary) or received (replica) WAL position. */
  lsn: string | null;
  replayLsn: string | null;
  /** The engine's answer, for `driver.lagBytes`; null when the node did not answer. */
  raw: EngineProbe | null;
  error: string | null;
}

export interface ManagerEvents {
  progress(message: string): void;
  /** The state after a change of primary, or a status refresh (every check). */
  state(details: Record<string, unknown>): void;
}

export class ClusterManager {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  /** When the primary was first seen failing, in this stretch of failures. */
  private failingSince = 0;
  /** The primary's WAL position at its last good check. */
  private lastPrimaryLsn: string | null = null;
  private lastBlocked: string | null = null;
  private lastReport = 0;
  private readonly driver: EngineDriver;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly log: Logger,
    private readonly events: ManagerEvents,
  ) {
    this.driver = createDriver(config);
  }

  private get db() {
    return this.config.database!;
  }

  start(): void {
    writeManagerHeartbeat(this.config.paths.dataDir);
    this.timer = setInterval(() => void this.tick(), this.db.failover.checkInterval);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      writeManagerHeartbeat(this.config.paths.dataDir);
      const state = readClusterState(this.config.paths.dataDir);
      if (!state) return; // no node has started yet
      const probes = await Promise.all(this.db.nodes.map((n) => this.probe(n)));
      const primary = probes.find((p) => p.name === state.primary)!;
      await this.reportReplication(state, probes);
      if (primary.ok && primary.role === 'primary') {
        this.failingSince = 0;
        this.lastPrimaryLsn = primary.lsn;
        if (state.blocked) {
          state.blocked = null;
          writeClusterState(this.config.paths.dataDir, state);
        }
        const request = takeSwitchoverRequest(this.config.paths.dataDir);
        if (request) await this.switchover(state, probes, request.to);
        return;
      }
      if (state.demote) return; // a switchover is stopping the primary on purpose
      if (!this.db.failover.enabled) return;
      const now = Date.now();
      if (this.failingSince === 0) this.failingSince = now;
      const report = readNodeReport(this.config.paths.dataDir, state.primary);
      const died = report?.activity === 'failed';
      if (died || now - this.failingSince >= this.db.failover.timeout) {
        await this.failover(
          state,
          probes,
          died ? (report?.message ?? `its ${engineLabel(this.config)} died`) : primary.error,
        );
      }
    } catch (err) {
      this.log.error(`check failed: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Sends each node's role and replication lag (engine unit, bytes of the primary's log, seconds)
   * every 2 s at most. Bytes come from this check's probes: no extra query.
   */
  private async reportReplication(state: ClusterState, probes: NodeProbe[]): Promise<void> {
    const now = Date.now();
    if (now - this.lastReport < 2000) return;
    this.lastReport = now;
    const primary = probes.find((p) => p.name === state.primary);
    const nodes = await Promise.all(
      probes.map(async (p) => {
        const replica = p.ok && p.role === 'replica';
        const node = this.db.nodes.find((n) => n.name === p.name)!;
        return {
          name: p.name,
          role: p.ok ? p.role : 'down',
          lag: replica ? this.driver.diff(primary?.lsn, p.replayLsn) : null,
          lagUnit: this.driver.lagUnit,
          lagBytes: replica && primary?.raw && p.raw ? this.driver.lagBytes(primary.raw, p.raw) : null,
          lagSeconds: replica ? await this.driver.replicaLagSeconds(node).catch(() => null) : null,
        };
      }),
    );
    this.events.state({ term: state.term, primary: state.primary, nodes });
  }

  /** Asks one node its role and positions. */
  async probe(node: DbNodeConfig): Promise<NodeProbe> {
    try {
      const timeout = Math.max(200, Math.min(1000, this.db.failover.checkInterval * 2));
      const p = await this.driver.probe(node, timeout);
      return {
        name: node.name,
        ok: true,
        role: p.role,
        lsn: p.position,
        replayLsn: p.replayed,
        raw: p,
        error: null,
      };
    } catch (err) {
      return {
        name: node.name,
        ok: false,
        role: null,
        lsn: null,
        replayLsn: null,
        raw: null,
        error: (err as Error).message,
      };
    }
  }

  /** The replica with the most WAL, among the reachable ones (excluding `except`). */
  private bestReplica(probes: NodeProbe[], except: string): NodeProbe | undefined {
    let best: NodeProbe | undefined;
    for (const p of probes) {
      if (!p.ok || p.role !== 'replica' || p.name === except) continue;
      if (!best || (this.driver.diff(p.lsn, best.lsn) ?? 0) > 0) best = p;
    }
    return best;
  }

  private block(state: ClusterState, why: string): void {
    if (this.lastBlocked !== why) this.log.error(`FAILOVER BLOCKED: ${why}`);
    this.lastBlocked = why;
    if (state.blocked !== why) {
      state.blocked = why;
      writeClusterState(this.config.paths.dataDir, state);
      this.events.progress(`failover blocked: ${why}`);
    }
  }

  private async failover(state: ClusterState, earlier: NodeProbe[], why: string | null): Promise<void> {
    const old = state.primary;
    // Fresh positions: the replicas may have received more since the check that saw the failure.
    const probes = await Promise.all(
      this.db.nodes.map((n) => (n.name === old ? earlier.find((p) => p.name === old)! : this.probe(n))),
    );
    const best = this.bestReplica(probes, old);
    if (!best) {
      this.block(state, `the primary ${old} is down and no replica is reachable; waiting`);
      return;
    }
    const behind = this.driver.diff(this.lastPrimaryLsn, best.lsn);
    if (behind !== null && behind > this.db.failover.maximumLagOnFailover) {
      this.block(
        state,
        `the primary ${old} is down and the best replica, ${best.name}, is ${behind} ${this.driver.lagUnit} behind ` +
          `(over maximumLagOnFailover, ${this.db.failover.maximumLagOnFailover}); waiting for ${old} to return`,
      );
      return;
    }
    this.events.progress(`primary ${old} failed (${why ?? 'unreachable'}); promoting ${best.name}`);
    const lsn = await this.promote(best.name);
    const lost = behind === null ? null : Math.max(0, behind);
    this.record(state, {
      kind: 'failover',
      primary: best.name,
      previous: old,
      lsn,
      lost,
      lostUnit: this.driver.lagUnit,
      note:
        `${old} failed: ${why ?? 'unreachable'}. ` +
        (lost === null
          ? 'How much it had that was not replicated is unknown.'
          : `At its last check it had ${lost} ${this.driver.lagUnit} ${best.name} did not have` +
            (this.db.replication === 'sync' ? ' (sync replication: none of it was acknowledged).' : '.')),
    });
  }

  /** Lets a replica apply what it received, promotes it, prepares it for its peers. */
  private promote(name: string): Promise<string | null> {
    const node = this.db.nodes.find((n) => n.name === name)!;
    const peers = this.db.nodes.filter((n) => n.name !== name).map((n) => n.name);
    return this.driver.promote(node, peers, (m) => this.events.progress(m));
  }

  private record(state: ClusterState, event: Omit<ClusterEvent, 'term' | 'at'>): void {
    state.term += 1;
    state.primary = event.primary;
    state.demote = null;
    state.blocked = null;
    this.lastBlocked = null;
    state.history.push({ term: state.term, at: new Date().toISOString(), ...event });
    if (state.history.length > 100) state.history.splice(0, state.history.length - 100);
    writeClusterState(this.config.paths.dataDir, state);
    this.failingSince = 0;
    this.events.progress(`${event.primary} is primary now (term ${state.term}, ${event.kind})`);
    this.events.state({ term: state.term, primary: state.primary });
  }

  /**
   * Switchover: the primary stops taking writes and stops cleanly; once the target has replayed
   * everything up to the primary's last position it is promoted. No acknowledged write is lost.
   */
  private async switchover(state: ClusterState, probes: NodeProbe[], to: string | null): Promise<void> {
    const old = state.primary;
    const target = to ? probes.find((p) => p.name === to) : this.bestReplica(probes, old);
    if (!target || !target.ok || target.role !== 'replica' || target.name === old) {
      this.log.error(`switchover refused: ${to ? `${to} is not a running replica` : 'no running replica'}`);
      this.events.progress(
        `switchover refused: ${to ? `${to} is not a running replica` : 'no running replica'}`,
      );
      return;
    }
    this.events.progress(`switchover: ${old} → ${target.name}: asking ${old} to stop taking writes`);
    state.demote = old;
    writeClusterState(this.config.paths.dataDir, state);
    const dataDir = this.config.paths.dataDir;
    const stopLsn = await waitUntil(60_000, () => {
      const r = readNodeReport(dataDir, old);
      return r?.activity === 'stopped' && r.stopLsn ? r.stopLsn : undefined;
    });
    const node = this.db.nodes.find((n) => n.name === target.name)!;
    const caughtUp =
      stopLsn &&
      (await waitUntil(30_000, async () => {
        const p = await this.probe(node);
        return p.ok && (this.driver.diff(p.replayLsn, stopLsn) ?? -1) >= 0 ? true : undefined;
      }));
    if (!stopLsn || !caughtUp) {
      this.events.progress(
        `switchover cancelled: ${!stopLsn ? `${old} did not stop in time` : `${target.name} did not catch up`}`,
      );
      state.demote = null;
      writeClusterState(dataDir, state); // the old primary starts again as primary
      return;
    }
    const lsn = await this.promote(target.name);
    this.record(state, {
      kind: 'switchover',
      primary: target.name,
      previous: old,
      lsn,
      lost: 0,
      lostUnit: this.driver.lagUnit,
      note: `asked for; ${old} stopped at ${stopLsn} and ${target.name} had replayed all of it`,
    });
  }
}

async function waitUntil<T>(
  timeoutMs: number,
  check: () => T | undefined | Promise<T | undefined>,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await check();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}
