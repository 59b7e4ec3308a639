/**
 * TCP mode (layer 4): each client connection is piped, byte for byte, to one server of the
 * frontend's backend. Nothing is parsed, so any protocol passes (PostgreSQL, MySQL, Redis, TLS, …).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { FrontendConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { PickContext } from '../balance/balancer.js';
import { describeError } from '../describe-error.js';
import { listen } from '../listen.js';
import {
  acceptWithUserBuffer,
  handOver,
  handOverRaw,
  listenOnHandle,
  type RawHandle,
  readsIntoUserBuffer,
} from './injected.js';
import { closeWhenIdle, relayDirectly } from './direct-relay.js';
import { canTakeMore, chunkOf, READ_BUFFER, release } from './read-buffer.js';

/** Timeouts of one TCP frontend, in milliseconds (from the load balancer's config). */
export interface TcpProxyTimeouts {
  /** Time to get a connection to a server; past it the next server is tried. */
  connectTimeout: number;
  /** A connection with no byte in either direction for this long is closed (`tunnelTimeout`). */
  idleTimeout: number;
}

/** The PickContext of a TCP connection: the client's IP only (no URL, no headers). */
export class TcpPickContext implements PickContext {
  readonly url = undefined;
  constructor(readonly clientIp: string) {}
  header(_name: string): string | undefined {
    return undefined;
  }
}

/**
 * In a worker process, the primary picks the server of each connection (one balancer for the whole
 * load balancer, with one count of connections per server, see workers/tcp-sessions.ts): the
 * proxy asks it for another server after a failed connect, and tells it when a session is over.
 */
export interface ServerPicker {
  /** A new connection from `ip`: its server's name and session id, or undefined when no server can take it. */
  open(ip: string): Promise<{ server: string; sid: number } | undefined>;
  /** Session `sid` failed to connect to `failed`: the name of the next server to try, or undefined when none is left. */
  retry(sid: number, failed: UpstreamServer): Promise<string | undefined>;
  /** Session `sid` no longer holds a connection to its server. */
  end(sid: number): void;
}

/** The session a client or server socket belongs to, and the server an upstream socket goes to. */
const kSession = Symbol('tandem.tcpSession');
const kServer = Symbol('tandem.tcpServer');
type Tagged = Socket & { [kSession]?: TcpSession; [kServer]?: UpstreamServer };
/** How client connections are served: a client's FIN is passed on, not taken as the end of both ways. */
const HALF_OPEN = { allowHalfOpen: true, noDelay: true };

/** One client connection on its way through the proxy, over one connect attempt or several. */
class TcpSession {
  upstream: Tagged | undefined = undefined;
  /** The current upstream connection is established: bytes may flow, no more redispatch. */
  connected = false;
  /** Connect attempts made so far. */
  attempts = 0;
  /** Servers whose connect failed (allocated on the first failure). */
  tried: UpstreamServer[] | undefined = undefined;
  /** Why the current attempt failed (set on 'error', read on 'close'). */
  error: Error | undefined = undefined;
  timedOut = false;
  timer: NodeJS.Timeout | undefined = undefined;
  /** The client socket failed or closed: the session is over, no more attempts. */
  clientGone = false;
  /** The primary's id of this session when it picks the servers (ServerPicker), else -1. */
  sid = -1;
  /** The primary was told the session is over (ServerPicker.end). */
  ended = false;
  /** The client socket reads into the shared buffer (relay()); false: it emits 'data' (one another process accepted). */
  readonly userBuffer: boolean;

  constructor(
    readonly proxy: TcpProxy,
    readonly client: Tagged,
    readonly ctx: TcpPickContext,
  ) {
    this.userBuffer = readsIntoUserBuffer(client);
  }
}

/**
 * One frontend in TCP mode. Per client connection the backend's balancer picks a server (client IP
 * as the only context; a server at its `maxconn` takes no new connection); the proxy connects
 * within `connectTimeout`, and on a connect failure (refused, unreachable, timed out: nothing was
 * forwarded yet) tries another server, up to the backend's `retries`. Then bytes flow both ways with
 * backpressure; a half-close (FIN) from either side is passed on while the other direction keeps
 * flowing; a reset on either side resets the other; `idleTimeout` with no byte either way closes
 * both. No server at all: the client connection is closed at once.
 */
export class TcpProxy {
  readonly server: Server;
  /** Set by close(): no new connections. */
  closing = false;
  /** Open client connections. */
  private readonly clients = new Set<Tagged>();
  /** Serves connections another process accepted (handOver) instead of listening itself. */
  private handedOver = false;
  /** In a worker: the primary, which picks the servers of the connections it hands over. */
  picker: ServerPicker | undefined = undefined;

