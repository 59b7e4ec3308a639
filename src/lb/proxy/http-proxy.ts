import { createServer, type Server, type Socket } from 'node:net';
import type { FrontendConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import type { PickContext } from '../balance/balancer.js';
import { clientResponseHeaders, requestHead, sendsChunked, upstreamRequestHeaders } from './headers.js';
import { LAST_CHUNK, writeChunk } from './chunked.js';
import { exchangesUnderWay, heldLength, writeOut, writeOutSoon } from './direct-relay.js';
import { limitMessage, limitStatus } from './limits.js';
import { sendLocal } from './local-response.js';
import { HttpPickContext } from './pick-context.js';
import { listen } from '../listen.js';
import { acceptWithUserBuffer, handOver, handOverRaw, listenOnHandle, type RawHandle } from './injected.js';
import { canTakeMore, READ_BUFFER } from './read-buffer.js';
import { guardUpgrade, rejectMalformed } from './request-guard.js';
import {
  ClientConnection,
  onClientRead,
  type ClientHandler,
  type FrontRequest,
  type RequestOwner,
} from './client-connection.js';
import type { ProxyOptions } from './proxy-options.js';
import { atMaxConn, type QueuedRequest, type QueueRejection, type RequestQueue } from './queue.js';
import { requestIdFor } from './request-id.js';
import { UpgradeHandler } from './upgrade.js';
import type { StickyCookie } from './sticky.js';
import { mayRetry } from './retry-policy.js';
import { responseFields, type ScannedResponseHead } from './response-head.js';
import type { ConnectionUser, UpstreamConnection } from './upstream-connection.js';

/** Timeouts of one frontend, in milliseconds (from the load balancer's config). */
export interface ProxyTimeouts {
  /** Time to get a connection to a server. */
  connectTimeout: number;
  /**
   * Time a request may wait on its server: for the response headers once the request is all sent
   * (or, with `Expect: 100-continue`, before the client may send its body), for the server to take
   * more of the body, and for the next bytes of an answer under way.
   */
  serverTimeout: number;
  /** Time a request may wait on its client: for more of its body, or to take more of the answer. */
  clientTimeout: number;
  /** Idle keep-alive connections from clients are closed after this. */
  keepAliveTimeout: number;
  /** A request's line and headers must all arrive within this from its first byte (408 past it). */
  headersTimeout: number;
  /** Upgraded connections (WebSocket) are closed after this long without traffic either way. */
  tunnelTimeout: number;
}

/** The exchange an upstream socket belongs to while its request body waits for a drain. */
const kExchange = Symbol('tandem.exchange');
type Tagged<T> = T & { [kExchange]?: Exchange | undefined };

/**
 * One client request on its way through the proxy, over one attempt or more (retries): it is the
 * user of the upstream connection of its current attempt (upstream-connection.ts), which calls it
 * back with the response's head, body and end.
 */
class Exchange implements QueuedRequest, ConnectionUser, RequestOwner {
  /** The server of the current attempt. */
  server: UpstreamServer;
  /** The connection of the current attempt; undefined once released or abandoned. */
  conn: UpstreamConnection | undefined = undefined;
  /** The current attempt went over a connection an earlier request used (a keep-alive one). */
  reused = false;
  /**
   * Connect timer, then server timer: for the response headers once the request is all sent, and
   * for a 100 Continue. The other waits (on a client's body, on either side mid-transfer) are the
   * frontend's sweep's (watchTransfer).
   */
  timer: NodeJS.Timeout | undefined = undefined;
  /** The current attempt has a connection: request bytes may have left. */
  connected = false;
  timedOut: 'connect' | 'server' | undefined = undefined;
  /** The response's head went to the client. */
  responded = false;
  /** The whole response came from the server. */
  complete = false;
  /** The whole request went to the server (no body, or its end was written). */
  requestDone = false;
  /** Attempts sent again so far (at most the backend's `retries`). */
  retries = 0;
  /** Servers the request failed on, in order; only allocated on a first retry. */
  tried: UpstreamServer[] | undefined = undefined;
  /** The client side is finished (response sent or connection gone). */
  done = false;
  /** When the request arrived (performance.now()), for the backend's latency histogram. */
  readonly startedAt = performance.now();
  /** Sticky sessions (only when configured): the backend's cookie, and the server the request's cookie named. */
  sticky: StickyCookie<UpstreamServer> | undefined = undefined;
  cookieServer: UpstreamServer | undefined = undefined;
  /** The request id (requestIdHeader): sent to the server and back to the client. */
  requestId: string | undefined = undefined;
  /** The backend queue the request had to wait in; set, the request holds no server slot. */
  queue: RequestQueue | undefined = undefined;
  /** Waiting in `queue` now. */
  waiting = false;
  /** Request body bytes read so far; counted only when maxBodySize is set. */
  bodyBytes = 0;
  /** The timeouts of when the request arrived: a reload's apply to the requests after it. */
  readonly timeouts: ProxyTimeouts;

  constructor(
    readonly proxy: HttpProxy,
    /** The client's request, and its response. */
    readonly req: FrontRequest,
    /** The request line and header section sent to the server, built once for every attempt. */
    readonly head: string,
    readonly hasBody: boolean,
    /** The body goes on chunked (it came chunked). */
    readonly chunked: boolean,
    server: UpstreamServer,
    readonly pickContext: PickContext,
  ) {
    this.server = server;
    this.timeouts = proxy.timeouts;
  }

  /** Out of the backend queue, onto `server` (QueuedRequest). */
  dispatch(server: UpstreamServer): void {
    this.queue = undefined;
    this.waiting = false;
    this.proxy.send(this, server);
  }

  /** Turned away by the backend queue: 503 (QueuedRequest). */
  reject(reason: QueueRejection): void {
    this.waiting = false;
    this.proxy.queueRejected(this, reason);
  }

  /** ConnectionUser: a new connection is up. */
  upstreamConnected(conn: UpstreamConnection): void {
    if (conn === this.conn && !this.done) connected(this);
  }

  /** ConnectionUser: the response's head, relayed to the client. */
  upstreamHead(conn: UpstreamConnection, status: number, message: string, rawHeaders: string[]): boolean {
    if (!this.headIn(conn, status)) return true;
    this.relayHead(status, message, rawHeaders);
    return this.req.method === 'HEAD';
  }

  /**
   * ConnectionUser: a response head read without llhttp: its bytes go on to the client as they
   * came (less hop-by-hop fields, the request id set), unless sticky sessions add a cookie to it or
   * the frontend is closing, which take its fields as strings.
   */
  upstreamScannedHead(conn: UpstreamConnection, buf: Buffer, head: ScannedResponseHead): boolean {
    if (!this.headIn(conn, head.status)) return true;
    const proxy = this.proxy;
    if (this.sticky === undefined && !proxy.closing) {
      const id = proxy.options.requestIdHeader;
      const requestId = this.requestId;
      if (id === undefined || requestId === undefined) this.req.writeScannedHead(buf, head, undefined, '');
      else this.req.writeScannedHead(buf, head, id.lower, `${id.name}: ${requestId}\r\n`);
      this.responded = true;
    } else {
      const fields = responseFields(buf, head);
      this.relayHead(head.status, fields.message, fields.headers);
    }
    return this.req.method === 'HEAD';
  }

  /**
   * A response head came on the current attempt: counted, and its timer stopped. False when it is
   * not to be relayed (not the current attempt's, or the exchange is over: the attempt is dropped).
   */
  private headIn(conn: UpstreamConnection, status: number): boolean {
    if (conn !== this.conn) return false;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.done) {
      this.abandon();
      return false;
    }
    const server = this.server;
    const cls = (status / 100) | 0;
    if (cls < 6) server.responses[cls]!++;
    this.proxy.backend.passive.response(server, status);
    return true;
  }

  /** The response head to the client, from the server's fields (hop-by-hop ones dropped here). */
  private relayHead(status: number, message: string, rawHeaders: string[]): void {
    const proxy = this.proxy;
    const headers = clientResponseHeaders(
      rawHeaders,
      proxy.closing,
      proxy.options.requestIdHeader,
      this.requestId,
    );
    this.sticky?.addSetCookie(headers, this.cookieServer, this.server);
    // Every field passed the strict parser: nothing in it can break the head written to the client.
    this.req.writeHead(status, message, headers);
    this.responded = true;
  }

  /** ConnectionUser: a 1xx before the final answer; a 100 Continue goes to the client that expects it. */
  upstreamInformational(conn: UpstreamConnection, status: number): void {
    if (status !== 100 || conn !== this.conn || this.done) return;
    // Relayed once, to a client that waits for it (`Expect: 100-continue`): the body is the
    // client's move now (the sweep watches it).
    if (this.req.awaitingContinue) {
      this.req.writeContinue();
      if (!this.requestDone) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    }
  }

  /** ConnectionUser: a chunk of the response body, with backpressure from the client. */
  upstreamBody(conn: UpstreamConnection, chunk: Buffer): boolean {
    if (conn !== this.conn || this.done) return true;
    if (!this.req.write(chunk)) {
      conn.socket.pause();
      return false;
    }
    return this.req.socket.writableLength === 0;
  }

  /** RequestOwner: the client took what was written: the server's response may flow again. */
  clientDrain(): void {
    this.conn?.socket.resume();
  }

  /** ConnectionUser: the whole response is in. */
  upstreamComplete(conn: UpstreamConnection): void {
    if (conn !== this.conn) return;
    this.complete = true;
    // Released first: the end of the response ends the exchange (clientDone).
    this.release();
    if (!this.done) this.req.end();
  }

  /** ConnectionUser: the attempt failed (error, timeout, close) before the whole response came. */
  upstreamFailed(conn: UpstreamConnection, err: NodeJS.ErrnoException): void {
    if (conn !== this.conn) return;
    this.conn = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.done) return;
    this.proxy.attemptFailed(this, err);
  }

  /**
   * The response is complete: the connection goes back to the server's pool when the request is
   * fully sent too and the server keeps the connection; a request body still on its way (the
   * server answered before reading it all) is not sent on, and the connection is closed.
   */
  release(): void {
    const conn = this.conn;
    if (conn === undefined || !this.complete) return;
    if (!this.requestDone) {
      this.req.stopBody();
      this.abandon();
      return;
    }
    this.conn = undefined;
    const socket = conn.socket as Tagged<Socket>;
    if (socket[kExchange] !== undefined) {
      socket[kExchange] = undefined;
      socket.off('drain', onUpstreamDrain);
    }
    this.server.pool.release(conn, conn.keepAlive);
  }

  /** Closes the current attempt's connection (nothing of it is reported any more). */
  abandon(): void {
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
  }

  /**
   * RequestOwner: a chunk of the request body: to the server (chunk-encoded when it came chunked),
   * with backpressure, and maxBodySize enforced. The body is coming: a server timer for a 100
   * Continue stops (until the body is all in, the sweep watches both sides).
   */
  clientBody(_req: FrontRequest, chunk: Buffer): void {
    const conn = this.conn;
    if (conn === undefined) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const max = this.proxy.options.maxBodySize;
    if (max !== undefined) {
      this.bodyBytes += chunk.length;
      // Checked before the chunk is sent: a chunk past maxBodySize never is.
      if (this.bodyBytes > max) {
        bodyTooLarge(this, max);
        return;
      }
    }
    const socket = conn.socket as Tagged<Socket>;
    // An empty chunk would end a chunked body.
    if (chunk.length === 0) return;
    if (!canTakeMore(socket, this.chunked ? writeChunk(socket, chunk) : socket.write(chunk))) {
      this.req.pause();
      socket[kExchange] = this;
      socket.once('drain', onUpstreamDrain);
    }
  }

  /**
   * RequestOwner: the request body is all in: its end goes to the server, whose answer is awaited
   * from now on (the server timer); the connection may be released.
   */
  clientBodyEnd(): void {
    const conn = this.conn;
    if (conn === undefined || this.requestDone) return;
    if (this.chunked) conn.socket.write(LAST_CHUNK, 'latin1');
    this.requestDone = true;
    if (!this.responded) {
      clearTimeout(this.timer);
      this.timer = setTimeout(onServerTimeout, this.timeouts.serverTimeout, this);
    }
    this.release();
  }

  /**
   * RequestOwner: the client side is over (response sent, or connection lost): account, and
   * abandon the upstream side if unfinished.
   */
  clientDone(): void {
    this.done = true;
    exchangesUnderWay(-1);
    clearTimeout(this.timer);
    this.timer = undefined;
    // A request that waited in the queue holds a server slot only once dispatched.
    if (this.queue === undefined) this.server.inFlight--;
    else if (this.waiting) this.queue.remove(this);
    const proxy = this.proxy;
    proxy.backend.latency?.observe((performance.now() - this.startedAt) / 1000);
    // A connection still attached carries an unfinished exchange: it cannot be reused.
    this.abandon();
    proxy.slotFreed();
  }
}

