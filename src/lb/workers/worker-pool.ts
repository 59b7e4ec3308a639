/**
 * The worker processes of a load balancer's primary: forked, moved through named states, their
 * messages dispatched through a table keyed on the message type, restarted with backoff when one
 * dies, stopped on close. The primary sends them the frontends' listening sockets, every state
 * change, and asks them for their counters.
 *
 * States: `forked` (the process runs; it has not said hello yet) → `starting` (it got `init`) →
 * `ready` (it serves its frontends) → `stopping` (told to shut down) → `exited`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { StartupError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { FromWorker, ToWorker, WorkerCounters } from './messages.js';
import { CounterSums } from './server-state.js';

export type WorkerState = 'forked' | 'starting' | 'ready' | 'stopping' | 'exited';

/** What `/status` shows of one worker. */
export interface WorkerInfo {
  /** 1…n: the worker's slot; a restarted worker keeps it. */
  id: number;
  pid: number | null;
  state: WorkerState;
  /** Times this slot's worker was restarted after it died. */
  restarts: number;
  /** Client connections open in it, as last read. */
  connections: number;
}

/** A worker's answer to a question, and the handle (a listening socket) that came with it, if any. */
export interface Answer {
  reply: Extract<FromWorker, { t: 'reply' }>;
  handle: unknown;
}

/** Something node:child_process can send along a message: a socket, or a raw handle. */
export type SendHandle = Socket | object;

const WORKER_SCRIPT = fileURLToPath(new URL('./worker-main.js', import.meta.url));
/** Longest wait for a worker's answer to a question (counters, ping). */
const ANSWER_TIMEOUT_MS = 2000;
const RESTART_DELAY_MIN_MS = 100;
const RESTART_DELAY_MAX_MS = 5000;
/** A worker that ran this long before dying restarts after the shortest delay again. */
const STABLE_AFTER_MS = 10_000;

/**
 * V8's young generation of a worker, in MiB per semi-space (V8's default grows to 16). A worker
 * keeps the young generation it grew at its busiest moment: opening 10,000 connections at once
 * grows it to the maximum, and both semi-spaces stay resident while the connections sit idle.
 * Measured on 2 cores (10,000 idle connections over two workers; each worker's private memory):
 * 8 MiB 41 to 46 MiB, 4 MiB 36 to 39, 2 MiB 30 to 35. Throughput at concurrency 64, three rounds
 * alternating 2, 4 and 8 (medians, requests/s): small answers 16,800, 17,700 and 17,400; 64 KiB
 * answers 8,600, 8,800 and 7,400, all within the run-to-run spread of this machine (±15 %). Since
 * the proxy copies 64 KiB bodies into recycled buffers (read-buffer.ts) a request leaves little
 * for the young generation; before that, 2 MiB had cost half the 64 KiB throughput.
 */
export const WORKER_SEMI_SPACE_MIB = 4;

/**
 * The Node.js flags of a worker: the primary's, without the test runner's and the inspector's,
 * and a small young generation unless the operator chose one (in the flags or NODE_OPTIONS).
 */
export function workerExecArgv(parent: readonly string[], nodeOptions: string | undefined): string[] {
  const args = parent.filter((a) => !a.startsWith('--test') && !a.startsWith('--inspect'));
  const chosen = [...args, ...(nodeOptions ?? '').split(/\s+/)].some((a) =>
    /^--max[-_]semi[-_]space[-_]size\b/.test(a),
  );
  return chosen ? args : [...args, `--max-semi-space-size=${WORKER_SEMI_SPACE_MIB}`];
}

/**
 * glibc's malloc settings for a worker (environment variables the C library reads at start):
 * keep up to 32 MiB of freed memory at the top of the heap instead of giving it back to the
 * kernel past 128 KiB, and grow it 8 MiB at a time. A worker relaying large answers allocates and
 * frees many 64 KiB buffers (its own read copies, node:http's and the parser's); with glibc's
 * defaults each garbage collection frees tens of MiB at once, glibc returns it, and the next
 * buffers fault it back in page by page. Measured on 2 cores, Tandem L7 with 64 KiB answers at
 * concurrency 64: 1 to 8 page faults per request and 4,700 to 8,800 requests/s (the worst runs at
 * 300 µs of CPU per request), against 0.01 to 0.1 faults and 9,300 to 10,400 requests/s with these
 * settings. At most 2 malloc arenas: glibc otherwise gives each of V8's helper threads an arena of
 * its own, and holding 10,000 idle connections left 2 to 4 MiB more per worker in them (measured
 * on 2 cores: 32 to 35 MiB of private memory per worker with 2 arenas, 36 and 39 without). A value
 * the operator set in the environment is kept.
 */
