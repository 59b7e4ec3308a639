/**
 * The client side of the HTTP proxy: one accepted connection, Node's own HTTP/1.x parser (llhttp,
 * strict, http-parser.ts) run on what it reads, and responses written straight to the socket. Every
 * field of a response comes from a parsed message or from the proxy itself, so none is checked again. This replaces
 * node:http's server, whose per-request objects (IncomingMessage, ServerResponse and their stream
 * machinery) cost more CPU than the rest of the proxy together and ~4.5 KiB per idle connection.
 *
 * What node:http's server did and this module does the same way:
 * - keep-alive by the request's version and Connection header; `Connection: keep-alive` and
 *   `Keep-Alive: timeout=N` on responses that keep the connection, `Connection: close` otherwise;
 *   a `Date` when the response has none;
 * - response framing: the server's Content-Length kept, else chunked to HTTP/1.1 clients and
 *   close-delimited to HTTP/1.0 ones; no body for HEAD, 1xx, 204 and 304;
 * - pipelining: requests are answered one after another in order, later ones wait (their bodies
 *   held, reading paused);
 * - a request body the response did not wait for is read and dropped, and the connection kept;
 * - the headers timeout (from a request's first byte, or from the connection's start) and the
 *   keep-alive timeout, both checked by one sweep per frontend, not a timer per request;
 * - Upgrade requests and CONNECT are handed to the proxy with the socket and the bytes after them.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { LAST_CHUNK, writeChunk } from './chunked.js';
import {
  headDuration,
  headersCompleted,
  type HttpParser,
  methodName,
  prepareParseError,
  releaseParser,
  requestParser,
  resetRequestParser,
} from './http-parser.js';
import { flushHeld, writeOutSoon } from './direct-relay.js';
import { readsIntoUserBuffer } from './injected.js';
import { canTakeMore, READ_BUFFER } from './read-buffer.js';
import { passedHead, type ScannedResponseHead } from './response-head.js';

/** The parts of a request the proxy reads (the same names as node:http's IncomingMessage). */
export interface RequestHead {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** Lower-cased names; repeated fields joined (`, `, `; ` for Cookie). Built on first use. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly socket: Socket;
}

/** Who handles a request's body and hears of its end: the proxy's exchange. */
export interface RequestOwner {
  /** A chunk of the request body (after readBody()). */
  clientBody(req: FrontRequest, chunk: Buffer): void;
  /** The request body is all in (after readBody()). */
  clientBodyEnd(req: FrontRequest): void;
  /** The client took what was written after write() returned false. */
  clientDrain(req: FrontRequest): void;
  /** The request is over: its response ended, or the connection is gone. Called once. */
  clientDone(req: FrontRequest): void;
}

/** What the proxy provides a client connection. */
export interface ClientHandler {
  /** A request's head is in (not an Upgrade, not a CONNECT). */
  request(req: FrontRequest): void;
  /** An Upgrade or CONNECT request: the socket, and what followed the request, are the handler's now. */
  upgrade(req: FrontRequest, socket: Socket, head: Buffer): void;
  /** The frontend is shutting down: every response asks its client to close the connection. */
  readonly closing: boolean;
  /** Seconds for the Keep-Alive header. */
  readonly keepAliveSeconds: number;
}

/**
 * A body chunk up to this long goes out in one buffer with the response head, copied after it:
 * one plain write instead of a corked head and chunk, which Node's stream gathers into a writev
 * (its buffering, the chunk list and the string's encoding in C++). Measured (user CPU per
 * request, 18-byte answers): the README's Architecture section. Longer chunks are not copied.
 */
const MERGE_LIMIT = 2048;

/** Node's Buffer#latin1Write (what write(s, 'latin1') calls, without its argument checks). */
type Latin1Writer = Buffer & { latin1Write(s: string, offset: number, length: number): number };

/** `head` (a string in latin1, one byte per character, or bytes) followed by `body`, in one new buffer. */
function withHead(head: string | Buffer, body: Buffer): Buffer {
  const n = head.length;
  const out = Buffer.allocUnsafe(n + body.length) as Latin1Writer;
  if (typeof head === 'string') out.latin1Write(head, 0, n);
  else out.set(head, 0);
  out.set(body, n);
  return out;
}

