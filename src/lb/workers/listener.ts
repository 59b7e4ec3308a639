import { createServer, type Server, type Socket } from 'node:net';
import type { BackendConfig, FrontendConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import { listen } from '../listen.js';
import type { FrontendProxy } from '../reload/reload.js';
import type { WorkerPool } from './worker-pool.js';

/** Connections held while no worker can take them; more are closed. */
const MAX_HELD = 4096;

/** A listening socket's handle, as the primary keeps it (it never accepts on it). */
interface ListenHandle {
  close(): void;
}

/**
 * Whether an HTTP backend needs one count of the requests in flight on each server, which only one
 * process can keep: least connections, and servers with a `maxconn` (and its queue). An HTTP
 * frontend in front of such a backend is served by one worker.
 */
export function needsOneWorker(b: BackendConfig): boolean {
  return b.balance === 'leastconn' || b.servers.some((s) => s.maxconn !== undefined);
}

/**
 * A frontend's listening socket in a primary with workers. The primary binds it (so that an
 * address in use fails the start or the reload, as in one process), then shares it with the
 * workers, which accept its connections themselves: every worker, or only the home worker of a
 * frontend whose backend needs one count of requests in flight (needsOneWorker). The primary keeps
 * a handle of the socket it never accepts on, for workers that start later; connections it
 * accepted itself before the workers took over are handed to them.
 *
 * Reloads treat it as any frontend proxy (reload/reload.ts).
 */
export class SharedListener implements FrontendProxy {
  /** The primary's own listener, until a worker accepts on the socket. */
  private server: Server | undefined = undefined;
  /** The primary's handle of the socket, taken from the first worker that accepts on it. */
  private handle: ListenHandle | undefined = undefined;
  /** Worker slots accepting on it now. */
  private readonly accepting = new Set<number>();
  /** The workers know this frontend (it is in their config). */
  private announced = false;
  private closing = false;
  private held: Socket[] = [];
  /** share() calls, one after the other. */
  private sharing: Promise<void> = Promise.resolve();

  constructor(
    /** How the workers know this frontend. */
    readonly id: number,
    readonly frontend: FrontendConfig,
    public backend: Backend,
    private readonly workers: WorkerPool,
    /** The worker slot of a frontend served by one worker. */
    private readonly home: number,
    /** How long a worker that stops accepting lets its connections of this frontend finish. */
    private readonly drainTimeout: number,
    private readonly log: Logger,
  ) {}

  /** The worker slot that alone accepts this frontend's connections, when one worker serves it. */
  get slot(): number | undefined {
    return this.frontend.mode === 'http' && needsOneWorker(this.backend.config) ? this.home : undefined;
  }

  /** Binds and listens on the frontend's address (a TandemError such as PortInUseError if it cannot). */
  async listen(component: string): Promise<void> {
    const server = createServer({ pauseOnConnect: true }, this.onConnection);
    await listen(server, this.frontend.host, this.frontend.port, component);
    server.on('error', (err) => this.log.error(`frontend ${this.frontend.name}: ${err.message}`));
    this.server = server;
  }

  /** The workers know this frontend now: they take the socket over (see share()). */
  announce(): Promise<void> {
    this.announced = true;
    return this.share();
  }

  /** The worker of `slot` exited: it accepts no more. */
  workerGone(slot: number): void {
    this.accepting.delete(slot);
  }

  /**
   * Brings the workers in line with where connections should go: every ready worker that should
   * accept on the socket does, the others stop (their open connections go on). Resolves once the
   * workers answered.
   */
  share(): Promise<void> {
    this.sharing = this.sharing.then(() => this.shareNow());
    return this.sharing;
  }

  /**
   * Stops accepting; the workers' connections of this frontend finish within `graceMs`, then are
   * closed. Resolves when every worker is done with them; the port is free then.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.held.splice(0)) s.destroy();
    this.server?.close();
    this.server = undefined;
    const closed = this.announced
      ? this.workers.ask((id) => ({ t: 'close-frontend', id, f: this.id, grace: graceMs }), graceMs + 5000)
      : undefined;
    // The workers close their handles at once, and the socket closes with the last one: no new
    // connection is accepted (or queued) from now on, while those in progress finish.
    this.handle?.close();
    this.handle = undefined;
    await closed;
  }

  private async shareNow(): Promise<void> {
    if (!this.announced || this.closing) return;
    const slot = this.slot;
    for (const s of [...this.accepting]) {
      if (slot === undefined || s === slot) continue;
      this.accepting.delete(s);
      await this.workers.askOne(s, (id) => ({ t: 'unlisten', id, f: this.id, grace: this.drainTimeout }));
    }
    const wanted = slot === undefined ? [...Array(this.workers.size).keys()] : [slot];
    for (const s of wanted) {
      if (this.accepting.has(s) || !this.workers.isReady(s) || this.closing) continue;
      const source = this.handle ?? (this.server as (Server & { _handle?: object }) | undefined)?._handle;
      if (source === undefined) return;
      const copy = this.handle === undefined;
      const answer = await this.workers.askOne(s, (id) => ({ t: 'listen', id, f: this.id, copy }), source);
      if (answer === undefined || answer.reply.error !== undefined) {
        if (answer?.reply.error !== undefined)
          this.log.error(
            `frontend ${this.frontend.name}: worker ${s + 1} cannot accept on it: ${answer.reply.error}`,
          );
        continue;
      }
      this.accepting.add(s);
      if (copy && answer.handle !== undefined && this.closing) (answer.handle as ListenHandle).close();
      else if (copy && answer.handle !== undefined) {
        // A handle the primary never listens on: from now on the workers alone accept.
        this.handle = answer.handle as ListenHandle;
        this.server?.close();
        this.server = undefined;
      }
    }
    this.flush();
  }

  /** Hands the connections the primary accepted itself to the workers, as far as they can take them. */
  private flush(): void {
    if (!this.announced || this.closing) return;
    while (this.held.length > 0 && this.workers.isReady(this.slot)) this.route(this.held.shift()!);
  }

  /** A connection the primary accepted itself (before a worker took the socket over). */
  private readonly onConnection = (socket: Socket): void => {
    if (this.closing) socket.destroy();
    else if (this.announced && this.held.length === 0 && this.workers.isReady(this.slot)) this.route(socket);
    else if (this.held.length < MAX_HELD) this.held.push(socket);
    else socket.destroy();
  };

  private route(socket: Socket): void {
    this.workers.dispatch(this.id, socket, this.slot);
  }
}
