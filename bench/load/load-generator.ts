/** The seam between the harness and the tool that sends the load (wrk, else autocannon). */
import type { ChildGroup } from '../children.js';

/** One load run's settings. */
export interface LoadSettings {
  url: string;
  /** Keep-alive connections, each with one request in flight at a time. */
  connections: number;
  /** Whole seconds. */
  durationSec: number;
  /** wrk threads / autocannon worker threads. */
  threads: number;
  /** A request without an answer within this many seconds counts as a timeout error. */
  timeoutSec: number;
}

/** What one load run measured. */
export interface LoadResult {
  /** Responses received. */
  requests: number;
  /** Length of the run in seconds, as the load generator measured it. */
  seconds: number;
  /** requests / seconds. */
  rps: number;
  /** Response bytes received (headers included for wrk). */
  bytes: number;
  /** Latency percentiles in milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** Errors by kind; `status` counts answers with a status ≥ 400 (wrk) or outside 2xx (autocannon). */
  errors: { connect: number; read: number; write: number; timeout: number; status: number; total: number };
}

/** A load generator. */
export interface LoadGenerator {
  /** `wrk` or `autocannon`. */
  readonly name: string;
  version(): Promise<string>;
  /** Runs the load once; rejects when the tool fails or prints no result. */
  run(settings: LoadSettings, children: ChildGroup): Promise<LoadResult>;
}