/** Why reading from the client is paused (bits): reading resumes when none is left. */
const PAUSE_BODY = 1;
const PAUSE_QUEUE = 2;
const PAUSE_HELD = 4;

/** Request body bytes held for a request that does not read yet, before reading pauses. */
const HOLD_LIMIT = 64 * 1024;
/** Pipelined requests waiting before reading pauses. */
const QUEUE_LIMIT = 16;
/** How long the rest of a rejected client's input is read and dropped before the socket is closed. */
const LINGER_MS = 2000;

const kConn = Symbol('tandem.clientConnection');
type TaggedSocket = Socket & { [kConn]?: ClientConnection };
type TaggedParser = HttpParser & { [kConn]?: ClientConnection };

/** One request on a client connection, and its response. */
export class FrontRequest implements RequestHead {
  owner: RequestOwner | undefined = undefined;
  /** The whole request (its body too) was parsed. */
  complete = false;
  /** The response's head was given (writeHead). */
  headersSent = false;
  /** The response ended (end()), or the request is abandoned. */
  finished = false;
  /** The `Expect` value, when the request has one. */
  expect: string | undefined = undefined;
  /** Body chunks that arrived before the owner read them; `heldBytes` their size. */
  private held: Buffer[] | undefined = undefined;
  private heldBytes = 0;
  /** The owner reads the body (readBody()). */
  private reading = false;
  /** The response head, written with the first body bytes. */
  private pendingHead: string | Buffer | undefined = undefined;
  /** The response body goes chunk-encoded. */
  private chunked = false;
  /** The response has no body (HEAD, 1xx, 204, 304): writes are dropped. */
  private noBody = false;
  /** The connection closes after this response. */
  closeAfter = false;
  /** write() returned false: the owner hears of the drain. */
  awaitDrain = false;
  /**
   * The client waits for a 100 Continue before it sends the body (set by the proxy); a final
   * answer before one closes the connection, as the body never comes.
   */
  awaitingContinue = false;
  private lazyHeaders: Record<string, string | undefined> | undefined = undefined;

  constructor(
    readonly conn: ClientConnection,
    readonly method: string,
    readonly url: string,
    readonly rawHeaders: string[],
    readonly httpVersionMajor: number,
    readonly httpVersionMinor: number,
    /** The request allows keeping the connection (version and Connection header). */
    readonly keepAlive: boolean,
    readonly upgrade: boolean,
  ) {}

  get socket(): Socket {
    return this.conn.socket;
  }

  get headers(): Readonly<Record<string, string | undefined>> {
    return (this.lazyHeaders ??= headerObject(this.rawHeaders));
  }

  /** The body goes to the owner from now on: what was held first, then as it arrives. */
  readBody(): void {
    if (this.reading) return;
    this.reading = true;
    const held = this.held;
    if (held !== undefined) {
      this.held = undefined;
      this.heldBytes = 0;
      this.conn.resumeFor(PAUSE_HELD);
      for (const chunk of held) {
        if (!this.reading || this.finished) return;
        this.owner?.clientBody(this, chunk);
      }
    }
    if (this.complete && !this.finished) this.owner?.clientBodyEnd(this);
  }

  /** No more body to the owner (what arrives is dropped). */
  stopBody(): void {
    this.reading = false;
    this.held = undefined;
    this.heldBytes = 0;
    this.conn.resumeFor(PAUSE_HELD | PAUSE_BODY);
  }

  /** Backpressure from the server's side: reading from the client stops until resume(). */
  pause(): void {
    this.conn.pauseFor(PAUSE_BODY);
  }

  resume(): void {
    this.conn.resumeFor(PAUSE_BODY);
  }

