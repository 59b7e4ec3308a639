/**
 * WebSocket and other `Upgrade` requests (RFC 9110 §7.8): the request goes to the server the
 * backend's balancer picks, over a connection of its own (never a pooled one), with the same
 * header rewriting as any request plus `Connection: Upgrade` and the client's `Upgrade` value.
 *
 * - The server answers 101: the 101 goes to the client and the two connections become a tunnel,
 *   bytes piped both ways with backpressure, half-closes passed on, closed after `tunnelTimeout`
 *   without traffic either way (HAProxy `timeout tunnel`). The tunnel counts as one request in
 *   flight on the server (so `maxconn` and `leastconn` see it) until it closes.
 * - The server answers anything else: that answer is relayed and the connection closed; no byte
 *   of the client beyond the request reaches the server.
 * - A connect failure is redispatched once to another server; no server → 503, other failures →
 *   502, no answer within `connectTimeout` / `serverTimeout` → 504, the limits → 413 / 431.
 *
 * Upgrade requests do not wait in the backend queue: when every server is at its maxconn they get
 * a 503 at once. Client bytes that arrive before the 101 (WebSocket clients send none) are held
 * and sent into the tunnel after it.
 */
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import type { RequestHead } from './client-connection.js';
import type { Socket } from 'node:net';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import { closeWhenIdle, relayDirectly } from './direct-relay.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import type { HttpProxy } from './http-proxy.js';
import { limitMessage, limitStatus } from './limits.js';
import { sendLocalRaw } from './local-response.js';
import { readsIntoUserBuffer } from './injected.js';
import { HttpPickContext } from './pick-context.js';
import { requestIdFor } from './request-id.js';

/** The upgrade side of one HTTP frontend: handles its server's 'upgrade' events, keeps its tunnels. */
export class UpgradeHandler {
  /** Client sockets of upgrades in progress and of open tunnels. */
  readonly sockets = new Set<Socket>();

  constructor(readonly proxy: HttpProxy) {}

  /** Open tunnels and upgrades waiting for the server's answer. */
  get count(): number {
    return this.sockets.size;
  }

  /** Listener of the frontend server's 'upgrade' event. */
  readonly onUpgrade = (req: RequestHead, socket: Socket, head: Buffer): void => {
    socket.on('error', onClientSocketError);
    const proxy = this.proxy;
    if (proxy.closing) {
      sendLocalRaw(socket, 503, '503 Service Unavailable: the load balancer is shutting down\n');
      return;
    }
    const limit = limitStatus(req, proxy.options);
    if (limit !== 0) {
      sendLocalRaw(socket, limit, limitMessage(limit, proxy.options));
      return;
    }
    const ctx = new HttpPickContext(req);
    const backend = proxy.backend;
    const server = backend.balancer.pick(ctx);
    if (server === undefined) {
      sendLocalRaw(
        socket,
        503,
        `503 Service Unavailable: no server of backend "${backend.name}" can take it\n`,
      );
      return;
    }
    new Upgrade(this, req, socket, head, ctx).attempt(server);
  };

  /** Closes every tunnel and pending upgrade at once (the end of a shutdown's grace time). */
  destroyAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}

function onClientSocketError(this: Socket): void {
  // The 'close' that follows does the cleanup.
  this.destroy();
}

/** One upgrade request: its attempts (one redispatch after a connect failure), then its tunnel. */
class Upgrade {
  private server: UpstreamServer | undefined = undefined;
  private upstream: ClientRequest | undefined = undefined;
  private timer: NodeJS.Timeout | undefined = undefined;
  private connected = false;
  private timedOut: 'connect' | 'server' | undefined = undefined;
  private retried = false;
  /** The client socket is gone: nothing more to do but release the server. */
  private closed = false;
  private readonly requestId: string | undefined;

  constructor(
    private readonly handler: UpgradeHandler,
    private readonly req: RequestHead,
    private readonly socket: Socket,
    private readonly head: Buffer,
    private readonly ctx: HttpPickContext,
  ) {
    const idHeader = handler.proxy.options.requestIdHeader;
    this.requestId = idHeader === undefined ? undefined : requestIdFor(req.rawHeaders, idHeader);
    handler.sockets.add(socket);
    socket.once('close', () => this.clientClosed());
  }

  /** Sends the upgrade request to `server`. */
  attempt(server: UpstreamServer): void {
    const proxy = this.handler.proxy;
    const req = this.req;
    this.server = server;
    this.connected = false;
    this.timedOut = undefined;
    server.inFlight++;
    server.totalRequests++;
    const headers: string[] = [];
    upstreamRequestHeaders(
      req.rawHeaders,
      req.socket.remoteAddress ?? 'unknown',
      'http',
      server.address,
      headers,
      proxy.options,
      this.requestId,
    );
    headers.push('Connection', 'Upgrade', 'Upgrade', req.headers.upgrade ?? '');
    let up: ClientRequest;
    try {
      up = request({
        host: server.host,
        port: server.port,
        method: req.method,
        path: req.url,
        headers,
        agent: false,
      });
    } catch (err) {
      this.fail(502, `cannot forward ${req.method} ${req.url}: ${describeError(err)}`);
      return;
    }
    this.upstream = up;
    up.on('socket', (s: Socket) => {
      if (up !== this.upstream) return;
      if (s.connecting) {
        this.timer = setTimeout(() => this.timeout(up, 'connect'), proxy.timeouts.connectTimeout);
        s.once('connect', () => this.onConnect(up));
      } else {
        this.onConnect(up);
      }
    });
    up.on('upgrade', (res: IncomingMessage, upSocket: Socket, upHead: Buffer) =>
      this.onUpgraded(up, res, upSocket, upHead),
    );
    up.on('response', (res: IncomingMessage) => this.onRefused(up, res));
    up.on('error', (err: NodeJS.ErrnoException) => this.onError(up, err));
    up.end();
  }

