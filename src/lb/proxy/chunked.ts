/** The chunked transfer coding (RFC 9112 §7.1), written as bodies stream through the proxy. */
import type { Socket } from 'node:net';

/** The last chunk and an empty trailer section: the end of a chunked body. */
export const LAST_CHUNK = '0\r\n\r\n';

/**
 * Writes `chunk` (not empty) to `socket` as one chunk of a chunked body, in one write to the
 * kernel. False when the socket's buffer is full (wait for 'drain').
 */
export function writeChunk(socket: Socket, chunk: Buffer): boolean {
  socket.cork();
  socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
  socket.write(chunk);
  const more = socket.write('\r\n', 'latin1');
  socket.uncork();
  return more;
}
