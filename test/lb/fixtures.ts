/**
 * Fixtures for the load balancer tests: real backend web servers (node:http on 127.0.0.1), a
 * config built through the real schema, a logger that keeps its lines, and a small HTTP client.
 */
import { createHash } from 'node:crypto';
import { type Agent, createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { PACKAGE_ROOT, type ResolvedConfig, validateConfig } from '../../src/config/load.js';
import type { HealthChange } from '../../src/lb/health/health-check.js';
import { type LoadBalancerHandle, startLoadBalancer } from '../../src/lb/load-balancer.js';
import type { ServerStatus } from '../../src/lb/stats/status.js';
import type { Logger } from '../../src/log.js';
import { freePorts } from '../helpers/index.js';

/** A backend web server under test control. */
export interface TestBackend {
  name: string;
  port: number;
  /** Proxied (non-health-check) requests received. */
  requests: number;
  /** Health checks received. */
  checks: number;
  /** Distinct connections that carried proxied requests. */
  sockets: Set<Socket>;
  /** Status /healthz answers. */
  healthStatus: number;
  /** Requests to /hold wait here until `release()`. */
  held: Array<() => void>;
  /** Requests to /hold whose client went away before the answer. */
  abandoned: number;
  release(): void;
  /** Stops listening and drops every connection. */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

/**
 * Starts a backend named `name`. Routes: `/healthz` (status `healthStatus`), `/echo` (JSON of the
 * request line and headers), `/upload` (sha256 and length of the body), `/hold` (answers once
 * released), `/never` (never answers), `/reset` (drops the connection), `/partial` (drops it mid-body),
 * anything else: `name`.
 */
export async function startBackend(t: TestContext, name: string, port = 0): Promise<TestBackend> {
  const backend: TestBackend = {
    name,
    port,
    requests: 0,
    checks: 0,
    sockets: new Set(),
    healthStatus: 200,
    held: [],
    abandoned: 0,
    release() {
      for (const r of backend.held.splice(0)) r();
    },
    stop: () => stopServer(server),
    restart: () => listenOn(server, backend.port),
  };
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    if (path === '/healthz') {
      backend.checks++;
      res.writeHead(backend.healthStatus, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    backend.requests++;
    backend.sockets.add(req.socket);
    res.setHeader('x-served-by', name);
    if (path === '/echo') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ server: name, method: req.method, url: req.url, headers: req.headers }));
    } else if (path === '/upload') {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => res.end(JSON.stringify({ length, sha256: hash.digest('hex') })));
    } else if (path === '/hold') {
      backend.held.push(() => res.end(name));
      res.on('close', () => {
        if (!res.writableFinished) backend.abandoned++;
      });
    } else if (path === '/never') {
      // No answer: the proxy's serverTimeout must fire.
    } else if (path === '/reset') {
      req.socket.destroy();
    } else if (path === '/partial') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('only part of it', () => req.socket.destroy());
    } else {
      res.end(name);
    }
  });
  await listenOn(server, port);
  backend.port = (server.address() as { port: number }).port;
  t.after(() => stopServer(server));
  return backend;
}

function listenOn(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function stopServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export interface ConfigOptions {
  servers: Array<{ name: string; port: number; weight?: number; backup?: boolean }>;
  mode?: 'active-active' | 'active-passive';
  healthCheck?: { interval?: number; timeout?: number; rise?: number; fall?: number };
  connectTimeout?: number;
  serverTimeout?: number;
  keepAliveTimeout?: number;
  frontendPort?: number;
  statsPort?: number;
  adminPort?: number;
}

/** The admin API token of the configs below (set, so no token file is written under the data dir). */
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

/** The raw (YAML-shaped) config: one load balancer lb-01 with frontend http → backend web. */
export async function rawConfig(opts: ConfigOptions): Promise<Record<string, unknown>> {
  // [frontend, stats, app ports…, admin]
  const ports = await freePorts(3 + opts.servers.length);
  return {
    servers: opts.servers.map((s, i) => ({
      name: s.name,
      host: '127.0.0.1',
      port: s.port,
      // Never listened on: only needs to be unique in the config.
      app: { port: ports[2 + i]!, processes: 1 },
    })),
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [
          { name: 'http', host: '127.0.0.1', port: opts.frontendPort ?? ports[0]!, backend: 'web' },
        ],
        stats: { host: '127.0.0.1', port: opts.statsPort ?? ports[1]! },
        admin: {
          host: '127.0.0.1',
          port: opts.adminPort ?? ports[2 + opts.servers.length]!,
          token: TEST_ADMIN_TOKEN,
        },
        connectTimeout: opts.connectTimeout ?? 1000,
        serverTimeout: opts.serverTimeout ?? 5000,
        keepAliveTimeout: opts.keepAliveTimeout ?? 5000,
      },
    ],
    backends: [
      {
        name: 'web',
        mode: opts.mode ?? 'active-active',
        healthCheck: { interval: 50, timeout: 500, rise: 2, fall: 3, ...opts.healthCheck },
        servers: opts.servers.map((s) => ({
          name: s.name,
          weight: s.weight ?? 1,
          backup: s.backup ?? false,
        })),
      },
    ],
  };
}

