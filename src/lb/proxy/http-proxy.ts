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
import { HttpPickContext } from './pick-context.js';

/** Timeouts of one frontend, in milliseconds (from the load balancer's config). */
export interface ProxyTimeouts {
  /** Time to get a connection to a server. */
  connectTimeout: number;
  /** Time from the connection to the server's response headers (504 past it). */
  serverTimeout: number;
  /** Idle keep-alive connections from clients are closed after this. */
  keepAliveTimeout: number;
}

/** Methods a request may be sent again for after a reset on a reused connection (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** The exchange an upstream request, response or connecting socket belongs to. */
const kExchange = Symbol('tandem.exchange');
type Tagged<T> = T & { [kExchange]?: Exchange | undefined };

/** One client request on its way through the proxy, over one attempt or two (one retry). */
class Exchange {
  /** The server of the current attempt. */
  server: UpstreamServer;
  upstream: Tagged<ClientRequest> | undefined = undefined;
  response: IncomingMessage | undefined = undefined;
  /** Connect timer, then server (response headers) timer. */
  timer: NodeJS.Timeout | undefined = undefined;
  /** The current attempt has a connection: request bytes may have left. */
  connected = false;
  timedOut: 'connect' | 'server' | undefined = undefined;
  retried = false;
  /** The client side is finished (response sent or connection gone). */
  done = false;

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
}

const TEXT = 'text/plain; charset=utf-8';
const BAD_GATEWAY = Buffer.from('502 Bad Gateway: the server failed to answer\n');
const GATEWAY_TIMEOUT = Buffer.from('504 Gateway Timeout: the server did not answer in time\n');

/**
 * One frontend: an HTTP/1.1 reverse proxy in front of one backend. Each request goes to the server
 * the backend's balancer picks, over that server's keep-alive pool; bodies stream both ways.
 *
 * Failures: no server up → 503; a connect failure (nothing of the request sent yet) or a reset of
 * a reused idle connection for a bodyless idempotent request → one retry on another server; any
 * other upstream error → 502; no response headers within `serverTimeout` (or no connection within
 * `connectTimeout`, after the retry) → 504. Once the response has started, an upstream failure
 * closes the client connection.
 */
export class HttpProxy {
  readonly server: Server;
  /** Set by close(): responses ask the client to close its connection. */
  closing = false;
  private readonly unavailableBody: Buffer;

  constructor(
    readonly frontend: FrontendConfig,
    readonly backend: Backend,
    readonly timeouts: ProxyTimeouts,
    readonly log: Logger,
  ) {
    this.unavailableBody = Buffer.from(
      `503 Service Unavailable: no server is up in backend "${backend.name}"\n`,
    );
    this.server = createServer(this.onRequest);
    this.server.keepAliveTimeout = timeouts.keepAliveTimeout;
  }

  /** Stops accepting, lets in-flight requests finish for up to `graceMs`, then closes what is left. */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    const server = this.server;
    if (!server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      // Keep-alive connections that go idle during the drain are closed as they do.
      const sweep = setInterval(() => server.closeIdleConnections(), 50);
      const deadline = setTimeout(() => server.closeAllConnections(), graceMs);
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
    const ctx = new HttpPickContext(req);
    const server = this.backend.balancer.pick(ctx);
    if (server === undefined) {
      this.unavailable(res);
      return;
    }
    const headers: string[] = [];
    const hasBody = upstreamRequestHeaders(
      req.rawHeaders,
      req.socket.remoteAddress ?? 'unknown',
      'http',
      server.address,
      headers,
    );
    const ex = new Exchange(this, req, res, headers, hasBody, server, ctx);
    (res as Tagged<ServerResponse>)[kExchange] = ex;
    res.on('close', onClientClose);
    res.on('error', onClientError);
    this.send(ex, server);
  };

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
  if (ex.hasBody) ex.req.pipe(ex.upstream!);
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
  ex.response = response;
  const res = ex.res;
  try {
    res.writeHead(
      status,
      response.statusMessage,
      clientResponseHeaders(response.rawHeaders, ex.proxy.closing),
    );
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
  if (!ex.retried && (!ex.connected || resetOfIdleConnection(this, ex, err))) {
    const next = proxy.backend.balancer.pick(ex.pickContext, server);
    if (next !== undefined) {
      proxy.log.warn(`${where} failed: ${why}; retrying on ${next.name}`);
      ex.retried = true;
      server.inFlight--;
      proxy.send(ex, next);
      return;
    }
  }
  proxy.log.warn(`${where} failed: ${why}`);
  proxy.fail(ex, ex.timedOut ? 504 : 502);
}

/**
 * A reused keep-alive connection the server had just closed: the request never reached it, and
 * with no body and an idempotent method it can be sent again.
 */
function resetOfIdleConnection(up: ClientRequest, ex: Exchange, err: NodeJS.ErrnoException): boolean {
  return (
    up.reusedSocket &&
    !ex.hasBody &&
    (err.code === 'ECONNRESET' || err.code === 'EPIPE') &&
    IDEMPOTENT.has(ex.req.method ?? '')
  );
}

/** The client side is over (response sent, or connection lost): account, and abandon the upstream side if unfinished. */
function onClientClose(this: Tagged<ServerResponse>): void {
  const ex = this[kExchange]!;
  ex.done = true;
  clearTimeout(ex.timer);
  ex.timer = undefined;
  ex.server.inFlight--;
  const up = ex.upstream;
  if (up !== undefined && !(ex.response?.complete && up.writableFinished)) up.destroy();
}

/** Write errors to a client that went away: onClientClose does the cleanup. */
function onClientError(this: ServerResponse, _err: Error): void {
  this.destroy();
}
