/**
 * The admin API of one load balancer: JSON over HTTP, bound to localhost by default, every request
 * authenticated with `Authorization: Bearer <token>`.
 *
 * | request | what |
 * |---|---|
 * | `GET /backends` | every backend and server: health, operator state, weight, counters |
 * | `GET /backends/:b`, `GET /backends/:b/servers/:s` | one backend, one server |
 * | `POST /backends/:b/servers/:s/weight` `{"weight": 3}` | sets the weight (0–256) until the next reload that changes it in the config |
 * | `POST /backends/:b/servers/:s/drain` | no new requests (sticky clients included); in-flight ones finish; checks go on |
 * | `POST /backends/:b/servers/:s/disable` | maintenance: no new requests |
 * | `POST /backends/:b/servers/:s/enable` | back to normal |
 * | `POST /reload` | re-reads the config file and applies it (as SIGHUP does) |
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { TandemError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { authorized } from './admin-token.js';

/** What the admin API acts on; the load balancer provides it. */
export interface AdminTarget {
  /** The backends running now, by name (a reload may replace them). */
  backends(): ReadonlyMap<string, Backend>;
  /** The bearer token requests must carry now (a reload may change it). */
  token(): string;
  /** Re-reads the config and applies it; rejects with a TandemError saying why it was not applied. */
  reload(): Promise<{ source: string; changes: string[] }>;
  /** Brings the servers' counters up to date before they are shown (a primary reads its workers'). */
  refresh(): Promise<void>;
  /**
   * An operator changed a server of `backend`: resolves once every process that proxies applies it
   * (a primary's workers), so that the answer means the change is in force.
   */
  changed(backend: Backend): Promise<void>;
  log: Logger;
}

/** Longest request body read (a weight is a few bytes). */
const MAX_BODY = 4096;

const ACTIONS = {
  drain: 'drain',
  disable: 'maint',
  enable: 'ready',
} as const satisfies Record<string, UpstreamServer['adminState']>;

const ENDPOINTS = [
  'GET /backends',
  'GET /backends/:backend',
  'GET /backends/:backend/servers',
  'GET /backends/:backend/servers/:server',
  'POST /backends/:backend/servers/:server/weight {"weight": N}',
  'POST /backends/:backend/servers/:server/drain',
  'POST /backends/:backend/servers/:server/disable',
  'POST /backends/:backend/servers/:server/enable',
  'POST /reload',
];

/** An answer other than 200: its status and message. */
class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The admin API's HTTP server (not listening yet). */
export function createAdminServer(target: AdminTarget): Server {
  const server = createServer((req, res) => {
    handle(target, req).then(
      (body) => sendJson(res, 200, body),
      (err: unknown) => {
        if (err instanceof AdminError) {
          sendJson(res, err.status, { error: err.message }, err.headers);
        } else {
          target.log.error(`admin: ${req.method} ${req.url} failed: ${(err as Error).stack ?? String(err)}`);
          sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
        }
      },
    );
  });
  server.keepAliveTimeout = 1000;
  return server;
}

