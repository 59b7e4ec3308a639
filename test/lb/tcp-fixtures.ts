/**
 * Fixtures for the TCP-mode and malformed-request tests: raw node:net backends that record every
 * connection and every byte, a load balancer config whose backend servers are given by `address`,
 * and a raw socket client that reads until the connection closes.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { PACKAGE_ROOT, type ResolvedConfig, validateConfig } from '../../src/config/load.js';
import type { SpreadMode } from '../../src/config/schema.js';
import { type LoadBalancerHandle, startLoadBalancer } from '../../src/lb/load-balancer.js';
import type { ServerStatus } from '../../src/lb/stats/status.js';
import { freePorts } from '../helpers/index.js';
import { memoryLogger } from './fixtures.js';

/** A raw TCP backend under test control. */
export interface RawBackend {
  name: string;
  port: number;
  server: Server;
  /** Connections accepted (health checks included: a TCP check opens one and closes it). */
  accepted: number;
  /** Connections that carried at least one byte. */
  withData: number;
  /** Every byte received, per connection, in order (connections without data are left out). */
  received(): Buffer[];
  /** Connections open now. */
  sockets: Set<Socket>;
  /** Everything received so far, all connections concatenated. */
  all(): Buffer;
  /** Stops listening (new connections are refused); open connections stay. */
  stopListening(): Promise<void>;
  /** Stops listening and drops every connection. */
  stop(): Promise<void>;
}

/**
 * Starts a raw TCP backend on 127.0.0.1. `onConnection` decides what it does with each connection
 * (default: echo everything back, and end after the client's end). Recording needs no help from it.
 */
export async function startRawBackend(
  t: TestContext,
  name: string,
  onConnection: (socket: Socket, backend: RawBackend) => void = (s) => s.pipe(s),
): Promise<RawBackend> {
  const server = createServer({ allowHalfOpen: true });
  /** The chunks received on each connection that carried data. */
  const chunks: Buffer[][] = [];
  const backend: RawBackend = {
    name,
    port: 0,
    server,
    accepted: 0,
    withData: 0,
    received: () => chunks.map((list) => Buffer.concat(list)),
    sockets: new Set(),
    all: () => Buffer.concat(chunks.flat()),
    stopListening: () => {
      // close() stops accepting at once; its callback would wait for the open connections.
      if (server.listening) server.close();
      return Promise.resolve();
    },
    stop: () =>
      new Promise((resolve) => {
        for (const s of backend.sockets) s.destroy();
        if (!server.listening) resolve();
        else server.close(() => resolve());
      }),
  };
  server.on('connection', (socket) => {
    backend.accepted++;
    backend.sockets.add(socket);
    let index = -1;
    socket.on('data', (chunk: Buffer) => {
      if (index < 0) {
        index = chunks.length;
        chunks.push([]);
        backend.withData++;
      }
      chunks[index]!.push(chunk);
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => backend.sockets.delete(socket));
    onConnection(socket, backend);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.port = (server.address() as { port: number }).port;
  t.after(() => backend.stop());
  return backend;
}

export interface TcpLbOptions {
  /** `tcp` (default) or `http`. */
  mode?: 'tcp' | 'http';
  servers: Array<{ name: string; port: number; weight?: number; maxconn?: number; backup?: boolean }>;
  healthCheck?: Record<string, unknown>;
  connectTimeout?: number;
  tunnelTimeout?: number;
  serverTimeout?: number;
  retries?: number;
  drainTimeout?: number;
  /** The load balancer's worker processes (default: the config's default). */
  workers?: number;
  /** loadBalancers[].spreadConnections (default: the config's default). */
  spreadConnections?: SpreadMode;
  /** Extra keys for the backend (balance, …). */
  backend?: Record<string, unknown>;
}

export interface RunningTcpLb {
  handle: LoadBalancerHandle;
  config: ResolvedConfig;
  /** Frontend port. */
  port: number;
  log: ReturnType<typeof memoryLogger>;
  /** The server's status, its counters summed over the workers (see LoadBalancerHandle.status()). */
  server(name: string): Promise<ServerStatus>;
}

/**
 * A config with one load balancer lb-01, one frontend (`mode`, default tcp) and one backend `raw`
 * whose servers are given by `address` (they are not in `servers`), checked by TCP connect.
 */
export async function tcpConfig(opts: TcpLbOptions): Promise<ResolvedConfig> {
  const [frontend, stats, admin, web, app] = await freePorts(5);
  const raw = {
    servers: [{ name: 'web-01', port: web, app: { port: app, processes: 1 } }],
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ name: 'front', port: frontend, backend: 'raw', mode: opts.mode ?? 'tcp' }],
        stats: { port: stats },
        admin: { port: admin, token: 'test-admin-token-0123456789' },
        connectTimeout: opts.connectTimeout ?? 1000,
        serverTimeout: opts.serverTimeout ?? 5000,
        ...(opts.tunnelTimeout === undefined ? {} : { tunnelTimeout: opts.tunnelTimeout }),
        ...(opts.workers === undefined ? {} : { workers: opts.workers }),
        ...(opts.spreadConnections === undefined ? {} : { spreadConnections: opts.spreadConnections }),
      },
    ],
    backends: [
      {
        name: 'raw',
        healthCheck: { type: 'tcp', interval: 50, timeout: 500, rise: 1, fall: 1, ...opts.healthCheck },
        // Panic mode would spread connections over down servers: off, so each test sees plain health.
        panicThreshold: 0,
        ...(opts.retries === undefined ? {} : { retries: opts.retries }),
        ...opts.backend,
        servers: opts.servers.map((s) => ({
          name: s.name,
          address: `127.0.0.1:${s.port}`,
          weight: s.weight ?? 1,
          backup: s.backup ?? false,
          ...(s.maxconn === undefined ? {} : { maxconn: s.maxconn }),
        })),
      },
    ],
  };
  const config = validateConfig(raw, 'test config');
  return {
    ...config,
    source: 'test config',
    paths: { dataDir: PACKAGE_ROOT, static: PACKAGE_ROOT, codebaseDir: PACKAGE_ROOT },
  };
}

