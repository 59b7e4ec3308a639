/**
 * One keep-alive connection from the proxy to a server: a socket and Node's HTTP response parser
 * (http-parser.ts), carrying one request at a time. What node:http's client does with a
 * ClientRequest, an Agent and an IncomingMessage per request is reduced here to what the proxy
 * needs: the request head is written as the proxy built it, the response's head, body chunks and
 * end go straight to the request's exchange (ConnectionUser) from the parser's callbacks.
 *
 * A body with a Content-Length does not go through the parser: llhttp would copy every piece of
 * it into a new buffer, one more copy and one more allocation per read on top of the proxy's own
 * (at 64 KiB answers, ~128 KiB of short-lived memory per request, which the C library gave back
 * to the kernel and faulted in again, page by page, after the worker had been idle). The parser
 * stops after such a head; the body's bytes are copied once out of READ_BUFFER into recycled
 * memory (read-buffer.ts) and relayed, and the parser is reset for the next response.
 *
 * Most heads do not go to the parser either: a head in the common subset response-head.ts reads
 * (whole in one read, a Content-Length, nothing unusual) is read there, with the same results, and
 * llhttp is left untouched at its message boundary. Anything else goes to llhttp, which then has
 * every byte until the end of that message.
 */
import { connect, type Socket } from 'node:net';
import {
  type HttpParser,
  prepareParseError,
  releaseParser,
  resetResponseParser,
  responseParser,
} from './http-parser.js';
import { copyOf, READ_BUFFER, release } from './read-buffer.js';
import { type ScannedResponseHead, scanResponseHead } from './response-head.js';

/** Whoever sends a request over the connection: the proxy's exchange. */
export interface ConnectionUser {
  /** A new connection is established (a reused one is established already). */
  upstreamConnected(conn: UpstreamConnection): void;
  /**
   * The response's head. Returns true when no body follows even if the head announces one (the
   * answer to a HEAD request).
   */
  upstreamHead(conn: UpstreamConnection, status: number, message: string, rawHeaders: string[]): boolean;
  /**
   * upstreamHead for a head scanResponseHead read at the start of `buf` (its strings, if wanted,
   * from responseFields, before anything else is read).
   */
  upstreamScannedHead(conn: UpstreamConnection, buf: Buffer, head: ScannedResponseHead): boolean;
  /** An informational (1xx) response before the final one: 100 Continue, 103 Early Hints. */
  upstreamInformational(conn: UpstreamConnection, status: number): void;
  /**
   * A chunk of the response body. Returns true when nothing refers to `chunk` any more (the
   * client's socket took it whole, or it was dropped): its memory may serve a later chunk.
   */
  upstreamBody(conn: UpstreamConnection, chunk: Buffer): boolean;
  /** The whole response is in. */
  upstreamComplete(conn: UpstreamConnection): void;
  /**
   * The connection failed before the response was complete: an error, a parse error (code
   * `HPE_*`), or a close (code ECONNRESET, `socket hang up`, as node:http reports it).
   */
  upstreamFailed(conn: UpstreamConnection, err: NodeJS.ErrnoException): void;
}

/** Where a connection goes back to between requests. */
export interface ConnectionHome {
  /** The connection closed: forget it. */
  closed(conn: UpstreamConnection): void;
}

const kConn = Symbol('tandem.upstreamConnection');
type TaggedSocket = Socket & { [kConn]?: UpstreamConnection };
type TaggedParser = HttpParser & { [kConn]?: UpstreamConnection };

/** TCP keep-alive probes on idle pooled connections, as node:http's keep-alive Agent sets them. */
const TCP_KEEPALIVE_MS = 1000;

export class UpstreamConnection {
  readonly socket: Socket;
  private readonly parser: HttpParser;
  /** The exchange whose request the connection carries now; undefined while idle. */
  user: ConnectionUser | undefined = undefined;
  /** Requests sent on it so far (more than 1: the current one reuses it). */
  uses = 0;
  connected = false;
  /** The server may keep the connection for another request (as the last response head said). */
  keepAlive = false;
  /** An informational response's end is not the end of the exchange. */
  private informational = false;
  /**
   * Bytes of a Content-Length body still to come, relayed as they are read without going through
   * the parser (which would copy each piece once more); -1 when the parser has the body.
   */
  private rawBody = -1;
  /** llhttp is inside a message (from its first byte to its end): what comes next is its. */
  inParser = false;
  /** Header parts of a large header section (llhttp's onHeaders). */
  private headerParts: string[] | undefined = undefined;
  private error: NodeJS.ErrnoException | undefined = undefined;
  isClosed = false;