  /** @internal A chunk of the body from the parser. */
  body(chunk: Buffer): void {
    if (this.finished) return;
    if (this.reading) {
      this.owner?.clientBody(this, chunk);
      return;
    }
    // llhttp hands out slices of the read buffer: held chunks are copied.
    (this.held ??= []).push(Buffer.from(chunk));
    this.heldBytes += chunk.length;
    if (this.heldBytes > HOLD_LIMIT) this.conn.pauseFor(PAUSE_HELD);
  }

  /** @internal The body is all in. */
  bodyEnd(): void {
    this.complete = true;
    if (this.reading && !this.finished) this.owner?.clientBodyEnd(this);
  }

  /** `100 Continue`, at once (once: it clears awaitingContinue). */
  writeContinue(): void {
    if (this.headersSent || this.finished) return;
    this.awaitingContinue = false;
    const socket = this.conn.socket;
    flushHeld(socket);
    socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
  }

  /**
   * The response's status line and header fields (`[name, value, …]`); framing, Connection,
   * Keep-Alive and Date are added here. Sent with the first body bytes, or at end().
   */
  writeHead(status: number, message: string | undefined, headers: readonly string[]): void {
    if (this.headersSent) throw new Error('the response head was already sent');
    this.headersSent = true;
    let head = `HTTP/1.1 ${status} ${message ?? STATUS_CODES[status] ?? ''}\r\n`;
    let hasLength = false;
    let hasDate = false;
    let hasConnection = false;
    let close = false;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      head += `${name}: ${value}\r\n`;
      const n = name.length;
      if (n === 14) {
        if (name.toLowerCase() === 'content-length') hasLength = true;
      } else if (n === 4) {
        if (name.toLowerCase() === 'date') hasDate = true;
      } else if (n === 10 && name.toLowerCase() === 'connection') {
        hasConnection = true;
        if (value.toLowerCase().includes('close')) close = true;
      }
    }
    this.noBody = this.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (!this.noBody && !hasLength) {
      if (this.httpVersionMinor >= 1 && this.httpVersionMajor === 1) {
        this.chunked = true;
        head += 'Transfer-Encoding: chunked\r\n';
      } else {
        close = true;
      }
    }
    this.pendingHead = head + this.headEnd(hasDate, hasConnection, close);
  }

  /**
   * writeHead for a head that scanResponseHead read at the start of `buf` (a Content-Length, no
   * Connection field sent on): its bytes go on as they came, less hop-by-hop fields and those
   * named `dropName` (lower case), with `fields` (CRLF-ended lines) after them, then Date,
   * Connection and Keep-Alive as writeHead adds them. The same bytes as writeHead gives for the
   * same head, without a string of it.
   */
  writeScannedHead(
    buf: Buffer,
    head: ScannedResponseHead,
    dropName: string | undefined,
    fields: string,
  ): void {
    if (this.headersSent) throw new Error('the response head was already sent');
    this.headersSent = true;
    this.noBody = this.method === 'HEAD';
    this.pendingHead = passedHead(buf, head, dropName, fields + this.headEnd(head.hasDate, false, false));
  }

  /**
   * The end of a response head: Date when the server sent none, Connection (and Keep-Alive) when
   * the head has none, then the empty line. Sets closeAfter: `close`, or the client or the
   * frontend is done with the connection.
   */
  private headEnd(hasDate: boolean, hasConnection: boolean, close: boolean): string {
    const conn = this.conn;
    if (!this.keepAlive || conn.handler.closing || this.awaitingContinue) close = true;
    this.closeAfter = close;
    let end = hasDate ? '' : `Date: ${httpDate()}\r\n`;
    if (!hasConnection) {
      end += close
        ? 'Connection: close\r\n'
        : `Connection: keep-alive\r\nKeep-Alive: timeout=${conn.handler.keepAliveSeconds}\r\n`;
    }
    return `${end}\r\n`;
  }

  /** A chunk of the response body; false when the client is slow (the owner hears clientDrain). */
  write(chunk: Buffer): boolean {
    if (this.finished || this.noBody || chunk.length === 0) return true;
    const socket = this.conn.socket;
    const head = this.pendingHead;
    let wrote: boolean;
    if (head === undefined) {
      flushHeld(socket);
      wrote = this.chunked ? writeChunk(socket, chunk) : socket.write(chunk);
    } else {
      // The head and the first bytes of the body in one write to the kernel.
      this.pendingHead = undefined;
      if (!this.chunked && chunk.length <= MERGE_LIMIT) {
        // A buffer of its own (the chunk is copied in): straight to the socket's handle, at the
        // end of the loop's turn (after whatever else this turn reads).
        writeOutSoon(socket, withHead(head, chunk));
        wrote = true;
      } else {
        flushHeld(socket);
        socket.cork();
        socket.write(head, 'latin1');
        wrote = this.chunked ? writeChunk(socket, chunk) : socket.write(chunk);
        socket.uncork();
      }
    }
    const more = canTakeMore(socket, wrote);
    if (!more) this.awaitDrain = true;
    return more;
  }

  /** Ends the response (with `body`, if given). */
  end(body?: Buffer): void {
    if (this.finished) return;
    const socket = this.conn.socket;
    const tail = this.chunked && !this.noBody ? LAST_CHUNK : '';
    if (body === undefined && this.pendingHead === undefined && tail === '') {
      // Nothing left to write: what write() holds for the end of the turn stays held.
      this.finish();
      return;
    }
    // Whatever is left (head, body, last chunk) in one write to the kernel, after what is held.
    flushHeld(socket);
    socket.cork();
    if (body !== undefined) this.write(body);
    const head = this.pendingHead;
    if (head !== undefined) {
      this.pendingHead = undefined;
      if (typeof head === 'string') socket.write(head + tail, 'latin1');
      else {
        socket.write(head);
        if (tail !== '') socket.write(tail, 'latin1');
      }
    } else if (tail !== '') {
      socket.write(tail, 'latin1');
    }
    socket.uncork();
    this.finish();
  }

  /** Cuts the connection (a response that cannot be completed). */
  destroy(): void {
    this.conn.socket.destroy();
  }

  /** The response is over: the owner hears it, and the connection moves on. */
  private finish(): void {
    this.finished = true;
    this.awaitDrain = false;
    // The rest of an unread body is dropped as it comes: nothing may hold reading back for it.
    if (!this.complete) this.stopBody();
    const owner = this.owner;
    this.owner = undefined;
    owner?.clientDone(this);
    this.conn.responded(this);
  }

  /** @internal The connection is gone before the response ended. */
  lost(): void {
    if (this.finished) return;
    this.finished = true;
    const owner = this.owner;
    this.owner = undefined;
    owner?.clientDone(this);
  }
}

