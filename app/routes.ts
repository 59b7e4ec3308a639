/**
 * The demo codebase's routes. JSON API under /api, server-rendered pages elsewhere, /healthz for
 * the load balancer. Every response carries `X-Served-By`; answers that read or wrote the
 * database carry `X-DB-Node` (the node that answered and its role).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Database, DatabaseUnavailable } from './database.js';
import { HttpError, readBody, redirect, sendHtml, sendJson } from './http.js';
import { type Origin, renderMessagePage, renderUnavailablePage, renderUsersPage } from './pages.js';
import { createUser, deleteUser, listUsers, parseUserId, validateNewUser } from './users.js';

/**
 * Read-your-writes across requests: a write's position (a PostgreSQL LSN or a MariaDB GTID
 * position) travels to the next read in a cookie (the form flow: POST then redirect to GET /) or in
 * the `X-DB-After` header (the API, which answers writes with `X-DB-Position`). A read given one
 * waits for a replica that has it. A value that is not a position of the engine is ignored.
 */
const POSITION_COOKIE = 'tandem-pos';

function positionOf(ctx: AppContext, req: IncomingMessage): string | undefined {
  const header = req.headers['x-db-after'];
  if (ctx.db.isPosition(header)) return header;
  const cookie = /(?:^|;\s*)tandem-pos=([^;\s]{1,1024})/.exec(req.headers.cookie ?? '')?.[1];
  if (cookie === undefined) return undefined;
  let value: string;
  try {
    value = decodeURIComponent(cookie);
  } catch {
    return undefined; // not percent-encoding we wrote
  }
  return ctx.db.isPosition(value) ? value : undefined;
}

function rememberPosition(res: ServerResponse, position: string): void {
  res.setHeader(
    'set-cookie',
    `${POSITION_COOKIE}=${encodeURIComponent(position)}; Path=/; Max-Age=60; HttpOnly; SameSite=Lax`,
  );
}

/** What the routes need: the database and who this process is. */
export interface AppContext {
  db: Database;
  /** TANDEM_SERVER_NAME. */
  server: string;
  /** TANDEM_PROCESS_INDEX. */
  processIndex: string;
  log: (message: string) => void;
}

type Handler = (ctx: AppContext, req: IncomingMessage, res: ServerResponse, param: string) => Promise<void>;

interface Route {
  pattern: RegExp;
  /** Pages answer errors in HTML, the API and /healthz in JSON. */
  html: boolean;
  methods: Record<string, Handler>;
}

const ROUTES: Route[] = [
  { pattern: /^\/healthz$/, html: false, methods: { GET: health } },
  { pattern: /^\/api\/users$/, html: false, methods: { GET: apiList, POST: apiCreate } },
  { pattern: /^\/api\/users\/([^/]+)$/, html: false, methods: { DELETE: apiDelete } },
  { pattern: /^\/$/, html: true, methods: { GET: pageUsers } },
  { pattern: /^\/users$/, html: true, methods: { POST: formCreate } },
  { pattern: /^\/users\/([^/]+)\/delete$/, html: true, methods: { POST: formDelete } },
];

/** The request handler of the codebase: routing, and one place that turns failures into answers. */
export function createHandler(ctx: AppContext): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    res.setHeader('x-served-by', ctx.server);
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
    const route = ROUTES.find((r) => r.pattern.test(path));
    const html = route ? route.html : !path.startsWith('/api/');
    try {
      if (!route) throw new HttpError(404, `nothing at ${path}`);
      const handler = route.methods[method];
      if (!handler) {
        const allowed = Object.keys(route.methods);
        if (allowed.includes('GET')) allowed.push('HEAD');
        res.setHeader('allow', allowed.join(', '));
        throw new HttpError(405, `${req.method} is not allowed here (allowed: ${allowed.join(', ')})`);
      }
      await handler(ctx, req, res, route.pattern.exec(path)?.[1] ?? '');
    } catch (err) {
      answerError(ctx, res, html, err);
    }
  };
}

