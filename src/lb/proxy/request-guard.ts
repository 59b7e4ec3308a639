/**
 * Bad input never reaches a server ambiguously. The parser (llhttp, strict mode) rejects most
 * malformed and smuggling requests by itself: both Content-Length and Transfer-Encoding, several
 * Content-Lengths, CL values that are not plain digits, invalid header names or values, obsolete
 * line folding, a bare CR or LF where CRLF is required, bad chunk sizes and chunk lines, request
 * line garbage. What it lets through is checked here once a request's headers are in:
 *
 * | request                                              | answer |
 * |------------------------------------------------------|--------|
 * | Transfer-Encoding with a coding before chunked (`gzip, chunked`) | 501 |
 * | Transfer-Encoding whose last coding is not chunked, or empty    | 400 |
 * | Transfer-Encoding in an HTTP/1.0 request             | 400    |
 * | Content-Length with Transfer-Encoding, or twice      | 400 (also caught by llhttp) |
 * | more than one Host, or a Host that is not host[:port] | 400   |
 * | no Host in an HTTP/1.1 request                       | 400    |
 * | HTTP/0.9 (a request line without a version)          | 400    |
 * | an `HTTP/2.0` request line                           | 505    |
 * | CONNECT                                              | 501    |
 *
 * Every such answer closes the connection, and every request that follows on that connection is
 * dropped unseen (its framing cannot be trusted). Parser errors (client-connection.ts) are
 * answered with a whole response (`Content-Length`, `Connection: close`), the connection is then
 * closed after the rest of what the client sends is read and dropped for a moment (a lingering
 * close, so a reset does not destroy the answer). Status per parser error: 431 for a header
 * section over `maxHeaderSize`, 413 for chunk extensions over 16 KiB, 408 for headers not in within
 * `headersTimeout`, 505 for an HTTP/2 connection preface, 400 for everything else.
 *
 * Accepted as the RFCs allow (and sent on normalised, so the server sees what the proxy saw):
 * whitespace around values (`Content-Length:  5`, `Transfer-Encoding:\tchunked`), `chunked` in any
 * case, chunk extensions and leading zeros in chunk sizes, obs-text in values, an empty line
 * before the request line, an empty Host.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FrontRequest, RequestHead } from './client-connection.js';
import { sendLocal, sendLocalRaw } from './local-response.js';

/** A rejection: the status and the whole plain-text body (built once). */
interface Rejection {
  readonly status: number;
  readonly text: string;
  readonly body: Buffer;
}

function rejection(status: number, why: string): Rejection {
  const text = `${status} ${STATUS_CODES[status]}: ${why}\n`;
  return { status, text, body: Buffer.from(text) };
}

const TE_CODING = rejection(501, 'transfer codings other than chunked are not supported');
const TE_INVALID = rejection(400, 'Transfer-Encoding must end with chunked');
const TE_HTTP10 = rejection(400, 'Transfer-Encoding is not allowed in an HTTP/1.0 request');
const CL_TE = rejection(400, 'Content-Length and Transfer-Encoding together');
const CL_TWICE = rejection(400, 'more than one Content-Length');
const HOST_TWICE = rejection(400, 'more than one Host');
const HOST_MISSING = rejection(400, 'an HTTP/1.1 request must have a Host');
const HOST_INVALID = rejection(400, 'Host must be host or host:port');
const HTTP09 = rejection(400, 'HTTP/0.9 requests are not supported');
const VERSION = rejection(505, 'only HTTP/1.0 and HTTP/1.1 are supported on this port');

/**
 * What is wrong with `req` beyond what Node's parser checks, or undefined when nothing is. One
 * pass over the raw header names; values are looked at only for the few fields that frame or route.
 */