async function handle(target: AdminTarget, req: IncomingMessage): Promise<unknown> {
  if (!authorized(req.headers.authorization, target.token())) {
    req.resume();
    throw new AdminError(
      401,
      'missing or wrong token: send "Authorization: Bearer <token>" (the token is loadBalancers[].admin.token, ' +
        'or the one generated in <dataDir>/secrets/lb-<name>-admin.token)',
      { 'WWW-Authenticate': 'Bearer realm="tandem-admin"' },
    );
  }
  const method = req.method ?? 'GET';
  const path = (req.url ?? '/').split('?', 1)[0]!;
  const parts = path
    .split('/')
    .filter((p) => p !== '')
    .map((p) => safeDecode(p));
  const body = await readBody(req);
  if (method === 'GET' || method === 'HEAD') await target.refresh();

  if (parts.length === 0) {
    allow(method, 'GET');
    return { endpoints: ENDPOINTS };
  }
  if (parts.length === 1 && parts[0] === 'reload') {
    allow(method, 'POST');
    return reload(target);
  }
  if (parts[0] !== 'backends' || parts.length > 5 || (parts.length >= 3 && parts[2] !== 'servers'))
    throw new AdminError(404, `no such endpoint: ${method} ${path} (endpoints: ${ENDPOINTS.join(', ')})`);

  if (parts.length === 1) {
    allow(method, 'GET');
    return { backends: [...target.backends().values()].map((b) => b.status()) };
  }
  const backend = findBackend(target, parts[1]!);
  if (parts.length === 2) {
    allow(method, 'GET');
    return backend.status();
  }
  if (parts.length === 3) {
    allow(method, 'GET');
    return { backend: backend.name, servers: backend.status().servers };
  }
  const server = findServer(backend, parts[3]!);
  if (parts.length === 4) {
    allow(method, 'GET');
    return { backend: backend.name, server: serverStatus(backend, server) };
  }
  const action = parts[4]!;
  const who = `${backend.name}/${server.name}`;
  const from = remote(req);
  if (action === 'weight') {
    allow(method, 'POST');
    const weight = parseWeight(body);
    const before = server.weight;
    server.weight = weight;
    target.log.info(`admin (${from}): server ${who} weight ${before} → ${weight}`);
    await target.changed(backend);
    return { backend: backend.name, server: serverStatus(backend, server) };
  }
  if (Object.hasOwn(ACTIONS, action)) {
    allow(method, 'POST');
    const state = ACTIONS[action as keyof typeof ACTIONS];
    const before = server.adminState;
    server.adminState = state;
    if (before !== state) target.log.info(`admin (${from}): server ${who} ${state} (was ${before})`);
    await target.changed(backend);
    return { backend: backend.name, server: serverStatus(backend, server) };
  }
  throw new AdminError(
    404,
    `no such action "${action}" for server ${who} (actions: weight, ${Object.keys(ACTIONS).join(', ')})`,
  );
}

async function reload(target: AdminTarget): Promise<unknown> {
  try {
    return await target.reload();
  } catch (err) {
    if (err instanceof TandemError) throw new AdminError(400, `${err.message}\nThe running config is kept.`);
    throw err;
  }
}

function findBackend(target: AdminTarget, name: string): Backend {
  const backends = target.backends();
  const backend = backends.get(name);
  if (backend === undefined)
    throw new AdminError(404, `no backend named "${name}" (known: ${[...backends.keys()].join(', ')})`);
  return backend;
}

function findServer(backend: Backend, name: string): UpstreamServer {
  const server = backend.servers.find((s) => s.name === name);
  if (server === undefined)
    throw new AdminError(
      404,
      `no server named "${name}" in backend "${backend.name}" (known: ${backend.servers.map((s) => s.name).join(', ')})`,
    );
  return server;
}

function serverStatus(backend: Backend, server: UpstreamServer): unknown {
  return backend.status().servers.find((s) => s.name === server.name);
}

/** The weight of a `{"weight": N}` body: an integer 0–256, else a 400 saying so. */
function parseWeight(body: string): number {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new AdminError(400, `the body must be JSON like {"weight": 3} (got ${describe(body)})`);
  }
  if (value === null || typeof value !== 'object' || !('weight' in value))
    throw new AdminError(400, `the body must be JSON like {"weight": 3} (got ${describe(body)})`);
  const weight = (value as { weight: unknown }).weight;
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > 256)
    throw new AdminError(400, `weight: must be an integer between 0 and 256 (got ${JSON.stringify(weight)})`);
  return weight;
}

function describe(body: string): string {
  if (body === '') return 'an empty body';
  return JSON.stringify(body.length > 40 ? `${body.slice(0, 40)}…` : body);
}

function allow(method: string, allowed: 'GET' | 'POST'): void {
  if (method === allowed || (allowed === 'GET' && method === 'HEAD')) return;
  throw new AdminError(405, `method not allowed: use ${allowed}`, {
    Allow: allowed === 'GET' ? 'GET, HEAD' : 'POST',
  });
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AdminError(400, `bad percent-encoding in the path: ${segment}`);
  }
}

function remote(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

/** The request body as text; a 413 past MAX_BODY bytes. */
function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.resume();
        reject(new AdminError(413, `request body too large (the limit is ${MAX_BODY} bytes)`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}
