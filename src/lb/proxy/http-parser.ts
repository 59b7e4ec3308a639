/**
 * Node's own HTTP/1.x parser (llhttp, through the `_http_common` module node:http is built on),
 * for both sides of the HTTP proxy: the same strict parser node:http uses, without its per-request
 * objects around it (see client-connection.ts and upstream-connection.ts).
 */
import { createRequire } from 'node:module';

/** The callbacks llhttp calls, by the parser's numeric slots. */
export interface HttpParserCallbacks {
  /** A message's first byte (optional: one more call into JavaScript per message when given). */
  onMessageBegin?(this: HttpParser): void;
  /** A header section too large for one callback comes in parts first. */
  onHeaders(this: HttpParser, headers: string[], url: string): void;
  /**
   * The head of a message. Return 1 for "no body follows" (the answer to a HEAD request, an
   * informational 1xx), 2 for the same and execute() returning right after the head (the caller
   * takes the body), 0 otherwise.
   */
  onHeadersComplete(
    this: HttpParser,
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    statusCode: number,
    statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number;
  onBody(this: HttpParser, chunk: Buffer): void;
  onMessageComplete(this: HttpParser): void;
}

/** One llhttp parser instance. */
export interface HttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Parses `data`; an Error (code `HPE_*`, `reason`) when it is not valid HTTP. */
  execute(data: Buffer): number | Error;
  /** The connection ended: completes a message delimited by the close, or an Error. */
  finish(): number | Error | undefined;
  remove(): void;
  close(): void;
  [slot: number]: unknown;
}

/**
 * What Node.js 20's parser also tells of a request parser, and later ones do not (Node.js 22 took
 * `headersCompleted()` and `duration()` away): where this Node.js lacks them, requestParser counts
 * them itself, from onMessageBegin and onHeadersComplete.
 */
interface NodeParserExtras {
  headersCompleted?(): boolean;
  duration?(): number;
}

/** A request parser that counts its own head state (Node.js 22 and later). */
interface CountingParser extends HttpParser {
  /** The current message's headers are all in (false before any message). */
  [kHeadDone]: boolean;
  /** performance.now() when the current message began, or the parser was initialized. */
  [kBegan]: number;
}

const kHeadDone = Symbol('tandem.headDone');
const kBegan = Symbol('tandem.began');

interface HttpParserClass {
  new (): HttpParser;
  readonly prototype: HttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kLenientNone: number;
}

const common = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: HttpParserClass;
  methods: string[];
  prepareError(err: Error, parser: HttpParser, raw: Buffer | undefined): void;
};
const { HTTPParser } = common;

/** The async resource llhttp's callbacks run in (no async hooks are used here). */
const RESOURCE = {};

/** Whether this Node.js's parser tells headersCompleted() and duration() itself (Node.js 20). */
const NATIVE_HEAD_STATE =
  typeof (HTTPParser.prototype as NodeParserExtras).headersCompleted === 'function' &&
  typeof (HTTPParser.prototype as NodeParserExtras).duration === 'function';

/** A parser of HTTP responses with `callbacks`, strict (no lenient flags), Node's default header size limit. */
export function responseParser(callbacks: HttpParserCallbacks): HttpParser {
  return newParser(HTTPParser.RESPONSE, 0, callbacks);
}

/**
 * A parser of HTTP requests with `callbacks`, strict (no lenient flags): a request line and header
 * section over `maxHeaderSize` bytes fail with HPE_HEADER_OVERFLOW.
 */
export function requestParser(callbacks: HttpParserCallbacks, maxHeaderSize: number): HttpParser {
  if (NATIVE_HEAD_STATE) return newParser(HTTPParser.REQUEST, maxHeaderSize, callbacks);
  const { onHeadersComplete } = callbacks;
  const parser = newParser(HTTPParser.REQUEST, maxHeaderSize, {
    ...callbacks,
    onMessageBegin(this: HttpParser): void {
      headBegins(this);
      callbacks.onMessageBegin?.call(this);
    },
    onHeadersComplete(
      this: HttpParser,
      ...args: Parameters<HttpParserCallbacks['onHeadersComplete']>
    ): number {
      (this as CountingParser)[kHeadDone] = true;
      return onHeadersComplete.apply(this, args);
    },
  });
  headBegins(parser);
  return parser;
}

/** A counting parser's clock starts now, its headers not in (a message began, or the parser is new). */
function headBegins(parser: HttpParser): void {
  (parser as CountingParser)[kHeadDone] = false;
  (parser as CountingParser)[kBegan] = performance.now();
}

/**
 * The headers of the current request on `parser` (from requestParser) are all in: false from a
 * message's first byte to the end of its headers, and before any message.
 */
export function headersCompleted(parser: HttpParser): boolean {
  return NATIVE_HEAD_STATE
    ? (parser as HttpParser & Required<NodeParserExtras>).headersCompleted()
    : (parser as CountingParser)[kHeadDone];
}

/** Milliseconds since the current request on `parser` began (or since the parser was initialized). */
export function headDuration(parser: HttpParser): number {
  return NATIVE_HEAD_STATE
    ? (parser as HttpParser & Required<NodeParserExtras>).duration()
    : performance.now() - (parser as CountingParser)[kBegan];
}

/**
 * Makes `parser` (a response parser) ready for the next message after its onHeadersComplete
 * returned 2 (llhttp keeps an upgrade flag after that, which would hide later parse errors).
 */
export function resetResponseParser(parser: HttpParser): void {
  parser.initialize(HTTPParser.RESPONSE, RESOURCE, 0, HTTPParser.kLenientNone);
}

/** Makes a request parser as new (for another connection), with `maxHeaderSize`. */
export function resetRequestParser(parser: HttpParser, maxHeaderSize: number): void {
  parser.initialize(HTTPParser.REQUEST, RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
  if (!NATIVE_HEAD_STATE) headBegins(parser);
}

function newParser(type: number, maxHeaderSize: number, callbacks: HttpParserCallbacks): HttpParser {
  const parser = new HTTPParser();
  parser.initialize(type, RESOURCE, maxHeaderSize, HTTPParser.kLenientNone);
  if (callbacks.onMessageBegin !== undefined) parser[HTTPParser.kOnMessageBegin] = callbacks.onMessageBegin;
  parser[HTTPParser.kOnHeaders] = callbacks.onHeaders;
  parser[HTTPParser.kOnHeadersComplete] = callbacks.onHeadersComplete;
  parser[HTTPParser.kOnBody] = callbacks.onBody;
  parser[HTTPParser.kOnMessageComplete] = callbacks.onMessageComplete;
  return parser;
}

/** The name of llhttp's method number `n`. */
export function methodName(n: number): string {
  return common.methods[n] ?? 'GET';
}

/** Gives a parse error its message (`Parse Error: Expected HTTP/`), as node:http does. */
export function prepareParseError(err: Error, parser: HttpParser, raw: Buffer | undefined): void {
  common.prepareError(err, parser, raw);
}

/** Frees a parser once the current call stack (maybe one of its own callbacks) has unwound. */
export function releaseParser(parser: HttpParser): void {
  parser.remove();
  setImmediate(closeParser, parser);
}

function closeParser(parser: HttpParser): void {
  parser.close();
}
