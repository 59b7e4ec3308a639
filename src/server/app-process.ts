/**
 * One supervised process of the codebase and its life as explicit, named states:
 *
 * ```
 *   stopped ──start()──▶ starting ──port accepts──▶ running
 *      ▲                 │    ▲                      │
 *      │            exit │    │ delay elapsed        │ exit (crash)
 *      │                 ▼    │                      │
 *      │                backoff ◀────────────────────┘
 *      └── stopping ◀── stop() (from any state)
 * ```
 *
 * A crash (any exit that was not asked for) is followed by a restart after a delay that starts at
 * `restart.initialDelay`, doubles on each crash in a row up to `restart.maxDelay`, and goes back
 * to `initialDelay` once the process had stayed up `restart.resetAfter`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { RestartConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { waitForPort } from './port-probe.js';
import { pipePrefixedLines } from './prefixed-lines.js';

/** Where a supervised process is in its life. */
export type AppProcessState = 'starting' | 'running' | 'backoff' | 'stopping' | 'stopped';

/** A snapshot of one supervised process. */
export interface AppProcessStatus {
  /** Position among the server's processes (0-based); its port is the base port + index. */
  readonly index: number;
  readonly port: number;
  readonly state: AppProcessState;
  /** Pid of the current OS process, or undefined between two of them. */
  readonly pid: number | undefined;
  /** Restarts since start(). */
  readonly restarts: number;
  /** Crashes in a row (reset when a process had stayed up `restart.resetAfter`). */
  readonly consecutiveCrashes: number;
  /** In `backoff`: milliseconds between the crash and the restart. */
  readonly restartDelay: number | undefined;
  /** How the last OS process ended, e.g. "exit code 1" or "signal SIGKILL". */
  readonly lastExit: string | undefined;
}

/** How to run one process and what to do around it. */
export interface AppProcessOptions {
  index: number;
  /** Executable and its arguments. */
  command: string;
  args: readonly string[];
  cwd: string;
  /** Complete environment of the process. */
  env: NodeJS.ProcessEnv;
  /** Where the process listens: it is `running` once this accepts TCP connections. */
  host: string;
  port: number;
  restart: RestartConfig;
  /** A process that does not listen within this many milliseconds is killed and restarted. */
  readyTimeout: number;
  /** stop(): SIGTERM, then SIGKILL after this many milliseconds. */
  stopTimeout: number;
  stdout: Writable;
  stderr: Writable;
  log: Logger;
  /** Called after every change of the snapshot (state, pid). */
  onChange: () => void;
}

/** One codebase process, kept running until stop(). */
export class AppProcess {
  readonly #opts: AppProcessOptions;
  readonly #tag: string;
  #state: AppProcessState = 'stopped';
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #startedAt = 0;
  #restarts = 0;
  #crashes = 0;
  #restartDelay: number | undefined;
  #lastExit: string | undefined;
  #backoffTimer: NodeJS.Timeout | undefined;
  #probe: AbortController | undefined;
  #stopRequested = false;

  constructor(opts: AppProcessOptions) {
    this.#opts = opts;
    this.#tag = `app#${opts.index}`;
  }

  /** The current state. */
  get state(): AppProcessState {
    return this.#state;
  }

  /** A snapshot for status reports. */
  status(): AppProcessStatus {
    return {
      index: this.#opts.index,
      port: this.#opts.port,
      state: this.#state,
      pid: this.#child?.pid,
      restarts: this.#restarts,
      consecutiveCrashes: this.#crashes,
      restartDelay: this.#state === 'backoff' ? this.#restartDelay : undefined,
      lastExit: this.#lastExit,
    };
  }

