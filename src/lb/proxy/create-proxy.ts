/** The proxy of a frontend, HTTP (layer 7) or TCP (layer 4), with the load balancer's timeouts and options. */
import type { FrontendConfig, LoadBalancerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Backend } from '../backend/backend.js';
import type { FrontendProxy } from '../reload/reload.js';
import { HttpProxy, type ProxyTimeouts } from './http-proxy.js';
import { proxyOptions } from './proxy-options.js';
import { TcpProxy, type TcpProxyTimeouts } from './tcp-proxy.js';

/** A new proxy for frontend `f` in front of `backend`. */
export function createProxy(
  f: FrontendConfig,
  backend: Backend,
  lb: LoadBalancerConfig,
  log: Logger,
): HttpProxy | TcpProxy {
  return f.mode === 'tcp'
    ? new TcpProxy(f, backend, tcpTimeouts(lb), log)
    : new HttpProxy(f, backend, httpTimeouts(lb), log, proxyOptions(lb));
}

/** A reload's timeouts and limits for a proxy that keeps running: they apply to its next requests (connections). */
export function configureProxy(p: FrontendProxy, lb: LoadBalancerConfig): void {
  if (p instanceof TcpProxy) {
    p.timeouts = tcpTimeouts(lb);
  } else if (p instanceof HttpProxy) {
    p.configure(httpTimeouts(lb), proxyOptions(lb));
  }
}

function httpTimeouts(lb: LoadBalancerConfig): ProxyTimeouts {
  return {
    connectTimeout: lb.connectTimeout,
    serverTimeout: lb.serverTimeout,
    clientTimeout: lb.clientTimeout,
    keepAliveTimeout: lb.keepAliveTimeout,
    headersTimeout: lb.headersTimeout,
    tunnelTimeout: lb.tunnelTimeout,
  };
}

function tcpTimeouts(lb: LoadBalancerConfig): TcpProxyTimeouts {
  return { connectTimeout: lb.connectTimeout, idleTimeout: lb.tunnelTimeout };
}
