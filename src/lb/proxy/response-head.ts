/**
 * A response head read in JavaScript, for the common case only: what llhttp (http-parser.ts) would
 * give for it, without calling into it. Each llhttp message costs a call into C++, a callback back
 * into JavaScript for the head, and (for a head whose body the proxy relays itself) a re-initialize
 * of the parser afterwards: about 1.2 µs for the bench backend's head, against 0.4 µs here. The
 * bytes are checked here first (scanResponseHead). When the proxy needs the fields as strings
 * (sticky sessions, a frontend shutting down), they are made with one call into C++ for the whole
 * head (responseFields; one call per field was slower than llhttp). Otherwise the head goes on to
 * the client as bytes (passedHead): copied in runs, hop-by-hop fields left out, never rebuilt.
 *
 * Only a strict subset is read here; anything else returns undefined and goes to llhttp as before,
 * which then accepts or rejects it. The subset: the whole head in one read, at most
 * MAX_SIMPLE_HEAD bytes and MAX_FIELDS fields; `HTTP/1.1` or `HTTP/1.0`; a status from 200 to 599
 * other than 204 and 304; a reason phrase of visible characters, spaces and tabs; header names of
 * token characters right before the colon; values of visible characters with spaces or tabs
 * inside, no whitespace at their end; CRLF line ends; exactly one Content-Length of digits; no
 * Transfer-Encoding, Upgrade or Proxy-Connection; a Connection of `close` or `keep-alive` alone,
 * at most once. test/lb/response-head.test.ts checks, over many generated heads, that whatever
 * this accepts llhttp accepts with the same status, reason, fields, keep-alive and lengths.
 */

/** What the proxy takes from a response head, read without making strings of it. */
export interface ScannedResponseHead {
  readonly status: number;
  /** `HTTP/1.1` (else `HTTP/1.0`). */
  readonly http11: boolean;
  /** Where the reason phrase ends (its CRLF). */
  readonly reasonEnd: number;
  /** Header fields: their spans are in SPANS until the next scan. */
  readonly fields: number;
  /** A Date field is among them. */
  readonly hasDate: boolean;
  /** The connection may carry another request (as llhttp's shouldKeepAlive). */
  readonly keepAlive: boolean;
  /** The body's length (Content-Length). */
  readonly length: number;
  /** Where the body begins in the buffer read. */
  readonly end: number;
}

/** What llhttp's head callback gives for a head: its reason phrase and fields, as strings. */
export interface ResponseFields {
  readonly message: string;
  /** Names and values as llhttp gives them (`[name, value, …]`, original case and order). */
  readonly headers: string[];
}

/** Heads longer than this go to llhttp (its own limit, 16 KiB by default, applies there). */
export const MAX_SIMPLE_HEAD = 8192;

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

/** Token characters (RFC 9110 §5.6.2): header names. */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;

/** Visible characters and obs-text: what a value or a reason phrase holds besides SP and HTAB. */
const VISIBLE = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) VISIBLE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VISIBLE[c] = 1;

const HTTP_1_ = Buffer.from('HTTP/1.', 'latin1');
const HTTP_1_1_ = 'HTTP/1.1 ';

/** Node's Buffer#latin1Slice and #latin1Write (toString and write in latin1, without their argument checks). */
type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number, length: number): number;
};

/** Fields of the heads read here at most (more go to llhttp). */
const MAX_FIELDS = 64;
/** Per field: where its name starts and ends, where its value starts and ends. */
const SPANS = new Int32Array(MAX_FIELDS * 4);
/** Per field: KEEP, HOP (a hop-by-hop field the proxy drops) or DATE. */
const KIND = new Uint8Array(MAX_FIELDS);
const KEEP = 0;
const HOP = 1;
const DATE = 2;
/** Per field, set by passedHead: dropped on the way to the client. */
const DROPPED = new Uint8Array(MAX_FIELDS);

/** Whether the bytes of `buf` from `start` to `end` are `lower` (lower-case letters and `-`), in any case. */
function nameIs(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  // Token characters only: `| 0x20` lower-cases a letter, and maps no other token character to one.
  for (let k = 0; k < lower.length; k++) if ((buf[start + k]! | 0x20) !== lower.charCodeAt(k)) return false;
  return true;
}

