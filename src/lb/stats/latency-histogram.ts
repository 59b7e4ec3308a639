/**
 * A request latency histogram cheap enough for the proxy's hot path: `observe()` is a short scan
 * over the bucket bounds and three additions, with no allocation and no label lookup. The
 * Prometheus view (cumulative buckets, `_sum`, `_count`) is built only when metrics are scraped.
 */

/** Upper bounds of the buckets, in seconds (Prometheus `le`); a `+Inf` bucket follows them. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Latencies of one backend's requests. */
export class LatencyHistogram {
  /** Observations per bucket, not cumulative; the last one is `+Inf`. */
  private readonly counts: Float64Array;
  /** Number of observations. */
  count = 0;
  /** Sum of the observed values, in seconds. */
  sum = 0;

  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one request that took `seconds`. */
  observe(seconds: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    this.counts[i]!++;
    this.count++;
    this.sum += seconds;
  }

  /** The observations so far, per bucket (not cumulative), with their count and sum. */
  snapshot(): { counts: number[]; count: number; sum: number } {
    return { counts: Array.from(this.counts), count: this.count, sum: this.sum };
  }

  /** Replaces the observations with `counts` per bucket (as snapshot() gives them): sums of other processes'. */
  setTotals(counts: readonly number[], count: number, sum: number): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = counts[i] ?? 0;
    this.count = count;
    this.sum = sum;
  }

  /** Cumulative count per bound (`le`), the `+Inf` bucket last (equal to `count`). */
  cumulative(): number[] {
    const out: number[] = [];
    let acc = 0;
    for (const c of this.counts) {
      acc += c;
      out.push(acc);
    }
    return out;
  }
}
