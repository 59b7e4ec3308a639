import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/**
 * `balance: roundrobin` — smooth weighted round robin, as nginx does it: on every pick each
 * eligible server's current weight grows by its weight, the server with the highest current weight
 * wins (the first listed on a tie) and gives back the sum of the weights. Weights 5:1:1 give
 * a,a,b,a,c,a,a: shares follow the weights and a heavy server's turns are spread out, not bunched.
 *
 * Weights are read on every pick, so a weight an operator changes (or slow start ramps) counts
 * from the next pick on; the current weights carry over, so the order stays smooth.
 */
export class RoundRobinBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; each one's `backup` flag is already the effective one. */
  constructor(servers: readonly S[], options?: BackupOptions) {
    super(servers, (group) => new SmoothRoundRobin(group), options);
  }
}

/** Smooth weighted round robin over one group of servers (backup flags ignored). */
export class SmoothRoundRobin<S extends BalancedServer> implements Balancer<S> {
  /** Current weight of each server, same index as `servers`. */
  private readonly current: number[];

  constructor(private readonly servers: readonly S[]) {
    this.current = servers.map(() => 0);
  }

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    const servers = this.servers;
    const current = this.current;
    let best = -1;
    let bestWeight = 0;
    let total = 0;
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i]!;
      if (!eligible(s, exclude)) continue;
      const weight = s.effectiveWeight;
      const w = current[i]! + weight;
      current[i] = w;
      total += weight;
      if (best < 0 || w > bestWeight) {
        best = i;
        bestWeight = w;
      }
    }
    if (best < 0) return undefined;
    current[best] = bestWeight - total;
    return servers[best];
  }
}