const TEXT = 'text/plain; charset=utf-8';
/**
 * How the frontend's connections are set up: half-open, so that a client's FIN does not close the
 * socket by itself (client-connection.ts decides what it means).
 */
const HTTP_SOCKET = { allowHalfOpen: true, noDelay: true };
/** `Expect` values other than this get a 417. */
const CONTINUE = /^100-continue$/i;
/** A request target with characters that cannot go on a request line. */
const UNSENDABLE_TARGET = /[^\u0021-\u00ff]/;
const BAD_GATEWAY = Buffer.from('502 Bad Gateway: the server failed to answer\n');
const EXPECTATION_FAILED = Buffer.from('417 Expectation Failed: only 100-continue is supported\n');
const GATEWAY_TIMEOUT = Buffer.from('504 Gateway Timeout: the server did not answer in time\n');

/**
 * One frontend: an HTTP/1.1 reverse proxy in front of one backend. Each request goes to the server
 * the backend's balancer picks, over that server's keep-alive pool; bodies stream both ways.
 *
 * Failures: no server up → 503; a connect failure (nothing of the request sent yet), or a reset
 * before any answer for a bodyless idempotent request → up to `retries` more attempts, each on a
 * server not tried yet (see retry-policy.ts); any other upstream error → 502; no response headers
 * within `serverTimeout` (or no connection within `connectTimeout`, after the retries) → 504. Once
 * the response has started, an upstream failure closes the client connection. Every answer and
 * failure is reported to the backend's passive health.
 *
 * Limits (limits.ts): too many header fields or a header section over maxHeaderSize → 431, a body
 * over maxBodySize → 413, headers not in within headersTimeout → 408, all with the connection
 * closed. Every usable server at its maxconn → the request waits in the backend queue (queue.ts).
 * `Expect: 100-continue` is passed to the server and its 100 relayed; Upgrade requests are
 * tunnelled (upgrade.ts); `Forwarded` and the request id header are added (headers.ts).
 */
