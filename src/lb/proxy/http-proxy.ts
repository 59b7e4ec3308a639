import {
  type ClientRequest,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { FrontendConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import type { PickContext } from '../balance/balancer.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { limitMessage, limitStatus } from './limits.js';
import { sendLocal } from './local-response.js';
import { HttpPickContext } from './pick-context.js';
import { guardServer, guardUpgrade, rejectMalformed } from './request-guard.js';
import type { ProxyOptions } from './proxy-options.js';
import { atMaxConn, type QueuedRequest, type QueueRejection, type RequestQueue } from './queue.js';
import { requestIdFor } from './request-id.js';
import { UpgradeHandler } from './upgrade.js';
import type { StickyCookie } from './sticky.js';
import { mayRetry } from './retry-policy.js';

/** Timeouts of one frontend, in milliseconds (from the load balancer's config). */
export interface ProxyTimeouts {
  /** Time to get a connection to a server. */
  connectTimeout: number;
  /**
   * Time the server may stay silent before its response headers (504 past it): counted from the
   * connection, and again from each chunk of a request body as it streams to the server.
   */
  serverTimeout: number;
  /** Idle keep-alive connections from clients are closed after this. */
  keepAliveTimeout: number;
  /** A request's line and headers must all arrive within this from its first byte (408 past it). */
  headersTimeout: number;
  /** Upgraded connections (WebSocket) are closed after this long without traffic either way. */
  tunnelTimeout: number;
}

/** The exchange an upstream request, response or connecting socket belongs to. */
const kExchange = Symbol('tandem.exchange');
type Tagged<T> = T & { [kExchange]?: Exchange | undefined };

/** One client request on its way through the proxy, over one attempt or more (retries). */
class Exchange implements QueuedRequest {
  /** The server of the current attempt. */
  server: UpstreamServer;
  upstream: Tagged<ClientRequest> | undefined = undefined;
  response: IncomingMessage | undefined = undefined;
  /** Connect timer, then server (response headers) timer. */
  timer: NodeJS.Timeout | undefined = undefined;
  /** The current attempt has a connection: request bytes may have left. */
  connected = false;
  timedOut: 'connect' | 'server' | undefined = undefined;
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
  /** The client sent `Expect: 100-continue`: the server's 100 Continue is relayed (`sent100` once it was). */
  expectContinue = false;
  sent100 = false;
  /** Request body bytes read so far; counted only when maxBodySize is set. */
  bodyBytes = 0;

  constructor(
    readonly proxy: HttpProxy,
    readonly req: IncomingMessage,
    readonly res: Tagged<ServerResponse>,
    readonly headers: string[],
    readonly hasBody: boolean,
    server: UpstreamServer,
    readonly pickContext: PickContext,
  ) {
    this.server = server;
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
}

const TEXT = 'text/plain; charset=utf-8';
const BAD_GATEWAY = Buffer.from('502 Bad Gateway: the server failed to answer\n');
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
export class HttpProxy {
  readonly server: Server;
  /** Set by close(): responses ask the client to close its connection. */
  closing = false;
  private unavailableBody: Buffer;
  /** WebSocket and other Upgrade requests, and their tunnels. */
  readonly upgrades: UpgradeHandler;
  private tooLargeBody: Buffer;
  private tooManyHeadersBody: Buffer;
  /** Set while onCheckContinue hands a request to onRequest. */
  private expectingContinue = false;

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
    this.server = createServer(
      {
        // Node's parser answers 431 past it (request line and headers) and 408 past headersTimeout,
        // checked every tenth of it (at most every second); requestTimeout would also time bodies.
        maxHeaderSize: options.maxHeaderSize,
        headersTimeout: timeouts.headersTimeout,
        requestTimeout: 0,
        connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(timeouts.headersTimeout / 10))),
      },
      this.onRequest,
    );
    this.server.keepAliveTimeout = timeouts.keepAliveTimeout;
    // Node trims req.headers past this count (rawHeaders stay whole); one more than the limit
    // keeps req.headers whole for every request that passes it.
    this.server.maxHeadersCount = options.maxHeaders + 1;
    this.server.on('checkContinue', this.onCheckContinue);
    this.upgrades = new UpgradeHandler(this);
    this.server.on('upgrade', guardUpgrade(this.upgrades.onUpgrade));
    guardServer(this.server);
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
    const server = this.server as Server & { maxHeaderSize?: number };
    server.keepAliveTimeout = timeouts.keepAliveTimeout;
    server.headersTimeout = timeouts.headersTimeout;
    server.maxHeadersCount = options.maxHeaders + 1;
    // Node reads it for each new connection's parser.
    server.maxHeaderSize = options.maxHeaderSize;
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left. */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      // Keep-alive connections that go idle during the drain are closed as they do.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const deadline = setTimeout(() => {
        server.closeAllConnections();
        this.upgrades.destroyAll();
      }, graceMs);
      sweep.unref();
      deadline.unref();
      server.close(() => {
        clearInterval(sweep);
        clearTimeout(deadline);
        resolve();
      });
      server.closeIdleConnections();
    });
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (rejectMalformed(req, res)) return;
    const options = this.options;
    const limit = limitStatus(req, options);
    if (limit !== 0) {
      sendLocal(res, limit, limit === 413 ? this.tooLargeBody : this.tooManyHeadersBody, true);
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
      this.unavailable(res);
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
    const ex = new Exchange(this, req, res, headers, hasBody, target, ctx);
    ex.requestId = requestId;
    ex.expectContinue = this.expectingContinue;
    if (sticky?.mayRepin(pinned)) {
      ex.sticky = sticky;
      ex.cookieServer = pinned;
    }
    (res as Tagged<ServerResponse>)[kExchange] = ex;
    res.on('close', onClientClose);
    res.on('error', onClientError);
    if (server === undefined) this.enqueue(ex);
    else this.send(ex, server);
  };

  /**
   * `Expect: 100-continue` (Node's 'checkContinue'): the expectation goes to the server, and the
   * client gets a 100 Continue only when the server sends one; a final answer instead (417, 401,
   * 413…) goes to the client, which then never sends the body.
   */
  private readonly onCheckContinue = (req: IncomingMessage, res: ServerResponse): void => {
    this.expectingContinue = true;
    try {
      this.onRequest(req, res);
    } finally {
      this.expectingContinue = false;
    }
  };

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
    sendLocal(ex.res, 503, body, this.closing || ex.hasBody, 1, this.options.requestIdHeader, ex.requestId);
  }

  /** Starts an attempt of `ex` on `server`. */
  send(ex: Exchange, server: UpstreamServer): void {
    ex.server = server;
    ex.connected = false;
    ex.timedOut = undefined;
    ex.response = undefined;
    server.inFlight++;
    server.totalRequests++;
    let up: Tagged<ClientRequest>;
    try {
      up = request({
        host: server.host,
        port: server.port,
        method: ex.req.method,
        path: ex.req.url,
        headers: ex.headers,
        agent: server.agent,
      });
    } catch (err) {
      // Only a request Node itself refuses to send (invalid method or path) gets here.
      this.log.warn(
        `frontend ${this.frontend.name}: cannot forward ${ex.req.method} ${ex.req.url}: ${describeError(err)}`,
      );
      this.fail(ex, 502);
      return;
    }
    up[kExchange] = ex;
    ex.upstream = up;
    up.on('socket', onUpstreamSocket);
    up.on('response', onUpstreamResponse);
    up.on('error', onUpstreamError);
    // The client sends the body only after a 100, which comes from the server (Node sends
    // headers that carry Expect at once).
    if (ex.expectContinue) up.on('continue', onUpstreamContinue);
    if (!ex.hasBody) up.end();
  }

  /** 503: no server of the backend is up. */
  unavailable(res: ServerResponse): void {
    const headers = [
      'Content-Type',
      TEXT,
      'Content-Length',
      String(this.unavailableBody.length),
      'Retry-After',
      '1',
    ];
    if (this.closing) headers.push('Connection', 'close');
    res.writeHead(503, headers);
    res.end(this.unavailableBody);
  }

  /** Answers `ex` with a 502 or 504, or cuts the client connection if the response has started. */
  fail(ex: Exchange, status: 502 | 504): void {
    const res = ex.res;
    if (res.headersSent || ex.done) {
      res.destroy();
      return;
    }
    const body = status === 504 ? GATEWAY_TIMEOUT : BAD_GATEWAY;
    const headers = ['Content-Type', TEXT, 'Content-Length', String(body.length)];
    if (this.closing) headers.push('Connection', 'close');
    res.writeHead(status, headers);
    res.end(body);
  }
}

