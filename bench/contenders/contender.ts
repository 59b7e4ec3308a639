/**
 * The seam between the harness and what it measures: a contender is something that answers HTTP
 * on a port of 127.0.0.1, in front of the two benchmark backends (or one of them, for `direct`).
 */
import type { SpreadMode } from '../../src/config/schema.js';
import type { BackendAddress } from '../backend/backends.js';
import type { ChildGroup } from '../children.js';

/** What a contender is started with. */
export interface ContenderEnv {
  /** The two backends, in order (web-01, web-02). */
  backends: readonly BackendAddress[];
  /** A directory of its own for config files, pid files, logs and temp files. */
  dir: string;
  children: ChildGroup;
  /** Client connections the contender must be able to hold at once (the idle test's count + margin). */
  maxClientConnections: number;
  /** Tandem's `workers` setting (`--tandem-workers`). */
  tandemWorkers: 'auto' | number;
  /** Tandem's `spreadConnections` setting (`--tandem-spread`). */
  tandemSpread: SpreadMode;
}

/** A started contender. */
export interface RunningContender {
  /** Port of 127.0.0.1 to send the load to. */
  port: number;
  /**
   * Process whose tree is measured (CPU time, memory), or undefined when there is no proxy
   * process (`direct`).
   */
  pid: number | undefined;
  /**
   * Most client connections it can hold at once when that is below the `maxClientConnections`
   * asked for, and why (`maxconn 9950: open-files hard limit 20000`); undefined otherwise.
   */
  capacity?: { connections: number; why: string };
  /** Stops every process of the contender. */
  stop(): Promise<void>;
  /** The client connections each of its worker processes holds now, by worker (Tandem only). */
  workerConnections?(): Promise<number[] | undefined>;
}

/** One contender of the benchmark. */
export interface Contender {
  /** Id used by `--only` and in the results: `tandem-l7`, `haproxy-http`. */
  readonly id: string;
  /** Name in tables and charts: `Tandem L7 (HTTP)`. */
  readonly label: string;
  /**
   * The layer it proxies at; throughput ratios compare `http` contenders with HAProxy `mode
   * http` and `tcp` contenders with HAProxy `mode tcp`. `none`: no proxy (`direct`).
   */
  readonly layer: 'http' | 'tcp' | 'none';
  /** Why it cannot run on this machine (a missing binary, a feature not built yet), or undefined. */
  unavailable(): Promise<string | undefined>;
  /** Version string for the results (`HAProxy 2.6.12`). */
  version(): Promise<string>;
  /** Starts it; resolves once it answers through to both backends. */
  start(env: ContenderEnv): Promise<RunningContender>;
}