export class HttpProxy implements ClientHandler {
  readonly server: Server;
  /** Open client connections (not upgraded ones). */
  private readonly connections = new Set<ClientConnection>();
  /** Checks the headers and keep-alive timeouts of every connection. */
  private sweep: NodeJS.Timeout | undefined = undefined;
  /** Set by close(): responses ask the client to close its connection. */
  closing = false;
  private unavailableBody: Buffer;
  /** WebSocket and other Upgrade requests, and their tunnels. */
  readonly upgrades: UpgradeHandler;
  /** An Upgrade or CONNECT request (ClientHandler): its checks, then the tunnel (upgrade.ts). */
  readonly upgrade: (req: FrontRequest, socket: Socket, head: Buffer) => void;
  private tooLargeBody: Buffer;
  private tooManyHeadersBody: Buffer;
  /** Serves connections another process accepted (handOver) instead of listening itself. */
  private handedOver = false;

  constructor(
    readonly frontend: FrontendConfig,
    /** Replaced by a config reload: each request uses the backend of the moment it arrives. */
    public backend: Backend,
    /** Replaced by a config reload: applies to requests that arrive after it. */
    public timeouts: ProxyTimeouts,
    readonly log: Logger,
    /** Limits, Forwarded and the request id header. Replaced by a config reload (configure()). */
    public options: ProxyOptions,
  ) {
    this.unavailableBody = Buffer.from(
      `503 Service Unavailable: no server is up in backend "${backend.name}"\n`,
    );
    this.tooLargeBody = Buffer.from(limitMessage(413, options));
    this.tooManyHeadersBody = Buffer.from(limitMessage(431, options));
    this.server = createServer(HTTP_SOCKET, this.onConnection);
    this.upgrades = new UpgradeHandler(this);
    this.upgrade = guardUpgrade(this.upgrades.onUpgrade);
  }

