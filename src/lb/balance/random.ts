import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/** A source of random numbers in [0, 1), like Math.random. */
export type RandomSource = () => number;

/**
 * `balance: random` — random with two choices ("the power of two choices", HAProxy's
 * `random(2)`): two different eligible servers are drawn at random, each with a chance
 * proportional to its weight, and the one with fewer requests in flight for its weight takes the
 * request (the first drawn on a tie). Nearly as even as least connections, with no shared order to
 * contend on, and a loaded server is avoided without being starved.
 */
export class RandomBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; `random` is the source of randomness (tests seed their own). */
  constructor(servers: readonly S[], options?: BackupOptions, random: RandomSource = Math.random) {
    super(servers, (group) => new TwoRandomChoices(group, random), options);
  }
}

/** Two weighted random draws over one group of servers; the less loaded one wins. */
class TwoRandomChoices<S extends BalancedServer> implements Balancer<S> {
  constructor(
    private readonly servers: readonly S[],
    private readonly random: RandomSource,
  ) {}

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    let total = 0;
    for (const s of this.servers) if (eligible(s, exclude)) total += s.effectiveWeight;
    if (total === 0) return undefined;
    const first = this.draw(total, exclude, undefined);
    if (first === undefined) return undefined;
    const rest = total - first.effectiveWeight;
    const second = rest > 0 ? this.draw(rest, exclude, first) : undefined;
    if (second === undefined) return first;
    // Fewer in flight for its weight: second.inFlight / second.weight < first.inFlight / first.weight.
    return second.inFlight * first.effectiveWeight < first.inFlight * second.effectiveWeight ? second : first;
  }

  /** One eligible server other than `skip`, chosen with a chance proportional to its weight. */
  private draw(total: number, exclude: S | undefined, skip: S | undefined): S | undefined {
    let r = this.random() * total;
    let last: S | undefined;
    for (const s of this.servers) {
      if (s === skip || !eligible(s, exclude)) continue;
      last = s;
      r -= s.effectiveWeight;
      if (r < 0) return s;
    }
    // Only rounding (or a weight that changed meanwhile) gets here: the end of the range.
    return last;
  }
}
