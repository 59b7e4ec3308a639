/**
 * A response head read in JavaScript, for the common case only: what llhttp (http-parser.ts) would
 * give for it, without calling into it. Each llhttp message costs a call into C++, a callback back
 * into JavaScript for the head, and (for a head whose body the proxy relays itself) a re-initialize
 * of the parser afterwards: about 1.2 µs for the bench backend's head, against 0.4 µs here. The
 * bytes are checked here first, then made strings with one call into C++ for the whole head (one
 * call per field was slower than llhttp).
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

/** What llhttp's head callback and the proxy take from a response head. */
export interface SimpleResponseHead {
  readonly status: number;
  readonly message: string;
  /** Names and values as llhttp gives them (`[name, value, …]`, original case and order). */
  readonly headers: string[];
  /** The connection may carry another request (as llhttp's shouldKeepAlive). */
  readonly keepAlive: boolean;
  /** The body's length (Content-Length). */
  readonly length: number;
  /** Where the body begins in the buffer read. */
  readonly end: number;
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

/** Node's Buffer#latin1Slice (what toString('latin1') calls, without its argument checks). */
type Latin1Slicer = Buffer & { latin1Slice(start: number, end: number): string };

/** Fields of the heads read here at most (more go to llhttp). */
const MAX_FIELDS = 64;
/** Per field: where its name starts and ends, where its value starts and ends. */
const SPANS = new Int32Array(MAX_FIELDS * 4);

/**
 * The head at the start of `buf` when it is in the subset above and all in `buf`; undefined
 * otherwise (llhttp is to read it).
 */
export function simpleResponseHead(buf: Buffer): SimpleResponseHead | undefined {
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
    const f = fields * 4;
    SPANS[f] = nameStart;
    SPANS[f + 1] = nameEnd;
    SPANS[f + 2] = valueStart;
    SPANS[f + 3] = i;
    fields++;
    i += 2;
  }
  const end = i;
  const text = (buf as Latin1Slicer).latin1Slice(0, end);
  const headers: string[] = new Array<string>(fields * 2);
  let length = -1;
  let connection = 0; // 1: close, 2: keep-alive
  for (let k = 0; k < fields; k++) {
    const f = k * 4;
    const name = text.slice(SPANS[f], SPANS[f + 1]);
    const value = text.slice(SPANS[f + 2], SPANS[f + 3]);
    headers[2 * k] = name;
    headers[2 * k + 1] = value;
    switch (name.length) {
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (length !== -1) return undefined;
          length = digits(value);
          if (length < 0) return undefined;
        }
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          if (connection !== 0) return undefined;
          const v = value.toLowerCase();
          if (v === 'close') connection = 1;
          else if (v === 'keep-alive') connection = 2;
          else return undefined;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') return undefined;
        break;
      case 16:
        if (name.toLowerCase() === 'proxy-connection') return undefined;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return undefined;
        break;
    }
  }
  if (length < 0) return undefined;
  const keepAlive = minor === 1 ? connection !== 1 : connection === 2;
  return { status, message: text.slice(13, reasonEnd), headers, keepAlive, length, end };
}

/** The value of a string of 1 to 15 decimal digits; -1 for anything else. */
function digits(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let v = 0;
  for (let k = 0; k < s.length; k++) {
    const d = s.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}
