/**
 * The primary process of a load balancer with workers. It keeps everything that must be one for
 * the whole load balancer: the config and its reloads, the listening sockets, the active health
 * checks, the passive-health decisions, operator changes, stats and metrics, the admin API. Its
 * workers accept the frontends' connections on the sockets it shares with them, and serve them.
 *
 * Consistency: the primary tells every worker each change of a server's state (health, drain,
 * maint, weight, ejection, panic) and each reload as it happens, over each worker's IPC channel,
 * which keeps its order; `sync()` (used by the admin API before it answers) waits until every
 * worker has applied every change sent before. Counters are each worker's; the status, the admin
 * API and the metrics ask every worker for its counters and show their sums.
 */
import type { FrontendConfig, SpreadMode } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { RunningLb } from '../reload/reload.js';
import { SharedListener } from './listener.js';
import type { FromWorker, FrontendEntry, ToWorker } from './messages.js';
import { backendState } from './server-state.js';
import { TcpSessions } from './tcp-sessions.js';
import { type ClientHandle, type WorkerInfo, WorkerPool } from './worker-pool.js';

export class PrimaryPlane {
  private readonly pool: WorkerPool;
  private readonly sessions = new TcpSessions();
  private nextFrontend = 1;
  /** What was last logged about the frontends served by one worker. */
  private pinnedLine = '';
  /** spreadConnections as the load balancer started: every worker, restarted ones too, keeps it. */
  private spreading: SpreadMode | undefined = undefined;
  /** By frontend id: its connections in each worker that accepts on it (slot → count), as reported. */
  private readonly loads = new Map<number, Map<number, number>>();

  constructor(
    /** The load balancer's live parts (set once it is built). */
    private readonly run: () => RunningLb,
    private readonly count: number,
    /** How long connections get to finish when a worker stops serving a frontend. */
    private readonly drainTimeout: number,
    private readonly log: Logger,
  ) {
    this.pool = new WorkerPool({
      count,
      log,
      init: (slot) => this.init(slot),
      onReady: () => {
        for (const l of this.listeners()) void l.share();
      },
      onPassive: (m) => this.passive(m),
      onTcp: (slot, m) => this.tcp(slot, m),
      onLoad: (slot, counts) => this.load(slot, counts),
      onHandoff: (slot, m, handle) => this.handoff(slot, m, handle),
      onOrphaned: (f, conn) => this.route(f, conn, undefined, undefined),
      onExit: (slot) => {
        for (const l of this.listeners()) l.workerGone(slot);
        this.sessions.workerGone(slot);
        this.load(
          slot,
          [...this.loads.keys()].map((f) => [f, -1] as const),
        );
      },
    });
  }

  /** Forks the workers; resolves once every one is ready. */
  start(): Promise<void> {
    return this.pool.start();
  }

  /** The listening socket of frontend `f`, shared with the workers. */
  newListener(f: FrontendConfig, backend: Backend): SharedListener {
    const id = this.nextFrontend++;
    return new SharedListener(id, f, backend, this.pool, (id - 1) % this.count, this.drainTimeout, this.log);
  }

  /** The workers know every frontend: they accept on the sockets now. Resolves once they do. */
  async announce(): Promise<void> {
    const listeners = this.listeners();
    await Promise.all(listeners.map((l) => l.announce()));
    const pinned = listeners
      .filter((l) => l.slot !== undefined)
      .map((l) => `${l.frontend.name} (worker ${l.slot! + 1})`);
    const line =
      pinned.length === 0
        ? ''
        : `served by one worker each, as their backends count requests in flight (leastconn, maxconn): frontend ${pinned.join(', ')}`;
    if (line !== '' && line !== this.pinnedLine) this.log.info(line);
    this.pinnedLine = line;
  }

  /** The servers of `backend` (default: of every backend) changed state: every worker gets it. */
  stateChanged(backend?: Backend): void {
    const backends = backend === undefined ? [...this.run().backends.values()] : [backend];
    this.pool.broadcast({ t: 'state', backends: backends.map(backendState) });
  }

  /** A reload has been applied: the workers apply it too, then accept on the new frontends. */
  reloaded(): void {
    const run = this.run();
    this.pool.broadcast({ t: 'reload', config: run.config, frontends: this.frontends() });
    this.stateChanged();
    void this.announce();
  }

  /** Resolves once every worker has applied every change sent to it before. */
  sync(): Promise<void> {
    return this.pool.sync();
  }

  /** Reads every worker's counters and puts their sums in the primary's backends (see CounterSums). */
  async refresh(): Promise<void> {
    const sums = await this.pool.gather();
    for (const b of this.run().backends.values()) sums.writeInto(b);
  }

  /** TCP frontends: closes the established connections to `servers` of `backend` in every worker; how many. */
  async shutdownSessions(backend: string, servers: string[]): Promise<number> {
    const answers = await this.pool.ask((id) => ({ t: 'shutdown-sessions', id, backend, servers }));
    return answers.reduce((n, a) => n + (a?.reply.closed ?? 0), 0);
  }

