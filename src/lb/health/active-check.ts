import type { UpstreamServer } from '../backend/upstream-server.js';
import type { CheckTiming, HealthChangeListener, HealthCheck, Probe } from './health-check.js';

/**
 * Active health check of one server: runs its `Probe` on a schedule and turns the results into up
 * and down, as HAProxy does.
 *
 * The first result decides the initial state at once; after that `rise` successes in a row bring
 * a down server up and `fall` failures in a row take an up server down. A check that has no result
 * within `timeout` fails (and its connection is closed).
 *
 * Schedule: `interval` while a server is steadily up; `fastInterval` while it is changing state
 * (failures seen while up, successes seen while down: like HAProxy's `fastinter`); `downInterval`
 * while it is steadily down (like `downinter`). Checks of one server never overlap: the next one
 * starts that long after the previous one started, and never before it ended.
 */
export class ActiveHealthCheck implements HealthCheck {
  readonly firstResult: Promise<void>;
  private resolveFirst!: () => void;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  /** Aborts the check in progress; also identifies it (a stale result is ignored). */
  private current: AbortController | undefined;
  private startedAt = 0;
  private stopped = false;

  constructor(
    private readonly server: UpstreamServer,
    private readonly probe: Probe,
    private readonly timing: CheckTiming,
    private readonly onChange: HealthChangeListener,
  ) {
    this.firstResult = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
  }

  start(): void {
    if (this.stopped || this.timer || this.current) return;
    this.run();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
    this.timer = undefined;
    this.deadline = undefined;
    const current = this.current;
    this.current = undefined;
    current?.abort();
    this.resolveFirst();
  }

  private run(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const check = new AbortController();
    this.current = check;
    this.startedAt = performance.now();
    const timeout = this.timing.timeout;
    this.deadline = setTimeout(() => this.finish(check, false, `timeout after ${timeout}ms`), timeout);
    this.deadline.unref();
    void this.probe
      .run(this.server.checkTarget, check.signal)
      .then((r) => this.finish(check, r.ok, r.outcome));
  }

  /** Records the outcome of `check` (once), applies rise/fall, schedules the next check. */
  private finish(check: AbortController, ok: boolean, outcome: string): void {
    if (this.current !== check) return;
    this.current = undefined;
    clearTimeout(this.deadline);
    this.deadline = undefined;
    // Closes the probe's connection now (a no-op when it has already settled).
    check.abort();

    const now = performance.now();
    const server = this.server;
    const state = server.check;
    const result = ok ? 'ok' : 'fail';
    const initial = state.lastResult === null;
    state.consecutive = state.lastResult === result ? state.consecutive + 1 : 1;
    state.lastResult = result;
    state.lastError = ok ? null : outcome;
    state.lastCheckAt = Date.now();
    state.lastDurationMs = Math.round(now - this.startedAt);

    const threshold = ok ? this.timing.rise : this.timing.fall;
    const changed = initial || (server.up !== ok && state.consecutive >= threshold);
    if (changed) {
      server.up = ok;
      this.onChange({
        backend: server.backend,
        server: server.name,
        up: server.up,
        initial,
        consecutive: state.consecutive,
        reason: outcome,
      });
    }
    if (initial) this.resolveFirst();

    if (this.stopped) return;
    const delay = Math.max(0, this.nextInterval(ok) - (now - this.startedAt));
    this.timer = setTimeout(() => this.run(), delay);
    this.timer.unref();
  }

  /** The interval before the next check, after a check that gave `ok`. */
  private nextInterval(ok: boolean): number {
    const { interval, fastInterval, downInterval } = this.timing;
    // The last result disagrees with the state: the server is on its way up or down.
    if (this.server.up !== ok) return fastInterval ?? interval;
    return ok ? interval : (downInterval ?? interval);
  }
}
