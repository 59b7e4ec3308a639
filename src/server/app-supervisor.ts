/**
 * The application server: runs `server.app.processes` processes of the codebase, process i on
 * port `server.app.port + i`, restarts each one after a crash (see app-process.ts for the states
 * and the backoff), and stops them all on stop().
 *
 * Environment of process i: PORT, HOST, TANDEM_SERVER_NAME, TANDEM_PROCESS_INDEX, and when the
 * config has a database DATABASE_WRITER_URL and DATABASE_READER_URLS (comma-separated).
 */
import type { Writable } from 'node:stream';
import type { ResolvedConfig } from '../config/load.js';
import type { RestartConfig, ServerConfig } from '../config/schema.js';
import { databaseUrls } from '../db/urls.js';
import type { Logger } from '../log.js';
import { AppProcess, type AppProcessState, type AppProcessStatus } from './app-process.js';
import { reachableHost } from './port-probe.js';

export type { AppProcessState, AppProcessStatus } from './app-process.js';

/** How to run the codebase's processes of one server. */
export interface AppSupervisorOptions {
  /** Executable and arguments of one codebase process; a leading `node` means this Node binary. */
  command: readonly string[];
  /** Working directory of the processes. */
  cwd: string;
  /** Address the processes bind to (HOST). */
  host: string;
  /** Port of process 0; process i gets basePort + i (PORT). */
  basePort: number;
  processes: number;
  restart: RestartConfig;
  /** Added to this process's environment for every child; an undefined value removes the variable. */
  env?: Record<string, string | undefined>;
  /** A process not listening after this many milliseconds is restarted (default 30 s). */
  readyTimeout?: number;
  /** stop(): SIGKILL a process still alive this many milliseconds after SIGTERM (default 5 s). */
  stopTimeout?: number;
  /** Where the children's prefixed output goes (default: our stdout and stderr). */
  stdout?: Writable;
  stderr?: Writable;
  log: Logger;
}

/** Where a running process can be reached: what the web server forwards to. */
export interface AppEndpoint {
  readonly index: number;
  readonly host: string;
  readonly port: number;
}

/** Receives a snapshot of every process after each change. */
export type AppChangeListener = (status: readonly AppProcessStatus[]) => void;

/** Supervises the codebase's processes of one server. */
export class AppSupervisor {
  readonly #processes: AppProcess[];
  readonly #listeners = new Set<AppChangeListener>();
  readonly #connectHost: string;

  constructor(opts: AppSupervisorOptions) {
    const [first, ...rest] = opts.command;
    if (first === undefined) throw new TypeError('AppSupervisor: command must not be empty');
    const command = first === 'node' ? process.execPath : first;
    this.#connectHost = reachableHost(opts.host);
    this.#processes = Array.from({ length: opts.processes }, (_, index) => {
      const port = opts.basePort + index;
      return new AppProcess({
        index,
        command,
        args: rest,
        cwd: opts.cwd,
        env: processEnv(opts.env ?? {}, {
          PORT: String(port),
          HOST: opts.host,
          TANDEM_PROCESS_INDEX: String(index),
        }),
        host: this.#connectHost,
        port,
        restart: opts.restart,
        readyTimeout: opts.readyTimeout ?? 30_000,
        stopTimeout: opts.stopTimeout ?? 5_000,
        stdout: opts.stdout ?? process.stdout,
        stderr: opts.stderr ?? process.stderr,
        log: opts.log,
        onChange: () => this.#emit(),
      });
    });
  }

  /** Starts every process. */
  start(): void {
    for (const p of this.#processes) p.start();
  }

  /** Stops every process (SIGTERM, then SIGKILL after stopTimeout); resolves when all have exited. */
  async stop(): Promise<void> {
    await Promise.all(this.#processes.map((p) => p.stop()));
  }

  /** A snapshot of every process, by index. */
  status(): AppProcessStatus[] {
    return this.#processes.map((p) => p.status());
  }

  /** Pid of each process (undefined while it has none). */
  pids(): (number | undefined)[] {
    return this.#processes.map((p) => p.status().pid);
  }

  /** State of each process. */
  states(): AppProcessState[] {
    return this.#processes.map((p) => p.state);
  }

  /** The processes that are `running` right now, in index order. */
  running(): AppEndpoint[] {
    const out: AppEndpoint[] = [];
    this.#processes.forEach((p, index) => {
      if (p.state === 'running') out.push({ index, host: this.#connectHost, port: p.status().port });
    });
    return out;
  }

  /** Calls `listener` with a fresh snapshot after every change of a state or pid. Returns an unsubscribe. */
  onChange(listener: AppChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves true once every process is running, or false after `timeout` milliseconds. */
  whenAllRunning(timeout: number): Promise<boolean> {
    const allRunning = () => this.#processes.every((p) => p.state === 'running');
    if (allRunning()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeout);
      const unsubscribe = this.onChange(() => {
        if (allRunning()) done(true);
      });
    });
  }

  #emit(): void {
    if (this.#listeners.size === 0) return;
    const snapshot = this.status();
    for (const listener of this.#listeners) listener(snapshot);
  }
}

/** Options for the application server of `server`, from the config. */
export function appSupervisorOptions(
  config: ResolvedConfig,
  server: ServerConfig,
  log: Logger,
): AppSupervisorOptions {
  const urls = databaseUrls(config);
  return {
    command: config.codebase.command,
    cwd: config.paths.codebaseDir,
    host: server.host,
    basePort: server.app.port,
    processes: server.app.processes,
    restart: server.app.restart,
    env: {
      TANDEM_SERVER_NAME: server.name,
      DATABASE_WRITER_URL: urls?.writer,
      DATABASE_READER_URLS: urls?.readers.join(','),
    },
    log,
  };
}

function processEnv(
  extra: Record<string, string | undefined>,
  own: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries({ ...extra, ...own })) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}
