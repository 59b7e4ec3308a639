/**
 * The seam between the proxy and the distribution algorithms: a balancer only picks the next
 * server. It never opens connections and never changes a server's health.
 */

/** What a balancer needs to know about a server. */
export interface BalancedServer {
  readonly name: string;
  /**
   * Effective backup flag: `backup: true` in the config, or any server but the first one in a
   * backend of mode `active-passive`. Backups get traffic only when no active server can take it.
   */
  readonly backup: boolean;
  /**
   * The weight to balance with now: the configured (or operator-set) weight, as ramped by slow
   * start. 0 means no new requests.
   */
  readonly effectiveWeight: number;
  /**
   * May take new requests now: healthy (active and passive checks), administratively ready and,
   * for the load balancer's servers, below its `maxconn` (a full server waits for a free slot).
   */
  readonly usable: boolean;
  /** Requests (or TCP connections) being served by this server right now. */
  readonly inFlight: number;
  /** Most requests (or connections) at once (`maxconn`); undefined = no limit. */
  readonly maxConn: number | undefined;
}

/** What a balancer may look at in the request it picks a server for. */
export interface PickContext {
  /** The client's IP address. */
  readonly clientIp: string;
  /** HTTP request target (path and query); undefined in TCP mode. */
  readonly url: string | undefined;
  /** An HTTP request header by lowercase name; undefined in TCP mode or when absent. */
  header(name: string): string | undefined;
}

/** Picks the server for the next request. */
export interface Balancer<S extends BalancedServer = BalancedServer> {
  /**
   * The next server among those eligible (usable, effective weight > 0), or undefined when none
   * is. `exclude` is left out of this pick, e.g. the server a retried request just failed on.
   */
  pick(ctx: PickContext, exclude?: S): S | undefined;
}

/**
 * May get the next request: usable, effective weight above 0, and not the server `exclude` names
 * (the one a retried request just failed on). Every algorithm picks among these servers only.
 */
export function eligible(s: BalancedServer, exclude: BalancedServer | undefined): boolean {
  return s !== exclude && s.usable && s.effectiveWeight > 0;
}
