/**
 * Header rewriting for the proxy, on Node's raw header lists (`[name, value, name, value, …]`:
 * original case and order, repeated fields kept).
 *
 * Hop-by-hop fields (RFC 9110 §7.6.1) are removed in both directions: Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every field the Connection header
 * names (except Content-Length, which frames the message). Node handles the framing on each side.
 */

import { forwardedElement } from './forwarded.js';
import type { RequestIdHeader } from './request-id.js';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** 1 at the length of each hop-by-hop name. */
const HOP_LENGTH = new Uint8Array(32);
for (const name of HOP_BY_HOP) HOP_LENGTH[name.length] = 1;

/** Lower-cased field names listed in Connection values, beyond `close` and `keep-alive`. */
function connectionOptions(values: string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (const value of values) {
    // What nearly every client and server sends names no field: no split needed.
    if (value.length <= 10) {
      const v = value.toLowerCase();
      if (v === 'keep-alive' || v === 'close') continue;
    }
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name === '' || name === 'close' || name === 'keep-alive' || name === 'content-length') continue;
      named ??= new Set();
      named.add(name);
    }
  }
  return named;
}

function appendValue(values: string[] | undefined, value: string): string[] {
  if (values === undefined) return [value];
  values.push(value);
  return values;
}

/** Removes in place from the raw list `list` every field named in `named`. Rare: unusual Connection headers only. */
function removeNamed(list: string[], named: Set<string>): void {
  let w = 0;
  for (let r = 0; r < list.length; r += 2) {
    if (named.has(list[r]!.toLowerCase())) continue;
    list[w] = list[r]!;
    list[w + 1] = list[r + 1]!;
    w += 2;
  }
  list.length = w;
}

/** What a frontend adds to forwarded requests beyond `X-Forwarded-*` (one object per frontend). */
export interface ForwardOptions {
  /** Add an RFC 7239 `Forwarded` element (`for`, `proto`, `host`) after any the client sent. */
  readonly forwarded: boolean;
  /** The request id header: fields of that name from the client are replaced by the request's id. */
  readonly requestIdHeader: RequestIdHeader | undefined;
}

/**
 * Appends to `out` the header list to send upstream for a client request: the end-to-end fields of
 * `raw`, Host kept (`fallbackHost` when the client sent none), then `X-Forwarded-For` (the
 * client's chain with `clientIp` appended), `X-Forwarded-Proto` and `X-Forwarded-Host` (the
 * client's Host); values the client sent for the last two are dropped. With `options`: a
 * `Forwarded` field with this hop's element (the client's `Forwarded` fields stay before it, so
 * the combined list is the client's chain followed by this hop, RFC 7239 §4), and the request id
 * header set to `requestId`. A chunked request body goes on chunked (Node decodes it and encodes
 * it again).
 *
 * Returns whether the request has a body to forward (Transfer-Encoding, or Content-Length other than 0).
 */
export function upstreamRequestHeaders(
  raw: string[],
  clientIp: string,
  proto: string,
  fallbackHost: string,
  out: string[],
  options?: ForwardOptions,
  requestId?: string,
): boolean {
  const idLower = requestId === undefined ? undefined : options?.requestIdHeader?.lower;
  let connection: string[] | undefined;
  let chunked = false;
  let length = false;
  let forwardedFor: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = appendValue(connection, value);
      else if (lower === 'transfer-encoding') chunked = true;
      continue;
    }
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'x-forwarded-proto' || lower === 'x-forwarded-host' || lower === idLower) continue;
    if (lower === 'host') host = value;
    else if (lower === 'content-length') length = value.trim() !== '0';
    out.push(name, value);
  }
  // Fields named in Connection go before ours are added, so they cannot hide X-Forwarded-For.
  const named = connection && connectionOptions(connection);
  if (named) {
    removeNamed(out, named);
    if (named.has('host')) host = undefined;
    if (named.has('x-forwarded-for')) forwardedFor = undefined;
  }
  if (host === undefined) out.push('Host', fallbackHost);
  out.push(
    'X-Forwarded-For',
    forwardedFor === undefined ? clientIp : `${forwardedFor}, ${clientIp}`,
    'X-Forwarded-Proto',
    proto,
  );
  if (host !== undefined) out.push('X-Forwarded-Host', host);
  if (options?.forwarded) out.push('Forwarded', forwardedElement(clientIp, proto, host));
  if (idLower !== undefined) out.push(options!.requestIdHeader!.name, requestId!);
  if (chunked) out.push('Transfer-Encoding', 'chunked');
  return chunked || length;
}

/** Whether a list upstreamRequestHeaders built sends the body chunked (its Transfer-Encoding comes last). */
export function sendsChunked(out: readonly string[]): boolean {
  return out.length >= 2 && out[out.length - 2] === 'Transfer-Encoding';
}

/**
 * The request line and header section sent to a server, from the client's method and target and
 * the list upstreamRequestHeaders built. No Connection field: an HTTP/1.1 request keeps the
 * connection by default, which is what the proxy wants of its connections to servers (as HAProxy
 * and nginx send it); the client's Connection values are hop-by-hop and were dropped. Every name
 * and value passed the client-side parser (or is the proxy's own).
 */
export function requestHead(method: string, target: string, headers: readonly string[]): string {
  let head = `${method} ${target} HTTP/1.1\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * The header list to send to the client for an upstream response: its end-to-end fields, plus
 * `Connection: close` when `close` is set (the frontend is shutting down). With `requestIdHeader`
 * and `requestId`: that header set to the request's id (replacing the server's).
 */
export function clientResponseHeaders(
  raw: string[],
  close: boolean,
  requestIdHeader?: RequestIdHeader,
  requestId?: string,
): string[] {
  const out: string[] = [];
  const idLower = requestId === undefined ? undefined : requestIdHeader?.lower;
  const idLength = idLower === undefined ? -1 : idLower.length;
  let connection: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Most names are of no length a dropped field has: no lower-cased copy is made of them.
    const n = name.length;
    if ((n < 32 && HOP_LENGTH[n] === 1) || n === idLength) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) {
        if (lower === 'connection') connection = appendValue(connection, raw[i + 1]!);
        continue;
      }
      if (lower === idLower) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  const named = connection && connectionOptions(connection);
  if (named) removeNamed(out, named);
  if (idLower !== undefined) out.push(requestIdHeader!.name, requestId!);
  if (close) out.push('Connection', 'close');
  return out;
}