  /** Open client connections now. */
  get connections(): number {
    return this.clients.size;
  }

  constructor(
    readonly frontend: FrontendConfig,
    /** Replaced by a config reload: each new connection uses the backend of the moment it arrives. */
    public backend: Backend,
    /** Replaced by a config reload: applies to connections that arrive after it. */
    public timeouts: TcpProxyTimeouts,
    readonly log: Logger,
  ) {
    // Paused: nothing is read from the client before its server connection exists, so a failed
    // connect can go to another server with nothing lost.
    this.server = createServer(
      { allowHalfOpen: true, pauseOnConnect: true, noDelay: true },
      this.onConnection,
    );
  }

  /**
   * Stops accepting; established connections go on for up to `graceMs`, then whatever is left is
   * closed (both sides). Resolves once every client connection is closed.
   */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server.listening && !this.handedOver) return Promise.resolve();
    return new Promise((resolve) => {
      const deadline = setTimeout(() => {
        for (const client of this.clients) abort(client[kSession]!);
      }, graceMs);
      deadline.unref();
      server.close(() => {
        clearTimeout(deadline);
        resolve();
      });
    });
  }

  /**
   * Serves `socket`, a client connection the load balancer's primary process accepted (paused, not
   * read), as if this proxy's server had accepted it (in a worker process).
   */
  accept(socket: Socket): void {
    this.handedOver = true;
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.pause();
    handOver(this.server, socket, HALF_OPEN);
  }

  /**
   * Serves `handle`, the raw handle of a client connection another worker accepted and handed
   * over unread, as this proxy's own accepted connections (reading into READ_BUFFER).
   */
  acceptRaw(handle: RawHandle): void {
    this.handedOver = true;
    if (this.closing) handle.close();
    else handOverRaw(this.server, handle, READ_BUFFER, onClientRead, HALF_OPEN);
  }

  /** Binds and listens on the frontend's address (FrontendProxy). */
  async listen(component: string): Promise<void> {
    const f = this.frontend;
    await listen(this.server, f.host, f.port, component);
    this.server.on('error', (err) => this.log.error(`frontend ${f.name}: ${err.message}`));
    this.acceptWithUserBuffer();
  }

  /**
   * In a worker: accepts connections on `handle`, the frontend's listening socket the primary
   * shares with its workers (again, after a close()). Rejects if the socket cannot be listened on.
   */
  async listenOn(handle: object): Promise<void> {
    this.closing = false;
    await listenOnHandle(this.server, handle, this.frontend, this.log);
    this.acceptWithUserBuffer();
  }

  /** The sockets of the connections the server accepts from now on read into READ_BUFFER. */
  private acceptWithUserBuffer(): void {
    acceptWithUserBuffer(this.server, READ_BUFFER, onClientRead, HALF_OPEN);
  }

  private readonly onConnection = (socket: Socket): void => {
    const client = socket as Tagged;
    if (this.closing) {
      client.destroy();
      return;
    }
    const session = new TcpSession(this, client, new TcpPickContext(client.remoteAddress ?? ''));
    client[kSession] = session;
    this.clients.add(client);
    client.on('error', onClientError);
    client.on('close', onClientClose);
    const picker = this.picker;
    if (picker === undefined) attempt(session);
    else void picker.open(session.ctx.clientIp).then((picked) => openedOn(session, picked));
  };

  /**
   * Closes every established connection to `server` (HAProxy `on-marked-down shutdown-sessions`):
   * clients of a database endpoint must not keep talking to a node that lost its role.
   * Returns how many were closed.
   */
  shutdownSessionsOf(server: UpstreamServer): number {
    let closed = 0;
    for (const client of this.clients) {
      const session = client[kSession];
      if (session?.connected && session.upstream?.[kServer] === server) {
        abort(session);
        closed++;
      }
    }
    return closed;
  }

  /** Forgets a closed client connection. */
  forget(client: Tagged): void {
    this.clients.delete(client);
  }
}

const NONE: readonly UpstreamServer[] = [];

/**
 * The server for the session's next attempt: the balancer's pick among the usable servers not
 * tried yet (a server at its `maxconn` is not usable). Undefined when none is left.
 */
function pickServer(session: TcpSession): UpstreamServer | undefined {
  return session.proxy.backend.pickUntried(session.ctx, session.tried ?? NONE);
}

/** The primary picked the session's server (or none): its first attempt. */
function openedOn(session: TcpSession, picked: { server: string; sid: number } | undefined): void {
  if (picked !== undefined) session.sid = picked.sid;
  const server = picked && session.proxy.backend.servers.find((s) => s.name === picked.server);
  if (session.clientGone || server === undefined) {
    // The client left meanwhile, no server can take it, or a reload removed the one picked.
    endSession(session);
    if (picked === undefined) {
      const proxy = session.proxy;
      proxy.log.debug(
        `frontend ${proxy.frontend.name}: no server of backend ${proxy.backend.name} can take a connection; closing the client's`,
      );
    }
    session.client.destroy();
    return;
  }
  attempt(session, server);
}