/** The request is on a socket: start the connect timer, or go on at once on a reused connection. */
function onUpstreamSocket(this: Tagged<ClientRequest>, socket: Tagged<Socket>): void {
  const ex = this[kExchange]!;
  if (ex.upstream !== this || ex.done) return;
  if (socket.connecting) {
    socket[kExchange] = ex;
    socket.once('connect', onUpstreamConnect);
    ex.timer = setTimeout(onConnectTimeout, ex.proxy.timeouts.connectTimeout, ex);
  } else {
    upstreamConnected(ex);
  }
}

function onUpstreamConnect(this: Tagged<Socket>): void {
  const ex = this[kExchange];
  this[kExchange] = undefined;
  if (ex === undefined || ex.done || ex.upstream?.socket !== this) return;
  upstreamConnected(ex);
}

/** Connected: from now on the request may be partly sent, so it is not retried on a connect error. */
function upstreamConnected(ex: Exchange): void {
  ex.connected = true;
  clearTimeout(ex.timer);
  ex.timer = setTimeout(onServerTimeout, ex.proxy.timeouts.serverTimeout, ex);
  // The body is read from the client only now: until the connection exists, a retry stays safe.
  if (ex.hasBody) {
    // Before the pipe, so that a chunk past maxBodySize is never sent.
    (ex.req as Tagged<IncomingMessage>)[kExchange] = ex;
    ex.req.on('data', onRequestBodyData);
    ex.req.pipe(ex.upstream!);
  }
}

