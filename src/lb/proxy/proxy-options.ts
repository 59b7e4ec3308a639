import type { LoadBalancerConfig } from '../../config/schema.js';
import type { ForwardOptions } from './headers.js';
import { type RequestIdHeader, requestIdHeader } from './request-id.js';

/** What an HTTP frontend enforces and adds, beyond its timeouts (from the load balancer's config). */
export interface ProxyOptions extends ForwardOptions {
  /** Largest request line + header section in bytes; larger → 431. */
  readonly maxHeaderSize: number;
  /** Most header fields in one request; more → 431. */
  readonly maxHeaders: number;
  /** Largest request body in bytes; larger → 413. Undefined: no limit. */
  readonly maxBodySize: number | undefined;
  /** Add an RFC 7239 `Forwarded` element. */
  readonly forwarded: boolean;
  /** The request id header; undefined: none. */
  readonly requestIdHeader: RequestIdHeader | undefined;
}

/** The proxy options of load balancer `lb`. */
export function proxyOptions(lb: LoadBalancerConfig): ProxyOptions {
  return {
    maxHeaderSize: lb.maxHeaderSize,
    maxHeaders: lb.maxHeaders,
    maxBodySize: lb.maxBodySize,
    forwarded: lb.forwarded,
    requestIdHeader: requestIdHeader(lb.requestIdHeader),
  };
}
