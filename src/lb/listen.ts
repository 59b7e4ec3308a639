import type { Server } from 'node:net';
import { listenError } from '../errors.js';
import { formatAddress } from './address.js';

/**
 * Binds `server` to host:port. A failure becomes the error a user should read, naming the
 * component (`lb-01 frontend http: cannot listen on 127.0.0.1:8080: the address is already in use…`).
 */
export function listen(server: Server, host: string, port: number, component: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.off('listening', onListening);
      reject(listenError(component, formatAddress(host, port), err));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
