import type { ResolvedConfig } from '../../config/load.js';
import { ReloadError, TandemError } from '../../errors.js';
import type { LbMetrics } from '../stats/metrics.js';
import { applyReload, type RunningLb } from './reload.js';

/** What a reload did. */
export interface ReloadResult {
  /** Where the applied config came from (a file path). */
  source: string;
  /** One line per change (`backend web: server web-01 weight: 1 → 3`), or `no change`. */
  changes: string[];
}

/**
 * Runs the reloads of one load balancer one after another (two SIGHUPs in a row apply in turn),
 * logs each outcome and counts it in the metrics. A config that fails validation or cannot be
 * applied is logged with the reason and changes nothing: the running config stays.
 */
export class Reloader {
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly run: RunningLb,
    private readonly metrics: LbMetrics,
    /** Reads the config again (its file); throws ConfigError when it is invalid. */
    private readonly load: () => ResolvedConfig,
  ) {}

  /** Applies `next`, or the config read again when absent. Rejects with a TandemError saying why not. */
  reload(next?: ResolvedConfig): Promise<ReloadResult> {
    const result = this.queue.then(() => this.apply(next));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /** No reload after this one (the load balancer is stopping). */
  stop(): void {
    this.stopped = true;
  }

  private async apply(next: ResolvedConfig | undefined): Promise<ReloadResult> {
    const log = this.run.log;
    try {
      if (this.stopped) throw new ReloadError('the load balancer is stopping');
      const config = next ?? this.load();
      const changes = await applyReload(this.run, config);
      this.metrics.reloaded(true);
      log.info(`config reloaded (${config.source}): ${changes.join('; ')}`);
      return { source: config.source, changes };
    } catch (err) {
      this.metrics.reloaded(false);
      const why =
        err instanceof TandemError ? err.message : `internal error: ${(err as Error).stack ?? String(err)}`;
      log.error(`reload rejected; the running config stays in force: ${why}`);
      throw err instanceof TandemError ? err : new ReloadError((err as Error).message, { cause: err });
    }
  }
}