  workers(): WorkerInfo[] {
    return this.pool.info();
  }

  /** Stops the workers (their frontends were closed before, see SharedListener.close). */
  stop(graceMs: number): Promise<void> {
    return this.pool.stop(graceMs);
  }

  private listeners(): SharedListener[] {
    return this.run().proxies as SharedListener[];
  }

  private frontends(): FrontendEntry[] {
    return this.listeners().map((l) => ({ id: l.id, frontend: l.frontend, backend: l.backend.name }));
  }

  private init(slot: number): Extract<ToWorker, { t: 'init' }> {
    const run = this.run();
    this.spreading ??=
      run.config.loadBalancers.find((l) => l.name === run.name)?.spreadConnections ?? 'lopsided';
    return {
      t: 'init',
      worker: slot + 1,
      spread: this.spreading,
      name: run.name,
      config: run.config,
      frontends: this.frontends(),
      state: [...run.backends.values()].map(backendState),
    };
  }

  /**
   * TCP sessions (tcp-sessions.ts): a worker's new connection gets its server here, one that failed
   * to connect the next one, and an ended one frees its server's count.
   */
  private tcp(slot: number, m: Extract<FromWorker, { t: 'tcp-open' | 'tcp-retry' | 'tcp-end' }>): void {
    if (m.t === 'tcp-end') {
      this.sessions.end(m.sid);
      return;
    }
    if (m.t === 'tcp-retry') {
      const next = this.sessions.retry(m.sid);
      this.pool.answer(slot, { t: 'answer', id: m.id, server: next?.name, sid: m.sid });
      return;
    }
    const listener = this.listeners().find((l) => l.id === m.f);
    const opened = listener && this.sessions.open(() => listener.backend, m.ip, slot);
    if (listener !== undefined && opened === undefined)
      this.log.debug(
        `frontend ${listener.frontend.name}: no server of backend ${listener.backend.name} can take a connection; closing the client's`,
      );
    this.pool.answer(slot, { t: 'answer', id: m.id, server: opened?.server.name, sid: opened?.sid });
  }

  /**
   * A worker's connections per frontend changed (-1: it stopped accepting on the frontend): the
   * other workers hear it, to keep them spread (connection-spread.ts); a worker new to a frontend
   * hears the others' counts.
   */
  private load(slot: number, counts: ReadonlyArray<readonly [number, number]>): void {
    for (const [f, n] of counts) {
      let bySlot = this.loads.get(f);
      if (n < 0) {
        if (bySlot?.delete(slot) !== true) continue;
        if (bySlot.size === 0) this.loads.delete(f);
      } else {
        if (bySlot === undefined) this.loads.set(f, (bySlot = new Map()));
        if (!bySlot.has(slot))
          for (const [other, m] of bySlot) this.pool.answer(slot, { t: 'loads', f, slot: other, n: m });
        bySlot.set(slot, n);
      }
      this.pool.broadcast({ t: 'loads', f, slot, n });
    }
  }

  /**
   * A worker hands over a connection it accepted (a raw handle, not read yet) for a less loaded
   * worker: it goes there, or to the next ready worker if that one is gone meanwhile.
   */
  private handoff(slot: number, m: Extract<FromWorker, { t: 'handoff' }>, handle: unknown): void {
    if (handle === undefined) return;
    // Passed on as it came, a raw handle: nothing is read here, the bytes the client sent are all
    // for the worker that serves it.
    this.route(m.f, handle as ClientHandle, m.to, { slot, n: m.n });
  }

  /**
   * Sends a handed-over connection of frontend `f` to the worker of slot `to` if it still accepts
   * on the frontend (its view may be late: a reload or a close may have stopped it), else to the
   * least loaded worker that does; closes it when none does (the frontend is closing).
   */
  private route(
    f: number,
    client: ClientHandle,
    to: number | undefined,
    from: { slot: number; n: number } | undefined,
  ): void {
    const accepting = this.loads.get(f);
    let target: number | undefined;
    if (to !== undefined && accepting?.has(to) === true && this.pool.isReady(to)) target = to;
    else {
      let least = Infinity;
      for (const [s, n] of accepting ?? [])
        if (n < least && this.pool.isReady(s)) {
          least = n;
          target = s;
        }
    }
    if (target === undefined) client.close();
    else this.pool.dispatch(f, client, target, from);
  }

  /**
   * A worker saw an answer or a failure of a server: the primary's passive health counts it with
   * every other worker's (and ejects, see Backend.onStateChange). While it counts errors of a
   * server, the workers report that server's good answers too (`watch`).
   */
  private passive(m: Extract<FromWorker, { t: 'passive' }>): void {
    const b = this.run().backends.get(m.b);
    const s = b?.servers.find((x) => x.name === m.s);
    if (b === undefined || s === undefined) return;
    if (m.why !== undefined) b.passive.error(s, m.why);
    else b.passive.response(s, m.status);
    const watch = s.outlier.errors > 0 || s.outlier.fiveXx > 0;
    if (watch !== s.outlierWatch) {
      s.outlierWatch = watch;
      this.stateChanged(b);
    }
  }
}
