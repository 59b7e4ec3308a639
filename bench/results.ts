/** The shape of `bench/results/<date>.json`: everything one benchmark run measured. */
import type { SpreadMode } from '../src/config/schema.js';
import type { ReaderResults } from './db/reader-endpoint.js';
import type { IdleResult } from './idle/idle-memory.js';
import type { LoadResult } from './load/load-generator.js';
import type { Machine } from './machine.js';

/** One measured run, with the proxy's CPU time during it. */
export interface RunResult extends LoadResult {
  /** When the measured run started (ISO 8601): the order of the runs of a point, and the time of day. */
  startedAt?: string;
  /** User + system CPU seconds the proxy's processes used during the run; undefined for `direct`. */
  cpuSeconds?: number;
  /**
   * Tandem: the client connections each worker process held halfway through the run, by worker.
   * The kernel spreads the load generator's connections over the workers, evenly or not (64/0 is
   * seen): a reader can tell whether a slow run went with an uneven split.
   */
  workerConnections?: number[];
}

/** One point: a contender, a case, a concurrency; figures are medians over the measured runs. */
export interface PointResult {
  contender: string;
  case: string;
  connections: number;
  runs: RunResult[];
  /** Median requests/s. */
  rps: number;
  /** Median of each percentile over the runs, in milliseconds. */
  latencyMs: { p50: number; p99: number; p999: number };
  /** Errors of every kind, summed over the measured runs. */
  errors: number;
  /** Median CPU seconds of the proxy per run. */
  cpuSeconds?: number;
  /** cpuSeconds as a share of one core over the run (200 = two cores busy). */
  cpuPercent?: number;
  /** Peak resident memory of the proxy's processes during the measured runs, in MiB. */
  peakRssMiB?: number;
  /**
   * rps ÷ the HAProxy reference's rps at the same point (see `reference`): the median over the
   * rounds of each round's ratio where both ran once per round (results of runs before
   * 2026-12-05 10:30: the ratio of the medians), else the ratio of the medians.
   */
  ratio?: number;
  /** The ratio of the median rps to the reference's (absent in results of older runs: `ratio` was it). */
  medianRatio?: number;
  /** p99 ÷ the HAProxy reference's p99 at the same point, by round as `ratio`. */
  p99Ratio?: number;
  /** The contender the ratios compare with: haproxy-http or haproxy-tcp. */
  reference?: string;
  /** Why the point has no figures (the load generator failed, the proxy died). */
  failed?: string;
}

/** A contender as it took part. */
export interface ContenderResult {
  id: string;
  label: string;
  layer: 'http' | 'tcp' | 'none';
  version?: string;
  /** Why it was not measured (not installed, not implemented yet). */
  skipped?: string;
  /** Why it stopped being measured (it failed to start or died). */
  failed?: string;
}

/** One of the speed targets, checked against this run. */
export interface TargetCheck {
  target: string;
  /** What was measured, in words: `0.83 × (41,200 vs 49,600 req/s)`. */
  measured: string;
  /** Undefined when a figure it needs was not measured. */
  met: boolean | undefined;
}

export interface BenchResults {
  /** ISO 8601 time the run started. */
  date: string;
  /** The command line, to reproduce it. */
  command: string;
  quick: boolean;
  machine: Machine;
  settings: {
    durationSec: number;
    warmupSec: number;
    runs: number;
    connections: number[];
    threads: number;
    timeoutSec: number;
    idleConnections: number;
    /** pgbench clients of the reader endpoint measurement (absent in results of older runs). */
    dbClients?: number;
    /** Tandem's `workers` setting in this run (absent in results of older runs: they had none). */
    tandemWorkers?: 'auto' | number;
    /**
     * Tandem's `spreadConnections` in this run. Absent in results of older runs: off; `true` in
     * those of `--tandem-spread` when it was a switch: even.
     */
    tandemSpread?: SpreadMode | boolean;
  };
  loadGenerator: { name: string; version: string };
  cases: Array<{ id: string; label: string; path: string }>;
  contenders: ContenderResult[];
  points: PointResult[];
  idle: IdleResult[];
  /** Contenders the idle test did not run for, and why. */
  idleSkipped: Array<{ contender: string; reason: string }>;
  /** The database reader endpoint: pgbench -S through it with one and two replicas. */
  reader?: ReaderResults;
  targets: TargetCheck[];
  /** Lines about what was skipped and why (missing contenders, endpoints not built yet). */
  notes: string[];
}