/** Starts lb-01 of `tcpConfig(opts)` in this process; closed after the test. */
export async function startTcpLb(t: TestContext, opts: TcpLbOptions): Promise<RunningTcpLb> {
  const config = await tcpConfig(opts);
  const log = memoryLogger();
  const handle = await startLoadBalancer(config, 'lb-01', log, { drainTimeout: opts.drainTimeout ?? 2000 });
  t.after(() => handle.close());
  return {
    handle,
    config,
    port: config.loadBalancers[0]!.frontends[0]!.port,
    log,
    async server(name) {
      const s = (await handle.status()).backends[0]!.servers.find((x) => x.name === name);
      if (!s) throw new Error(`no server ${name} in status`);
      return s;
    },
  };
}

/** What a raw client got: every byte until the connection closed, and how it closed. */
export interface RawReply {
  data: Buffer;
  /** The connection ended with a reset (ECONNRESET/EPIPE) rather than a clean close. */
  reset: boolean;
  /** Milliseconds from connect to close. */
  ms: number;
}

/**
 * Connects to 127.0.0.1:port, writes `payload` (then half-closes when `end`), and reads until the
 * connection closes; fails after `timeout` ms (default 5000) with what it got so far.
 */
export function rawExchange(
  port: number,
  payload: Buffer | string | undefined,
  { end = false, timeout = 5000 }: { end?: boolean; timeout?: number } = {},
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let reset = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `no close within ${timeout}ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))}`,
        ),
      );
    }, timeout);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') reset = true;
      else {
        clearTimeout(timer);
        reject(err);
      }
    });
    // allowHalfOpen: our side stays open after the peer's FIN; close it so 'close' comes.
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), reset, ms: performance.now() - started });
    });
    socket.on('connect', () => {
      if (payload !== undefined)
        socket.write(typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload);
      if (end) socket.end();
    });
  });
}