/** Parsers of connections that went idle, for connections that have something to parse again. */
const spareParsers: TaggedParser[] = [];
const MAX_SPARE_PARSERS = 256;

/** One accepted client connection. */
export class ClientConnection {
  /** Taken when data comes, put back when the sweep finds the connection idle (shelveParser). */
  private parser: TaggedParser | undefined = undefined;
  /** In parser.execute(): the parser is not to be put back from within its own callbacks. */
  private executing = false;
  /** When the parser was taken (a parser's clock has no start until its first message begins). */
  private parserSince: number;
  /** Bytes came on the connection. */
  private gotBytes = false;
  /** Requests answered on the connection (counted up to 2: after its first, it keeps its parser). */
  private answered = 0;
  /** The request being answered; undefined while idle. */
  private current: FrontRequest | undefined = undefined;
  /** Requests parsed while `current` is answered (pipelining), in order. */
  private readonly queue: FrontRequest[] = [];
  /** The request whose body the parser is in. */
  private parsing: FrontRequest | undefined = undefined;
  /** Header and URL parts of a large header section (llhttp's onHeaders). */
  private headerParts: string[] | undefined = undefined;
  private urlPart = '';
  /** An Upgrade or CONNECT request: parsing stops after it. */
  private upgradeRequest: FrontRequest | undefined = undefined;
  /** Reasons reading is paused (PAUSE_* bits). */
  private paused = 0;
  /** A request was rejected or the input failed to parse: what follows is dropped. */
  rejected = false;
  /** When the connection last went idle (performance.now()); -1 while a request is under way. */
  idleSince: number;
  /** A parse error to answer once the response in progress is done. */
  private deferredError: { status: number; text: string } | undefined = undefined;
  closed = false;

