/**
 * The child processes of one benchmark run (backends, proxies, load generators, the idle client):
 * each one is started in its own process group so that stopping it also stops what it forked
 * (nginx workers, a multi-process load balancer), and none outlives the harness.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { BenchError } from './bench-error.js';

/** How much of a child's output is kept for error messages. */
const OUTPUT_TAIL = 16 * 1024;
/** Time a child gets to stop after SIGTERM before its process group is killed. */
const STOP_GRACE_MS = 5000;

/** How a child ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Run through `sh -c 'ulimit -n …; exec cmd'` so the child may open as many files as the hard
   * limit allows (at most 65536): proxies holding 10,000 connections need that.
   */
  raiseFdLimit?: boolean;
  /** Keep stdin open as a pipe (the idle client reads commands from it). */
  stdin?: boolean;
}

/** A running child process and what it printed. */
export class Child {
  readonly pid: number;
  readonly exited: Promise<ExitStatus>;
  private out = '';
  private exitStatus: ExitStatus | undefined;
  private readonly lineListeners = new Set<(line: string) => void>();
  private partial = '';

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    if (proc.pid === undefined) throw new BenchError(`${name}: could not start the process`);
    this.pid = proc.pid;
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
    });
    const collect = (chunk: string) => {
      this.out = (this.out + chunk).slice(-OUTPUT_TAIL);
    };
    proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      collect(chunk);
      this.splitLines(chunk);
    });
    proc.stderr?.setEncoding('utf8').on('data', collect);
  }

  /** The last 16 KiB of stdout and stderr, interleaved as they came. */
  output(): string {
    return this.out;
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.exitStatus === undefined;
  }

  /** How the child ended, or undefined while it runs. */
  get exitedWith(): ExitStatus | undefined {
    return this.exitStatus;
  }

  /** Calls `listener` with every complete line the child writes to stdout from now on. */
  onLine(listener: (line: string) => void): () => void {
    this.lineListeners.add(listener);
    return () => this.lineListeners.delete(listener);
  }

  /**
   * Resolves with the first stdout line (from now on) that `match` accepts; rejects when the child
   * exits first or after `timeoutMs`.
   */
  waitForLine(what: string, match: (line: string) => boolean, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, line?: string) => {
        clearTimeout(timer);
        off();
        if (err) reject(err);
        else resolve(line!);
      };
      const off = this.onLine((line) => {
        if (match(line)) finish(undefined, line);
      });
      const timer = setTimeout(
        () => finish(new BenchError(`${this.name}: no ${what} within ${timeoutMs} ms${this.tail()}`)),
        timeoutMs,
      );
      void this.exited.then((status) =>
        finish(new BenchError(`${this.name} exited (${describeExit(status)}) before ${what}${this.tail()}`)),
      );
    });
  }

  /** SIGTERM to the child's process group; SIGKILL to it if the child has not exited after a grace time. */
  async stop(): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
    });
    const result = await Promise.race([this.exited, grace]);
    clearTimeout(timer);
    killGroup(this.pid, 'SIGKILL');
    if (result === 'timeout') await this.exited;
  }

  /** SIGKILL to the child's process group, synchronously (for the harness's exit handler). */
  killNow(): void {
    killGroup(this.pid, 'SIGKILL');
  }

  /** `: <last lines of output>` for error messages, or nothing when the child printed nothing. */
  tail(lines = 15): string {
    const text = this.out.trimEnd();
    if (!text) return '';
    return `; its last output:\n    ${text.split('\n').slice(-lines).join('\n    ')}`;
  }

  private splitLines(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) for (const l of this.lineListeners) l(line);
  }
}

/** Every child started through the group; stopped together at the end or on Ctrl-C. */
export class ChildGroup {
  private readonly children = new Set<Child>();

  /** Starts `command` with `args` in a new process group. */
  spawn(name: string, command: string, args: string[], opts: SpawnOptions = {}): Child {
    const [cmd, argv] = opts.raiseFdLimit
      ? [
          '/bin/sh',
          [
            '-c',
            'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"',
            command,
            ...args,
          ],
        ]
      : [command, args];
    const proc = spawn(cmd, argv, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const child = new Child(name, proc);
    this.children.add(child);
    void child.exited.then(() => {
      // The group may still hold processes the child forked: they go with it.
      killGroup(child.pid, 'SIGKILL');
    });
    return child;
  }

  /** Stops `child` (SIGTERM, then SIGKILL) and forgets it. */
  async stop(child: Child): Promise<void> {
    await child.stop();
    this.children.delete(child);
  }

  /** Stops every child still known. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c)));
  }

  /** SIGKILL to every child's process group, synchronously. */
  killAllNow(): void {
    for (const c of this.children) c.killNow();
    this.children.clear();
  }
}

/** `exit code 1` or `signal SIGKILL`. */
export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    // ESRCH: the group is gone already, which is what we want.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
