/**
 * Fixtures for the limits and protocol tests: a config with extra load balancer, backend and
 * server settings (through the real schema), a raw socket client, and a node:http backend whose
 * requests wait until the test answers them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import type { ResolvedConfig } from '../../src/config/load.js';
import { waitFor } from '../helpers/index.js';
import { type ConfigOptions, rawConfig, resolveTestConfig } from './fixtures.js';

/** Settings merged into the raw config of `rawConfig`. */
export interface ExtraSettings {
  /** Into `loadBalancers[0]`. */
  lb?: Record<string, unknown>;
  /** Into `backends[0]`. */
  backend?: Record<string, unknown>;
  /** Into `backends[0].servers[i]`, by index. */
  servers?: Array<Record<string, unknown>>;
  /** Into `loadBalancers[0].frontends[0]`. */
  frontend?: Record<string, unknown>;
}

/** The raw config of `rawConfig(opts)` with `extra` merged in. */
export async function rawConfigWith(opts: ConfigOptions, extra: ExtraSettings): Promise<Record<string, any>> {
  const raw = (await rawConfig(opts)) as Record<string, any>;
  Object.assign(raw['loadBalancers'][0], extra.lb);
  Object.assign(raw['loadBalancers'][0].frontends[0], extra.frontend);
  Object.assign(raw['backends'][0], extra.backend);
  extra.servers?.forEach((s, i) => Object.assign(raw['backends'][0].servers[i], s));
  return raw;
}

/** A validated config (like loadConfig's result) of `rawConfig(opts)` with `extra` merged in. */
export async function configWith(opts: ConfigOptions, extra: ExtraSettings): Promise<ResolvedConfig> {
  return resolveTestConfig(await rawConfigWith(opts, extra));
}

/** A raw TCP client: writes what the test says, keeps everything it receives. */
export class RawClient {
  private chunks: Buffer[] = [];
  private received = 0;
  closed = false;
  /** Resolves when the connection is closed (by either side). */
  readonly done: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.received += d.length;
    });
    // Resets after the proxy closed are part of what some tests provoke.
    socket.on('error', () => undefined);
    this.done = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        resolve();
      }),
    );
  }

  /** Connects to host:port; destroyed after the test. */
  static async connect(t: TestContext, port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = connect(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    t.after(() => {
      socket.destroy();
    });
    return client;
  }

  /** Bytes received so far. */
  get length(): number {
    return this.received;
  }

  /** Everything received so far. */
  bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Everything received so far, as latin1 text. */
  text(): string {
    return this.bytes().toString('latin1');
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until the received text contains `what` (a string or a pattern); returns the text. */
  async until(what: string | RegExp, timeout = 5000): Promise<string> {
    return waitFor(
      `the client to receive ${String(what)} (got ${JSON.stringify(this.text().slice(0, 200))})`,
      () => {
        const text = this.text();
        return (typeof what === 'string' ? text.includes(what) : what.test(text)) ? text : undefined;
      },
      { timeout, interval: 10 },
    );
  }

  /** Waits until the connection is closed; returns everything received. */
  async untilClosed(timeout = 5000): Promise<string> {
    await waitFor('the connection to close', () => this.closed, { timeout, interval: 10 });
    return this.text();
  }
}

/** One request held by a HoldingBackend. */
export interface HeldRequest {
  url: string;
  req: IncomingMessage;
  res: ServerResponse;
}

/** A backend whose requests (all but /healthz) wait in `held` until the test answers them. */
export interface HoldingBackend {
  name: string;
  port: number;
  server: Server;
  /** Requests not answered yet, in arrival order. */
  held: HeldRequest[];
  /** URLs of every request received, in arrival order. */
  seen: string[];
  /** Most requests held at once so far. */
  peak: number;
  /** Answers the oldest held request (or the one for `url`) with 200 and the server's name. */
  answer(url?: string): void;
}

/** Starts a HoldingBackend on 127.0.0.1; stopped after the test. */
export async function startHoldingBackend(t: TestContext, name: string): Promise<HoldingBackend> {
  const backend: HoldingBackend = {
    name,
    port: 0,
    server: undefined as unknown as Server,
    held: [],
    seen: [],
    peak: 0,
    answer(url) {
      const i = url === undefined ? 0 : backend.held.findIndex((h) => h.url === url);
      if (i < 0 || backend.held.length === 0) throw new Error(`no held request ${url ?? ''}`);
      const [h] = backend.held.splice(i, 1);
      h!.res.end(name);
    },
  };
  const server = createServer((req, res) => {
    if (req.url === '/healthz') {
      res.end('ok');
      return;
    }
    const url = req.url ?? '/';
    backend.seen.push(url);
    const entry = { url, req, res };
    backend.held.push(entry);
    backend.peak = Math.max(backend.peak, backend.held.length);
    res.on('close', () => {
      const i = backend.held.indexOf(entry);
      if (i >= 0) backend.held.splice(i, 1);
    });
  });
  backend.server = server;
  backend.port = await serveForTest(t, server);
  return backend;
}

/** Listens with `server` on a free port of 127.0.0.1 (returned); closed, connections and all, after the test. */
export async function serveForTest(t: TestContext, server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return (server.address() as { port: number }).port;
}
