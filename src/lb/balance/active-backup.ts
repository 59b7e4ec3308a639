import { type BalancedServer, type Balancer, eligible, type PickContext } from './balancer.js';

/** How a backend's backup servers take over: its `allBackups` and `preempt` settings. */
export interface BackupOptions {
  /**
   * false (default): the first eligible backup in config order takes all the traffic. true: the
   * traffic is spread over every eligible backup with the backend's algorithm (HAProxy `allbackups`).
   */
  readonly allBackups?: boolean | undefined;
  /**
   * true (default): traffic goes back to the active servers as soon as one of them is eligible
   * again. false (keepalived's `nopreempt`): once the backups took over, they keep the traffic for
   * as long as one of them stays eligible; without `allBackups`, the backup that took over keeps
   * it, even when a backup listed before it comes back.
   */
  readonly preempt?: boolean | undefined;
}

/** Builds an algorithm's picker over one group of servers (the active ones, or the backups). */
export type GroupAlgorithm<S extends BalancedServer> = (group: readonly S[]) => Balancer<S>;

/**
 * Active-active / active-passive, written once for every algorithm: the algorithm picks among the
 * active servers (those not flagged `backup`); the backups take traffic only when no active server
 * is eligible — the first one in config order, or all of them with `allBackups`.
 *
 * Each algorithm's balancer extends this class, giving it the picker of one group of servers.
 */
export class ActiveBackupBalancer<S extends BalancedServer> implements Balancer<S> {
  private readonly active: Balancer<S>;
  private readonly backups: readonly S[];
  /** The algorithm over the backups, with `allBackups`. */
  private readonly backupGroup: Balancer<S> | undefined;
  private readonly preempt: boolean;
  /** No preemption: the backups have taken the traffic over and keep it. */
  private holding = false;
  /** No preemption, no `allBackups`: the backup that took the traffic over. */
  private holder: S | undefined = undefined;

  /** `servers` in config order, each with its effective `backup` flag. */
  constructor(servers: readonly S[], algorithm: GroupAlgorithm<S>, options: BackupOptions = {}) {
    this.active = algorithm(servers.filter((s) => !s.backup));
    this.backups = servers.filter((s) => s.backup);
    this.backupGroup = options.allBackups && this.backups.length > 0 ? algorithm(this.backups) : undefined;
    this.preempt = options.preempt ?? true;
  }

  pick(ctx: PickContext, exclude?: S): S | undefined {
    if (this.holding) {
      const backup = this.pickBackup(ctx, exclude);
      if (backup !== undefined) {
        this.holder ??= backup;
        return backup;
      }
      if (!anyEligible(this.backups)) this.holding = false;
    }
    const server = this.active.pick(ctx, exclude);
    if (server !== undefined) return server;
    const backup = this.pickBackup(ctx, exclude);
    if (backup !== undefined && !this.preempt && takeover(exclude)) {
      this.holding = true;
      this.holder = backup;
    }
    return backup;
  }

  /** The backup for this pick: by the algorithm (`allBackups`), else the holder or the first eligible one. */
  private pickBackup(ctx: PickContext, exclude: S | undefined): S | undefined {
    if (this.backupGroup !== undefined) return this.backupGroup.pick(ctx, exclude);
    const held = this.holder;
    if (held !== undefined) {
      if (!eligible(held, undefined)) this.holder = undefined;
      else if (held !== exclude) return held;
    }
    for (const s of this.backups) if (eligible(s, exclude)) return s;
    return undefined;
  }
}

/** Whether going to the backups is a takeover: not only a retry leaving out an eligible active server. */
function takeover(exclude: BalancedServer | undefined): boolean {
  return exclude === undefined || exclude.backup || !eligible(exclude, undefined);
}

function anyEligible(servers: readonly BalancedServer[]): boolean {
  for (const s of servers) if (eligible(s, undefined)) return true;
  return false;
}
