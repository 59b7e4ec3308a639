/**
 * The seam between the cluster logic and a database engine. The cluster code (node agent,
 * cluster manager, status commands) is written once against these two interfaces:
 *
 * - `DatabaseEngine`: one node's engine process on this machine (data directory, start, stop,
 *   clone, rejoin, the node's own role changes).
 * - `EngineDriver`: SQL-level operations on any node of the cluster, by address (what the cluster
 *   manager and the status commands need: probe, promote, prepare a primary for a replica).
 *
 * Positions (`position`, `replayed`) are opaque strings to the cluster code: a PostgreSQL LSN
 * (`0/3000060`), a MariaDB GTID position (`0-1-42`). Only the driver compares them (`diff`), in its
 * own unit (`lagUnit`). Lag in bytes of the primary's log (`lagBytes`) is there on both engines,
 * from the same two probes.
 */

export type Role = 'primary' | 'replica';

/** A node of the cluster, by address. */
export interface NodeAddress {
  name: string;
  host: string;
  port: number;
}

/** Where a new replica copies its data from and streams changes from. */
export interface ReplicationSource extends NodeAddress {
  /** The primary's data directory when it is on this machine (enables the file-copy clone). */
  localDataDir?: string | undefined;
}

/** Reports a step of a long operation to the operator. */
export type Progress = (message: string) => void;

/** One look at one node. */
export interface NodeProbe {
  role: Role;
  /** Written (primary) or received (replica) position. */
  position: string | null;
  /** Replayed (applied) position; on a primary, the same as `position`. */
  replayed: string | null;
  /**
   * Binary log coordinates (MariaDB), what `lagBytes` needs besides the positions; only the driver
   * reads them. Absent on PostgreSQL, whose positions are byte offsets already.
   */
  log?: LogCoordinates | undefined;
}

/** Where a node is in binary log coordinates (MariaDB: file name and byte offset in the file). */
export interface LogCoordinates {
  /** A replica: the file of its primary's binary log and the offset up to which it has applied it. */
  applied?: { file: string; offset: number } | undefined;
  /** A primary: its binary log files, oldest first, with their sizes (the last one's is its end). */
  files?: { name: string; size: number }[] | undefined;
}

/** What the primary knows of one replica's replication. */
export interface ReplicaLink {
  /** Seconds the replica's replay is behind (0 when caught up), null when unknown. */
  lagSeconds: number | null;
  /** `sync`, `async`, `potential`/`quorum` (PostgreSQL) or `semi-sync`: how the primary waits for it. */
  mode: string;
}

/** The log a node keeps on disk, and on a PostgreSQL primary what each replica's slot holds. */
export interface LogKept {
  /** Bytes of WAL files (PostgreSQL) or binary logs (MariaDB) on the node's disk. */
  bytes: number;
  /** PostgreSQL, per replica slot (empty on MariaDB, which has no slots, and on a replica). */
  slots: SlotKept[];
}

export interface SlotKept {
  /** The replica node the slot is for, or the slot's own name for a slot Tandem did not make. */
  replica: string;
  /** WAL the slot holds back, from its restart position to the primary's; null once invalidated. */
  retainedBytes: number | null;
  /** WAL that may still be written before the slot is invalidated; null when unbounded or invalidated. */
  safeBytes: number | null;
  /** The primary invalidated the slot: its replica must be cloned afresh. */
  lost: boolean;
}