/** The primary (ServerPicker) is told once that the session no longer holds its server. */
function endSession(session: TcpSession): void {
  if (session.sid < 0 || session.ended) return;
  session.ended = true;
  session.proxy.picker?.end(session.sid);
}

/**
 * Connects the session to `assigned` (the primary's pick), or to the next server the balancer
 * picks, or closes the client when there is none.
 */
function attempt(session: TcpSession, assigned?: UpstreamServer): void {
  const proxy = session.proxy;
  const server = assigned ?? pickServer(session);
  if (server === undefined) {
    proxy.log.debug(
      `frontend ${proxy.frontend.name}: no server of backend ${proxy.backend.name} can take a connection; closing the client's`,
    );
    session.client.destroy();
    return;
  }
  session.attempts++;
  session.error = undefined;
  session.timedOut = false;
  server.inFlight++;
  server.totalConnections++;
  const up = connect({
    host: server.host,
    port: server.port,
    allowHalfOpen: true,
    noDelay: true,
    onread: { buffer: READ_BUFFER, callback: onUpstreamRead },
  }) as Tagged;
  up[kSession] = session;
  up[kServer] = server;
  session.upstream = up;
  up.once('connect', onUpstreamConnect);
  up.on('error', onUpstreamError);
  up.on('close', onUpstreamClose);
  session.timer = setTimeout(onConnectTimeout, proxy.timeouts.connectTimeout, session);
}

function onConnectTimeout(session: TcpSession): void {
  session.timer = undefined;
  session.timedOut = true;
  session.upstream?.destroy();
}

/** Connected: from now on bytes flow both ways and the session stays on this server. */
function onUpstreamConnect(this: Tagged): void {
  const session = this[kSession]!;
  clearTimeout(session.timer);
  session.timer = undefined;
  if (session.clientGone) {
    this.destroy();
    return;
  }
  session.connected = true;
  // For passive health an open connection is a good answer: it ends the server's error streak.
  session.proxy.backend.passive.response(this[kServer]!, 200);
  const client = session.client;
  const idle = session.proxy.timeouts.idleTimeout;
  // Bytes flow directly between the two handles where Node.js allows it (direct-relay.ts), else
  // through onClientRead (or onClientData) and onUpstreamRead. An end (a FIN) is passed on either
  // way: flowing mode is what makes a socket emit 'end' (the data itself never enters its stream).
  const link = relayDirectly(client, session.userBuffer, this, true);
  if (link === undefined) {
    client.setTimeout(idle);
    client.on('timeout', onIdle);
    if (!session.userBuffer) client.on('data', onClientData);
  } else {
    closeWhenIdle(link, client, idle, () => abort(session));
  }
  this.on('end', onUpstreamEnd);
  client.on('end', onClientEnd);
  this.resume();
  client.resume();
}

/** A chunk from the server (`this`), in READ_BUFFER: on to the client. */
function onUpstreamRead(this: Tagged, n: number): boolean {
  return relay(this, this[kSession]!.client, chunkOf(n));
}

/** A chunk from the client (`this`), in READ_BUFFER: on to the server. */
function onClientRead(this: Tagged, n: number): boolean {
  return relay(this, this[kSession]!.upstream, chunkOf(n));
}

/** A chunk from a client socket that emits 'data' (one another process accepted): on to the server. */
function onClientData(this: Tagged, chunk: Buffer): void {
  if (!relay(this, this[kSession]!.upstream, chunk)) this.pause();
}

/**
 * Writes `chunk`, read from `from`, to `to`. False when `to` holds back (its buffer is full):
 * `from` stops reading (a false return does it for a user-buffer read) until `to` drains. A chunk
 * for a side already destroyed is dropped: the session is closing.
 */
function relay(from: Tagged, to: Tagged | undefined, chunk: Buffer): boolean {
  if (to === undefined || to.destroyed || to.writableEnded) return true;
  const more = canTakeMore(to, to.write(chunk));
  // Nothing queued: the kernel took the whole chunk, so its memory may serve the next one.
  if (to.writableLength === 0) release(chunk);
  if (more) return true;
  to.once('drain', from === to[kSession]!.client ? resumeClient : resumeUpstream);
  return false;
}

/** The client drained (`this`): the server's side reads again. */
function resumeUpstream(this: Tagged): void {
  this[kSession]!.upstream?.resume();
}

/** The server drained (`this`): the client's side reads again. */
function resumeClient(this: Tagged): void {
  this[kSession]!.client.resume();
}