export const WORKER_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TOP_PAD_: String(8 * 1024 * 1024),
  MALLOC_ARENA_MAX: '2',
};

/** The environment of a worker: the primary's, with WORKER_MALLOC_ENV where it sets none. */
export function workerEnv(parent: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...parent };
  for (const [name, value] of Object.entries(WORKER_MALLOC_ENV)) env[name] ??= value;
  return env;
}

/** One worker slot and the process in it now. */
class LbWorker {
  state: WorkerState = 'forked';
  counters: WorkerCounters | undefined = undefined;
  readonly since = Date.now();
  /** Questions waiting for this process's answer, by id. */
  readonly waiting = new Map<number, (answer: Answer | undefined) => void>();
  /**
   * Handed-over connections (raw handles) queued for this process and not written to its channel
   * yet (Node sends one handle at a time), with their frontend: if the process dies, they go to
   * another worker, unread.
   */
  readonly unsent = new Map<ClientHandle, number>();

  constructor(
    /** 0-based slot. */
    readonly slot: number,
    readonly child: ChildProcess,
  ) {}

  get id(): number {
    return this.slot + 1;
  }

  get initialized(): boolean {
    return this.state === 'starting' || this.state === 'ready';
  }

  /**
   * Sends a client connection: a socket the primary accepted, or the raw handle of one a worker
   * handed over, which leaves this process too (closed here once the message is written).
   */
  sendConnection(
    msg: Extract<ToWorker, { t: 'conn' }>,
    conn: Socket | ClientHandle,
    orphaned: (f: number, conn: ClientHandle) => void,
  ): void {
    if (isSocket(conn)) {
      this.send(msg, conn);
      return;
    }
    if (!this.child.connected) {
      orphaned(msg.f, conn);
      return;
    }
    this.unsent.set(conn, msg.f);
    this.child.send(msg, conn as unknown as Socket, (err) => {
      // Gone already: the exit took care of it.
      if (!this.unsent.delete(conn)) return;
      if (err) orphaned(msg.f, conn);
      else conn.close(); // written: the descriptor travels with the message
    });
  }

  /** Sends `msg` (with `handle`: a socket leaves this process, a raw handle is shared); `failed` if it could not be. */
  send(msg: ToWorker, handle?: SendHandle, failed?: () => void): void {
    if (!this.child.connected) {
      if (isSocket(handle)) handle.destroy();
      failed?.();
      return;
    }
    if (handle === undefined) {
      this.child.send(msg);
      return;
    }
    // A socket is handed over (closed here once sent); a listening socket's handle is shared.
    const keepOpen = !isSocket(handle);
    this.child.send(msg, handle as Socket, { keepOpen }, (err) => {
      if (!err) return;
      if (isSocket(handle)) handle.destroy();
      failed?.();
    });
  }
}

/** A client connection's raw handle (a TCP wrap), as a worker hands it over: nothing read from it. */
export interface ClientHandle {
  close(): void;
}

function isSocket(handle: SendHandle | undefined): handle is Socket {
  return handle !== undefined && typeof (handle as Socket).destroy === 'function';
}

export interface WorkerPoolOptions {
  count: number;
  log: Logger;
  /** The `init` message for the worker of `slot`: the config, frontends and server state of this moment. */
  init(slot: number): Extract<ToWorker, { t: 'init' }>;
  /** The worker of `slot` is ready: it gets its listening sockets now. */
  onReady(slot: number): void;
  /** A worker reported a passive-health observation. */
  onPassive(m: Extract<FromWorker, { t: 'passive' }>): void;
  /** TCP sessions: the worker of `slot` asks for a server, or ends a session. */
  onTcp(slot: number, m: Extract<FromWorker, { t: 'tcp-open' | 'tcp-retry' | 'tcp-end' }>): void;
  /** The worker of `slot` reported its connections per frontend (connection-spread.ts). */
  onLoad(slot: number, counts: ReadonlyArray<readonly [number, number]>): void;
  /** The worker of `slot` hands over `handle`, a client connection it accepted, for the worker of `m.to`. */
  onHandoff(slot: number, m: Extract<FromWorker, { t: 'handoff' }>, handle: unknown): void;
  /** A handed-over connection could not reach the worker it was for (it exited): serve it elsewhere. */
  onOrphaned(f: number, conn: ClientHandle): void;
  /** The worker of `slot` exited: what it held is gone. */
  onExit(slot: number): void;
}

export class WorkerPool {
  private readonly slots: Array<LbWorker | undefined>;
  private readonly restarts: number[];
  /** Ready workers, for connections the primary hands out in turn. */
  private readonly ready: LbWorker[] = [];
  private next = 0;
  private nextQuestion = 1;
  private stopping = false;
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** What exited workers counted (their last counters read). */
  private readonly departed = new CounterSums();
  private starting: { resolve: () => void; reject: (err: Error) => void; left: number } | undefined;