  /**
   * A config reload's timeouts and options, for the requests that arrive after it (the header size
   * limit: for the connections that open after it). The listener, its connections and the
   * requests in flight stay as they are. Set `backend` first.
   */
  configure(timeouts: ProxyTimeouts, options: ProxyOptions): void {
    this.timeouts = timeouts;
    this.options = options;
    this.unavailableBody = Buffer.from(
      `503 Service Unavailable: no server is up in backend "${this.backend.name}"\n`,
    );
    this.tooLargeBody = Buffer.from(limitMessage(413, options));
    this.tooManyHeadersBody = Buffer.from(limitMessage(431, options));
    if (this.sweep !== undefined) {
      clearInterval(this.sweep);
      this.sweep = undefined;
      this.startSweep();
    }
  }

  /** Seconds for the Keep-Alive header (ClientHandler). */
  get keepAliveSeconds(): number {
    return Math.floor(this.timeouts.keepAliveTimeout / 1000);
  }

  private readonly onConnection = (socket: Socket): void => {
    if (this.sweep === undefined) this.startSweep();
    new ClientConnection(socket, this, this.options.maxHeaderSize, this.connections);
  };

  /**
   * Every tenth of the shortest timeout (at least every 25 ms, at most every second): connections
   * idle past the keep-alive timeout are closed, those whose request headers (or first
   * request, on a new connection) are not in within the headers timeout get a 408, the other
   * idle ones give their parser back, and the transfers of the busy ones are watched
   * (watchTransfer).
   */
  private startSweep(): void {
    const { keepAliveTimeout, headersTimeout, clientTimeout, serverTimeout } = this.timeouts;
    const shortest = Math.min(keepAliveTimeout, headersTimeout, clientTimeout, serverTimeout);
    const every = Math.max(25, Math.min(1000, Math.floor(shortest / 10)));
    this.sweep = setInterval(() => {
      const now = performance.now();
      const { keepAliveTimeout: idleMax, headersTimeout: headersMax } = this.timeouts;
      for (const conn of this.connections) {
        if (conn.idle) {
          if (unsent(conn.socket) > 0) {
            // The end of the last answer is still going out: the client timeout applies, and
            // the keep-alive time counts from when it is all out (closing would lose it).
            if (conn.idleSince >= 0) conn.idleSince = now;
            this.watchTransfer(conn, now);
          } else if (conn.idleSince >= 0 && now - conn.idleSince >= idleMax) conn.socket.destroy();
          else if (conn.headersLate(headersMax, now)) conn.headersTimedOut();
          else if (conn.idleSince >= 0) conn.shelveParser();
        } else if (conn.headersLate(headersMax, now)) conn.headersTimedOut();
        else this.watchTransfer(conn, now);
      }
    }, every);
    this.sweep.unref();
  }