/** A chunk of the request body: the server timer starts again, and maxBodySize is enforced. */
function onRequestBodyData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  const ex = this[kExchange]!;
  ex.timer?.refresh();
  const max = ex.proxy.options.maxBodySize;
  if (max === undefined) return;
  ex.bodyBytes += chunk.length;
  if (ex.bodyBytes > max) bodyTooLarge(ex, max);
}

/**
 * A chunked body grew past maxBodySize: the upstream request is abandoned mid-body (the server
 * never sees a complete request), and the client gets a 413 and its connection closed, or only
 * the close if the server's response has started.
 */
function bodyTooLarge(ex: Exchange, max: number): void {
  const req = ex.req;
  req.off('data', onRequestBodyData);
  clearTimeout(ex.timer);
  ex.timer = undefined;
  const up = ex.upstream;
  // Its error is no failure of the server: onUpstreamError ignores an abandoned attempt.
  ex.upstream = undefined;
  if (up !== undefined) {
    req.unpipe(up);
    up.destroy();
  }
  ex.proxy.log.warn(
    `frontend ${ex.proxy.frontend.name}: ${req.method} ${req.url}: request body over maxBodySize (${max} bytes), cut`,
  );
  if (ex.res.headersSent) ex.res.destroy();
  else sendLocal(ex.res, 413, Buffer.from(limitMessage(413, ex.proxy.options)), true);
}

/** The server sent 100 Continue: the client may send the body now. */
function onUpstreamContinue(this: Tagged<ClientRequest>): void {
  const ex = this[kExchange]!;
  if (ex.upstream !== this || ex.done || ex.sent100 || ex.res.headersSent) return;
  ex.sent100 = true;
  ex.res.writeContinue();
}

function onConnectTimeout(ex: Exchange): void {
  ex.timer = undefined;
  ex.timedOut = 'connect';
  ex.upstream?.destroy(new Error('connect timeout'));
}

function onServerTimeout(ex: Exchange): void {
  ex.timer = undefined;
  ex.timedOut = 'server';
  ex.upstream?.destroy(new Error('server timeout'));
}

