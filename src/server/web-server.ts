/**
 * The web server of one server: answers with a static file of the codebase when the request names
 * one, and forwards everything else to the application processes. Every response it sends — a
 * file, a forwarded answer, an error — carries `X-Served-By: <server name>`.
 */
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import type { Socket } from 'node:net';
import { listenError } from '../errors.js';
import type { Logger } from '../log.js';
import { AppProxy } from './app-proxy.js';
import type { AppEndpoint } from './app-supervisor.js';
import { createStaticHandler, type StaticHandler } from './static-files.js';

/** Settings of one server's web server. */
export interface WebServerOptions {
  /** Server name (`web-01`): the value of X-Served-By. */
  name: string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The codebase's public directory. */
  staticRoot: string;
  /** The application processes a request may be forwarded to right now. */
  upstreams: () => readonly AppEndpoint[];
  log: Logger;
  /** close(): connections still busy after this many milliseconds are cut (default 5 s). */
  closeTimeout?: number;
}

/** The node:http server in front of the application processes. */
export class WebServer {
  readonly #opts: WebServerOptions;
  readonly #server: Server;
  readonly #static: StaticHandler;
  readonly #proxy: AppProxy;

  constructor(opts: WebServerOptions) {
    this.#opts = opts;
    this.#static = createStaticHandler(opts.staticRoot, opts.log);
    this.#proxy = new AppProxy({ name: opts.name, upstreams: opts.upstreams, log: opts.log });
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) =>
      this.#clientError(err, socket),
    );
  }

  /** `http://host:port` of the listening server (the real port when 0 was asked). */
  get address(): string {
    const bound = this.#server.address();
    const port = bound && typeof bound === 'object' ? bound.port : this.#opts.port;
    const host = this.#opts.host.includes(':') ? `[${this.#opts.host}]` : this.#opts.host;
    return `http://${host}:${port}`;
  }

  /** Starts listening; a failure is thrown as the TandemError a user should read. */
  listen(): Promise<void> {
    const { host, port, name } = this.#opts;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(listenError(`${name} web server`, `${host}:${port}`, err));
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#opts.log.error(`web server: ${err.message}`));
        resolve();
      });
    });
  }

  /**
   * Stops accepting connections, lets requests in progress finish (cutting them after
   * `closeTimeout`), then closes the connections to the application processes.
   */
  async close(): Promise<void> {
    if (this.#server.listening) {
      await new Promise<void>((resolve) => {
        const cut = setTimeout(() => this.#server.closeAllConnections(), this.#opts.closeTimeout ?? 5000);
        this.#server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        this.#server.closeIdleConnections();
      });
    }
    this.#proxy.close();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { log, name } = this.#opts;
    res.setHeader('x-served-by', name);
    req.on('error', (err) => log.debug(`${req.method} ${req.url}: request stream: ${err.message}`));
    res.on('error', (err) => log.debug(`${req.method} ${req.url}: response stream: ${err.message}`));
    try {
      if (await this.#static(req, res)) return;
    } catch (err) {
      log.error(`${req.method} ${req.url}: static files: ${(err as Error).message}`);
      if (res.headersSent) {
        res.destroy();
      } else {
        const body = '500 Internal Server Error\n';
        res.writeHead(500, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': Buffer.byteLength(body),
        });
        res.end(body);
      }
      return;
    }
    if (res.destroyed) return;
    this.#proxy.forward(req, res);
  }

  /** A request Node could not parse: a short answer that still says who answered, then close. */
  #clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const body = `${status} ${STATUS_CODES[status]}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nX-Served-By: ${this.#opts.name}\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
}