  /**
   * The client and server timeouts of a transfer under way on `conn`, checked by the sweep rather
   * than by a timer restarted for every chunk: when no byte moved on either side for the timeout
   * of the side the request waits on (waitingOn), that side is timed out. A client: 408 for a body
   * that stopped coming, else the connection closed, and its server is not blamed. A server: 504
   * before the answer, the client's connection cut during it; its passive health hears of it.
   */
  private watchTransfer(conn: ClientConnection, now: number): void {
    const side = waitingOn(conn);
    if (side === undefined) {
      watched.delete(conn);
      return;
    }
    const client = conn.socket;
    const owner = conn.request?.owner;
    const ex = owner instanceof Exchange ? owner : undefined;
    const upstream = ex?.conn?.socket;
    const stalled = stalledFor(
      conn,
      now,
      client.bytesRead,
      unsent(client),
      upstream?.bytesRead ?? 0,
      upstream === undefined ? 0 : unsent(upstream),
    );
    const { clientTimeout, serverTimeout } = ex?.timeouts ?? this.timeouts;
    if (side === 'client') {
      if (stalled < clientTimeout) return;
      watched.delete(conn);
      const req = conn.request;
      const what =
        req === undefined
          ? conn.waitingForDrain
            ? 'took none of the answers written to it'
            : 'took no more of the last answer written to it'
          : req.awaitDrain || req.headersSent
            ? `took no more of the answer to ${req.method} ${req.url}`
            : `sent no more of the body of ${req.method} ${req.url}`;
      this.log.info(
        `frontend ${this.frontend.name}: client ${client.remoteAddress ?? '?'} ${what} for ${Math.round(stalled)}ms ` +
          '(clientTimeout): connection closed',
      );
      conn.clientTimedOut();
    } else if (stalled >= serverTimeout) {
      watched.delete(conn);
      // waitingOn() says 'server' only for a request of an exchange.
      onServerTimeout(ex!);
    }
  }

  /** Closes the connections that have no request under way and nothing left to send. */
  private closeIdleConnections(): void {
    for (const conn of this.connections) if (conn.idle && unsent(conn.socket) === 0) conn.socket.destroy();
  }

  /** Binds and listens on the frontend's address (FrontendProxy). */
  async listen(component: string): Promise<void> {
    const f = this.frontend;
    await listen(this.server, f.host, f.port, component);
    this.server.on('error', (err) => this.log.error(`frontend ${f.name}: ${err.message}`));
    acceptWithUserBuffer(this.server, READ_BUFFER, onClientRead, HTTP_SOCKET);
  }

  /**
   * In a worker: accepts connections on `handle`, the frontend's listening socket the primary
   * shares with its workers (again, after a close()). Rejects if the socket cannot be listened on.
   */
  async listenOn(handle: object): Promise<void> {
    this.closing = false;
    await listenOnHandle(this.server, handle, this.frontend, this.log);
    acceptWithUserBuffer(this.server, READ_BUFFER, onClientRead, HTTP_SOCKET);
  }

  /**
   * Serves `socket`, a client connection the load balancer's primary process accepted, as if this
   * proxy's server had accepted it (in a worker process).
   */
  accept(socket: Socket): void {
    this.handedOver = true;
    if (this.sweep === undefined) this.startSweep();
    if (this.closing) socket.destroy();
    else handOver(this.server, socket, HTTP_SOCKET);
  }

