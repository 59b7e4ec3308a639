/**
 * One read buffer for the proxy's sockets that read through a callback (net's `onread`): the TCP
 * proxy's client and server sockets, the HTTP proxy's connections to its servers. Each chunk is
 * copied out of it at once (chunkOf), into a buffer the size of the chunk, and that copy is what
 * goes on. Node's own reads allocate 64 KiB for every read and pass each chunk through the stream
 * machinery ('data' events, pipe()); here the callback gets the byte count straight from the read.
 * A buffer per socket would save the copy but hold 64 KiB per idle connection; one buffer for all
 * is safe because a read and its callback run together, before the next read of any socket.
 *
 * Measured on this project's 2-core machine, a bare TCP proxy of each kind under wrk at
 * concurrency 64: 18-byte answers 25 → 21.4 µs of CPU per request; 64 KiB answers 7,800 → 14,100
 * requests/s.
 *
 * Large chunks go into memory that is used again (release()): a new 64 KiB buffer for every read
 * is a malloc and a free each time, and the C library gives freed memory back to the kernel and
 * takes it again, a page fault for every 4 KiB touched anew.
 */
import type { Socket } from 'node:net';

/**
 * 128 KiB a read. With 64 KiB (Node's own size), an answer of 64 KiB and its head took two reads
 * from the server and two writes to the client; measured on this project's 2-core machine (Tandem
 * L7, 64 KiB answers, concurrency 64) 128 KiB took the CPU per request from about 40 to 30 µs.
 * The price: a chunk of 16 KiB or more that a slow client leaves queued holds 128 KiB until it
 * goes out (one per connection: its server's side stops reading until then).
 */
export const READ_SIZE = 131072;
export const READ_BUFFER = Buffer.allocUnsafe(READ_SIZE);

/** Chunks at least this long are copied into recycled READ_SIZE memory. */
const LARGE = 16384;
/** Recycled memory kept for later chunks, at most MAX_SPARES of them. */
const spares: ArrayBuffer[] = [];
const MAX_SPARES = 8;

/** The `n` bytes just read into READ_BUFFER, in a buffer of their own (the next read overwrites it). */
export function chunkOf(n: number): Buffer {
  return copyOf(READ_BUFFER, 0, n);
}

/** Bytes `start` to `end` of `data` (at most READ_SIZE of them), in a buffer of their own, as chunkOf. */
export function copyOf(data: Buffer, start: number, end: number): Buffer {
  const n = end - start;
  const chunk =
    n < LARGE
      ? Buffer.allocUnsafe(n)
      : Buffer.from(spares.pop() ?? Buffer.allocUnsafeSlow(READ_SIZE).buffer, 0, n);
  data.copy(chunk, 0, start, end);
  return chunk;
}

/**
 * Whether `socket` can take more after a write that answered `wrote`: write() answers false for
 * any chunk above the high-water mark (16 KiB), even one the kernel took whole at once, and under
 * cork before anything went out. What is still queued is what counts.
 */
export function canTakeMore(socket: Socket, wrote: boolean): boolean {
  return wrote || socket.writableLength === 0;
}

/**
 * `chunk`, from chunkOf or copyOf, is out (in the kernel) and nothing refers to it any more: its memory may
 * serve a later chunk. Only for a chunk no one else was given.
 */
export function release(chunk: Buffer): void {
  const memory = chunk.buffer;
  if (memory.byteLength === READ_SIZE && chunk.byteOffset === 0 && spares.length < MAX_SPARES) {
    spares.push(memory as ArrayBuffer);
  }
}
