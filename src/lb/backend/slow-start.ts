/**
 * Slow start (`backends[].slowStart`, like HAProxy's `slowstart`): a server that comes back up
 * does not get its full share at once. Its effective weight ramps linearly from
 * SLOW_START_FLOOR × weight to its full weight over the slow-start time. Nothing runs on a timer:
 * the weight is computed when a balancer reads it, and the ramp ends on the first read past its end.
 */

/** Share of its weight a server starts from, so that it is eligible (weight above 0) at once. */
export const SLOW_START_FLOOR = 0.05;

/** The ramp of one server. */
export class SlowStart {
  /** When the ramp ends (`performance.now()` ms); 0 when the server is not ramping. */
  until = 0;
  private startedAt = 0;

  /** `duration`: the ramp's length in ms; 0 turns slow start off. */
  constructor(readonly duration: number) {}

  /** Starts a ramp now (nothing when slow start is off). */
  begin(now = performance.now()): void {
    if (this.duration <= 0) return;
    this.startedAt = now;
    this.until = now + this.duration;
  }

  /** When the running ramp began, in ms since the epoch (for another process); 0 when not ramping. */
  startedAtEpoch(): number {
    return this.until === 0 ? 0 : performance.timeOrigin + this.startedAt;
  }

  /**
   * Takes over a ramp another process began at `epochMs` (see startedAtEpoch): the same weights at
   * the same times. 0: no ramp.
   */
  resume(epochMs: number): void {
    if (epochMs === 0) {
      this.until = 0;
      return;
    }
    if (this.until !== 0 && performance.timeOrigin + this.startedAt === epochMs) return;
    this.begin(epochMs - performance.timeOrigin);
  }

  /** `weight` as ramped now: call only while `until` is not 0. */
  weight(weight: number, now = performance.now()): number {
    if (now >= this.until) {
      this.until = 0;
      return weight;
    }
    return weight * Math.max((now - this.startedAt) / this.duration, SLOW_START_FLOOR);
  }
}
