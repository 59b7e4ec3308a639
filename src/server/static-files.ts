/**
 * Static files of the codebase (its public directory), served by the web server itself with
 * nginx `try_files $uri @app` semantics: a GET or HEAD that names a regular file under the root
 * gets the file; everything else (no such file, a directory, a dotfile, another method) is left to
 * the application server.
 *
 * Safety: the URL path is percent-decoded once (malformed encoding → 400, NUL byte → 400), its
 * `.`/`..` segments are resolved (climbing above the root → 403), and the real path of the file
 * (symlinks resolved) must still be inside the real path of the root (→ 403 otherwise). Nothing is
 * cached between requests, so a file or a symlinked root swapped on disk is seen at once.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import type { Logger } from '../log.js';
import { contentTypeFor } from './content-types.js';

/** Serves the request if it names a static file (or is refused); false when the app should answer. */
export type StaticHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Where a request path leads: a file to try, nothing static, or a refusal with its status. */
type Located =
  { kind: 'file'; path: string } | { kind: 'none' } | { kind: 'refused'; status: 400 | 403; reason: string };

const NONE: Located = { kind: 'none' };
const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG']);
const DENIED_CODES = new Set(['EACCES', 'EPERM']);
const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden' };

/** Cache-Control of every static response: browsers may keep the file but must revalidate it. */
export const STATIC_CACHE_CONTROL = 'public, max-age=0, must-revalidate';

/**
 * A handler serving the files under `root`. Errors while streaming a file (client gone, disk
 * error) are handled here and logged to `log` when they are not the client's doing.
 */
export function createStaticHandler(root: string, log?: Logger): StaticHandler {
  const absoluteRoot = resolve(root);
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const target = await locate(absoluteRoot, req.url);
    if (target.kind === 'none') return false;
    if (target.kind === 'refused') {
      log?.debug(`static: refused ${req.url}: ${target.reason}`);
      sendRefusal(res, target.status);
      return true;
    }
    return sendFile(req, res, target.path, log);
  };
}

/** Maps the request URL onto a real path inside the root, without touching anything outside it. */
async function locate(root: string, url: string | undefined): Promise<Located> {
  const raw = rawPathOf(url);
  if (raw === undefined) return { kind: 'refused', status: 400, reason: 'not a path' };
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch (err) {
    if (err instanceof URIError)
      return { kind: 'refused', status: 400, reason: 'malformed percent-encoding' };
    throw err;
  }
  if (decoded.includes('\0')) return { kind: 'refused', status: 400, reason: 'NUL byte' };

  const segments: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) return { kind: 'refused', status: 403, reason: 'climbs above the root' };
      segments.pop();
    } else {
      segments.push(segment);
    }
  }
  // The root itself, a directory request ("/dir/") and dotfiles are never served statically.
  if (segments.length === 0 || decoded.endsWith('/') || segments.some(isHidden)) return NONE;

  const realRoot = await realPathOrNone(root);
  if (realRoot === undefined) return NONE;
  const real = await realPathOrNone(join(root, ...segments));
  if (real === undefined) return NONE;
  const rel = relative(realRoot, real);
  if (rel === '') return NONE;
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    return { kind: 'refused', status: 403, reason: 'symlink leads out of the root' };
  }
  if (rel.split(sep).some(isHidden)) return NONE;
  return { kind: 'file', path: real };
}

/** The still-encoded path of a request target (origin-form or absolute-form), without the query. */
function rawPathOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  if (url.startsWith('/')) {
    const end = url.search(/[?#]/);
    return end === -1 ? url : url.slice(0, end);
  }
  if (URL.canParse(url)) return new URL(url).pathname;
  return undefined;
}

function isHidden(segment: string): boolean {
  return segment.startsWith('.');
}

/** fs.realpath, or undefined when there is nothing there (or nothing reachable). */
async function realPathOrNone(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND_CODES.has(code) || DENIED_CODES.has(code)) return undefined;
    throw err;
  }
}

/**
 * Opens the file (without following a symlink swapped in since realpath, and without blocking on
 * a FIFO), then answers from the open descriptor so the headers and the body describe one file.
 */
async function sendFile(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  log?: Logger,
): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (NOT_FOUND_CODES.has(code)) return false;
    if (DENIED_CODES.has(code)) {
      sendRefusal(res, 403);
      return true;
    }
    throw err;
  }
  let stats: Stats;
  try {
    stats = await handle.stat();
  } catch (err) {
    await handle.close();
    throw err;
  }
  if (!stats.isFile()) {
    await handle.close();
    return false;
  }

  const etag = `W/"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
  const validators = {
    etag,
    'last-modified': stats.mtime.toUTCString(),
    'cache-control': STATIC_CACHE_CONTROL,
  };
  if (isNotModified(req, etag, stats.mtime)) {
    await handle.close();
    res.writeHead(304, validators);
    res.end();
    return true;
  }
  res.writeHead(200, {
    ...validators,
    'content-type': contentTypeFor(path),
    'content-length': stats.size,
    'x-content-type-options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    await handle.close();
    res.end();
    return true;
  }
  // The read stream owns the handle from here on and closes it on end, error or destroy.
  pipeline(handle.createReadStream(), res, (err) => {
    if (!err) return;
    if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') {
      log?.debug(`static ${path}: the client went away`);
    } else {
      log?.warn(`static ${path}: ${err.message}`);
    }
  });
  return true;
}

/**
 * RFC 9110 §13.2.2: If-None-Match, when present, decides alone (weak comparison); otherwise
 * If-Modified-Since is compared with the modification time at one-second precision.
 */
function isNotModified(req: IncomingMessage, etag: string, mtime: Date): boolean {
  const ifNoneMatch = req.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.split(',').some((tag) => tag.trim() === '*' || opaque(tag) === opaque(etag));
  }
  const ifModifiedSince = req.headers['if-modified-since'];
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

function sendRefusal(res: ServerResponse, status: 400 | 403): void {
  const body = `${status} ${STATUS_TEXT[status]}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}
