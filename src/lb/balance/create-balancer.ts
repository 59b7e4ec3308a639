import type { BackendConfig } from '../../config/schema.js';
import type { BalancedServer, Balancer } from './balancer.js';
import { RoundRobinBalancer } from './roundrobin.js';

/** The balancer named by a backend's `balance` setting, over `servers` (in config order). */
export function createBalancer<S extends BalancedServer>(
  balance: BackendConfig['balance'],
  servers: readonly S[],
): Balancer<S> {
  switch (balance) {
    case 'roundrobin':
      return new RoundRobinBalancer(servers);
  }
}
