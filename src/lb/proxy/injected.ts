/**
 * Listening sockets and connections shared between the processes of a load balancer with workers
 * (see workers/): a worker accepts on the frontend's listening socket the primary shares with it,
 * and now and then takes a connection the primary accepted itself (before the workers took the
 * socket over). The proxy's server takes those as if it had accepted them, so that everything a
 * listening server does with its connections still holds (Node's `net` onconnection does the same).
 */
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
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
 * Prepares `server` to serve handed-over connections: an HTTP server starts tracking its
 * connections (idle ones for closeIdleConnections, the headers timeout checks) on 'listening'.
 */
export function serveHandedOver(server: Server): void {
  server.emit('listening');
}

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
