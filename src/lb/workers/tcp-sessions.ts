/**
 * TCP frontends in a primary with workers: the primary picks the server of every client
 * connection a worker accepts (`tcp-open`), with the frontend's one balancer and one count of the
 * connections each server holds, so that round robin, least connections and `maxconn` mean the
 * same as in one process. The worker asks for the next server after a failed connect
 * (`tcp-retry`) and says when the session no longer holds its server (`tcp-end`). One message
 * each way per connection, none per byte.
 */
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { TcpPickContext } from '../proxy/tcp-proxy.js';

/** Where a session's connection is counted, and what its retries may pick from. */
interface Session {
  /** The server it holds (its `inFlight` counts it). */
  server: UpstreamServer;
  /** The backend its frontend sends to now (a reload may change it). */
  backend: () => Backend;
  ctx: TcpPickContext;
  /** Servers it failed to connect to, by name. */
  tried: string[];
  /** The worker slot that serves it. */
  slot: number;
}

const NONE: readonly UpstreamServer[] = [];

export class TcpSessions {
  private readonly sessions = new Map<number, Session>();
  private nextSid = 1;

  /**
   * Picks the server of a new connection from `ip`, which the worker of `slot` serves, and counts
   * it: the session id and the server, or undefined when no server can take it.
   */
  open(
    backend: () => Backend,
    ip: string,
    slot: number,
  ): { sid: number; server: UpstreamServer } | undefined {
    const ctx = new TcpPickContext(ip);
    const server = backend().pickUntried(ctx, NONE);
    if (server === undefined) return undefined;
    server.inFlight++;
    const sid = this.nextSid++;
    this.sessions.set(sid, { server, backend, ctx, tried: [], slot });
    return { sid, server };
  }

  /** Session `sid` failed on its server: the next server it goes to (counted there), or undefined. */
  retry(sid: number): UpstreamServer | undefined {
    const s = this.sessions.get(sid);
    if (s === undefined) return undefined;
    s.server.inFlight--;
    s.tried.push(s.server.name);
    const backend = s.backend();
    const tried = backend.servers.filter((x) => s.tried.includes(x.name));
    const next = backend.pickUntried(s.ctx, tried);
    if (next === undefined) {
      this.sessions.delete(sid);
      return undefined;
    }
    next.inFlight++;
    s.server = next;
    return next;
  }

  /** Session `sid` holds no server any more. */
  end(sid: number): void {
    const s = this.sessions.get(sid);
    if (s === undefined) return;
    s.server.inFlight--;
    this.sessions.delete(sid);
  }

  /** The worker of `slot` is gone, and so are its connections. */
  workerGone(slot: number): void {
    for (const [sid, s] of this.sessions) {
      if (s.slot !== slot) continue;
      s.server.inFlight--;
      this.sessions.delete(sid);
    }
  }
}
