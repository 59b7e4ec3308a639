/**
 * The seam for health checking: a check watches one server, records every result on it and
 * decides when the server goes up or down. What one check does (an HTTP request, a TCP connect) is
 * a `Probe`; when checks run and how results turn into up and down is `ActiveHealthCheck`.
 */
import type { HealthCheckConfig } from '../../config/schema.js';

/** What the last checks of one server said. */
export interface CheckState {
  /** Result of the last check, null before the first one. */
  lastResult: 'ok' | 'fail' | null;
  /** Why the last check failed (`connect ECONNREFUSED`, `HTTP 503`, `timeout after 1000ms`). */
  lastError: string | null;
  /** When the last check ended (ms since the epoch), 0 before the first one. */
  lastCheckAt: number;
  /** How long the last check took. */
  lastDurationMs: number;
  /** How many checks in a row gave `lastResult`. */
  consecutive: number;
}

/** A server went up or down. */
export interface HealthChange {
  backend: string;
  server: string;
  up: boolean;
  /** True for the state the very first check decided. */
  initial: boolean;
  /** Checks in a row that led to the change (1 for the initial state). */
  consecutive: number;
  /** The last check's outcome: `HTTP 200` or the failure (`connect ECONNREFUSED`). */
  reason: string;
}

/** Called on every health transition, including the initial state. */
export type HealthChangeListener = (change: HealthChange) => void;

/** Checks one server until stopped. */
export interface HealthCheck {
  /** Runs the first check now, then one every interval. */
  start(): void;
  /** Stops checking: clears the timers and aborts a check in progress. */
  stop(): void;
  /** Settles when the first check has a result (or the check was stopped). Never rejects. */
  readonly firstResult: Promise<void>;
}

/** Where a probe connects. */
export interface ProbeTarget {
  readonly host: string;
  readonly port: number;
  /** `host:port`, sent as the Host of an HTTP check. */
  readonly address: string;
}

/** The outcome of one check. */
export interface ProbeResult {
  ok: boolean;
  /** `HTTP 200`, `connected`, or why the check failed (`connect ECONNREFUSED`, `HTTP 503`). */
  outcome: string;
}

/** One check of one server: an HTTP request, a TCP connect. */
export interface Probe {
  /**
   * Checks `target` once. Never rejects. When `signal` aborts (timeout, stop) the probe closes its
   * connection at once and settles with a failure the caller ignores.
   */
  run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult>;
}

/**
 * When checks run and what it takes to change state: `interval`, `timeout`, `rise`, `fall`, and
 * `fastInterval` / `downInterval` (each defaults to `interval`).
 */
export type CheckTiming = Pick<HealthCheckConfig, 'interval' | 'timeout' | 'rise' | 'fall'> &
  Partial<Pick<HealthCheckConfig, 'fastInterval' | 'downInterval'>>;
