/**
 * The seam for health checking: a check watches one server, records every result on it and
 * decides when the server goes up or down.
 */

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