  private onConnect(up: ClientRequest): void {
    if (up !== this.upstream || this.closed) return;
    this.connected = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.timeout(up, 'server'), this.handler.proxy.timeouts.serverTimeout);
  }

  private timeout(up: ClientRequest, which: 'connect' | 'server'): void {
    this.timer = undefined;
    this.timedOut = which;
    up.destroy(new Error(`${which} timeout`));
  }

  /** 101: the 101 to the client, then the tunnel. */
  private onUpgraded(up: ClientRequest, res: IncomingMessage, upSocket: Socket, upHead: Buffer): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const server = this.server!;
    if (up !== this.upstream || this.closed) {
      upSocket.destroy();
      return;
    }
    server.responses[1]!++;
    this.handler.proxy.backend.passive.response(server, 101);
    const idHeader = this.handler.proxy.options.requestIdHeader;
    const idLower = this.requestId === undefined ? undefined : idHeader?.lower;
    const raw = res.rawHeaders;
    let head = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() === idLower) continue;
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    if (idLower !== undefined) head += `${idHeader!.name}: ${this.requestId}\r\n`;
    const socket = this.socket;
    socket.write(`${head}\r\n`);
    if (upHead.length > 0) socket.write(upHead);
    if (this.head.length > 0) upSocket.write(this.head);
    tunnel(socket, upSocket, this.handler.proxy.timeouts.tunnelTimeout);
  }

  /** Any answer but 101: relayed as is, then the client connection is closed. */
  private onRefused(up: ClientRequest, res: IncomingMessage): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (up !== this.upstream || this.closed) {
      res.destroy();
      return;
    }
    const status = res.statusCode ?? 0;
    const cls = (status / 100) | 0;
    if (cls < 6) this.server!.responses[cls]!++;
    this.handler.proxy.backend.passive.response(this.server!, status);
    const idHeader = this.handler.proxy.options.requestIdHeader;
    const headers = clientResponseHeaders(res.rawHeaders, true, idHeader, this.requestId);
    let head = `HTTP/1.1 ${status} ${res.statusMessage ?? ''}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    const socket = this.socket;
    socket.write(`${head}\r\n`);
    res.on('error', () => socket.destroy());
    res.on('close', () => {
      if (!res.complete) socket.destroy();
    });
    res.pipe(socket);
    socket.once('finish', () => socket.destroy());
  }

  private onError(up: ClientRequest, err: NodeJS.ErrnoException): void {
    if (up !== this.upstream || this.closed) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const proxy = this.handler.proxy;
    const server = this.server!;
    server.failures++;
    const why =
      this.timedOut === 'connect'
        ? `no connection within ${proxy.timeouts.connectTimeout}ms`
        : this.timedOut === 'server'
          ? `no response within ${proxy.timeouts.serverTimeout}ms`
          : describeError(err);
    const where = `backend ${server.backend}: server ${server.name}`;
    proxy.backend.passive.error(server, why);
    if (!this.connected && !this.retried) {
      const next = proxy.backend.balancer.pick(this.ctx, server);
      if (next !== undefined) {
        proxy.log.warn(`${where} failed an upgrade: ${why}; retrying on ${next.name}`);
        this.retried = true;
        server.inFlight--;
        this.attempt(next);
        return;
      }
    }
    this.fail(this.timedOut ? 504 : 502, `${where} failed an upgrade: ${why}`);
  }

  /** Answers the client with a 502 or 504 and closes its connection. */
  private fail(status: 502 | 504, why: string): void {
    this.handler.proxy.log.warn(why);
    sendLocalRaw(
      this.socket,
      status,
      status === 504
        ? '504 Gateway Timeout: the server did not answer in time\n'
        : '502 Bad Gateway: the server failed to answer\n',
    );
  }

  /** The client connection is closed: the attempt or tunnel is over, the server's slot is free. */
  private clientClosed(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.handler.sockets.delete(this.socket);
    this.upstream?.destroy();
    const server = this.server;
    if (server !== undefined) {
      server.inFlight--;
      this.handler.proxy.slotFreed();
    }
  }
}

/**
 * Pipes `client` and `upstream` into each other: backpressure both ways, an end (half-close) of
 * one side passed on to the other, both destroyed on an error of either or after `idleTimeout` ms
 * without traffic in either direction. The bytes go directly between the two handles
 * (direct-relay.ts) when nothing is left queued in either socket's stream (the 101 and the bytes
 * that came with the handshake went out whole), else through the streams.
 */
function tunnel(client: Socket, upstream: Socket, idleTimeout: number): void {
  const destroyBoth = (): void => {
    client.destroy();
    upstream.destroy();
  };
  upstream.on('error', destroyBoth);
  // The client's errors already destroy it (onClientSocketError); its close ends the tunnel.
  client.on('close', () => upstream.destroy());
  upstream.on('close', (hadError: boolean) => {
    if (hadError) client.destroy();
  });
  upstream.setNoDelay(true);
  const link =
    client.writableLength === 0 && upstream.writableLength === 0
      ? relayDirectly(client, readsIntoUserBuffer(client), upstream, false)
      : undefined;
  if (link !== undefined) {
    closeWhenIdle(link, client, idleTimeout, destroyBoth);
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.resume();
    upstream.resume();
    return;
  }
  client.setTimeout(idleTimeout);
  upstream.setTimeout(idleTimeout);
  client.on('timeout', destroyBoth);
  upstream.on('timeout', destroyBoth);
  client.pipe(upstream);
  upstream.pipe(client);
}