/**
 * The head at the start of `buf` when it is in the subset above and all in `buf`; undefined
 * otherwise (llhttp is to read it). No string is made: responseFields makes them, passedHead
 * copies the head's bytes.
 */
export function scanResponseHead(buf: Buffer): ScannedResponseHead | undefined {
  const n = Math.min(buf.length, MAX_SIMPLE_HEAD);
  // `HTTP/1.x SSS `
  if (n < 16) return undefined;
  for (let k = 0; k < 7; k++) if (buf[k] !== HTTP_1_[k]) return undefined;
  const minor = buf[7]! - 48;
  if ((minor !== 0 && minor !== 1) || buf[8] !== SP || buf[12] !== SP) return undefined;
  const d0 = buf[9]! - 48;
  const d1 = buf[10]! - 48;
  const d2 = buf[11]! - 48;
  if (d0 < 2 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return undefined;
  const status = d0 * 100 + d1 * 10 + d2;
  if (status === 204 || status === 304) return undefined;
  // The reason phrase.
  let i = 13;
  while (i < n && (VISIBLE[buf[i]!] === 1 || buf[i] === SP || buf[i] === HTAB)) i++;
  if (i + 1 >= n || buf[i] !== CR || buf[i + 1] !== LF) return undefined;
  const reasonEnd = i;
  i += 2;
  let fields = 0;
  let length = -1;
  let connection = 0; // 1: close, 2: keep-alive
  let hasDate = false;
  for (;;) {
    if (i + 1 >= n) return undefined;
    if (buf[i] === CR) {
      if (buf[i + 1] !== LF) return undefined;
      i += 2;
      break;
    }
    if (fields === MAX_FIELDS) return undefined;
    // The name, right before the colon.
    const nameStart = i;
    while (i < n && TOKEN[buf[i]!] === 1) i++;
    if (i === nameStart || i >= n || buf[i] !== COLON) return undefined;
    const nameEnd = i;
    i++;
    while (i < n && (buf[i] === SP || buf[i] === HTAB)) i++;
    // The value: no whitespace at its end; SP and HTAB inside.
    const valueStart = i;
    let last = i; // just past the last visible character
    while (i < n) {
      const c = buf[i]!;
      if (VISIBLE[c] === 1) last = ++i;
      else if (c === SP || c === HTAB) i++;
      else break;
    }
    if (last !== i || i + 1 >= n || buf[i] !== CR || buf[i + 1] !== LF) return undefined;
    const valueEnd = i;
    const f = fields * 4;
    SPANS[f] = nameStart;
    SPANS[f + 1] = nameEnd;
    SPANS[f + 2] = valueStart;
    SPANS[f + 3] = valueEnd;
    let kind = KEEP;
    switch (nameEnd - nameStart) {
      case 14:
        if (nameIs(buf, nameStart, nameEnd, 'content-length')) {
          if (length !== -1) return undefined;
          length = digits(buf, valueStart, valueEnd);
          if (length < 0) return undefined;
        }
        break;
      case 10:
        if (nameIs(buf, nameStart, nameEnd, 'connection')) {
          if (connection !== 0) return undefined;
          if (nameIs(buf, valueStart, valueEnd, 'close')) connection = 1;
          else if (nameIs(buf, valueStart, valueEnd, 'keep-alive')) connection = 2;
          else return undefined;
          kind = HOP;
        } else if (nameIs(buf, nameStart, nameEnd, 'keep-alive')) kind = HOP;
        break;
      case 4:
        if (nameIs(buf, nameStart, nameEnd, 'date')) {
          kind = DATE;
          hasDate = true;
        }
        break;
      case 2:
        if (nameIs(buf, nameStart, nameEnd, 'te')) kind = HOP;
        break;
      case 7:
        if (nameIs(buf, nameStart, nameEnd, 'upgrade')) return undefined;
        if (nameIs(buf, nameStart, nameEnd, 'trailer')) kind = HOP;
        break;
      case 16:
        if (nameIs(buf, nameStart, nameEnd, 'proxy-connection')) return undefined;
        break;
      case 17:
        if (nameIs(buf, nameStart, nameEnd, 'transfer-encoding')) return undefined;
        break;
    }
    KIND[fields] = kind;
    fields++;
    i += 2;
  }
  if (length < 0) return undefined;
  const keepAlive = minor === 1 ? connection !== 1 : connection === 2;
  return { status, http11: minor === 1, reasonEnd, fields, hasDate, keepAlive, length, end: i };
}

/** The reason phrase and fields of the head scanResponseHead read last, from the same `buf`. */
export function responseFields(buf: Buffer, head: ScannedResponseHead): ResponseFields {
  // One string for the whole head (one call into C++), sliced.
  const text = (buf as Latin1Buffer).latin1Slice(0, head.end);
  const fields = head.fields;
  const headers: string[] = new Array<string>(fields * 2);
  for (let k = 0; k < fields; k++) {
    const f = k * 4;
    headers[2 * k] = text.slice(SPANS[f], SPANS[f + 1]);
    headers[2 * k + 1] = text.slice(SPANS[f + 2], SPANS[f + 3]);
  }
  return { message: text.slice(13, head.reasonEnd), headers };
}

/**
 * The head scanResponseHead read last, as the proxy sends it on, in a new buffer, without making
 * strings of it: the status line as `HTTP/1.1`, the fields in their order less the hop-by-hop
 * ones (Connection, Keep-Alive, TE, Trailer) and those named `dropName` (lower case), each as
 * `name: value` CRLF, then `tail` (latin1, its own CRLFs, the empty line included). The same bytes
 * as clientResponseHeaders and FrontRequest#writeHead give for it (test/lb/response-head.test.ts).
 */
export function passedHead(
  buf: Buffer,
  head: ScannedResponseHead,
  dropName: string | undefined,
  tail: string,
): Buffer {
  const fields = head.fields;
  const dropLength = dropName === undefined ? -1 : dropName.length;
  // The size first: the reason line as it is; each field kept as `name: value` CRLF.
  let size = head.reasonEnd + 2;
  for (let k = 0; k < fields; k++) {
    const f = k * 4;
    const nameStart = SPANS[f]!;
    const nameEnd = SPANS[f + 1]!;
    const dropped =
      KIND[k] === HOP || (nameEnd - nameStart === dropLength && nameIs(buf, nameStart, nameEnd, dropName!));
    DROPPED[k] = dropped ? 1 : 0;
    if (!dropped) size += nameEnd - nameStart + 2 + SPANS[f + 3]! - SPANS[f + 2]! + 2;
  }
  const out = Buffer.allocUnsafe(size + tail.length) as Latin1Buffer;
  // Runs of fields already written `name: value` CRLF go out as they came, in one copy each.
  let w = 0;
  let runStart = 0;
  if (!head.http11) {
    w = out.latin1Write(HTTP_1_1_, 0, HTTP_1_1_.length);
    runStart = HTTP_1_1_.length;
  }
  let runEnd = head.reasonEnd + 2;
  for (let k = 0; k < fields; k++) {
    const f = k * 4;
    const nameStart = SPANS[f]!;
    const nameEnd = SPANS[f + 1]!;
    const valueStart = SPANS[f + 2]!;
    const lineEnd = SPANS[f + 3]! + 2;
    if (DROPPED[k] === 0 && nameStart === runEnd && valueStart === nameEnd + 2 && buf[nameEnd + 1] === SP) {
      runEnd = lineEnd;
      continue;
    }
    w = copy(buf, runStart, runEnd, out, w);
    runStart = runEnd = lineEnd;
    if (DROPPED[k] === 1) continue;
    // `name:value`, or other spaces or tabs after the colon: written as `name: value`.
    w = copy(buf, nameStart, nameEnd, out, w);
    out[w++] = COLON;
    out[w++] = SP;
    w = copy(buf, valueStart, lineEnd, out, w);
  }
  w = copy(buf, runStart, runEnd, out, w);
  out.latin1Write(tail, w, tail.length);
  return out;
}

/** Copies `from`'s bytes from `start` to `end` into `to` at `at`; returns where they end there. */
function copy(from: Buffer, start: number, end: number, to: Buffer, at: number): number {
  if (end > start) to.set(from.subarray(start, end), at);
  return at + end - start;
}

/** The value of 1 to 15 decimal digits from `start` to `end` of `buf`; -1 for anything else. */
function digits(buf: Buffer, start: number, end: number): number {
  const n = end - start;
  if (n === 0 || n > 15) return -1;
  let v = 0;
  for (let k = start; k < end; k++) {
    const d = buf[k]! - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}
