import type { BackendConfig } from '../../config/schema.js';
import { StartupError } from '../../errors.js';
import type { BackupOptions } from './active-backup.js';
import type { BalancedServer, Balancer } from './balancer.js';
import { FirstBalancer } from './first.js';
import { HashBalancer } from './hash.js';
import { LeastConnBalancer } from './leastconn.js';
import { RandomBalancer } from './random.js';
import { RoundRobinBalancer } from './roundrobin.js';
import { SourceBalancer } from './source.js';
import { StaticRoundRobinBalancer } from './static-rr.js';

/** The settings of a backend that choose and shape its balancer. */
export type BalanceConfig = Pick<BackendConfig, 'name' | 'balance' | 'hashOn' | 'allBackups' | 'preempt'> & {
  /** Configured weights, in the order of the servers (for `static-rr`). */
  readonly servers?: readonly { readonly weight: number }[];
};

/**
 * The balancer named by a backend's `balance` setting, over `servers` (in config order, each with
 * its effective `backup` flag), with the backend's `allBackups` and `preempt` behaviour.
 */
export function createBalancer<S extends BalancedServer>(
  config: BalanceConfig,
  servers: readonly S[],
): Balancer<S> {
  const options: BackupOptions = { allBackups: config.allBackups, preempt: config.preempt };
  switch (config.balance) {
    case 'roundrobin':
      return new RoundRobinBalancer(servers, options);
    case 'static-rr':
      return new StaticRoundRobinBalancer(
        servers,
        options,
        config.servers?.map((s) => s.weight),
      );
    case 'leastconn':
      return new LeastConnBalancer(servers, options);
    case 'first':
      return new FirstBalancer(servers, options);
    case 'source':
      return new SourceBalancer(servers, options);
    case 'hash':
      if (config.hashOn === undefined)
        throw new StartupError(`backend ${config.name}: balance: hash needs hashOn`);
      return new HashBalancer(servers, config.hashOn, options);
    case 'random':
      return new RandomBalancer(servers, options);
  }
}