  constructor(private readonly options: WorkerPoolOptions) {
    this.slots = new Array<LbWorker | undefined>(options.count).fill(undefined);
    this.restarts = new Array<number>(options.count).fill(0);
  }

  get size(): number {
    return this.slots.length;
  }

  /** Forks every worker; resolves once all are ready, rejects if one dies before. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.starting = { resolve, reject, left: this.slots.length };
      for (let i = 0; i < this.slots.length; i++) this.spawn(i);
    });
  }

  /** Whether the worker of `slot` (default: any) is ready. */
  isReady(slot?: number): boolean {
    return slot === undefined ? this.ready.length > 0 : this.slots[slot]?.state === 'ready';
  }

  /**
   * Hands a client connection the primary accepted itself to the worker of `slot`, or else to the
   * next ready one (isReady(slot) must hold).
   */
  dispatch(
    f: number,
    socket: Socket | ClientHandle,
    slot?: number,
    from?: { slot: number; n: number },
  ): void {
    let w: LbWorker;
    if (slot !== undefined) w = this.slots[slot]!;
    else {
      if (this.next >= this.ready.length) this.next = 0;
      w = this.ready[this.next++]!;
    }
    w.sendConnection(
      from === undefined ? { t: 'conn', f } : { t: 'conn', f, from },
      socket,
      this.options.onOrphaned,
    );
  }

  /** Sends `msg` to every worker that has its init (later workers get the state in theirs). */
  broadcast(msg: ToWorker): void {
    for (const w of this.slots) if (w?.initialized) w.send(msg);
  }

  /** Answers the question `id` of the worker of `slot`. */
  answer(slot: number, msg: ToWorker): void {
    const w = this.slots[slot];
    if (w?.initialized) w.send(msg);
  }

  /**
   * Asks every worker that has its init; resolves with their answers (undefined for one that did
   * not answer within `timeoutMs`, or exited).
   */
  ask(question: (id: number) => ToWorker, timeoutMs = ANSWER_TIMEOUT_MS): Promise<Array<Answer | undefined>> {
    const asked: Array<Promise<Answer | undefined>> = [];
    for (const w of this.slots)
      if (w?.initialized) asked.push(this.question(w, question, undefined, timeoutMs));
    return Promise.all(asked);
  }

  /** Asks the worker of `slot` (sending `handle` along); undefined when it has no init or did not answer. */
  askOne(
    slot: number,
    question: (id: number) => ToWorker,
    handle?: SendHandle,
    timeoutMs = ANSWER_TIMEOUT_MS,
  ): Promise<Answer | undefined> {
    const w = this.slots[slot];
    if (!w?.initialized) return Promise.resolve(undefined);
    return this.question(w, question, handle, timeoutMs);
  }

  /** Resolves once every worker has applied every message sent to it before. */
  async sync(): Promise<void> {
    await this.ask((id) => ({ t: 'ping', id }));
  }

  /** The sums of every worker's counters now (and of the exited ones' last counters). */
  async gather(): Promise<CounterSums> {
    const workers = this.slots.filter((w): w is LbWorker => w?.initialized === true);
    await this.ask((id) => ({ t: 'stats', id }));
    const sums = new CounterSums();
    sums.add(this.departed.toCounters(), true);
    for (const w of workers)
      if (w.state !== 'exited' && w.counters !== undefined) sums.add(w.counters.backends);
    return sums;
  }

  /** Each worker slot's process and state. */
  info(): WorkerInfo[] {
    return this.slots.map((w, i) => ({
      id: i + 1,
      pid: w?.child.pid ?? null,
      state: w?.state ?? 'exited',
      restarts: this.restarts[i]!,
      connections: w?.state === 'ready' ? (w.counters?.connections ?? 0) : 0,
    }));
  }

  /**
   * Stops every worker: each closes its frontends (connections finish within `graceMs`) and exits;
   * one that does not within `graceMs` plus a margin is killed.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    const workers = this.slots.filter((w): w is LbWorker => w !== undefined && w.state !== 'exited');
    await this.ask((id) => ({ t: 'shutdown', id, grace: graceMs }), graceMs + ANSWER_TIMEOUT_MS);
    await Promise.all(workers.map((w) => this.exit(w)));
  }

  private question(
    w: LbWorker,
    question: (id: number) => ToWorker,
    handle: SendHandle | undefined,
    timeoutMs: number,
  ): Promise<Answer | undefined> {
    const id = this.nextQuestion++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (answer: Answer | undefined) => {
        clearTimeout(timer);
        w.waiting.delete(id);
        resolve(answer);
      };
      w.waiting.set(id, done);
      w.send(question(id), handle, () => done(undefined));
    });
  }

  /** Waits for `w` to exit: disconnects it, then kills it if it lingers. */
  private exit(w: LbWorker): Promise<void> {
    if (w.state === 'exited') return Promise.resolve();
    w.state = 'stopping';
    return new Promise((resolve) => {
      const kill = setTimeout(() => w.child.kill('SIGKILL'), 2000);
      w.child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      if (w.child.connected) w.child.disconnect();
    });
  }

