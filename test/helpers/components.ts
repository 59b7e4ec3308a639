/** Runs single Tandem components (`tandem db`, `tandem cluster`, …) as real child processes. */
import { type ChildProcess, spawn } from 'node:child_process';
import { TANDEM } from './stack.js';
import { waitFor } from './index.js';

interface Message {
  type: string;
  message?: string;
  address?: string;
  role?: string;
  details?: Record<string, unknown>;
}

/** One component process with its IPC messages and output collected. */
export class Component {
  readonly child: ChildProcess;
  readonly messages: Message[] = [];
  output = '';
  readonly exited: Promise<number | null>;
  /** Latest `details` merged from ready/state messages. */
  details: Record<string, unknown> = {};

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [TANDEM, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
    });
    this.child.on('message', (m: Message) => {
      this.messages.push(m);
      if (m.details) this.details = { ...this.details, ...m.details };
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Waits for the `ready` message; throws with the output if the process exits first. */
  async ready(timeout = 120_000): Promise<Message> {
    return waitFor(
      `${this.child.spawnargs.slice(2).join(' ')} to be ready`,
      () => {
        const m = this.messages.find((x) => x.type === 'ready');
        if (!m && (this.child.exitCode !== null || this.child.signalCode !== null))
          throw new Error(`exited before ready:\n${this.output}`);
        return m;
      },
      { timeout, interval: 50 },
    );
  }

  /** SIGTERM and wait. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}
