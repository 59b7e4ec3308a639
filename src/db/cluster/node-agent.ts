/**
 * The agent of one database node (`tandem db --node NAME`): it owns the engine process and makes
 * the node follow the cluster state the manager writes.
 *
 * - First start: a new primary (initdb) if the state names this node primary, else a replica
 *   cloned from the state's primary.
 * - A former primary (its data is a primary's, the state names another node) never starts as a
 *   primary again: it is rewound (pg_rewind) or re-cloned and starts as a replica. This is the
 *   fencing that keeps a returning old primary from taking writes.
 * - While running it watches the state: a new term with another primary makes a primary demote
 *   itself and a replica follow the new primary; a switchover asks the primary to stop cleanly.
 * - When the engine dies: a replica is restarted; a primary waits for the manager's decision (a
 *   failover, or a restart in place when no replica can take over or no manager runs).
 */
import type { ResolvedConfig } from '../../config/load.js';
import type { DbNodeConfig } from '../../config/schema.js';
import { DatabaseError, WalUnavailableError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { DatabaseEngine, Progress, ReplicationSource, Role } from '../engines/engine.js';
import { type AgentApi, startAgentApi } from './agent-api.js';
import {
  type ClusterState,
  type NodeActivity,
  initClusterState,
  managerAlive,
  readClusterState,
  writeNodeReport,
} from './cluster-state.js';
import { createNodeEngine, engineLabel, findDbNode, nodeDataDir } from './db-node.js';

/** Time a replica gets to stream from a new primary before it is rewound. */
const FOLLOW_GRACE_MS = 10_000;
/** How long the engine's answer to role() serves the API's checks (after it came). */
const ROLE_CACHE_MS = 100;
/** How long a measured replication lag serves the API's checks (after it was measured). */
const LAG_CACHE_MS = 250;
/** After a failed restart of the engine the next waits this long, doubling up to the maximum. */
export const RESTART_BACKOFF_MS = 500;
export const RESTART_BACKOFF_MAX_MS = 30_000;

/**
 * An answer of the engine shared by everyone who asks while it is being asked for, or within
 * `ttlMs` after it came; a failed question is not kept.
 */
class SharedAnswer<T> {
  /** at: when the answer came (Infinity while it is being asked for). */
  private entry: { at: number; value: Promise<T> } | undefined = undefined;

  constructor(private readonly ttlMs: number) {}

  get(ask: () => Promise<T>): Promise<T> {
    const cached = this.entry;
    if (cached !== undefined && Date.now() - cached.at < this.ttlMs) return cached.value;
    const entry = { at: Infinity, value: ask() };
    this.entry = entry;
    entry.value.then(
      () => (entry.at = Date.now()),
      () => {
        if (this.entry === entry) this.entry = undefined;
      },
    );
    return entry.value;
  }

  /** What was answered says nothing any more. */
  clear(): void {
    this.entry = undefined;
  }
}

export interface NodeAgentOptions {
  /** Serve the HTTP API used by the writer/reader endpoints' checks (default true). */
  api?: boolean;
  /** How often the agent reads the cluster state (ms). */
  watchInterval?: number;
  /** Called when the agent's activity, role, term or engine pid changes. */
  onChange?: (snapshot: ReturnType<NodeAgent['snapshot']>) => void;
}

/** A replica's lag as its agent sees it (see NodeAgent.replicationLag). */
export interface ReplicationLag {
  /** In the engine's unit (`driver.lagUnit`). */
  lag: number | null;
  /** Bytes of the primary's log (WAL, binary log) not applied yet. */
  bytes: number | null;
}

export class NodeAgent {
  readonly name: string;
  private readonly node: DbNodeConfig;
  private engineRef: DatabaseEngine | undefined;
  private secrets: { superuser: string; replication: string; app: string } | undefined;
  /** The term this node follows. */
  term = 0;
  private activity: NodeActivity = 'starting';
  private message: string | null = null;
  private stopLsn: string | null = null;
  private runningRole: Role | null = null;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private stopped = false;
  private engineDied = false;
  private diedAt = 0;
  private api: AgentApi | undefined;
  private lastSnapshot = '';
  /** The last lag measured, shared by the checks (replicationLag). */
  private readonly lagAnswer = new SharedAnswer<ReplicationLag>(LAG_CACHE_MS);
  /** The engine's last answer to role(), shared by the checks. */
  private readonly roleAnswer = new SharedAnswer<Role>(ROLE_CACHE_MS);
  private readonly label: string;
  /** Set after following a new primary: by then the replica must stream from it. */
  private followDeadline = 0;
  /** Restarts of the engine that failed in a row, and when the next may be tried (Date.now()). */
  private restartFailures = 0;
  private restartAt = 0;

  constructor(
    private readonly config: ResolvedConfig,
    name: string,
    private readonly log: Logger,
    private readonly progress: Progress,
    private readonly opts: NodeAgentOptions = {},
  ) {
    this.name = name;
    this.node = findDbNode(config, name);
    this.label = engineLabel(config);
  }

  get engine(): DatabaseEngine {
    if (!this.engineRef) throw new DatabaseError(`${this.name}: the engine is not set up yet`);
    return this.engineRef;
  }

  /**
   * The role the engine runs as. The load balancers' checks ask often and at once (a writer and a
   * reader check per load balancer, every few hundred ms), and each answer takes a new engine
   * session: the checks asking while a question is under way, or within ROLE_CACHE_MS of its
   * answer, share it. A new session is the slow part of a check on a busy node, and a reader
   * check that times out three times in a row marks the replica down, which closes every session
   * on it.
   */
  role(): Promise<Role> {
    return this.roleAnswer.get(() => this.engine.role());
  }

  /**
   * How far this replica's replay is behind the primary: in the engine's unit (bytes of WAL for
   * PostgreSQL, transactions for MariaDB: what `maxLag` compares) and in bytes of the primary's log
   * (the same number on PostgreSQL); null when unknown (the primary or this node is unreachable, or
   * this node is not a replica). One probe of each node, shared by the checks that ask while it
   * runs or within LAG_CACHE_MS after: the load balancers ask often and at once.
   */
  replicationLag(): Promise<ReplicationLag> {
    return this.lagAnswer.get(() => this.measureLag());
  }

  /** One probe of this node, then one of the primary (never rejects: unknown is null). */
  private async measureLag(): Promise<ReplicationLag> {
    try {
      const state = readClusterState(this.dataRoot);
      if (state && state.primary !== this.name) {
        const driver = this.engine.driver;
        // This node first, then the primary: the primary's position only grows, so the lag is
        // never below the true one. Probed at once, a write landing between the two made a
        // replica look a transaction ahead of its primary (a lag of -1 under steady writes).
        const mine = await driver.probe(this.node, 1000);
        const theirs = await driver.probe(findDbNode(this.config, state.primary), 1000);
        return { lag: driver.diff(theirs.position, mine.replayed), bytes: driver.lagBytes(theirs, mine) };
      }
    } catch {
      // the primary or this node is unreachable: unknown lag
    }
    return { lag: null, bytes: null };
  }

  /** Seconds this replica's replay is behind (null when unknown or not a replica). */
  async lagSeconds(): Promise<number | null> {
    try {
      return await this.engine.driver.replicaLagSeconds(this.node);
    } catch {
      return null;
    }
  }

  /** What the agent knows, for its API and reports. */
  snapshot() {
    return {
      name: this.name,
      activity: this.activity,
      role: this.runningRole,
      term: this.term,
      enginePid: this.engineRef?.pid ?? null,
      message: this.message,
    };
  }

  private get dataRoot(): string {
    return this.config.paths.dataDir;
  }

  /** Brings the node up in the role the cluster state gives it. */
  async start(): Promise<void> {
    const db = this.config.database!;
    const configPrimary = db.nodes.find((n) => n.role === 'primary')!.name;
    const state = readClusterState(this.dataRoot) ?? initClusterState(this.dataRoot, configPrimary);
    const { engine, secrets } = await createNodeEngine(this.config, this.name, this.log, this.progress);
    this.engineRef = engine;
    this.secrets = secrets;
    engine.onUnexpectedExit((why) => this.onEngineDied(why));
    if (this.opts.api !== false) this.api = await startAgentApi(this, this.config, this.node, this.log);
    await this.bringUp(state);
    this.timer = setInterval(() => void this.watch(), this.opts.watchInterval ?? 250);
  }

  /** Initialise / clone / rejoin as needed, then start the engine and report. */
  private async bringUp(state: ClusterState): Promise<void> {
    const engine = this.engine;
    const me = this.name;
    const primary = this.source(state.primary);
    if (!engine.isInitialized()) {
      if (state.primary === me) {
        if (state.term > 1)
          throw new DatabaseError(
            `${me}: the cluster state (term ${state.term}) names this node primary, but its data directory ` +
              `${nodeDataDir(this.config, me)} is empty. Restore it, or ask for a switchover to another node.`,
          );
        this.setActivity('starting');
        await engine.initialize(this.progress);
      } else {
        this.setActivity('cloning');
        await this.waitForPrimary(primary);
        await engine.cloneFrom(primary, this.progress);
      }
    } else if (state.primary !== me && !engine.isStandbyOnDisk()) {
      // A former primary: it must not come back as a second primary.
      this.setActivity('rejoining', `the primary is now ${state.primary} (term ${state.term})`);
      this.progress(
        `this node was primary; ${state.primary} is primary now (term ${state.term}): rejoining as a replica`,
      );
      await this.waitForPrimary(primary);
      await engine.rejoin(primary, this.progress);
    } else if (state.primary !== me) {
      engine.configureStandby(primary); // follow whoever is primary now
    }
    try {
      await engine.start(this.progress);
    } catch (err) {
      if (!(err instanceof WalUnavailableError) || state.primary === me) throw err;
      // Behind further than the primary keeps WAL (a rewind's replay starts before the fork, a
      // replica was away long): only a fresh copy can follow it now.
      this.setActivity('cloning', `${state.primary} no longer has WAL file ${err.walFile}`);
      this.progress(
        `${state.primary} no longer has the WAL this node needs to catch up (${err.walFile}): cloning afresh`,
      );
      await this.waitForPrimary(primary); // a slot it invalidated is made again
      await engine.cloneAfresh(primary, this.progress);
      await engine.start(this.progress);
    }
    try {
      let role = await engine.role();
      if (state.primary === me && role === 'replica') {
        this.progress('the cluster state names this node primary: promoting');
        await engine.promote();
        role = 'primary';
      }
      if (role === 'primary') {
        this.progress('creating accounts, database and replication needs');
        const db = this.config.database!;
        await engine.bootstrap({
          database: db.name,
          user: db.user,
          replicas: db.nodes.filter((n) => n.name !== me).map((n) => n.name),
          secrets: { replication: this.secrets!.replication, app: this.secrets!.app },
        });
        await engine.openForWrites();
      }
      this.runningRole = role;
    } catch (err) {
      await engine.stop(); // never leave the engine running behind a failed start
      throw err;
    }
    this.term = state.term;
    this.engineDied = false;
    this.stopLsn = null;
    this.setActivity('running');
  }

  private source(name: string): ReplicationSource {
    const n = findDbNode(this.config, name);
    return { name, host: n.host, port: n.port, localDataDir: nodeDataDir(this.config, name) };
  }

  private async waitForPrimary(primary: ReplicationSource): Promise<void> {
    this.progress(`waiting for the primary ${primary.name} (${primary.host}:${primary.port})`);
    await this.engine.driver.prepareForReplica(primary, this.name, 120_000);
  }

  /** One look at the cluster state; acts on a change. Never overlaps itself. */
  private async watch(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      const state = readClusterState(this.dataRoot);
      if (state) await this.follow(state);
      this.report();
    } catch (err) {
      this.message = (err as Error).message;
      this.log.error(`${this.name}: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async follow(state: ClusterState): Promise<void> {
    const me = this.name;
    if (this.engineDied) {
      await this.afterEngineDied(state);
      return;
    }
    if (state.demote === me && state.primary === me && this.activity === 'running') {
      await this.stopForSwitchover();
      return;
    }
    if (this.activity === 'stopped') {
      // Stopped for a switchover: a new term means rejoin; a cancelled switchover means start again.
      if (state.term !== this.term || state.demote !== me) await this.bringUp(state);
      return;
    }
    if (state.term === this.term) {
      const why = this.runningRole === 'replica' ? this.engine.cannotCatchUp() : null;
      if (why !== null) await this.cloneBehind(state, why);
      else await this.checkFollowing(state);
      return;
    }
    if (state.primary === me) {
      this.term = state.term; // promoted by the manager (or still primary)
      this.runningRole = 'primary';
      return;
    }
    // Another node is primary under a newer term.
    if (this.runningRole === 'primary') {
      this.progress(`${state.primary} is primary now (term ${state.term}): demoting this node to a replica`);
      this.setActivity('demoting');
      await this.engine.stop();
      await this.bringUp(state);
      return;
    }
    this.progress(`following the new primary ${state.primary} (term ${state.term})`);
    await this.engine.follow(this.source(state.primary));
    this.term = state.term;
    this.followDeadline = Date.now() + FOLLOW_GRACE_MS;
  }

  /**
   * After following a new primary, the replica must stream from it. If it does not (it had
   * received WAL the new primary never got, so their histories diverge), it is rewound.
   */
  private async checkFollowing(state: ClusterState): Promise<void> {
    if (this.followDeadline === 0 || this.runningRole !== 'replica') return;
    if (await this.engine.isStreaming()) {
      this.followDeadline = 0;
      return;
    }
    if (Date.now() < this.followDeadline) return;
    this.followDeadline = 0;
    this.progress(`not streaming from ${state.primary} (diverged history): rewinding`);
    this.setActivity('rejoining', `diverged from ${state.primary}`);
    await this.engine.stop();
    this.runningRole = null;
    await this.engine.rejoin(this.source(state.primary), this.progress);
    await this.bringUp(state);
  }

  /**
   * A running replica that can never catch up (the primary dropped the WAL it needs: it was away
   * or behind too long): the old data directory is kept aside and a fresh copy is made.
   */
  private async cloneBehind(state: ClusterState, why: string): Promise<void> {
    this.progress(`cannot catch up with ${state.primary}: ${why}; cloning afresh`);
    this.setActivity('cloning', why);
    await this.engine.stop();
    this.runningRole = null;
    try {
      const primary = this.source(state.primary);
      await this.waitForPrimary(primary); // its slot is made again
      await this.engine.cloneAfresh(primary, this.progress);
      await this.bringUp(state);
    } catch (err) {
      // The primary went away meanwhile, or the copy failed: the engine is down, and is brought
      // up again as after a crash (following whoever is primary by then, cloning if need be).
      this.onEngineDied(`could not be cloned afresh: ${(err as Error).message}`);
    }
  }

  /** Switchover: stop taking writes, note the last WAL position, stop cleanly. */
  private async stopForSwitchover(): Promise<void> {
    this.progress('switchover: stopping this primary cleanly so the new primary has every write');
    this.setActivity('demoting');
    this.stopLsn = await this.engine.fenceForSwitchover();
    await this.engine.stop();
    this.runningRole = null;
    this.setActivity('stopped', `stopped for a switchover at ${this.stopLsn}`);
  }

  private onEngineDied(why: string): void {
    this.engineDied = true;
    this.diedAt = Date.now();
    this.runningRole = null;
    this.setActivity('failed', `${this.label} ${why}`);
    this.log.error(`${this.name}: ${this.label} ${why}`);
  }

  /**
   * The engine died. A replica restarts at once. A primary waits for the manager: a failover
   * (new term) makes it rejoin as a replica; `blocked` (no replica can take over), or no manager
   * alive, makes it restart in place.
   */
  private async afterEngineDied(state: ClusterState): Promise<void> {
    const me = this.name;
    const restartInPlace =
      state.primary !== me ||
      state.blocked !== null ||
      !managerAlive(this.dataRoot) ||
      !this.config.database!.failover.enabled;
    if (state.primary === me && !restartInPlace) return; // the manager is deciding
    if (state.primary === me && Date.now() - this.diedAt < 500) return; // let the manager see the death
    if (Date.now() < this.restartAt) return; // after a failed restart
    this.progress(
      state.primary === me
        ? `restarting ${this.label} in place (${state.blocked ?? 'no failover'})`
        : `${this.label} restarting as a replica of ${state.primary} (term ${state.term})`,
    );
    try {
      await this.bringUp(state);
      this.restartFailures = 0;
    } catch (err) {
      const delay = Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_MS * 2 ** this.restartFailures);
      this.restartFailures++;
      this.restartAt = Date.now() + delay;
      const why = (err as Error).message.replace(/\.$/, '');
      throw new DatabaseError(`${why}; trying again in ${delay / 1000} s`, {
        cause: err,
      });
    }
  }

  private setActivity(activity: NodeActivity, message: string | null = null): void {
    // The engine stops, starts or changes role: what it answered before says nothing now.
    if (activity !== this.activity) {
      this.roleAnswer.clear();
      this.lagAnswer.clear();
    }
    this.activity = activity;
    this.message = message;
    this.report();
  }

  private report(): void {
    const snap = this.snapshot();
    const key = JSON.stringify(snap);
    if (key !== this.lastSnapshot) {
      this.lastSnapshot = key;
      this.opts.onChange?.(snap);
    }
    writeNodeReport(this.dataRoot, {
      name: this.name,
      pid: process.pid,
      enginePid: this.engineRef?.pid ?? null,
      activity: this.activity,
      role: this.runningRole,
      term: this.term,
      stopLsn: this.stopLsn,
      updatedAt: new Date().toISOString(),
      message: this.message,
    });
  }

  /** Stops watching, stops the engine cleanly, closes the API. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.engineRef?.stop();
    await this.api?.close();
    this.runningRole = null;
    this.setActivity('stopped', 'stopped by the operator');
  }
}