function onUpstreamEnd(this: Tagged): void {
  this[kSession]!.client.end();
}

function onClientEnd(this: Tagged): void {
  this[kSession]!.upstream?.end();
}

/** No byte either way for the idle timeout: both sides are closed. */
function onIdle(this: Tagged): void {
  abort(this[kSession]!);
}

function onUpstreamError(this: Tagged, err: Error): void {
  const session = this[kSession]!;
  if (session.upstream === this) session.error = err;
}

/**
 * An upstream connection closed. Before it was established: account the failure and try another
 * server (or give up). After: pass a reset on to the client; a clean close needs nothing, as each
 * direction's end was already passed on by pipe().
 */
function onUpstreamClose(this: Tagged, hadError: boolean): void {
  const session = this[kSession]!;
  const server = this[kServer]!;
  const proxy = session.proxy;
  server.inFlight--;
  server.bytesIn += this.bytesWritten;
  server.bytesOut += this.bytesRead;
  if (session.upstream !== this) return;
  clearTimeout(session.timer);
  session.timer = undefined;
  if (session.connected) {
    endSession(session);
    if (hadError) {
      server.failures++;
      reset(session.client);
    }
    return;
  }
  if (session.clientGone) {
    endSession(session);
    return;
  }
  server.failures++;
  const why = session.timedOut
    ? `no connection within ${proxy.timeouts.connectTimeout}ms`
    : describeError(session.error);
  proxy.backend.passive.error(server, why);
  const where = `backend ${server.backend}: server ${server.name}`;
  (session.tried ??= []).push(server);
  const retries = proxy.backend.config.retries;
  if (session.sid >= 0 && proxy.picker !== undefined) {
    if (session.attempts > retries) {
      endSession(session);
      session.client.destroy();
      proxy.log.warn(`${where} failed: ${why}; closing the client connection`);
      return;
    }
    // The primary moves the session to its next pick (or ends it when there is none).
    void proxy.picker.retry(session.sid, server).then((name) => {
      const next = name === undefined ? undefined : proxy.backend.servers.find((s) => s.name === name);
      if (name === undefined) session.ended = true;
      else if (next === undefined) endSession(session); // a reload removed it meanwhile
      if (session.clientGone) {
        endSession(session);
        return;
      }
      if (next === undefined) {
        session.client.destroy();
        proxy.log.warn(`${where} failed: ${why}; closing the client connection`);
        return;
      }
      server.retries++;
      server.redispatches++;
      proxy.log.warn(`${where} failed: ${why}; retrying on ${next.name}`);
      attempt(session, next);
    });
    return;
  }
  if (session.attempts <= retries) {
    const before = session.attempts;
    attempt(session);
    if (session.attempts > before) {
      // Always another server (pickServer leaves out the tried ones): a retry is a redispatch.
      server.retries++;
      server.redispatches++;
      proxy.log.warn(`${where} failed: ${why}; retrying on ${session.upstream![kServer]!.name}`);
      return;
    }
  } else {
    session.client.destroy();
  }
  proxy.log.warn(`${where} failed: ${why}; closing the client connection`);
}

/** A reset or write error on the client side: the server side is reset too (closed, if not connected yet). */
function onClientError(this: Tagged, _err: Error): void {
  const session = this[kSession]!;
  session.clientGone = true;
  const up = session.upstream;
  if (up === undefined) return;
  if (session.connected) reset(up);
  else up.destroy();
}

/**
 * Closes `socket` with a reset (RST), not a clean end (FIN): the other side of its session was
 * reset or failed, and a clean end would tell this side that everything was said (a protocol that
 * ends its messages with the connection would take a cut-short answer for a whole one).
 */
function reset(socket: Tagged): void {
  if (!socket.destroyed) socket.resetAndDestroy();
}

/** The client connection is over: forget it; an upstream still connecting is abandoned. */
function onClientClose(this: Tagged, hadError: boolean): void {
  const session = this[kSession]!;
  session.clientGone = true;
  session.proxy.forget(this);
  const up = session.upstream;
  if (up === undefined || up.destroyed) return;
  if (!session.connected) {
    up.destroy();
    return;
  }
  if (hadError) {
    reset(up);
    return;
  }
  // Closed cleanly: both directions are done on the client side, so the server already sent its
  // FIN and was sent ours. Bound the time left to flush what the server has not read yet.
  up.setTimeout(session.proxy.timeouts.idleTimeout);
  up.once('timeout', onIdle);
}

/** Closes both sides of the session at once. */
function abort(session: TcpSession): void {
  clearTimeout(session.timer);
  session.timer = undefined;
  session.upstream?.destroy();
  session.client.destroy();
}
