/**
 * One component process under `tandem up`: spawned with an IPC channel, moved through explicit
 * states, its messages dispatched through a table keyed on the message type, restarted with
 * backoff if it dies after it was ready, stopped with SIGTERM (SIGKILL past a deadline).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { StartupError } from '../errors.js';
import type { ComponentMessage } from './messages.js';
import type { ComponentSpec } from './topology.js';

export type ComponentState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped' | 'failed';

/** What `tandem status` shows for one component. */
export interface ComponentInfo {
  id: string;
  kind: ComponentSpec['kind'];
  name: string;
  state: ComponentState;
  pid: number | null;
  address: string;
  role: string | null;
  restarts: number;
  since: string;
  lastError: string | null;
  details: Record<string, unknown>;
  log: string;
}

export interface SupervisedComponentOptions {
  /** argv[0..] that runs `tandem` (node + bin path). */
  tandem: string[];
  /** Common args: -c FILE -d DIR. */
  commonArgs: string[];
  logDir: string;
  /** Time a component gets to stop before SIGKILL. */
  stopTimeoutMs: number;
}

/**
 * Events: `progress` (message), `change` (), `crashed` (description), `restarted` ().
 */
export class SupervisedComponent extends EventEmitter {
  private child: ChildProcess | undefined;
  private state: ComponentState = 'stopped';
  private since = new Date();
  private restarts = 0;
  private role: string | null = null;
  private lastError: string | null = null;
  private details: Record<string, unknown> = {};
  private readyWaiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restartDelay = 1000;
  private readonly logFile: string;
  private logStream: WriteStream | undefined;

  /** Messages from the child, by type. */
  private readonly handlers: {
    [T in ComponentMessage['type']]: (m: Extract<ComponentMessage, { type: T }>) => void;
  } = {
    progress: (m) => this.emit('progress', m.message),
    ready: (m) => {
      this.role = m.role ?? null;
      if (m.details) this.details = { ...this.details, ...m.details };
      this.setState('running');
      this.readyWaiter?.resolve();
      this.readyWaiter = undefined;
    },
    state: (m) => {
      this.details = { ...this.details, ...m.details };
      if (typeof m.details['role'] === 'string') this.role = m.details['role'];
      this.emit('change');
    },
    fatal: (m) => {
      this.lastError = m.message;
      this.emit('change');
    },
  };

  constructor(
    readonly spec: ComponentSpec,
    private readonly opts: SupervisedComponentOptions,
  ) {
    super();
    mkdirSync(opts.logDir, { recursive: true });
    this.logFile = join(opts.logDir, `${spec.kind}-${spec.name}.log`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  info(): ComponentInfo {
    return {
      id: this.spec.id,
      kind: this.spec.kind,
      name: this.spec.name,
      state: this.state,
      pid: this.child?.pid ?? null,
      address: this.spec.address,
      role: this.role,
      restarts: this.restarts,
      since: this.since.toISOString(),
      lastError: this.lastError,
      details: this.details,
      log: this.logFile,
    };
  }

  /** Spawns the process; resolves when it reports ready, rejects if it exits first. */
  start(): Promise<void> {
    this.lastError = null;
    this.setState('starting');
    this.logStream ??= createWriteStream(this.logFile, { flags: 'a' });
    const [cmd, ...pre] = this.opts.tandem;
    const child = spawn(cmd!, [...pre, ...this.spec.args, ...this.opts.commonArgs], {
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, TANDEM_COMPONENT: this.spec.id },
    });
    this.child = child;
    child.stdout?.pipe(this.logStream, { end: false });
    child.stderr?.pipe(this.logStream, { end: false });
    child.on('message', (msg: ComponentMessage) => this.dispatch(msg));
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
    return new Promise<void>((resolve, reject) => {
      this.readyWaiter = { resolve, reject };
    });
  }

  private dispatch(msg: ComponentMessage): void {
    const handler = this.handlers[msg?.type] as ((m: ComponentMessage) => void) | undefined;
    if (handler) handler(msg);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    if (this.state === 'stopping') {
      this.setState('stopped');
      return;
    }
    if (this.readyWaiter) {
      // Died while starting: the start fails; its own message says why, if it sent one.
      this.setState('failed');
      const why = this.lastError ?? `the process ${how} before it was ready; see ${this.logFile}`;
      this.readyWaiter.reject(new StartupError(`${this.spec.id}: ${why}`));
      this.readyWaiter = undefined;
      return;
    }
    // Died while running: restart with backoff.
    this.lastError = this.lastError ?? `process ${how}`;
    this.emit(
      'crashed',
      `${how}${this.lastError && !this.lastError.startsWith('process') ? `: ${this.lastError}` : ''}`,
    );
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    this.setState('backoff');
    const delay = this.restartDelay;
    this.restartDelay = Math.min(this.restartDelay * 2, 30_000);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.restarts++;
      const startedAt = Date.now();
      this.start().then(
        () => {
          this.emit('restarted');
          // Stayed up a while: the next crash starts the backoff from the beginning again.
          const reset = setTimeout(() => {
            if (this.state === 'running' && Date.now() - startedAt >= 10_000) this.restartDelay = 1000;
          }, 10_000);
          reset.unref();
        },
        (err: Error) => {
          this.emit('crashed', err.message);
          if (this.state !== 'stopping' && this.state !== 'stopped') this.scheduleRestart();
        },
      );
    }, delay);
  }

  /** Sends `signal` to the process if it is running (ready); false otherwise. */
  signal(signal: NodeJS.Signals): boolean {
    if (this.child === undefined || this.state !== 'running') return false;
    return this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after the stop timeout; resolves once the process is gone. */
  async stop(): Promise<void> {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child) {
      this.setState('stopped');
      this.logStream?.end();
      return;
    }
    this.setState('stopping');
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.opts.stopTimeoutMs);
    await exited;
    clearTimeout(timer);
    this.readyWaiter?.reject(new StartupError(`${this.spec.id}: stopped before it was ready`));
    this.readyWaiter = undefined;
    this.logStream?.end();
    this.logStream = undefined;
  }

  private setState(state: ComponentState): void {
    this.state = state;
    this.since = new Date();
    this.emit('change');
  }
}