  constructor(
    readonly socket: Socket,
    readonly handler: ClientHandler,
    /** For the parser (llhttp counts the request line and header section against it). */
    private readonly maxHeaderSize: number,
    private readonly connections: Set<ClientConnection>,
  ) {
    this.parserSince = this.idleSince = performance.now();
    (socket as TaggedSocket)[kConn] = this;
    // A socket this process accepted reads into READ_BUFFER (onClientRead); one handed over emits 'data'.
    if (!readsIntoUserBuffer(socket)) socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('drain', onDrain);
    socket.on('error', onError);
    socket.on('close', onClose);
    // Flowing, so that the end is emitted.
    socket.resume();
    connections.add(this);
  }

  /** The request being answered, if any. */
  get request(): FrontRequest | undefined {
    return this.current;
  }

  /** Pipelined requests wait for the client to take the answers written so far. */
  get waitingForDrain(): boolean {
    return this.waitingDrain;
  }

  /**
   * The client kept a request waiting past the client timeout: a request body that stopped
   * coming gets a 408 (when no answer has started); otherwise (an answer, or pipelined ones, it
   * does not take) the connection is closed.
   */
  clientTimedOut(): void {
    const req = this.current;
    if (req !== undefined && !req.complete && !req.headersSent && !this.rejected) {
      const err = new Error('request body timeout') as ParseError;
      err.code = 'ERR_HTTP_BODY_TIMEOUT';
      this.parseError(err);
      return;
    }
    this.socket.destroy();
  }

  /** Idle: no request under way, none waiting. */
  get idle(): boolean {
    return this.current === undefined && this.queue.length === 0 && this.parsing === undefined;
  }

  /** The headers of a request started `ms` ago or more are not all in (also: nothing sent since the connection opened). */
  headersLate(ms: number, now: number): boolean {
    if (this.rejected) return false;
    const p = this.parser;
    // Shelved: between two requests (the keep-alive timeout's business), or nothing sent yet.
    if (p === undefined) return !this.gotBytes && now - this.parserSince >= ms;
    if (headersCompleted(p)) return false;
    // Before its first request began, the parser's clock has no start: the parser's taking is used.
    return Math.min(headDuration(p), now - this.parserSince) >= ms;
  }

  private takeParser(): TaggedParser {
    const max = this.maxHeaderSize;
    let parser = spareParsers.pop();
    if (parser === undefined) parser = requestParser(CALLBACKS, max) as TaggedParser;
    else resetRequestParser(parser, max);
    parser[kConn] = this;
    return parser;
  }

  /**
   * Puts the parser back while the connection is idle between requests: an idle keep-alive
   * connection holds none (measured with 10,000 idle connections: 8.3 -> 6.5 KiB each); the next
   * data takes one again. After its first request a connection puts its parser back at once
   * (10,000 connections that send one request each and wait never hold 10,000 parsers at a time).
   * After later ones the frontend's sweep does it: a connection busy with one request after
   * another keeps its parser, which is ready for the next message as it is, instead of
   * re-initializing one per request (llhttp's initialize(), about 0.3 µs each).
   */
  shelveParser(): void {
    const p = this.parser;
    if (p === undefined || this.executing || !this.idle || this.rejected || this.closed) return;
    // Only at a message boundary: a request begun and not complete keeps its parser.
    if (this.gotBytes && !headersCompleted(p)) return;
    this.parser = undefined;
    p[kConn] = undefined;
    if (spareParsers.length < MAX_SPARE_PARSERS) spareParsers.push(p);
    else releaseParser(p);
  }

  pauseFor(reason: number): void {
    if (this.paused === 0 && !this.closed) this.socket.pause();
    this.paused |= reason;
  }

  resumeFor(reasons: number): void {
    if (this.paused === 0) return;
    this.paused &= ~reasons;
    if (this.paused === 0 && !this.closed) this.socket.resume();
  }

