/** Answers the proxy writes itself (4xx and 5xx with a short plain-text body), on a client request or a raw socket. */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FrontRequest } from './client-connection.js';
import type { RequestIdHeader } from './request-id.js';

const TEXT = 'text/plain; charset=utf-8';

/**
 * Writes `status` with `body` to `res`. `close`: ask the client to close the connection (and close
 * it after the answer), as when the request's body was not read. `retryAfter`: seconds for a
 * `Retry-After` field. The request id header goes back to the client when given.
 */
export function sendLocal(
  res: FrontRequest,
  status: number,
  body: Buffer,
  close: boolean,
  retryAfter?: number,
  requestIdHeader?: RequestIdHeader,
  requestId?: string,
): void {
  const headers = ['Content-Type', TEXT, 'Content-Length', String(body.length)];
  if (retryAfter !== undefined) headers.push('Retry-After', String(retryAfter));
  if (requestIdHeader !== undefined && requestId !== undefined) headers.push(requestIdHeader.name, requestId);
  if (close) headers.push('Connection', 'close');
  res.writeHead(status, undefined, headers);
  res.end(body);
}

/**
 * Writes `status` with `body` as a whole HTTP/1.1 response to a raw client socket (an `Upgrade`
 * request that could not be tunnelled), then closes the socket.
 */
export function sendLocalRaw(socket: Socket, status: number, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: ${TEXT}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
  socket.end(head + body, () => socket.destroy());
}
