/** Small HTTP helpers of the demo codebase: bounded body reading and typed responses. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** A request the codebase refuses, with the status to answer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** Largest request body the codebase accepts. */
export const BODY_LIMIT = 64 * 1024;
/** After a refused body, at most this much more is read (and dropped) before the connection is cut. */
const DRAIN_LIMIT = 1024 * 1024;

/**
 * Reads the request body as UTF-8, up to `limit` bytes; a larger one is refused with a 413
 * HttpError at once, and the rest is drained (so the client can read the answer) or, past
 * DRAIN_LIMIT, the connection is cut.
 */
export function readBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<string> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `request body larger than ${limit} bytes`);
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (declared > limit) {
      drain(req);
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        drain(req);
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks).toString('utf8'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.once('error', reject);
  });
}

/** Reads and drops what is left of a body, cutting the connection if it goes on too long. */
function drain(req: IncomingMessage): void {
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DRAIN_LIMIT) req.destroy();
  });
  req.resume();
}

/** Sends `body` as JSON. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: OutgoingHttpHeaders = {},
): void {
  send(res, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, headers);
}

/** Sends an HTML document. */
export function sendHtml(
  res: ServerResponse,
  status: number,
  html: string,
  headers: OutgoingHttpHeaders = {},
): void {
  send(res, status, 'text/html; charset=utf-8', html, headers);
}

/** 303 See Other to `location` (the answer to a form POST). */
export function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'content-length': 0 });
  res.end();
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: OutgoingHttpHeaders,
): void {
  res.writeHead(status, {
    ...headers,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