  /**
   * Serves `handle`, the raw handle of a client connection another worker accepted and handed
   * over unread, as this proxy's own accepted connections (reading into READ_BUFFER).
   */
  acceptRaw(handle: RawHandle): void {
    this.handedOver = true;
    if (this.sweep === undefined) this.startSweep();
    if (this.closing) handle.close();
    else handOverRaw(this.server, handle, READ_BUFFER, onClientRead, HTTP_SOCKET);
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left. */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server.listening && !this.handedOver) return Promise.resolve();
    return new Promise((resolve) => {
      // Keep-alive connections that go idle during the drain are closed as they do.
      const sweep = setInterval(() => this.closeIdleConnections(), 50);
      const deadline = setTimeout(() => {
        for (const conn of this.connections) conn.socket.destroy();
        this.upgrades.destroyAll();
      }, graceMs);
      sweep.unref();
      deadline.unref();
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(deadline);
        clearInterval(this.sweep);
        this.sweep = undefined;
        resolve();
      });
      this.closeIdleConnections();
    });
  }

  /** A request's head is in (ClientHandler). */
  request(req: FrontRequest): void {
    if (rejectMalformed(req)) return;
    // `Expect: 100-continue` goes to the server, and the client gets a 100 Continue only when the
    // server sends one; a final answer instead (417, 401, 413…) goes to the client, which then
    // never sends the body. Other expectations: 417.
    if (req.expect !== undefined && req.httpVersionMinor === 1) {
      if (!CONTINUE.test(req.expect)) {
        sendLocal(req, 417, EXPECTATION_FAILED, true);
        return;
      }
      req.awaitingContinue = true;
    }
    const options = this.options;
    const limit = limitStatus(req, options);
    if (limit !== 0) {
      sendLocal(req, limit, limit === 413 ? this.tooLargeBody : this.tooManyHeadersBody, true);
      return;
    }
    const idHeader = options.requestIdHeader;
    const requestId = idHeader === undefined ? undefined : requestIdFor(req.rawHeaders, idHeader);
    const queue = this.backend.queue;
    // Requests waiting for a slot go first.
    if (queue.length !== 0) queue.dispatch(this.backend.balancer, this.backend.servers);
    const ctx = new HttpPickContext(req);
    const sticky = this.backend.sticky;
    const pinned = sticky?.serverOf(req.headers.cookie);
    const server = pinned !== undefined && sticky!.honors(pinned) ? pinned : this.backend.balancer.pick(ctx);
    // None usable: wait if some server at its maxconn may free a slot, else 503.
    if (server === undefined && queue.length === 0 && !this.backend.servers.some(atMaxConn)) {
      this.unavailable(req);
      return;
    }
    // A request that waits gets its server later; the Host fallback (HTTP/1.0) is the first server's.
    const target = server ?? this.backend.servers[0]!;
    const headers: string[] = [];
    const hasBody = upstreamRequestHeaders(
      req.rawHeaders,
      req.socket.remoteAddress ?? 'unknown',
      'http',
      target.address,
      headers,
      options,
      requestId,
    );
    const method = req.method;
    const url = req.url;
    // What cannot go on a request line (the client-side parser never lets it through anyway).
    if (UNSENDABLE_TARGET.test(url)) {
      this.log.warn(
        `frontend ${this.frontend.name}: cannot forward ${method} ${url}: invalid request target`,
      );
      sendLocal(req, 502, BAD_GATEWAY, true);
      return;
    }
    const head = requestHead(method, url, headers);
    const ex = new Exchange(this, req, head, hasBody, sendsChunked(headers), target, ctx);
    ex.requestId = requestId;
    if (sticky?.mayRepin(pinned)) {
      ex.sticky = sticky;
      ex.cookieServer = pinned;
    }
    req.owner = ex;
    exchangesUnderWay(1);
    if (server === undefined) this.enqueue(ex);
    else this.send(ex, server);
  }

  /** Puts `ex` in the backend queue until a server has a free slot; 503 when the queue is full. */
  private enqueue(ex: Exchange): void {
    const queue = this.backend.queue;
    ex.queue = queue;
    ex.waiting = queue.push(ex);
    if (!ex.waiting) this.queueRejected(ex, 'full');
  }

  /** A request of a backend server completed (or a tunnel closed): a waiting request may go now. */
  slotFreed(): void {
    const backend = this.backend;
    if (backend.queue.length !== 0) backend.queue.dispatch(backend.balancer, backend.servers);
  }

  /** 503 for a request the backend queue turned away. */
  queueRejected(ex: Exchange, reason: QueueRejection | 'full'): void {
    if (ex.done) return;
    const backend = this.backend;
    const body =
      reason === 'unavailable'
        ? this.unavailableBody
        : Buffer.from(
            reason === 'full'
              ? `503 Service Unavailable: every server of backend "${backend.name}" is at its maxconn and the queue is full\n`
              : `503 Service Unavailable: no server of backend "${backend.name}" had a free slot within ${backend.queue.timeout}ms\n`,
          );
    // The request body was not read: close rather than read it.
    sendLocal(ex.req, 503, body, this.closing || ex.hasBody, 1, this.options.requestIdHeader, ex.requestId);
  }

  /** Starts an attempt of `ex` on `server`, over one of its pooled connections or a new one. */
  send(ex: Exchange, server: UpstreamServer): void {
    ex.server = server;
    ex.connected = false;
    ex.timedOut = undefined;
    ex.responded = false;
    ex.complete = false;
    ex.requestDone = !ex.hasBody;
    server.inFlight++;
    server.totalRequests++;
    const conn = server.pool.acquire(ex);
    ex.conn = conn;
    ex.reused = conn.uses > 1;
    // Straight to a connected socket's handle; buffered by the socket until it is connected. A
    // request without a body goes at the end of the loop's turn, with the others of the turn.
    if (ex.hasBody) writeOut(conn.socket, ex.head);
    else writeOutSoon(conn.socket, ex.head);
    if (conn.connected) connected(ex);
    else ex.timer = setTimeout(onConnectTimeout, this.timeouts.connectTimeout, ex);
  }

  /**
   * The attempt of `ex` failed before the whole response. Once the response has started, the
   * client connection is cut. Before, the request goes to another server when it may (see
   * retry-policy.ts), else the client gets a 502, or a 504 after a timeout.
   */
  attemptFailed(ex: Exchange, err: NodeJS.ErrnoException): void {
    const server = ex.server;
    server.failures++;
    const where = `backend ${server.backend}: server ${server.name}`;
    const backend = this.backend;
    if (ex.responded) {
      if (ex.timedOut === 'server') {
        const why = `no data for ${ex.timeouts.serverTimeout}ms mid-response`;
        backend.passive.error(server, why);
        this.log.warn(`${where}: ${why} (serverTimeout): the response to the client is cut`);
      } else {
        backend.passive.error(server, 'connection closed mid-response');
        this.log.warn(`${where} closed the connection mid-response`);
      }
      ex.req.destroy();
      return;
    }
    const why =
      ex.timedOut === 'connect'
        ? `no connection within ${this.timeouts.connectTimeout}ms`
        : ex.timedOut === 'server'
          ? ex.requestDone
            ? `no response within ${ex.timeouts.serverTimeout}ms`
            : `took no more of the request body for ${ex.timeouts.serverTimeout}ms`
          : describeError(err);
    backend.passive.error(server, why);
    if (
      ex.retries < backend.config.retries &&
      mayRetry({
        connected: ex.connected,
        timedOut: ex.timedOut,
        hasBody: ex.hasBody,
        method: ex.req.method,
        code: err.code,
      })
    ) {
      // Redispatch: a server the request has not failed on yet.
      const tried = (ex.tried ??= []);
      tried.push(server);
      let next = backend.pickUntried(ex.pickContext, tried);
      // None left, but this was a reused keep-alive connection the server had just closed: the same
      // server again, over another connection.
      if (next === undefined && ex.reused && server.usable) next = server;
      if (next !== undefined) {
        this.log.warn(`${where} failed: ${why}; retrying on ${next.name}`);
        ex.retries++;
        server.retries++;
        if (next !== server) server.redispatches++;
        server.inFlight--;
        this.send(ex, next);
        // The slot this attempt held on `server` is free: a queued request may take it.
        if (next !== server) this.slotFreed();
        return;
      }
    }
    this.log.warn(`${where} failed: ${why}`);
    this.fail(ex, ex.timedOut ? 504 : 502);
  }

  /** 503: no server of the backend is up. */
  unavailable(res: FrontRequest): void {
    const headers = [
      'Content-Type',
      TEXT,
      'Content-Length',
      String(this.unavailableBody.length),
      'Retry-After',
      '1',
    ];
    if (this.closing) headers.push('Connection', 'close');
    res.writeHead(503, undefined, headers);
    res.end(this.unavailableBody);
  }

  /** Answers `ex` with a 502 or 504, or cuts the client connection if the response has started. */
  fail(ex: Exchange, status: 502 | 504): void {
    const res = ex.req;
    if (res.headersSent || ex.done) {
      res.destroy();
      return;
    }
    const body = status === 504 ? GATEWAY_TIMEOUT : BAD_GATEWAY;
    const headers = ['Content-Type', TEXT, 'Content-Length', String(body.length)];
    if (this.closing) headers.push('Connection', 'close');
    res.writeHead(status, undefined, headers);
    res.end(body);
  }
}

