/**
 * Fixtures of the server tests: a tiny codebase (one .mjs file answering its pid and environment),
 * a temp tandem.yaml built around it, and a small HTTP client that sends paths exactly as given.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type ResolvedConfig } from '../../src/config/load.js';
import { freePort } from '../helpers/index.js';

/** Root of the package (dist/test/server → ../../..). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * A codebase process: listens on HOST:PORT and answers every request with JSON describing itself
 * (pid, env contract, uptime) and the request (method, url, headers). SIGTERM → exit 0.
 */
export const TINY_APP = `
import { createServer } from 'node:http';
const started = Date.now();
const server = createServer((req, res) => {
  const body = JSON.stringify({
    pid: process.pid,
    uptime: Date.now() - started,
    env: {
      PORT: process.env.PORT,
      HOST: process.env.HOST,
      TANDEM_SERVER_NAME: process.env.TANDEM_SERVER_NAME,
      TANDEM_PROCESS_INDEX: process.env.TANDEM_PROCESS_INDEX,
      DATABASE_WRITER_URL: process.env.DATABASE_WRITER_URL ?? null,
      DATABASE_READER_URLS: process.env.DATABASE_READER_URLS ?? null,
    },
    method: req.method,
    url: req.url,
    headers: req.headers,
  });
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(body);
});
server.listen(Number(process.env.PORT), process.env.HOST, () => {
  console.log('tiny app listening on ' + process.env.PORT);
  console.error('tiny app stderr line');
});
process.on('SIGTERM', () => process.exit(0));
`;

/** A codebase process that listens but ignores SIGTERM (only SIGKILL ends it). */
export const STUBBORN_APP = `
import { createServer } from 'node:http';
createServer((req, res) => res.end(String(process.pid))).listen(Number(process.env.PORT), process.env.HOST);
process.on('SIGTERM', () => console.log('ignoring SIGTERM'));
`;

/** Writes `source` as `<dir>/<name>` and returns its path. */
export function writeScript(dir: string, name: string, source: string): string {
  const file = join(dir, name);
  writeFileSync(file, source);
  return file;
}

export interface ConfigOptions {
  webPort: number;
  appPort: number;
  processes?: number;
  /** Codebase command (default: node app.mjs, the tiny app written into `dir`). */
  command?: string[];
  /** Codebase directory (default: `dir`). */
  codebaseDir?: string;
  /** Static directory (default: `<dir>/public`). */
  staticDir?: string;
  restart?: { initialDelay: number; maxDelay: number; resetAfter: number };
  /** Adds a database section (nodes on these ports; nothing needs to listen there). */
  databasePorts?: [number, ...number[]];
  /** `database.endpoints.enabled` (default true: the codebase goes through the load balancer). */
  databaseEndpoints?: boolean;
}

/** Writes `<dir>/tandem.yaml` for server web-01 (web-02 and lb-01 exist but are never started) and loads it. */
export function writeConfig(dir: string, opts: ConfigOptions): ResolvedConfig {
  // The load balancer and web-02 are never started: ports 1-4 only keep the config valid.
  const [lbPort, statsPort, web2Port, app2Port] = [1, 2, 3, 4];
  const config = {
    dataDir: join(dir, 'data'),
    servers: [
      {
        name: 'web-01',
        host: '127.0.0.1',
        port: opts.webPort,
        app: { port: opts.appPort, processes: opts.processes ?? 2, restart: opts.restart ?? {} },
      },
      { name: 'web-02', host: '127.0.0.1', port: web2Port, app: { port: app2Port, processes: 1 } },
    ],
    codebase: {
      static: opts.staticDir ?? join(dir, 'public'),
      command: opts.command ?? ['node', 'app.mjs'],
      dir: opts.codebaseDir ?? dir,
    },
    loadBalancers: [
      {
        name: 'lb-01',
        frontends: [{ name: 'http', port: lbPort, backend: 'web' }],
        stats: { port: statsPort },
      },
    ],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }, { name: 'web-02' }] }],
    ...(opts.databasePorts
      ? {
          database: {
            nodes: opts.databasePorts.map((port, i) => ({
              name: i === 0 ? 'web-01' : `web-0${i + 1}`,
              port,
              role: i === 0 ? 'primary' : 'replica',
            })),
            endpoints: { enabled: opts.databaseEndpoints ?? true },
          },
        }
      : {}),
  };
  const file = join(dir, 'tandem.yaml');
  writeFileSync(file, JSON.stringify(config, null, 2)); // JSON is YAML
  return loadConfig({ file });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTP request with `path` sent byte for byte (no normalisation), on a fresh connection.
 * Resolves with the whole response.
 */
export function fetchRaw(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolvePromise({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** True if nothing listens on 127.0.0.1:port right now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const srv = createServer();
    srv.once('error', () => resolvePromise(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolvePromise(true)));
  });
}

/** The first of `n` consecutive ports that were free a moment ago (process i listens on first + i). */
export async function consecutiveFreePorts(n: number): Promise<number> {
  for (;;) {
    const base = await freePort();
    if (base + n - 1 > 65535) continue;
    let free = true;
    for (let i = 1; i < n && free; i++) free = await isFree(base + i);
    if (free) return base;
  }
}
