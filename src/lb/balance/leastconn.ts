import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/**
 * `balance: leastconn` — weighted least connections: the eligible server with the fewest requests
 * in flight for its weight (lowest `inFlight / weight`; weight 2 carries twice the requests of
 * weight 1 at the same load). Servers tied for the lowest load take turns by smooth weighted round
 * robin, as in nginx's `least_conn`: idle servers of equal weight alternate a,b,c,a,b,c.
 */
export class LeastConnBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; each one's `backup` flag is already the effective one. */
  constructor(servers: readonly S[], options?: BackupOptions) {
    super(servers, (group) => new LeastConnections(group), options);
  }
}

/** Weighted least connections over one group of servers. */
class LeastConnections<S extends BalancedServer> implements Balancer<S> {
  /** Smooth round robin current weight of each server, for breaking ties. */
  private readonly current: number[];

  constructor(private readonly servers: readonly S[]) {
    this.current = servers.map(() => 0);
  }

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    const servers = this.servers;
    let best = -1;
    let tied = false;
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i]!;
      if (!eligible(s, exclude)) continue;
      if (best < 0) {
        best = i;
        continue;
      }
      // inFlight / weight compared without dividing.
      const b = servers[best]!;
      const mine = s.inFlight * b.effectiveWeight;
      const theirs = b.inFlight * s.effectiveWeight;
      if (mine < theirs) {
        best = i;
        tied = false;
      } else if (mine === theirs) {
        tied = true;
      }
    }
    if (best < 0 || !tied) return best < 0 ? undefined : servers[best];
    return this.breakTie(servers[best]!, best, exclude);
  }

  /** Smooth weighted round robin among the servers as loaded as `lowest` (index `from` on). */
  private breakTie(lowest: S, from: number, exclude: S | undefined): S {
    const servers = this.servers;
    const current = this.current;
    let pick = -1;
    let total = 0;
    for (let i = from; i < servers.length; i++) {
      const s = servers[i]!;
      if (!eligible(s, exclude)) continue;
      if (s.inFlight * lowest.effectiveWeight !== lowest.inFlight * s.effectiveWeight) continue;
      const weight = s.effectiveWeight;
      current[i]! += weight;
      total += weight;
      if (pick < 0 || current[i]! > current[pick]!) pick = i;
    }
    current[pick]! -= total;
    return servers[pick]!;
  }
}