function onUpstreamResponse(this: Tagged<ClientRequest>, response: Tagged<IncomingMessage>): void {
  const ex = this[kExchange]!;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  if (ex.upstream !== this || ex.done) {
    response.destroy();
    return;
  }
  const status = response.statusCode ?? 0;
  const cls = (status / 100) | 0;
  if (cls < 6) ex.server.responses[cls]!++;
  ex.proxy.backend.passive.response(ex.server, status);
  ex.response = response;
  const res = ex.res;
  const headers = clientResponseHeaders(
    response.rawHeaders,
    ex.proxy.closing,
    ex.proxy.options.requestIdHeader,
    ex.requestId,
  );
  ex.sticky?.addSetCookie(headers, ex.cookieServer, ex.server);
  try {
    res.writeHead(status, response.statusMessage, headers);
  } catch (err) {
    ex.server.failures++;
    ex.proxy.log.warn(
      `backend ${ex.server.backend}: server ${ex.server.name} sent a response that cannot be relayed: ${describeError(err)}`,
    );
    response.destroy();
    ex.proxy.fail(ex, 502);
    return;
  }
  response[kExchange] = ex;
  response.on('close', onUpstreamResponseClose);
  response.pipe(res);
}

/** The server's response ended; if it ended early (reset mid-body), the client connection is cut. */
function onUpstreamResponseClose(this: Tagged<IncomingMessage>): void {
  const ex = this[kExchange]!;
  if (this.complete || ex.done) return;
  ex.server.failures++;
  ex.proxy.backend.passive.error(ex.server, 'connection closed mid-response');
  ex.proxy.log.warn(
    `backend ${ex.server.backend}: server ${ex.server.name} closed the connection mid-response`,
  );
  ex.res.destroy();
}

function onUpstreamError(this: Tagged<ClientRequest>, err: NodeJS.ErrnoException): void {
  const ex = this[kExchange]!;
  // An abandoned attempt, or the client is gone and onClientClose destroyed the request.
  if (ex.upstream !== this || ex.done) return;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  const server = ex.server;
  const proxy = ex.proxy;
  server.failures++;
  if (ex.response !== undefined) {
    ex.res.destroy();
    return;
  }
  const why =
    ex.timedOut === 'connect'
      ? `no connection within ${proxy.timeouts.connectTimeout}ms`
      : ex.timedOut === 'server'
        ? `no response within ${proxy.timeouts.serverTimeout}ms`
        : describeError(err);
  const where = `backend ${server.backend}: server ${server.name}`;
  const backend = proxy.backend;
  backend.passive.error(server, why);
  if (
    ex.retries < backend.config.retries &&
    mayRetry({
      connected: ex.connected,
      timedOut: ex.timedOut,
      hasBody: ex.hasBody,
      method: ex.req.method ?? '',
      code: err.code,
    })
  ) {
    // Redispatch: a server the request has not failed on yet.
    const tried = (ex.tried ??= []);
    tried.push(server);
    let next = backend.pickUntried(ex.pickContext, tried);
    // None left, but this was a reused keep-alive connection the server had just closed: the same
    // server again, over another connection.
    if (next === undefined && this.reusedSocket && server.usable) next = server;
    if (next !== undefined) {
      proxy.log.warn(`${where} failed: ${why}; retrying on ${next.name}`);
      ex.retries++;
      server.retries++;
      if (next !== server) server.redispatches++;
      server.inFlight--;
      proxy.send(ex, next);
      // The slot this attempt held on `server` is free: a queued request may take it.
      if (next !== server) proxy.slotFreed();
      return;
    }
  }
  proxy.log.warn(`${where} failed: ${why}`);
  proxy.fail(ex, ex.timedOut ? 504 : 502);
}

/** The client side is over (response sent, or connection lost): account, and abandon the upstream side if unfinished. */
function onClientClose(this: Tagged<ServerResponse>): void {
  const ex = this[kExchange]!;
  ex.done = true;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  // A request that waited in the queue holds a server slot only once dispatched.
  if (ex.queue === undefined) ex.server.inFlight--;
  else if (ex.waiting) ex.queue.remove(ex);
  ex.proxy.backend.latency?.observe((performance.now() - ex.startedAt) / 1000);
  const up = ex.upstream;
  if (up !== undefined && !(ex.response?.complete && up.writableFinished)) up.destroy();
  ex.proxy.slotFreed();
}

/** Write errors to a client that went away: onClientClose does the cleanup. */
function onClientError(this: ServerResponse, _err: Error): void {
  this.destroy();
}
