import type { IncomingMessage } from 'node:http';
import type { PickContext } from '../balance/balancer.js';

/** The PickContext of an HTTP request: client IP, request target and headers, read lazily. */
export class HttpPickContext implements PickContext {
  constructor(private readonly req: IncomingMessage) {}

  get clientIp(): string {
    return this.req.socket.remoteAddress ?? '';
  }

  get url(): string | undefined {
    return this.req.url;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  }
}
