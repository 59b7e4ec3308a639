import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/**
 * `balance: first` — like HAProxy's: the first eligible server in config order that has a free
 * slot (fewer requests in flight than its `maxconn`; a server without `maxconn` always has one)
 * takes the request, so traffic fills servers one after the other and the last ones stay idle
 * (they can be powered down). Weights only matter at 0 (no traffic). When every server is full,
 * there is no pick: the request waits in the backend's queue for a slot.
 */
export class FirstBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; each one's `backup` flag is already the effective one. */
  constructor(servers: readonly S[], options?: BackupOptions) {
    super(servers, (group) => new FirstFree(group), options);
  }
}

/** The first server of one group with a free slot. */
class FirstFree<S extends BalancedServer> implements Balancer<S> {
  constructor(private readonly servers: readonly S[]) {}

  pick(_ctx: PickContext, exclude?: S): S | undefined {
    for (const s of this.servers) {
      if (eligible(s, exclude) && (s.maxConn === undefined || s.inFlight < s.maxConn)) return s;
    }
    return undefined;
  }
}