/** Connected: from now on the request may be partly sent, so it is not retried on a connect error. */
function connected(ex: Exchange): void {
  ex.connected = true;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  // The answer is awaited once the request is all sent; a body comes from the client first (the
  // sweep watches it), unless the client waits for the server's 100 Continue.
  if (!ex.hasBody || ex.req.awaitingContinue) {
    ex.timer = setTimeout(onServerTimeout, ex.timeouts.serverTimeout, ex);
  }
  // The body is read from the client only now: until the connection exists, a retry stays safe.
  if (ex.hasBody) ex.req.readBody();
}

/** The server's side took what was written: the client's body may flow again. */
function onUpstreamDrain(this: Tagged<Socket>): void {
  const ex = this[kExchange];
  this[kExchange] = undefined;
  if (ex !== undefined && !ex.done) ex.req.resume();
}

/**
 * A chunked body grew past maxBodySize: the upstream request is abandoned mid-body (the server
 * never sees a complete request), and the client gets a 413 and its connection closed, or only
 * the close if the server's response has started.
 */
function bodyTooLarge(ex: Exchange, max: number): void {
  const req = ex.req;
  req.stopBody();
  clearTimeout(ex.timer);
  ex.timer = undefined;
  // Its failure is no failure of the server.
  ex.abandon();
  ex.proxy.log.warn(
    `frontend ${ex.proxy.frontend.name}: ${req.method} ${req.url}: request body over maxBodySize (${max} bytes), cut`,
  );
  if (req.headersSent) req.destroy();
  else sendLocal(req, 413, Buffer.from(limitMessage(413, ex.proxy.options)), true);
}

