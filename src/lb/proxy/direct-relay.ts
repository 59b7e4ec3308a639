/**
 * The data path of an established TCP session, past net.Socket's streams: each side's libuv handle
 * reads into READ_BUFFER and calls readDirect, which writes the chunk straight to the other side's
 * handle. Only the end of a direction (a FIN, a reset, a read error) goes back to Node's own read
 * handler, so that the sockets end, fail and close as they always do ('end', 'error', 'close').
 *
 * What it saves per chunk, against a socket's `onread` callback and `write()`: Node's read handler
 * and its timer refresh, the Writable's bookkeeping (a WriteWrap, a callback object and a nextTick
 * for every write, even one the kernel took at once), a second timer refresh, and (for chunks up
 * to SMALL) the two buffer objects of a copy. Measured on this project's 2-core machine at
 * concurrency 64 with small answers, alternating wrk runs on the same backends: 9.3 µs of user
 * CPU per request against 13.6 through the streams.
 *
 * Backpressure: a write the kernel did not take whole stays queued in libuv (holding its chunk), and
 * the side it came from stops reading until it is out. At most one chunk is queued per direction.
 *
 * writeOut writes one chunk of the HTTP proxy the same way: straight to the handle when nothing
 * is queued before it; writeOutSoon does it at the end of the event loop's turn.
 *
 * It needs Node's stream binding (WriteWrap and the shared read/write state), which Node.js gives
 * through `process.binding('stream_wrap')`. Where that is missing, or with TANDEM_DIRECT_RELAY=0
 * in the environment, relayDirectly answers undefined and the proxy relays through the sockets'
 * streams as before.
 */
import type { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { chunkOf, READ_BUFFER, release } from './read-buffer.js';

/** A write request for a stream handle (Node's WriteWrap). */
interface WriteReq {
  handle: StreamHandle;
  oncomplete: (this: WriteReq, status: number) => void;
  async: boolean;
  bytes: number;
  buffer: Buffer | null;
  callback: null;
  /** writeOut: the socket written to. */
  socket: OutSocket | null;
}

/** The libuv stream handle under a net.Socket (TCPWrap), as far as used here. */
interface StreamHandle {
  onread: (this: StreamHandle, arrayBuffer?: ArrayBuffer) => unknown;
  reading: boolean;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, data: Buffer): number;
  writeLatin1String(req: WriteReq, data: string): number;
  useUserBuffer(buffer: Buffer): void;
  [kSide]?: Side;
}

interface StreamBinding {
  WriteWrap: new () => WriteReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const kSide = Symbol('tandem.relaySide');

/** Node's stream binding, or undefined where this Node.js does not give it. */
function loadBinding(): StreamBinding | undefined {
  if (process.env['TANDEM_DIRECT_RELAY'] === '0') return undefined;
  try {
    const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
    const b = binding?.('stream_wrap') as Partial<StreamBinding> | undefined;
    if (
      typeof b?.WriteWrap === 'function' &&
      b.streamBaseState instanceof Int32Array &&
      typeof b.kReadBytesOrError === 'number' &&
      typeof b.kLastWriteWasAsync === 'number'
    ) {
      return b as StreamBinding;
    }
  } catch {
    // Not given by this Node.js: relay through the streams.
  }
  return undefined;
}

const binding = loadBinding();
const state = binding?.streamBaseState ?? new Int32Array(0);
const READ_BYTES = binding?.kReadBytesOrError ?? 0;
const WRITE_WAS_ASYNC = binding?.kLastWriteWasAsync ?? 0;

/** A request for the next write: one serves every write the kernel takes at once (libuv keeps none of those). */
let spareReq: WriteReq | undefined;

function newReq(): WriteReq {
  const req = new binding!.WriteWrap();
  req.oncomplete = onWritten;
  req.async = false;
  req.bytes = 0;
  req.buffer = null;
  req.callback = null;
  req.socket = null;
  return req;
}

/** What both directions of one relayed session share: how often a byte moved, for the idle check. */
export class RelayLink {
  /** Chunks read or written so far, either way; the idle check compares it between its looks. */
  activity = 0;
}

/** How many looks in a row must find no byte moved before a directly relayed session is idle. */
const IDLE_LOOKS = 4;

/**
 * Calls `onIdle` once no byte moved either way over `link` for `idleMs` (to 1.25 × `idleMs`):
 * direct reads and writes do not restart a socket's timer, so `socket`'s timer looks at the
 * link's activity every quarter of the time instead.
 */
export function closeWhenIdle(link: RelayLink, socket: Socket, idleMs: number, onIdle: () => void): void {
  const interval = Math.max(1, Math.ceil(idleMs / IDLE_LOOKS));
  let seen = link.activity;
  let quiet = 0;
  socket.setTimeout(interval);
  socket.on('timeout', () => {
    if (link.activity !== seen) {
      seen = link.activity;
      quiet = 0;
    } else if (++quiet >= IDLE_LOOKS) {
      onIdle();
      return;
    }
    socket.setTimeout(interval);
  });
}

/** One side of a relayed session: its socket and handle, and the other side. */
class Side {
  peer!: Side;
  /** Writes to this side libuv still holds (the kernel did not take them whole). */
  pending = 0;
  /** This side stopped reading until its peer's pending writes are out. */
  held = false;