  constructor(
    host: string,
    port: number,
    private readonly home: ConnectionHome,
  ) {
    const socket = connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: onRead },
    }) as TaggedSocket;
    socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
    socket[kConn] = this;
    socket.on('connect', onConnect);
    socket.on('end', onEnd);
    // Flowing, so that the end is emitted (the data itself comes to onRead, never to the stream).
    socket.resume();
    socket.on('error', onError);
    socket.on('close', onClose);
    this.socket = socket;
    const parser = responseParser(CALLBACKS) as TaggedParser;
    parser[kConn] = this;
    this.parser = parser;
  }

  /** Takes the connection for `user`'s request. */
  take(user: ConnectionUser): void {
    this.user = user;
    this.uses++;
    this.keepAlive = false;
    // The last response may have ended while its client held the socket back.
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Closes the connection at once (nothing is reported to its user any more). */
  destroy(err?: Error): void {
    this.user = undefined;
    this.socket.destroy(err);
  }

  /** Fails the current exchange with `err` (timeouts), and closes the connection. */
  fail(err: NodeJS.ErrnoException): void {
    this.error ??= err;
    this.socket.destroy();
  }

  /** The end of the response was read: the user may release the connection. */
  private completed(): void {
    const user = this.user;
    if (user !== undefined) user.upstreamComplete(this);
  }

  /**
   * Socket data (a view of READ_BUFFER, valid until the next read): parsed, and the parser calls
   * back; the bytes of a Content-Length body go to the user without the parser.
   */
  received(data: Buffer): void {
    let start = 0;
    if (this.rawBody > 0) {
      start = this.relay(data, 0);
      if (start === data.length) return;
    }
    if (this.user === undefined) {
      // A server talking on an idle connection is not one to send a request to.
      this.socket.destroy();
      return;
    }
    const chunk = start === 0 ? data : data.subarray(start);
    if (!this.inParser) {
      const head = scanResponseHead(chunk);
      if (head !== undefined) {
        this.simpleHead(chunk, head);
        return;
      }
    }
    const ret = this.parser.execute(chunk);
    if (ret instanceof Error) {
      prepareParseError(ret, this.parser, Buffer.from(chunk));
      this.error ??= ret as NodeJS.ErrnoException;
      this.socket.destroy();
      return;
    }
    if (this.rawBody > 0) {
      // The parser stopped after the head (onHeadersComplete): it is made ready for the next
      // response, and what follows the head here is body.
      resetResponseParser(this.parser);
      if (ret < chunk.length) this.received(chunk.subarray(ret));
    }
  }

  /** A head response-head.ts read at the start of `chunk`: as onHeadersComplete for it, then its body. */
  private simpleHead(chunk: Buffer, head: ScannedResponseHead): void {
    this.keepAlive = head.keepAlive;
    const noBody = this.user!.upstreamScannedHead(this, chunk, head);
    if (noBody || head.length === 0) this.completed();
    else this.rawBody = head.length;
    if (head.end < chunk.length) this.received(chunk.subarray(head.end));
  }

  /** Relays the body bytes of `data` from `start` on; returns where they end. */
  private relay(data: Buffer, start: number): number {
    const end = Math.min(data.length, start + this.rawBody);
    this.rawBody -= end - start;
    const user = this.user;
    if (user !== undefined) {
      const body = copyOf(data, start, end);
      if (user.upstreamBody(this, body)) release(body);
    }
    if (this.rawBody === 0) {
      this.rawBody = -1;
      this.completed();
    }
    return end;
  }

  /** The server ended its side: a response delimited by the close completes now. */
  ended(): void {
    // A Content-Length body cut short: the close reports it (socket hang up).
    if (this.user === undefined || this.rawBody > 0) return;
    const ret = this.parser.finish();
    if (ret instanceof Error) {
      prepareParseError(ret, this.parser, undefined);
      this.error ??= ret as NodeJS.ErrnoException;
    }
  }

  /** The socket closed: a request still on it failed. */
  closedNow(): void {
    this.isClosed = true;
    releaseParser(this.parser);
    this.home.closed(this);
    const user = this.user;
    this.user = undefined;
    if (user !== undefined) user.upstreamFailed(this, this.error ?? hangUp());
  }

  onError(err: NodeJS.ErrnoException): void {
    this.error ??= err;
  }

  onHeadersComplete(
    headers: string[] | undefined,
    statusCode: number,
    statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number {
    let raw = headers;
    if (this.headerParts !== undefined) {
      raw = raw === undefined ? this.headerParts : this.headerParts.concat(raw);
      this.headerParts = undefined;
    }
    const user = this.user;
    if (user === undefined) return 1;
    if (statusCode < 200 && statusCode !== 101) {
      this.informational = true;
      user.upstreamInformational(this, statusCode);
      return 1;
    }
    if (upgrade || statusCode === 101) {
      // Switching protocols without having asked to: no HTTP answer to relay.
      const err = new Error(`the server switched protocols (HTTP ${statusCode})`) as NodeJS.ErrnoException;
      err.code = 'HPE_UNEXPECTED_UPGRADE';
      this.fail(err);
      return 1;
    }
    this.keepAlive = shouldKeepAlive;
    const fields = raw ?? [];
    if (user.upstreamHead(this, statusCode, statusMessage, fields)) return 1;
    if (statusCode === 204 || statusCode === 304) return 0;
    const length = contentLength(fields);
    if (length <= 0) return 0;
    // The body is relayed without the parser: it stops after this head (2: no body, and return
    // from execute), and is reset for the next response.
    this.rawBody = length;
    return 2;
  }

  onHeaderPart(headers: string[]): void {
    this.headerParts = this.headerParts === undefined ? headers : this.headerParts.concat(headers);
  }

  onBody(chunk: Buffer): void {
    this.user?.upstreamBody(this, chunk);
  }

  onMessageComplete(): void {
    this.inParser = false;
    // The end the parser sees of a head whose body is relayed raw: not the end of the response.
    if (this.rawBody > 0) return;
    if (this.informational) {
      this.informational = false;
      return;
    }
    this.completed();
  }
}

/**
 * The Content-Length of a response head, -1 when it has none or a Transfer-Encoding (the parser
 * has rejected a malformed or repeated one already).
 */
function contentLength(raw: readonly string[]): number {
  let length = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 14) {
      if (name.toLowerCase() === 'content-length') length = Number(raw[i + 1]!.trim());
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      return -1;
    }
  }
  return Number.isSafeInteger(length) ? length : -1;
}