  private spawn(slot: number): void {
    const child = fork(WORKER_SCRIPT, [], {
      serialization: 'advanced',
      execArgv: workerExecArgv(process.execArgv, process.env['NODE_OPTIONS']),
      env: workerEnv(process.env),
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const w = new LbWorker(slot, child);
    this.slots[slot] = w;
    const log = this.options.log;
    createInterface({ input: child.stdout! }).on('line', (l) => log.info(`worker ${w.id}: ${l}`));
    createInterface({ input: child.stderr! }).on('line', (l) => log.error(`worker ${w.id}: ${l}`));
    child.on('message', (m: FromWorker, handle: unknown) => this.handle(w, m, handle));
    child.on('error', (err) => log.error(`worker ${w.id}: ${err.message}`));
    child.on('exit', (code, signal) => this.exited(w, code, signal));
  }

  /** Messages from a worker, by type. */
  private readonly handlers: {
    [T in FromWorker['t']]: (w: LbWorker, m: Extract<FromWorker, { t: T }>, handle: unknown) => void;
  } = {
    hello: (w) => {
      w.state = 'starting';
      w.send(this.options.init(w.slot));
    },
    ready: (w) => {
      w.state = 'ready';
      this.ready.push(w);
      if (this.starting !== undefined && --this.starting.left === 0) {
        this.starting.resolve();
        this.starting = undefined;
      }
      this.options.onReady(w.slot);
    },
    log: (_w, m) => this.options.log[m.level](m.msg),
    passive: (_w, m) => this.options.onPassive(m),
    reply: (w, m, handle) => {
      if (m.counters !== undefined) w.counters = m.counters;
      w.waiting.get(m.id)?.({ reply: m, handle });
    },
    'tcp-open': (w, m) => this.options.onTcp(w.slot, m),
    'tcp-retry': (w, m) => this.options.onTcp(w.slot, m),
    'tcp-end': (w, m) => this.options.onTcp(w.slot, m),
    // A report that comes after the exit (the channel is read after 'exit') is stale.
    load: (w, m) => {
      if (w.state !== 'exited') this.options.onLoad(w.slot, m.counts);
    },
    handoff: (w, m, handle) => this.options.onHandoff(w.slot, m, handle),
  };

  private handle(w: LbWorker, m: FromWorker, handle: unknown): void {
    (this.handlers[m.t] as (w: LbWorker, m: FromWorker, handle: unknown) => void)(w, m, handle);
  }

  private exited(w: LbWorker, code: number | null, signal: NodeJS.Signals | null): void {
    const expected = w.state === 'stopping' || this.stopping;
    const wasReady = w.state === 'ready';
    w.state = 'exited';
    const at = this.ready.indexOf(w);
    if (at >= 0) this.ready.splice(at, 1);
    for (const done of w.waiting.values()) done(undefined);
    const unsent = [...w.unsent];
    w.unsent.clear();
    if (w.counters !== undefined) this.departed.add(w.counters.backends, true);
    this.options.onExit(w.slot);
    for (const [conn, f] of unsent) this.options.onOrphaned(f, conn);
    if (expected) return;
    const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
    if (this.starting !== undefined) {
      const starting = this.starting;
      this.starting = undefined;
      starting.reject(new StartupError(`load balancer worker ${w.id} ended while starting (${how})`));
      return;
    }
    const i = w.slot;
    const stable = wasReady && Date.now() - w.since > STABLE_AFTER_MS;
    const delay = stable
      ? RESTART_DELAY_MIN_MS
      : Math.min(RESTART_DELAY_MAX_MS, RESTART_DELAY_MIN_MS * 2 ** Math.min(this.restarts[i]!, 10));
    this.restarts[i]!++;
    this.options.log.warn(`worker ${w.id} (pid ${w.child.pid}) ended (${how}); restarting it in ${delay}ms`);
    const timer = setTimeout(() => {
      this.restartTimers.delete(timer);
      if (!this.stopping) this.spawn(i);
    }, delay);
    this.restartTimers.add(timer);
  }
}