function answerError(ctx: AppContext, res: ServerResponse, html: boolean, err: unknown): void {
  if (res.headersSent) {
    ctx.log(`error after the answer began: ${(err as Error).message}`);
    res.destroy();
    return;
  }
  const origin = originOf(ctx);
  if (err instanceof HttpError) {
    if (html) sendHtml(res, err.status, renderMessagePage(origin, titleOf(err.status), err.message));
    else sendJson(res, err.status, { error: err.message });
  } else if (err instanceof DatabaseUnavailable) {
    ctx.log(`database unavailable: ${err.message}`);
    if (html) sendHtml(res, 503, renderUnavailablePage(origin, err.message));
    else sendJson(res, 503, { error: 'database unavailable' });
  } else {
    ctx.log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
    if (html)
      sendHtml(res, 500, renderMessagePage(origin, 'Internal error', 'Something broke; it is logged.'));
    else sendJson(res, 500, { error: 'internal error' });
  }
}

function titleOf(status: number): string {
  if (status === 404) return 'Not found';
  if (status === 405) return 'Method not allowed';
  if (status === 413) return 'Too large';
  return 'Bad request';
}

function originOf(ctx: AppContext, dbNode?: string): Origin {
  return { server: ctx.server, process: `process #${ctx.processIndex}, pid ${process.pid}`, dbNode };
}

/** 200 when the app runs and a database connection works (or there is no database); 503 otherwise. */
async function health(ctx: AppContext, _req: IncomingMessage, res: ServerResponse): Promise<void> {
  const db = ctx.db.configured ? await ctx.db.health(1000) : null;
  const up = !db || db.writer === 'up' || db.reader === 'up';
  const degraded = db !== null && (db.writer === 'down' || db.reader === 'down');
  sendJson(res, up ? 200 : 503, {
    status: up ? (degraded ? 'degraded' : 'ok') : 'down',
    server: ctx.server,
    process: Number(ctx.processIndex),
    pid: process.pid,
    app: 'up',
    db,
  });
}

async function apiList(ctx: AppContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { users, node } = await listUsers(ctx.db, positionOf(ctx, req));
  sendJson(res, 200, { users }, { 'x-db-node': node });
}

async function apiCreate(ctx: AppContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const text = await readBody(req);
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `the body is not JSON: ${(err as Error).message}`);
  }
  const checked = validateNewUser(input);
  if ('error' in checked) throw new HttpError(400, checked.error);
  const { user, node, position } = await createUser(ctx.db, checked.user);
  sendJson(res, 201, user, {
    'x-db-node': node,
    'x-db-position': position,
    location: `/api/users/${user.id}`,
  });
}

async function apiDelete(
  ctx: AppContext,
  _req: IncomingMessage,
  res: ServerResponse,
  param: string,
): Promise<void> {
  const parsed = parseUserId(param);
  if ('error' in parsed) throw new HttpError(400, parsed.error);
  if ('missing' in parsed) throw new HttpError(404, `no user ${param}`);
  const { deleted, node } = await deleteUser(ctx.db, parsed.id);
  if (!deleted) {
    sendJson(res, 404, { error: `no user ${param}` }, { 'x-db-node': node });
    return;
  }
  res.writeHead(204, { 'x-db-node': node });
  res.end();
}

async function pageUsers(ctx: AppContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { users, node } = await listUsers(ctx.db, positionOf(ctx, req));
  sendHtml(res, 200, renderUsersPage({ origin: originOf(ctx, node), users }), { 'x-db-node': node });
}

async function formCreate(ctx: AppContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const form = new URLSearchParams(await readBody(req));
  const typed = { name: form.get('name') ?? '', email: form.get('email') ?? '' };
  const checked = validateNewUser(typed);
  if ('error' in checked) {
    const { users, node } = await listUsers(ctx.db);
    const page = renderUsersPage({
      origin: originOf(ctx, node),
      users,
      error: { message: checked.error, ...typed },
    });
    sendHtml(res, 400, page, { 'x-db-node': node });
    return;
  }
  const { node, position } = await createUser(ctx.db, checked.user);
  res.setHeader('x-db-node', node);
  rememberPosition(res, position);
  redirect(res, '/');
}

async function formDelete(
  ctx: AppContext,
  _req: IncomingMessage,
  res: ServerResponse,
  param: string,
): Promise<void> {
  const parsed = parseUserId(param);
  if ('error' in parsed) throw new HttpError(400, parsed.error);
  if ('id' in parsed) {
    const { node, position } = await deleteUser(ctx.db, parsed.id);
    res.setHeader('x-db-node', node);
    rememberPosition(res, position);
  }
  redirect(res, '/');
}