/** `socket hang up`: the server closed the connection before the whole response, as node:http says it. */
function hangUp(): NodeJS.ErrnoException {
  const err = new Error('socket hang up') as NodeJS.ErrnoException;
  err.code = 'ECONNRESET';
  return err;
}

const CALLBACKS = {
  onMessageBegin(this: TaggedParser): void {
    const conn = this[kConn];
    if (conn !== undefined) conn.inParser = true;
  },
  onHeaders(this: TaggedParser, headers: string[]): void {
    this[kConn]?.onHeaderPart(headers);
  },
  onHeadersComplete(
    this: TaggedParser,
    _versionMajor: number,
    _versionMinor: number,
    headers: string[] | undefined,
    _method: number | undefined,
    _url: string | undefined,
    statusCode: number,
    statusMessage: string,
    upgrade: boolean,
    shouldKeepAlive: boolean,
  ): number {
    const conn = this[kConn];
    return conn === undefined
      ? 1
      : conn.onHeadersComplete(headers, statusCode, statusMessage, upgrade, shouldKeepAlive);
  },
  onBody(this: TaggedParser, chunk: Buffer): void {
    this[kConn]?.onBody(chunk);
  },
  onMessageComplete(this: TaggedParser): void {
    this[kConn]?.onMessageComplete();
  },
};

function onConnect(this: TaggedSocket): void {
  const conn = this[kConn]!;
  conn.connected = true;
  conn.user?.upstreamConnected(conn);
}

/** `n` bytes read into READ_BUFFER. */
function onRead(this: TaggedSocket, n: number): boolean {
  this[kConn]!.received(READ_BUFFER.subarray(0, n));
  return true;
}

function onEnd(this: TaggedSocket): void {
  this[kConn]!.ended();
}

function onError(this: TaggedSocket, err: NodeJS.ErrnoException): void {
  this[kConn]!.onError(err);
}

function onClose(this: TaggedSocket): void {
  this[kConn]!.closedNow();
}