export function requestProblem(
  req: RequestHead,
  seen?: { expect: string | undefined },
): Rejection | undefined {
  const major = req.httpVersionMajor;
  if (major !== 1) return major === 0 ? HTTP09 : VERSION;
  const raw = req.rawHeaders;
  let te: string | undefined;
  let lengths = 0;
  let hosts = 0;
  let host = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Only names of these lengths can be one of the fields checked: no lower-casing for the others.
    const n = name.length;
    if (n === 6) {
      if (seen !== undefined && name.toLowerCase() === 'expect') seen.expect = raw[i + 1]!;
    } else if (n === 4) {
      if (name.toLowerCase() === 'host') {
        hosts++;
        host = raw[i + 1]!;
      }
    } else if (n === 14) {
      if (name.toLowerCase() === 'content-length') lengths++;
    } else if (n === 17) {
      if (name.toLowerCase() === 'transfer-encoding')
        te = te === undefined ? raw[i + 1]! : `${te},${raw[i + 1]!}`;
    }
  }
  if (hosts > 1) return HOST_TWICE;
  if (hosts === 0 && req.httpVersionMinor === 1) return HOST_MISSING;
  if (hosts === 1 && !validHost(host)) return HOST_INVALID;
  if (lengths > 1) return CL_TWICE;
  if (te === undefined) return undefined;
  if (lengths > 0) return CL_TE;
  if (req.httpVersionMinor === 0) return TE_HTTP10;
  return transferEncodingProblem(te);
}

/** `chunked` alone passes; a list ending in chunked is 501 (those codings would be lost); anything else 400. */
function transferEncodingProblem(value: string): Rejection | undefined {
  const last = value.lastIndexOf(',');
  const final = (last < 0 ? value : value.slice(last + 1)).trim().toLowerCase();
  if (final !== 'chunked') return TE_INVALID;
  return last < 0 ? undefined : TE_CODING;
}

/**
 * Host is `uri-host [":" port]` (RFC 9110 §7.2): reg-name characters, an IP literal in brackets,
 * digits after the colon. Rejects what could route or log differently on the server: whitespace,
 * `/`, `\`, `@`, `?`, `#`, quotes, controls.
 */
function validHost(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ok =
      (c >= 0x61 && c <= 0x7a) || // a-z
      (c >= 0x41 && c <= 0x5a) || // A-Z
      (c >= 0x30 && c <= 0x3b) || // 0-9 : ;
      c === 0x2d || // -
      c === 0x2e || // .
      c === 0x5f || // _
      c === 0x7e || // ~
      c === 0x25 || // %
      c === 0x21 || // !
      c === 0x24 || // $
      (c >= 0x26 && c <= 0x2c) || // & ' ( ) * + ,
      c === 0x3d || // =
      c === 0x5b || // [
      c === 0x5d; // ]
    if (!ok) return false;
  }
  return true;
}

/**
 * The proxy's first step for every request: true when the request must not go on, because it is
 * malformed (it is answered here, and the connection closed). Requests that follow one rejected on
 * the same connection never get here (their framing cannot be trusted: the connection drops them).
 * Sets `req.expect`.
 */
export function rejectMalformed(req: FrontRequest): boolean {
  const problem = requestProblem(req, req);
  if (problem === undefined) return false;
  req.conn.rejected = true;
  sendLocal(req, problem.status, problem.body, true);
  return true;
}

/** A listener of Upgrade requests. */
type UpgradeListener = (req: RequestHead, socket: Socket, head: Buffer) => void;

/**
 * `next` behind the same checks as rejectMalformed: a malformed Upgrade request is answered here,
 * its connection closed, and `next` never sees it. CONNECT is answered 501 (this is a reverse
 * proxy, not a forward one).
 */
export function guardUpgrade(next: UpgradeListener): UpgradeListener {
  return (req, socket, head) => {
    if (req.method === 'CONNECT') {
      sendLocalRaw(socket, 501, '501 Not Implemented: CONNECT is not supported\n');
      return;
    }
    const problem = requestProblem(req);
    if (problem === undefined) next(req, socket, head);
    else sendLocalRaw(socket, problem.status, problem.text);
  };
}