  constructor(
    readonly socket: Socket,
    readonly handle: StreamHandle,
    /** Node's read handler of the handle: it gets the end of the direction (EOF, errors). */
    readonly nodeRead: StreamHandle['onread'],
    readonly link: RelayLink,
  ) {}
}

/**
 * Whether the sockets of a session can be relayed directly: Node's binding is there, both sockets
 * have a handle, and nothing was read into either socket's stream already.
 */
function relayable(a: Socket, b: Socket): boolean {
  return (
    binding !== undefined &&
    handleOf(a) !== undefined &&
    handleOf(b) !== undefined &&
    a.readableLength === 0 &&
    b.readableLength === 0
  );
}

function handleOf(socket: Socket): StreamHandle | undefined {
  const handle = getHandle(socket);
  return handle != null && typeof handle.writeBuffer === 'function' ? handle : undefined;
}

function getHandle(socket: Socket): StreamHandle | null | undefined {
  return (socket as Socket & { _handle?: StreamHandle | null })._handle;
}

/**
 * Relays the bytes of `a` and `b`, two connected sockets not reading yet, directly between their
 * handles; the sockets still end, fail and close as sockets. `aReadsIntoBuffer` and
 * `bReadsIntoBuffer`: whether the socket was made with `onread: { buffer: READ_BUFFER }` (else it
 * is switched to it here). Returns the link whose `activity` says whether bytes moved, or
 * undefined when they cannot be relayed directly (the caller relays through the streams). Call
 * the sockets' resume() afterwards to start reading.
 */
export function relayDirectly(
  a: Socket,
  aReadsIntoBuffer: boolean,
  b: Socket,
  bReadsIntoBuffer: boolean,
): RelayLink | undefined {
  if (!relayable(a, b)) return undefined;
  const link = new RelayLink();
  const sa = attach(a, aReadsIntoBuffer, link);
  const sb = attach(b, bReadsIntoBuffer, link);
  sa.peer = sb;
  sb.peer = sa;
  return link;
}

function attach(socket: Socket, readsIntoBuffer: boolean, link: RelayLink): Side {
  const handle = handleOf(socket)!;
  // A socket made without `onread` (one another process accepted) would read into a new buffer
  // of Node's for every read.
  if (!readsIntoBuffer) handle.useUserBuffer(READ_BUFFER);
  const side = new Side(socket, handle, handle.onread, link);
  handle[kSide] = side;
  handle.onread = readDirect;
  return side;
}

/**
 * Chunks up to this long are copied into `scratch` and written from a view of it kept for their
 * length: no allocation for a chunk of a length seen before. Longer ones go into memory of their
 * own (chunkOf), recycled once written.
 */
const SMALL = 4096;
/** READ_BUFFER's first n bytes, for each length n up to SMALL seen so far. */
const readViews: (Buffer | undefined)[] = new Array<Buffer | undefined>(SMALL + 1);
/** Where a small chunk goes on its way out; replaced when libuv keeps a write of it (below). */
let scratch = Buffer.allocUnsafeSlow(SMALL);
let scratchViews: (Buffer | undefined)[] = new Array<Buffer | undefined>(SMALL + 1);

/** The `n` bytes just read into READ_BUFFER, in memory the next read does not overwrite. */
function outgoing(n: number): Buffer {
  if (n > SMALL) return chunkOf(n);
  const chunk = (scratchViews[n] ??= scratch.subarray(0, n));
  chunk.set((readViews[n] ??= READ_BUFFER.subarray(0, n)));
  return chunk;
}

/** A read on a relayed handle (`this`): a chunk goes on to the other side; the end of the direction to Node. */
function readDirect(this: StreamHandle, arrayBuffer?: ArrayBuffer): unknown {
  const n = state[READ_BYTES]!;
  const side = this[kSide]!;
  if (n <= 0) return side.nodeRead.call(this, arrayBuffer);
  side.link.activity++;
  const out = side.peer;
  // Its socket was destroyed (net.Socket lets go of the handle at once): the session is closing.
  if (getHandle(out.socket) !== out.handle) return undefined;
  const chunk = outgoing(n);
  const req = spareReq ?? newReq();
  req.handle = out.handle;
  const err = out.handle.writeBuffer(req, chunk);
  if (err !== 0) {
    spareReq = req;
    out.socket.destroy(errnoError(err, 'write'));
    return undefined;
  }
  if (state[WRITE_WAS_ASYNC] === 0) {
    spareReq = req;
    if (n > SMALL) release(chunk);
    return undefined;
  }
  // libuv holds the rest of the chunk (and this request) until the kernel takes it: this side
  // reads no more until then, and a small chunk's scratch memory is now the write's.
  spareReq = undefined;
  req.oncomplete = onWritten;
  req.buffer = chunk;
  if (n <= SMALL) {
    scratch = Buffer.allocUnsafeSlow(SMALL);
    scratchViews = new Array<Buffer | undefined>(SMALL + 1);
  }
  out.pending++;
  side.held = true;
  this.reading = false;
  this.readStop();
  return undefined;
}

/** A write libuv held is out (or failed): the side it came from reads again. */
function onWritten(this: WriteReq, status: number): void {
  const out = this.handle[kSide]!;
  const chunk = this.buffer;
  this.buffer = null;
  out.pending--;
  if (status < 0) {
    // Cancelled by a close, or the connection failed: the socket says so ('error', 'close').
    out.socket.destroy(errnoError(status, 'write'));
    return;
  }
  out.link.activity++;
  if (chunk !== null) release(chunk);
  const from = out.peer;
  if (out.pending === 0 && from.held) {
    from.held = false;
    if (!from.socket.destroyed) {
      from.handle.reading = true;
      from.handle.readStart();
    }
  }
}

const kDirectPending = Symbol('tandem.directWritePending');
const kHeld = Symbol('tandem.heldWrite');
type OutSocket = Socket & {
  _handle?: StreamHandle | null;
  [kDirectPending]?: boolean;
  [kHeld]?: Buffer | string | undefined;
};

/** Sockets with a write held by writeOutSoon, in the order they were given one. */
const held: OutSocket[] = [];

/** HTTP exchanges under way in this process (the HTTP proxy counts them). */
let exchanges = 0;
/** Writes writeOutSoon held so far (for tests: whether a path went through it). */
let heldCount = 0;

/** How many writes writeOutSoon has held in this process so far. */
export function writesHeldSoFar(): number {
  return heldCount;
}

/** One more (1) or one fewer (-1) HTTP exchange under way: writeOutSoon holds writes only while two or more are. */
export function exchangesUnderWay(delta: 1 | -1): void {
  exchanges += delta;
}

/**
 * writeOut at the end of this turn of the event loop (its check phase, after the turn's reads)
 * instead of now, when it could go straight to the handle now and other exchanges are under way;
 * otherwise (something queued before it, corked, connecting; a lone exchange) writeOut at once.
 * The reads of one turn then come before its writes, as HAProxy orders them: a process given
 * several messages in one turn is woken once for them, not once each. Measured: the README's
 * Architecture section.
 *
 * The write stays first in line: writeOut writes a held write before its own, and whoever writes
 * to or ends the socket otherwise calls flushHeld first (client-connection.ts; the HTTP proxy
 * holds a request head for its server only when no body follows it). A socket destroyed
 * meanwhile gets nothing (as a queued write is dropped by destroy()). `data` must not change
 * until it is written.
 */
export function writeOutSoon(socket: Socket, data: Buffer | string): void {
  const s = socket as OutSocket;
  // A lone exchange has nothing to share a wakeup with: holding its writes would only delay them.
  if (exchanges < 2 || !directNow(s) || s[kHeld] !== undefined) {
    writeOut(s, data);
    return;
  }
  s[kHeld] = data;
  heldCount++;
  if (held.push(s) === 1) setImmediate(flushAllHeld);
}

/** Writes now what writeOutSoon holds for `socket`, if anything. */
export function flushHeld(socket: Socket): void {
  const s = socket as OutSocket;
  const data = s[kHeld];
  if (data === undefined) return;
  s[kHeld] = undefined;
  if (!s.destroyed) writeOut(s, data);
}

/** Bytes writeOutSoon holds for `socket`. */
export function heldLength(socket: Socket): number {
  return (socket as OutSocket)[kHeld]?.length ?? 0;
}

function flushAllHeld(): void {
  for (let i = 0; i < held.length; i++) flushHeld(held[i]!);
  held.length = 0;
}

/** Whether a write to `s` now would go straight to its handle (writeOut's fast path). */
function directNow(s: OutSocket): boolean {
  return (
    binding !== undefined &&
    s._handle != null &&
    s[kDirectPending] !== true &&
    s.writableLength === 0 &&
    s.writableCorked === 0 &&
    !s.connecting &&
    !s.writableEnded
  );
}

/**
 * Writes `data` (a Buffer, or a string of latin1 text) to `socket` as `socket.write()` would, but
 * straight to its handle when nothing is queued before it: not in the socket's stream (nothing
 * buffered, not corked, connected) and no earlier direct write still held by libuv. The answer
 * is socket.write()'s for backpressure: false once the stream holds more than its high-water
 * mark. A direct write libuv holds counts as taken: what is written next goes through the stream,
 * behind it in libuv's queue, and the stream's own backpressure applies from there. A Buffer
 * given here must not be reused until the socket has written it (as with socket.write()).
 */
export function writeOut(socket: Socket, data: Buffer | string): boolean {
  const s = socket as OutSocket;
  if (s[kHeld] !== undefined) flushHeld(s);
  if (!directNow(s)) return typeof data === 'string' ? s.write(data, 'latin1') : s.write(data);
  const handle = s._handle!;
  const req = spareReq ?? newReq();
  req.handle = handle;
  const err = typeof data === 'string' ? handle.writeLatin1String(req, data) : handle.writeBuffer(req, data);
  if (err !== 0) {
    spareReq = req;
    s.destroy(errnoError(err, 'write'));
    return false;
  }
  if (state[WRITE_WAS_ASYNC] === 0) {
    spareReq = req;
    return true;
  }
  // libuv holds the rest (a string's bytes are copied by Node, a Buffer is kept here) until the
  // kernel takes it.
  spareReq = undefined;
  req.oncomplete = onWrittenOut;
  req.socket = s;
  if (typeof data !== 'string') req.buffer = data;
  s[kDirectPending] = true;
  return true;
}

/** A direct write libuv held is out (or failed). */
function onWrittenOut(this: WriteReq, status: number): void {
  const socket = this.socket!;
  this.socket = null;
  this.buffer = null;
  socket[kDirectPending] = false;
  if (status < 0) socket.destroy(errnoError(status, 'write'));
}

function errnoError(status: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  const err = new Error(`${syscall} ${code}`) as NodeJS.ErrnoException;
  err.errno = status;
  err.code = code;
  err.syscall = syscall;
  return err;
}

/** Whether sessions are relayed directly in this process (false: through the sockets' streams). */
export const directRelayAvailable = binding !== undefined;
