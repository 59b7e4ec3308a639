/**
 * Listening sockets and connections shared between the processes of a load balancer with workers
 * (see workers/): a worker accepts on the frontend's listening socket the primary shares with it,
 * and now and then takes a connection the primary accepted itself (before the workers took the
 * socket over) or another worker handed over (workers/connection-spread.ts). The proxy's server
 * takes those as if it had accepted them, so that everything a listening server does with its
 * connections still holds (Node's `net` onconnection does the same).
 */
import { type Server, Socket, type SocketConstructorOpts } from 'node:net';
import type { FrontendConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';

/**
 * Listens on `handle`, a listening socket another process bound (the same socket: connections go
 * to whichever process accepts them first). Later errors of the server are logged.
 */
export function listenOnHandle(
  server: Server,
  handle: object,
  f: FrontendConfig,
  log: Logger,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.off('error', onError);
      if (server.listenerCount('error') === 0)
        server.on('error', (err) => log.error(`frontend ${f.name}: ${err.message}`));
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(handle);
  });
}

type CountingServer = Server & { _connections: number };
type ServerSocket = Socket & { server?: Server; _server?: Server };

/**
 * Serves `socket` on `server` as one of its own connections: counted (a server that closes
 * waits for it: net.Socket#_destroy uncounts it and lets the server close when it was the last),
 * with the server's half-open and no-delay settings, then given to its 'connection' listeners.
 */
export function handOver(
  server: Server,
  socket: Socket,
  options: { allowHalfOpen: boolean; noDelay: boolean },
): void {
  (server as CountingServer)._connections++;
  const s = socket as ServerSocket;
  s.server = server;
  s._server = server;
  socket.allowHalfOpen = options.allowHalfOpen;
  if (options.noDelay) socket.setNoDelay(true);
  server.emit('connection', socket);
}

/** Connections `server` counts now: its own and the handed-over ones, until each closes. */
export function openConnections(server: Server): number {
  return (server as CountingServer)._connections;
}

/** An accepted connection's handle before a socket wraps it (net's TCPWrap). */
export interface RawHandle {
  close(): void;
}

/** A listening socket's handle as Node's net.Server drives it: it calls onconnection per connection. */
export interface ListenWrap {
  onconnection(this: ListenWrap, status: number, client: object | undefined): void;
}

/** Set on a socket that reads into a user buffer (its data goes to a callback, never to 'data' events). */
export const kUserBuffer = Symbol('tandem.userBuffer');

/** Whether `socket` reads into a user buffer (acceptWithUserBuffer), or emits 'data' (one another process accepted). */
export function readsIntoUserBuffer(socket: Socket): boolean {
  return (socket as Socket & { [kUserBuffer]?: true })[kUserBuffer] === true;
}

/**
 * Makes the sockets of the connections `server` accepts from now on read into `buffer`, each read
 * going to `onRead` (Node's `onread` option): the server's listening handle gives each accepted
 * connection here, which makes the socket itself (net.Server cannot be asked for that) and serves
 * it as the server's own. The socket is created paused.
 */
export function acceptWithUserBuffer(
  server: Server,
  buffer: Buffer,
  onRead: (this: Socket, n: number, buf: Buffer) => boolean,
  options: { allowHalfOpen: boolean; noDelay: boolean },
): void {
  const wrap = (server as { _handle?: ListenWrap | null })._handle;
  if (wrap == null) return;
  const accept = wrap.onconnection;
  wrap.onconnection = function (this: ListenWrap, status, handle) {
    if (status !== 0 || handle === undefined) {
      accept.call(this, status, handle); // reported as net.Server does
      return;
    }
    handOverRaw(server, handle, buffer, onRead, options);
  };
}

/**
 * Serves `handle`, an accepted connection's raw handle (not read yet: one this process accepted,
 * or one another worker accepted and handed over), on `server` as one of its own connections,
 * its socket reading into `buffer` as with acceptWithUserBuffer. The socket is created paused.
 */
export function handOverRaw(
  server: Server,
  handle: object,
  buffer: Buffer,
  onRead: (this: Socket, n: number, buf: Buffer) => boolean,
  options: { allowHalfOpen: boolean; noDelay: boolean },
): void {
  const socket = new Socket({
    handle,
    allowHalfOpen: options.allowHalfOpen,
    pauseOnCreate: true,
    readable: true,
    writable: true,
    onread: { buffer, callback: onRead },
  } as SocketConstructorOpts) as Socket & { [kUserBuffer]?: true };
  socket[kUserBuffer] = true;
  handOver(server, socket, options);
}