/** Validates a raw test config and shapes it like loadConfig's result. */
export function resolveTestConfig(raw: unknown): ResolvedConfig {
  const config = validateConfig(raw, 'test config');
  return {
    ...config,
    source: 'test config',
    paths: { dataDir: PACKAGE_ROOT, static: PACKAGE_ROOT, codebaseDir: PACKAGE_ROOT },
  };
}

/** A validated config, shaped like loadConfig's result. */
export async function makeConfig(opts: ConfigOptions): Promise<ResolvedConfig> {
  return resolveTestConfig(await rawConfig(opts));
}

/**
 * makeConfig's config with `backend`'s keys (as written in tandem.yaml) merged into backend `web`;
 * a `healthCheck` is merged key by key into the test defaults.
 */
export async function configWith(
  opts: ConfigOptions,
  backend: Record<string, unknown>,
): Promise<ResolvedConfig> {
  const raw = await rawConfig(opts);
  const web = (raw['backends'] as Array<Record<string, unknown>>)[0]!;
  const { healthCheck, ...rest } = backend;
  Object.assign(web, rest);
  if (healthCheck) web['healthCheck'] = { ...(web['healthCheck'] as object), ...(healthCheck as object) };
  return resolveTestConfig(raw);
}

/** A logger that keeps its lines (tests stay quiet; assertions can read them). */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

export interface RunningLb {
  handle: LoadBalancerHandle;
  config: ResolvedConfig;
  port: number;
  statsPort: number;
  log: Logger & { lines: string[] };
  changes: HealthChange[];
  /** The server's status, its counters summed over the workers (see LoadBalancerHandle.status()). */
  server(name: string): Promise<ServerStatus>;
}

/** Starts lb-01 of `config` in this process; closed after the test. */
export async function startLb(t: TestContext, config: ResolvedConfig): Promise<RunningLb> {
  const log = memoryLogger();
  const changes: HealthChange[] = [];
  const handle = await startLoadBalancer(config, 'lb-01', log, {
    onHealthChange: (c) => changes.push(c),
    drainTimeout: 2000,
  });
  t.after(() => handle.close());
  const lb = config.loadBalancers[0]!;
  return {
    handle,
    config,
    port: lb.frontends[0]!.port,
    statsPort: lb.stats.port,
    log,
    changes,
    async server(name) {
      const s = (await handle.status()).backends[0]!.servers.find((x) => x.name === name);
      if (!s) throw new Error(`no server ${name} in status`);
      return s;
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface FetchOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Body written at once, or written in chunks (chunked transfer encoding) when an array. */
  body?: Buffer | Buffer[];
  /** Default: a new connection, closed after the response. */
  agent?: Agent | false;
}

/** One HTTP request to 127.0.0.1:port; resolves with the whole response. */
export function fetch(port: number, path: string, opts: FetchOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString() });
        });
      },
    );
    req.on('error', reject);
    if (Array.isArray(opts.body)) {
      for (const chunk of opts.body) req.write(chunk);
      req.end();
    } else {
      req.end(opts.body);
    }
  });
}

/** The path of bin/tandem.js. */
export const TANDEM_BIN = `${PACKAGE_ROOT}/bin/tandem.js`;