function onConnectTimeout(ex: Exchange): void {
  ex.timer = undefined;
  ex.timedOut = 'connect';
  ex.conn?.fail(timeoutError('connect timeout'));
}

function onServerTimeout(ex: Exchange): void {
  ex.timer = undefined;
  ex.timedOut = 'server';
  ex.conn?.fail(timeoutError('server timeout'));
}

function timeoutError(message: string): NodeJS.ErrnoException {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = 'ETIMEDOUT';
  return err;
}

/**
 * Who the request under way on `conn` waits on, for watchTransfer:
 * - 'client': for the rest of its body (also one answered already, whose rest is dropped), or to
 *   take what was written to it (the answer, earlier answers when pipelined requests wait, or
 *   the end of the last one);
 * - 'server': to take more of the body, or for the next bytes of its answer;
 * - undefined: nothing is under way, or a timer of its own covers the wait (queue, connect, the
 *   server's answer head or 100 Continue).
 */
function waitingOn(conn: ClientConnection): 'client' | 'server' | undefined {
  const req = conn.request;
  if (req === undefined) return conn.waitingForDrain || unsent(conn.socket) > 0 ? 'client' : undefined;
  // Taking what was written to it; or, answered already, sending the rest of a body that is dropped.
  if (req.awaitDrain || (req.finished && !req.complete)) return 'client';
  const ex = req.owner;
  if (!(ex instanceof Exchange) || ex.done || ex.waiting || !ex.connected || ex.conn === undefined)
    return undefined;
  if (ex.responded) return ex.complete ? undefined : 'server';
  if (ex.requestDone || req.awaitingContinue) return undefined;
  return ex.conn.socket.writableNeedDrain ? 'server' : 'client';
}

/**
 * What the sweep last saw of a watched connection (its byte counts, see stalledFor), and since
 * when; kept beside the connection, so that an idle one holds nothing for it.
 */
interface Watch {
  readonly seen: readonly [number, number, number, number];
  readonly since: number;
}
const watched = new WeakMap<ClientConnection, Watch>();

/**
 * How long (ms) none of `a`–`d` (the byte counts of both sides of `conn`) has changed since the
 * sweep last saw them; 0 when they just did, or when `conn` was not watched.
 */
function stalledFor(conn: ClientConnection, now: number, a: number, b: number, c: number, d: number): number {
  const w = watched.get(conn);
  if (w === undefined || w.seen[0] !== a || w.seen[1] !== b || w.seen[2] !== c || w.seen[3] !== d) {
    watched.set(conn, { seen: [a, b, c, d], since: now });
    return 0;
  }
  return now - w.since;
}

/**
 * Bytes written to `socket` and not yet taken by the kernel (held for the end of the loop's turn,
 * in its stream, or queued in libuv).
 */
function unsent(socket: Socket): number {
  const handle = (socket as Socket & { _handle?: { writeQueueSize?: number } | null })._handle;
  return heldLength(socket) + socket.writableLength + (handle?.writeQueueSize ?? 0);
}
