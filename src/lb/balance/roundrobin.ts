import type { BalancedServer, Balancer, PickContext } from './balancer.js';

/**
 * Smooth weighted round robin, as nginx does it: on every pick each eligible active server's
 * current weight grows by its weight, the server with the highest current weight wins (the first
 * listed on a tie) and gives back the sum of the weights. Weights 5:1:1 give a,a,b,a,c,a,a:
 * shares follow the weights and a heavy server's turns are spread out, not bunched.
 *
 * Active-active / active-passive: backups take traffic only when no active server is eligible,
 * and then it is always the first backup (in config order) that is up.
 */
export class RoundRobinBalancer<S extends BalancedServer> implements Balancer<S> {
  private readonly active: S[];
  private readonly backups: S[];
  /** Current weight of each active server, same index as `active`. */
  private readonly current: number[];

  /** `servers` in config order; each one's `backup` flag is already the effective one. */
  constructor(servers: readonly S[]) {
    this.active = servers.filter((s) => !s.backup);
    this.backups = servers.filter((s) => s.backup);
    this.current = this.active.map(() => 0);
  }

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    const active = this.active;
    const current = this.current;
    let best = -1;
    let bestWeight = 0;
    let total = 0;
    for (let i = 0; i < active.length; i++) {
      const s = active[i]!;
      const weight = s.effectiveWeight;
      if (!s.usable || weight === 0 || s === exclude) continue;
      const w = current[i]! + weight;
      current[i] = w;
      total += weight;
      if (best < 0 || w > bestWeight) {
        best = i;
        bestWeight = w;
      }
    }
    if (best >= 0) {
      current[best] = bestWeight - total;
      return active[best];
    }
    for (const s of this.backups) {
      if (s.usable && s.effectiveWeight > 0 && s !== exclude) return s;
    }
    return undefined;
  }
}