  /** Socket data: parsed; the parser calls back. */
  received(chunk: Buffer): void {
    if (this.rejected) return;
    this.gotBytes = true;
    let parser = this.parser;
    if (parser === undefined) {
      this.parserSince = performance.now();
      parser = this.parser = this.takeParser();
    }
    this.executing = true;
    const ret = parser.execute(chunk);
    this.executing = false;
    if (ret instanceof Error) {
      prepareParseError(ret, parser, chunk);
      this.parseError(ret as ParseError);
      return;
    }
    const up = this.upgradeRequest;
    if (up === undefined) {
      if (this.idleSince >= 0 && this.answered < 2) this.shelveParser();
      return;
    }
    // What follows the request is the tunnel's (copied: the read buffer is reused).
    const head = Buffer.from(chunk.subarray(ret));
    if (this.current === undefined && !this.waitingDrain) this.startUpgrade(up, head);
    else {
      // After the response in progress.
      this.upgradeHead = head;
      this.pauseFor(PAUSE_QUEUE);
    }
  }

  private upgradeHead: Buffer | undefined = undefined;
  /**
   * Pipelined requests wait (none in progress) until the client takes the answers written so
   * far: a client that sends requests and reads nothing would otherwise have every answer held
   * in the proxy's memory.
   */
  private waitingDrain = false;

  /** The client ended its side (FIN). */
  ended(): void {
    const parser = this.parser;
    if (!this.rejected && this.parsing !== undefined && parser !== undefined) {
      const ret = parser.finish();
      if (ret instanceof Error) {
        prepareParseError(ret, parser, undefined);
        this.parseError(ret as ParseError);
        return;
      }
    }
    // As node:http's server does (it is not half-open): the requests under way are abandoned
    // (their servers never finish them), and the connection is closed.
    const current = this.current;
    this.current = undefined;
    this.queue.length = 0;
    this.rejected = true;
    current?.lost();
    flushHeld(this.socket);
    this.socket.end();
  }

  /** The socket closed: a request in progress is over. */
  closedNow(): void {
    this.closed = true;
    this.connections.delete(this);
    if (this.parser !== undefined) releaseParser(this.parser);
    this.parser = undefined;
    const current = this.current;
    this.current = undefined;
    current?.lost();
    this.queue.length = 0;
  }

  drained(): void {
    const req = this.current;
    if (req !== undefined && req.awaitDrain) {
      req.awaitDrain = false;
      req.owner?.clientDrain(req);
    }
    if (this.waitingDrain && req === undefined && !this.closed && !this.rejected) {
      this.waitingDrain = false;
      this.advance();
    }
  }

