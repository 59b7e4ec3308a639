/**
 * The seam between the proxy and the distribution algorithms: a balancer only picks the next
 * server. It never opens connections and never changes a server's health.
 */

/** What a balancer needs to know about a server. */
export interface BalancedServer {
  /** Relative share of requests; 0 takes the server out of rotation. */
  readonly weight: number;
  /**
   * Effective backup flag: `backup: true` in the config, or any server but the first one in a
   * backend of mode `active-passive`. Backups get traffic only when no active server can take it.
   */
  readonly backup: boolean;
  /** Current health, as decided by the health checks. */
  readonly up: boolean;
}

/** Picks the server for the next request. */
export interface Balancer<S extends BalancedServer = BalancedServer> {
  /**
   * The next server among those eligible (up, weight > 0), or undefined when none is.
   * `exclude` is left out of this pick, e.g. the server a retried request just failed on.
   */
  pick(exclude?: S): S | undefined;
}
