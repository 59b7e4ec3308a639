import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/**
 * `balance: static-rr` — weighted round robin over a fixed schedule, like HAProxy's: the weights
 * are read once, when the balancer is built, and laid out in one cycle (interleaved as smooth
 * round robin does: 2:1 gives a,b,a); each pick takes the next eligible server of the cycle.
 * A server that is down, drained or at weight 0 is skipped and gets its turns back as soon as it is
 * eligible again. Other weight changes at run time have no effect (use `roundrobin` for those), and
 * a server whose weight was 0 at start never gets a turn.
 */
export class StaticRoundRobinBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /**
   * `servers` in config order; `weights` (same order) are the configured weights, by default each
   * server's effective weight now.
   */
  constructor(servers: readonly S[], options?: BackupOptions, weights?: readonly number[]) {
    const weightOf = new Map(servers.map((s, i) => [s, weights?.[i] ?? s.effectiveWeight]));
    super(servers, (group) => new StaticSchedule(group, (s) => weightOf.get(s) ?? 0), options);
  }
}

/** One cycle of turns over a group of servers, built once. */
class StaticSchedule<S extends BalancedServer> implements Balancer<S> {
  private readonly turns: S[] = [];
  private next = 0;

  constructor(servers: readonly S[], weightOf: (s: S) => number) {
    const weights = servers.map((s) => Math.max(0, Math.round(weightOf(s))));
    const total = weights.reduce((a, b) => a + b, 0);
    const current = weights.map(() => 0);
    for (let turn = 0; turn < total; turn++) {
      let best = -1;
      for (let i = 0; i < servers.length; i++) {
        if (weights[i] === 0) continue;
        current[i]! += weights[i]!;
        if (best < 0 || current[i]! > current[best]!) best = i;
      }
      current[best]! -= total;
      this.turns.push(servers[best]!);
    }
  }

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    const turns = this.turns;
    const n = turns.length;
    for (let k = 0; k < n; k++) {
      const s = turns[this.next]!;
      this.next = this.next + 1 === n ? 0 : this.next + 1;
      if (eligible(s, exclude)) return s;
    }
    return undefined;
  }
}