  onHeadersComplete(
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number,
    url: string | undefined,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number {
    // After a rejected request nothing more is served on the connection.
    if (this.rejected) {
      this.headerParts = undefined;
      this.urlPart = '';
      this.parsing = undefined;
      return 0;
    }
    let raw = headers ?? [];
    if (this.headerParts !== undefined) {
      raw = this.headerParts.concat(raw);
      this.headerParts = undefined;
    }
    let target = url ?? '';
    if (this.urlPart !== '') {
      target = this.urlPart + target;
      this.urlPart = '';
    }
    const m = methodName(method);
    const req = new FrontRequest(
      this,
      m,
      target,
      raw,
      versionMajor,
      versionMinor,
      shouldKeepAlive,
      upgrade || m === 'CONNECT',
    );
    this.parsing = req;
    if (req.upgrade) {
      this.upgradeRequest = req;
      return 0;
    }
    this.idleSince = -1;
    if (this.current === undefined && !this.waitingDrain && !this.socket.writableNeedDrain) this.start(req);
    else {
      this.queue.push(req);
      // Not started because the client has not taken the answers written so far (drained()).
      if (this.current === undefined) this.waitingDrain = true;
      if (this.queue.length >= QUEUE_LIMIT) this.pauseFor(PAUSE_QUEUE);
    }
    return 0;
  }

  onHeaderPart(headers: string[], url: string): void {
    this.headerParts = this.headerParts === undefined ? headers : this.headerParts.concat(headers);
    this.urlPart += url;
  }

  onBody(chunk: Buffer): void {
    const req = this.parsing;
    if (req !== undefined && !req.upgrade) req.body(chunk);
  }

  onMessageComplete(): void {
    const req = this.parsing;
    this.parsing = undefined;
    if (req === undefined || req.upgrade) return;
    req.bodyEnd();
    // A response that ended before the body did: the connection moves on now.
    if (req === this.current && req.finished) this.advance();
  }

  private start(req: FrontRequest): void {
    this.current = req;
    this.handler.request(req);
  }

  /** The response of `req` ended. */
  responded(req: FrontRequest): void {
    if (req !== this.current) return;
    if (req.closeAfter) {
      this.current = undefined;
      this.rejected = true;
      this.queue.length = 0;
      // Closed once the answer is all out.
      flushHeld(this.socket);
      this.socket.destroySoon();
      return;
    }
    // The rest of its body is read and dropped first.
    if (req.complete) this.advance();
  }

  /** The current request is done: the next one, or idle. */
  private advance(): void {
    this.current = undefined;
    if (this.deferredError !== undefined) {
      this.answerError(this.deferredError.status, this.deferredError.text);
      return;
    }
    if (this.queue.length > 0 && this.socket.writableNeedDrain) {
      // The client has not taken the answers written so far: the next waits for its 'drain'.
      this.waitingDrain = true;
      return;
    }
    const next = this.queue.shift();
    if (next !== undefined) {
      if (this.queue.length < QUEUE_LIMIT && this.upgradeRequest === undefined) this.resumeFor(PAUSE_QUEUE);
      // Not from within the previous response's call stack.
      process.nextTick(startQueued, this, next);
      return;
    }
    const up = this.upgradeRequest;
    if (up !== undefined) {
      const head = this.upgradeHead ?? Buffer.alloc(0);
      this.upgradeHead = undefined;
      this.startUpgrade(up, head);
      return;
    }
    this.idleSince = performance.now();
    if (this.answered < 2 && ++this.answered < 2) this.shelveParser();
  }

  /** @internal */
  startQueued(req: FrontRequest): void {
    if (this.closed || this.rejected) return;
    this.start(req);
  }

  /** Gives the socket to the handler for an Upgrade or CONNECT. */
  private startUpgrade(req: FrontRequest, head: Buffer): void {
    this.upgradeRequest = undefined;
    this.rejected = true;
    const socket = this.socket as TaggedSocket;
    // The answers before it go out before anything the handler writes.
    flushHeld(socket);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('drain', onDrain);
    socket.off('error', onError);
    socket.off('close', onClose);
    socket[kConn] = undefined;
    socket.pause();
    this.closed = true;
    this.connections.delete(this);
    if (this.parser !== undefined) releaseParser(this.parser);
    this.parser = undefined;
    this.handler.upgrade(req, socket, head);
  }

  /**
   * The client's input failed to parse (or its headers came too late): answered with the status
   * the error calls for and the connection closed. A request whose body failed while it is being
   * proxied is abandoned at once (the server never gets the whole request); a failure in a later,
   * pipelined request is answered after the response in progress.
   */
  parseError(err: ParseError): void {
    if (this.rejected) return;
    this.rejected = true;
    const status = statusOf(err.code);
    const text = `${status} ${STATUS_CODES[status]}: ${describe(status, err)}\n`;
    const current = this.current;
    this.queue.length = 0;
    if (current !== undefined && !current.finished) {
      if (current.complete) {
        this.deferredError = { status, text };
        return;
      }
      if (!current.headersSent && this.socket.writable) {
        flushHeld(this.socket);
        this.socket.write(errorResponse(status, text), 'latin1');
      }
      this.socket.destroy();
      return;
    }
    this.answerError(status, text);
  }

  /** Headers not in within the headers timeout: 408. */
  headersTimedOut(): void {
    const err = new Error('request headers timeout') as ParseError;
    err.code = 'ERR_HTTP_REQUEST_TIMEOUT';
    this.parseError(err);
  }

  /** Writes an error answer, half-closes, and drops the client's further input for a moment before closing. */
  private answerError(status: number, text: string): void {
    this.rejected = true;
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) {
      socket.destroy();
      return;
    }
    flushHeld(socket);
    socket.end(errorResponse(status, text), 'latin1');
    this.resumeFor(PAUSE_BODY | PAUSE_HELD | PAUSE_QUEUE);
    const linger = setTimeout(() => socket.destroy(), LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  }
}

type ParseError = Error & { code?: string; reason?: string };

function startQueued(conn: ClientConnection, req: FrontRequest): void {
  conn.startQueued(req);
}

/** The status for a parser error. */
function statusOf(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return 413;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_BODY_TIMEOUT':
      return 408;
    case 'HPE_PAUSED_H2_UPGRADE':
      return 505;
    default:
      return 400;
  }
}