  /** Starts the process (from `stopped` only; otherwise does nothing). */
  start(): void {
    if (this.#state !== 'stopped') return;
    this.#stopRequested = false;
    this.#restarts = 0;
    this.#crashes = 0;
    this.#spawn();
  }

  /** Stops the process for good: SIGTERM, SIGKILL after `stopTimeout`; resolves once it has exited. */
  async stop(): Promise<void> {
    this.#stopRequested = true;
    clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    const child = this.#child;
    if (!child) {
      this.#setState('stopped');
      return;
    }
    if (this.#state !== 'stopping') this.#setState('stopping');
    await this.#terminate(child);
  }

  #spawn(): void {
    const { command, args, cwd, env, stdout, stderr, log } = this.#opts;
    this.#startedAt = Date.now();
    this.#restartDelay = undefined;
    let child: ChildProcess;
    try {
      child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      this.#afterExit(`could not start: ${(err as Error).message}`, undefined);
      return;
    }
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#onExit(child, signal ? `signal ${signal}` : `exit code ${code}`);
        resolve();
      });
      child.once('error', (err) => {
        // Without a pid the process never existed: there will be no 'exit' event.
        if (child.pid !== undefined) {
          log.warn(`${this.#tag}: ${err.message}`);
          return;
        }
        this.#onExit(child, `could not start: ${err.message}`);
        resolve();
      });
    });
    pipePrefixedLines(child.stdout!, stdout, `[${this.#tag}] `);
    pipePrefixedLines(child.stderr!, stderr, `[${this.#tag}] `);
    this.#setState('starting');
    if (child.pid !== undefined) void this.#awaitReady(child);
  }

  async #awaitReady(child: ChildProcess): Promise<void> {
    const { host, port, readyTimeout, log } = this.#opts;
    const probe = new AbortController();
    this.#probe = probe;
    const ok = await waitForPort(host, port, { timeout: readyTimeout, signal: probe.signal });
    if (this.#child !== child || this.#state !== 'starting') return;
    if (ok) {
      log.info(`${this.#tag} running (pid ${child.pid}, port ${port})`);
      this.#setState('running');
      return;
    }
    log.warn(
      `${this.#tag} (pid ${child.pid}) did not listen on ${host}:${port} within ${readyTimeout}ms: restarting it`,
    );
    this.#setState('stopping');
    await this.#terminate(child);
  }

  #onExit(child: ChildProcess, how: string): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#probe?.abort();
    this.#afterExit(how, child.pid);
  }

  /** The OS process is gone: stopped for good, or a crash to restart after the backoff delay. */
  #afterExit(how: string, pid: number | undefined): void {
    const name = `${this.#tag}${pid ? ` (pid ${pid})` : ''}`;
    this.#lastExit = how;
    const uptime = Date.now() - this.#startedAt;
    if (this.#stopRequested) {
      this.#opts.log.info(`${name} stopped (${how})`);
      this.#setState('stopped');
      return;
    }
    const { initialDelay, maxDelay, resetAfter } = this.#opts.restart;
    if (uptime >= resetAfter) this.#crashes = 0;
    this.#crashes += 1;
    const delay = Math.min(initialDelay * 2 ** (this.#crashes - 1), maxDelay);
    this.#restartDelay = delay;
    this.#opts.log.warn(
      `${name} ended (${how}) after ${uptime}ms; ` +
        `restarting in ${delay}ms (crash ${this.#crashes} in a row)`,
    );
    this.#setState('backoff');
    this.#backoffTimer = setTimeout(() => {
      this.#backoffTimer = undefined;
      this.#restarts += 1;
      this.#spawn();
    }, delay);
  }

  /** SIGTERM now, SIGKILL after `stopTimeout`; resolves when the process has exited. */
  async #terminate(child: ChildProcess): Promise<void> {
    const exited = this.#exited;
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill('SIGTERM');
    const killTimer = setTimeout(() => {
      this.#opts.log.warn(
        `${this.#tag} (pid ${child.pid}) ignored SIGTERM for ${this.#opts.stopTimeout}ms: SIGKILL`,
      );
      child.kill('SIGKILL');
    }, this.#opts.stopTimeout);
    await exited;
    clearTimeout(killTimer);
  }

  #setState(state: AppProcessState): void {
    this.#state = state;
    this.#opts.onChange();
  }
}
