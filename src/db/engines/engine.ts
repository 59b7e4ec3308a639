/**
 * The seam between the cluster logic and a database engine. The cluster code (bootstrap, clone,
 * start order; later failover) is written once against this interface.
 */

export type Role = 'primary' | 'replica';

/** Where a new replica copies its data from and streams changes from. */
export interface ReplicationSource {
  /** Node name of the primary. */
  name: string;
  host: string;
  port: number;
  /** The primary's data directory when it is on this machine (enables the file-copy clone). */
  localDataDir?: string | undefined;
}

/** Reports a step of a long operation to the operator. */
export type Progress = (message: string) => void;

export interface DatabaseEngine {
  /** True once the node has a data directory (initialised or cloned). */
  isInitialized(): boolean;
  /** Creates a new, empty primary. */
  initialize(progress: Progress): Promise<void>;
  /** Creates a replica from a running primary, set to stream from it. */
  cloneFrom(source: ReplicationSource, progress: Progress): Promise<void>;
  /** Starts the engine and resolves once it accepts connections. */
  start(progress: Progress): Promise<void>;
  /** The role the running engine has now. */
  role(): Promise<Role>;
  /** Stops the engine cleanly (committed data is flushed). */
  stop(): Promise<void>;
  /** Called once if the engine exits without stop() being called. */
  onUnexpectedExit(listener: (description: string) => void): void;
  /** Process id of the engine's main process while it runs. */
  readonly pid: number | undefined;
}
