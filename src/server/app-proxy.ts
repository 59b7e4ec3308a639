/**
 * The web server's reverse proxy to the application processes: round robin over the processes
 * that are running, over keep-alive connections, streaming both bodies.
 *
 * A request that could not reach its process before anything was sent (connection refused, or a
 * reused keep-alive connection reset before a bodiless request got an answer) is tried on the next
 * process. With no process left the client gets a 502 with a short text body.
 */
import {
  Agent,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type ServerResponse,
} from 'node:http';
import { pipeline } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log.js';
import type { AppEndpoint } from './app-supervisor.js';

/** Settings of the reverse proxy. */
export interface AppProxyOptions {
  /** The server's name: in `X-Served-By` and in error messages. */
  name: string;
  /** The processes a request may go to right now (the running ones). */
  upstreams: () => readonly AppEndpoint[];
  log: Logger;
  /** Keep-alive sockets per process (default 64). */
  maxSocketsPerProcess?: number;
}

/** Headers that describe one connection, not the message: never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
];
/** Methods a client sends without a body, safe to send again on a fresh connection. */
const RETRYABLE_ON_RESET = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Forwards requests to the application processes. */
export class AppProxy {
  readonly #opts: AppProxyOptions;
  readonly #agent: Agent;
  #next = 0;

  constructor(opts: AppProxyOptions) {
    this.#opts = opts;
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: opts.maxSocketsPerProcess ?? 64,
      maxFreeSockets: 16,
    });
  }

  /** Forwards `req` to a running process and streams its answer to `res`. Never throws. */
  forward(req: IncomingMessage, res: ServerResponse): void {
    const running = this.#opts.upstreams();
    if (running.length === 0) {
      badGateway(res, `no application process is running on ${this.#opts.name}`);
      return;
    }
    const first = this.#next % running.length;
    this.#next = (first + 1) % running.length;
    const order = running.map((_, i) => running[(first + i) % running.length]!);
    this.#attempt(req, res, order, forwardedHeaders(req), false);
  }

  /** Closes the keep-alive connections to the processes. */
  close(): void {
    this.#agent.destroy();
  }

  #attempt(
    req: IncomingMessage,
    res: ServerResponse,
    order: readonly AppEndpoint[],
    headers: OutgoingHttpHeaders,
    retriedReset: boolean,
  ): void {
    if (res.destroyed) return; // the client went away before we got here
    const [target, ...others] = order;
    if (!target) {
      badGateway(res, `no application process answered on ${this.#opts.name}`);
      return;
    }
    const { log, name } = this.#opts;
    let bodyStarted = false;
    let responded = false;
    const upstream: ClientRequest = request({
      host: target.host,
      port: target.port,
      method: req.method,
      path: req.url,
      headers,
      agent: this.#agent,
    });
    const abandon = () => {
      if (!res.writableFinished) upstream.destroy();
    };
    res.once('close', abandon);

    // The body goes out only once the connection is up, so a refused connection consumed nothing.
    upstream.once('socket', (socket) => {
      const sendBody = () => {
        bodyStarted = true;
        req.pipe(upstream);
      };
      if (socket.connecting) socket.once('connect', sendBody);
      else sendBody();
    });

    upstream.once('response', (answer) => {
      responded = true;
      const out = responseHeaders(answer.headers);
      out['x-served-by'] = name;
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      pipeline(answer, res, (err) => {
        if (!err) return;
        if (res.writableFinished) return;
        log.debug(`${req.method} ${req.url} → app#${target.index}: response cut short (${err.message})`);
      });
    });

    upstream.on('error', (err: NodeJS.ErrnoException) => {
      res.off('close', abandon);
      if (res.destroyed && !res.writableFinished) return; // the client went away: nothing to tell it
      if (responded) {
        if (!res.writableFinished) res.destroy(err);
        return;
      }
      const refused = err.code === 'ECONNREFUSED' && !bodyStarted;
      const staleKeepAlive =
        err.code === 'ECONNRESET' && upstream.reusedSocket && RETRYABLE_ON_RESET.has(req.method ?? '');
      if (refused) {
        log.warn(`app#${target.index} (port ${target.port}) refused a connection: trying the next process`);
        this.#attempt(req, res, others, headers, retriedReset);
        return;
      }
      if (staleKeepAlive && !retriedReset) {
        log.debug(`app#${target.index}: reused connection was reset: retrying on a new one`);
        this.#attempt(req, res, order, headers, true);
        return;
      }
      log.warn(`${req.method} ${req.url} → app#${target.index} (port ${target.port}) failed: ${err.message}`);
      badGateway(res, `the application process on ${name} failed (${err.code ?? err.message})`);
    });
  }
}

/** The request's headers for the application: hop-by-hop ones removed, X-Forwarded-* ensured. */
function forwardedHeaders(req: IncomingMessage): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = withoutHopByHop(req.headers);
  // Transfer-Encoding stays: it tells Node's client to frame a chunked request body.
  delete headers['expect'];
  if (headers['x-forwarded-for'] === undefined && req.socket.remoteAddress) {
    headers['x-forwarded-for'] = req.socket.remoteAddress;
  }
  if (headers['x-forwarded-proto'] === undefined) {
    headers['x-forwarded-proto'] = (req.socket as Partial<TLSSocket>).encrypted ? 'https' : 'http';
  }
  if (headers['x-forwarded-host'] === undefined && req.headers.host !== undefined) {
    headers['x-forwarded-host'] = req.headers.host;
  }
  return headers;
}

/** The application's response headers for the client, without hop-by-hop ones. */
function responseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out['transfer-encoding'];
  return out;
}

function withoutHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...headers };
  const listed = headers.connection?.split(',').map((h) => h.trim().toLowerCase()) ?? [];
  for (const name of [...HOP_BY_HOP, ...listed]) delete out[name];
  return out;
}

/** A 502 with a one-line text body, or a cut connection once the response has begun. */
function badGateway(res: ServerResponse, why: string): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `502 Bad Gateway: ${why}\n`;
  res.writeHead(502, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
