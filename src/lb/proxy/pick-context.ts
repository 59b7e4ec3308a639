import type { RequestHead } from './client-connection.js';
import type { PickContext } from '../balance/balancer.js';

/** The PickContext of an HTTP request: client IP, request target and headers, read lazily. */
export class HttpPickContext implements PickContext {
  constructor(private readonly req: RequestHead) {}

  get clientIp(): string {
    return this.req.socket.remoteAddress ?? '';
  }

  get url(): string | undefined {
    return this.req.url;
  }

  header(name: string): string | undefined {
    return this.req.headers[name];
  }
}
