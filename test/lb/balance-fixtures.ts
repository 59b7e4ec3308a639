/**
 * Fixtures for the balancer tests: servers whose health, weight and load the test sets by hand, a
 * seeded random source, and a load balancer config with extra backend settings.
 */
import type { BalancedServer, Balancer, PickContext } from '../../src/lb/balance/balancer.js';

/** A server under test control: `up`, `weight`, `inFlight` and `maxConn` drive the balancer's view. */
export class TestServer implements BalancedServer {
  up = true;
  inFlight = 0;
  constructor(
    readonly name: string,
    public weight = 1,
    readonly backup = false,
    public maxConn: number | undefined = undefined,
  ) {}
  get effectiveWeight(): number {
    return this.weight;
  }
  get usable(): boolean {
    return this.up;
  }
}

/** Servers from `[name, weight, backup?]` specs, in order. */
export function servers(spec: Array<[name: string, weight: number, backup?: boolean]>): TestServer[] {
  return spec.map(([name, weight, backup = false]) => new TestServer(name, weight, backup));
}

/** A request context: client IP, URL and headers (lowercase names). */
export function request(
  opts: { ip?: string; url?: string; headers?: Record<string, string> } = {},
): PickContext {
  const headers = opts.headers ?? {};
  return { clientIp: opts.ip ?? '127.0.0.1', url: opts.url ?? '/', header: (name) => headers[name] };
}

/** The names of `n` consecutive picks ('-' for none). */
export function picks(b: Balancer<TestServer>, n: number, ctx: PickContext = request()): string[] {
  return Array.from({ length: n }, () => b.pick(ctx)?.name ?? '-');
}

/** How often each name occurs. */
export function tally(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
  return counts;
}

export { configWith } from './fixtures.js';