export interface EngineDriver {
  /** `PostgreSQL` or `MariaDB`: for messages. */
  readonly label: string;
  /** What `diff` counts: bytes of WAL (PostgreSQL) or transactions (MariaDB GTIDs). */
  readonly lagUnit: 'bytes' | 'transactions';
  /** Role and positions of a node; throws when it cannot be reached. */
  probe(node: NodeAddress, timeoutMs: number): Promise<NodeProbe>;
  /** How far `ahead` is past `behind` (negative when behind), or null when either is unknown. */
  diff(ahead: string | null | undefined, behind: string | null | undefined): number | null;
  /**
   * Bytes of the primary's log that the replica has not applied yet, from a probe of each:
   * PostgreSQL, WAL from the replica's replay position to the primary's; MariaDB, binary log from
   * the replica's applied coordinates to the primary's end, summed across files. Null when it
   * cannot be told (the replica's file is no longer, or never was, in the primary's log), never
   * a guess.
   */
  lagBytes(primary: NodeProbe, replica: NodeProbe): number | null;
  /**
   * Promotes a running replica: lets it apply what it has received (bounded), makes it a
   * writable primary, prepares it to serve `peers` as replicas. Resolves with its position.
   */
  promote(node: NodeAddress, peers: string[], progress: Progress): Promise<string | null>;
  /** Waits until `primary` accepts connections, then prepares it to serve `replica` (a slot). */
  prepareForReplica(primary: NodeAddress, replica: string, timeoutMs: number): Promise<void>;
  /** Per replica name: what the primary knows of its replication; empty when it cannot tell. */
  replicaLinks(primary: NodeAddress): Promise<Map<string, ReplicaLink>>;
  /** Seconds this replica's replay is behind its primary, as the replica sees it (null: unknown). */
  replicaLagSeconds(node: NodeAddress): Promise<number | null>;
  /** The log `node` keeps on disk, and what its slot for each of `replicas` (node names) holds of it. */
  logKept(node: NodeAddress, replicas: readonly string[]): Promise<LogKept>;
}

export interface BootstrapSecrets {
  replication: string;
  app: string;
}

/** What bootstrap creates on a primary: the codebase's database and user, the peers it serves. */
export interface BootstrapPlan {
  database: string;
  user: string;
  replicas: string[];
  secrets: BootstrapSecrets;
}

export interface DatabaseEngine {
  /** True once the node has a data directory (initialised or cloned). */
  isInitialized(): boolean;
  /** True when the data directory is set to start as a replica. */
  isStandbyOnDisk(): boolean;
  /** Creates a new, empty primary. */
  initialize(progress: Progress): Promise<void>;
  /** Creates a replica from a running primary, set to stream from it. */
  cloneFrom(source: ReplicationSource, progress: Progress): Promise<void>;
  /** Sets a stopped data directory to start as a replica of `source`. */
  configureStandby(source: ReplicationSource): void;
  /**
   * Turns the stopped data directory of a former primary into a replica of `source` (rewind, or
   * a fresh clone with the old directory kept aside). Never deletes data.
   */
  rejoin(source: ReplicationSource, progress: Progress): Promise<void>;
  /** Keeps the stopped data directory aside (renamed) and clones a replica of `source` afresh. */
  cloneAfresh(source: ReplicationSource, progress: Progress): Promise<void>;
  /** Starts the engine and resolves once it accepts connections. */
  start(progress: Progress): Promise<void>;
  /** The role the running engine has now. */
  role(): Promise<Role>;
  /** Creates users, database and replication needs on a running primary; idempotent. */
  bootstrap(plan: BootstrapPlan): Promise<void>;
  /** Lets a running primary take writes (MariaDB starts read-only; PostgreSQL: nothing to do). */
  openForWrites(): Promise<void>;
  /** Points a running replica at another primary. */
  follow(source: ReplicationSource): Promise<void>;
  /** True when this running replica receives changes from its primary. */
  isStreaming(): Promise<boolean>;
  /**
   * Why this running replica can never catch up with its primary (the log it needs is gone from
   * the primary, which is told by the engine's own messages since its last start), or null.
   */
  cannotCatchUp(): string | null;
  /** Promotes this running replica and waits until it takes writes. */
  promote(): Promise<void>;
  /**
   * Switchover: stops taking writes, ends client sessions, flushes; resolves with the last
   * position. The caller then stops the engine.
   */
  fenceForSwitchover(): Promise<string>;
  /** Stops the engine cleanly (committed data is flushed). */
  stop(): Promise<void>;
  /** Called once if the engine exits without stop() being called. */
  onUnexpectedExit(listener: (description: string) => void): void;
  /** Process id of the engine's main process while it runs. */
  readonly pid: number | undefined;
  /** SQL operations on any node of the cluster. */
  readonly driver: EngineDriver;
}
