import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';
import { hashString, mix32 } from './hash-function.js';
import { SmoothRoundRobin } from './roundrobin.js';

/** The 32-bit hash of a request's key (see hash-function.ts), or -1 when the request has no key. */
export type KeyHash = (ctx: PickContext) => number;

/**
 * Ring points per unit of weight, as in nginx's `hash … consistent` (160). Weights count in steps
 * of 1/8 (20 points each), so a slow start ramps a server's share up in steps, not all at once.
 */
const POINTS_PER_STEP = 20;
const STEPS_PER_WEIGHT = 8;
/** Ring positions and owner indexes are sorted together as `position * OWNER_SPAN + owner`. */
const OWNER_SPAN = 2 ** 21;

/**
 * Consistent hashing over one group of servers: a ring of 2^32 positions on which each server has
 * 160 points per unit of weight, at positions that depend only on its name and the point's number
 * (so every load balancer with the same config builds the same ring). A request goes to the owner
 * of the first point at or after its key's hash, going round; when that server is not eligible
 * (down, drained, weight 0, or left out of a retry), to the next eligible server on the ring.
 *
 * Removing one of N servers therefore moves only that server's keys (about 1/N of them), each to
 * the server after it on the ring, and adding it back brings exactly those keys back. A weight
 * change (by an operator, or a slow start) rebuilds the ring on the next pick; the points of the
 * other servers stay where they are. Requests without a key are balanced by smooth round robin.
 */
export class HashRing<S extends BalancedServer> implements Balancer<S> {
  private positions = new Uint32Array(0);
  private owners = new Uint32Array(0);
  /** Weight of each server (in 1/8 steps) that the ring was built with; -1: not yet built. */
  private readonly builtSteps: Int32Array;
  /** Hash of each server's name: where its points come from. */
  private readonly seeds: Uint32Array;
  private readonly fallback: SmoothRoundRobin<S>;

  /** `keyHash` gives the hash of a request's key; -1 sends the request to round robin. */
  constructor(
    private readonly servers: readonly S[],
    private readonly keyHash: KeyHash,
  ) {
    if (servers.length >= OWNER_SPAN)
      throw new RangeError(`a hash ring takes at most ${OWNER_SPAN - 1} servers`);
    this.seeds = Uint32Array.from(servers, (s) => hashString(s.name));
    this.builtSteps = new Int32Array(servers.length).fill(-1);
    this.fallback = new SmoothRoundRobin(servers);
  }

  pick(ctx: PickContext, exclude?: S): S | undefined {
    const hash = this.keyHash(ctx);
    if (hash < 0) return this.fallback.pick(ctx, exclude);
    return this.lookup(hash, exclude);
  }

  /** The first eligible server on the ring at or after position `hash` (an unsigned 32-bit integer). */
  lookup(hash: number, exclude?: S): S | undefined {
    const servers = this.servers;
    const built = this.builtSteps;
    let changed = false;
    let any = false;
    for (let i = 0; i < servers.length; i++) {
      const s = servers[i]!;
      const steps = Math.ceil(Math.max(0, s.effectiveWeight) * STEPS_PER_WEIGHT);
      if (steps !== built[i]) {
        built[i] = steps;
        changed = true;
      }
      if (!any && eligible(s, exclude)) any = true;
    }
    if (changed) this.build();
    if (!any) return undefined;
    const positions = this.positions;
    const owners = this.owners;
    const n = positions.length;
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (positions[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    for (let k = 0; k < n; k++) {
      const at = lo + k < n ? lo + k : lo + k - n;
      const s = servers[owners[at]!]!;
      if (eligible(s, exclude)) return s;
    }
    return undefined;
  }

  /** Lays out every server's points for the weights in `builtSteps`, sorted by position. */
  private build(): void {
    const built = this.builtSteps;
    let total = 0;
    for (const steps of built) total += steps * POINTS_PER_STEP;
    const keys = new Float64Array(total);
    let k = 0;
    for (let i = 0; i < built.length; i++) {
      const seed = this.seeds[i]!;
      const points = built[i]! * POINTS_PER_STEP;
      for (let j = 0; j < points; j++) keys[k++] = pointPosition(seed, j) * OWNER_SPAN + i;
    }
    keys.sort();
    const positions = new Uint32Array(total);
    const owners = new Uint32Array(total);
    for (let p = 0; p < total; p++) {
      const key = keys[p]!;
      const owner = key % OWNER_SPAN;
      positions[p] = (key - owner) / OWNER_SPAN;
      owners[p] = owner;
    }
    this.positions = positions;
    this.owners = owners;
  }
}

/** Position of point `j` of the server whose name hashes to `seed`: distinct for every j of one server. */
function pointPosition(seed: number, j: number): number {
  return mix32((seed ^ mix32(j + 1)) >>> 0);
}