function describe(status: number, err: ParseError): string {
  switch (status) {
    case 408:
      return err.code === 'ERR_HTTP_BODY_TIMEOUT'
        ? 'the rest of the request body did not arrive in time'
        : 'the request headers did not arrive in time';
    case 431:
      return 'the request header section is too large';
    case 413:
      return 'chunk extensions too large';
    case 505:
      return 'HTTP/2 is not supported on this port';
    default:
      return `malformed request (${err.reason ?? err.code})`;
  }
}

function errorResponse(status: number, text: string): string {
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`
  );
}

/** node:http's req.headers from a raw list: lower-cased names, repeats joined. */
function headerObject(raw: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = Object.create(null) as Record<string, string | undefined>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (name === 'cookie') out[name] = `${prev}; ${value}`;
    else if (name !== 'content-length' && name !== 'host') out[name] = `${prev}, ${value}`;
  }
  return out;
}

/** The Date header's value, computed at most once per second. */
let dateCache: string | undefined;
function httpDate(): string {
  if (dateCache === undefined) {
    dateCache = new Date().toUTCString();
    setTimeout(clearDate, 1000 - new Date().getMilliseconds()).unref();
  }
  return dateCache;
}
function clearDate(): void {
  dateCache = undefined;
}

const CALLBACKS = {
  onHeaders(this: TaggedParser, headers: string[], url: string): void {
    this[kConn]?.onHeaderPart(headers, url);
  },
  onHeadersComplete(
    this: TaggedParser,
    versionMajor: number,
    versionMinor: number,
    headers: string[] | undefined,
    method: number | undefined,
    url: string | undefined,
    _statusCode: number,
    _statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number {
    const conn = this[kConn];
    return conn === undefined
      ? 0
      : conn.onHeadersComplete(
          versionMajor,
          versionMinor,
          headers,
          method ?? 1,
          url,
          upgrade,
          shouldKeepAlive,
        );
  },
  onBody(this: TaggedParser, chunk: Buffer): void {
    this[kConn]?.onBody(chunk);
  },
  onMessageComplete(this: TaggedParser): void {
    this[kConn]?.onMessageComplete();
  },
};

/** `n` bytes read into READ_BUFFER from a client socket (the onread callback of accepted sockets). */
export function onClientRead(this: Socket, n: number): boolean {
  const conn = (this as TaggedSocket)[kConn];
  // A view: the parser copies what it keeps (body chunks, header strings).
  if (conn !== undefined) conn.received(READ_BUFFER.subarray(0, n));
  // An upgraded connection (a tunnel) reads as a stream: 'data' events, backpressure by push().
  else return this.push(Buffer.from(READ_BUFFER.subarray(0, n)));
  return true;
}

function onData(this: TaggedSocket, chunk: Buffer): void {
  this[kConn]?.received(chunk);
}

function onEnd(this: TaggedSocket): void {
  this[kConn]?.ended();
}

function onDrain(this: TaggedSocket): void {
  this[kConn]?.drained();
}

function onError(this: TaggedSocket): void {
  // The 'close' that follows does the cleanup.
  this.destroy();
}

function onClose(this: TaggedSocket): void {
  this[kConn]?.closedNow();
}
