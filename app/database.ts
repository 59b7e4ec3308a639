/**
 * The demo codebase's database access, through `tandem/db` (TandemDb): writes and transactions on
 * the writer, reads on the readers (the next reader, and at last the writer, when one cannot
 * answer), read-your-writes by position. The same code runs on PostgreSQL and MariaDB: the
 * statements are portable, and the few that cannot be (the table's definition, which node
 * answered) come from DIALECTS. Every failure reaches the caller as DatabaseUnavailable.
 */
import { type DbEngine, type Row, TandemDb, type Transaction } from '../src/db/client.js';

/** The database could not answer (down, unreachable, read-only, timed out, or not configured). */
export class DatabaseUnavailable extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DatabaseUnavailable';
  }
}

/** Where the database nodes are, from the environment. */
export interface DatabaseOptions {
  /** DATABASE_WRITER_URL; undefined when the server has no database. */
  writerUrl: string | undefined;
  /** DATABASE_READER_URLS, split. */
  readerUrls: readonly string[];
  /** Names the connections on the server (pg_stat_activity, MariaDB's connection attributes). */
  applicationName: string;
  log: (message: string) => void;
}

/** Result of a health check of one side (writer or readers). */
export type Health = 'up' | 'down';

/** What differs between the engines: everything else the demo sends is portable SQL. */
interface Dialect {
  /** Creates the users table when it is missing. */
  createSchema(tx: Transaction): Promise<void>;
  /**
   * Two columns, `node` (the node's name, else its address) and `replica` (true or 1 on a
   * replica), naming the node that runs the statement.
   */
  answeredBy: string;
}

/** Serialises PostgreSQL's schema creation across the processes of every server (any constant works). */
const SCHEMA_LOCK_KEY = 7_236_013;

export const DIALECTS: Record<DbEngine, Dialect> = {
  postgres: {
    async createSchema(tx) {
      // Concurrent CREATE TABLE IF NOT EXISTS can collide on PostgreSQL: one process at a time.
      await tx.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
      await tx.query(`CREATE TABLE IF NOT EXISTS users (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`);
    },
    answeredBy: `coalesce(nullif(current_setting('cluster_name'), ''),
      host(inet_server_addr()) || ':' || inet_server_port(), 'local') AS node,
    pg_is_in_recovery() AS replica`,
  },
  mysql: {
    async createSchema(tx) {
      await tx.query(`CREATE TABLE IF NOT EXISTS users (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
)`);
    },
    // MariaDB has no cluster_name: report_host names the node when the engine sets it, else its
    // address. Tandem's replicas are read-only, the primary is the one node that is not.
    answeredBy: `COALESCE(NULLIF(@@report_host, ''), CONCAT(@@bind_address, ':', @@port)) AS node,
    @@read_only AS replica`,
  },
};

/** Longest a read waits for a replica to replay the reader's own last write before using the writer. */
const READ_YOUR_WRITES_WAIT_MS = 500;

/** The database of one codebase process: a TandemDb, or none when the server has no database. */
export class Database {
  readonly #log: (message: string) => void;
  readonly #db: TandemDb | undefined;
  #schema: Promise<void> | undefined;
  #schemaReady = false;
  /**
   * Where the writer stood once this process's schema transaction committed, until its first read:
   * the table may be that new, and a replica that has not replayed it yet would answer "no such
   * table" (the read then falls back to the writer). The first read asks for a replica that has.
   */
  #schemaPosition: string | undefined;

  constructor(opts: DatabaseOptions) {
    this.#log = opts.log;
    this.#db = opts.writerUrl
      ? new TandemDb({
          writer: opts.writerUrl,
          readers: [...opts.readerUrls],
          readYourWritesWait: READ_YOUR_WRITES_WAIT_MS,
          poolSize: 5,
          connectTimeout: 2000,
          queryTimeout: 5000,
          applicationName: opts.applicationName,
        })
      : undefined;
  }

  /** False when the server has no database: every query then fails with DatabaseUnavailable. */
  get configured(): boolean {
    return this.#db !== undefined;
  }

  /** The engine's SQL for what is not portable. */
  get dialect(): Dialect {
    return DIALECTS[this.#require().engine];
  }

  /** True when `value` is a position of this database's engine (from a cookie or a header). */
  isPosition(value: unknown): value is string {
    return this.#db?.isPosition(value) ?? false;
  }

  /**
   * Creates the table once (on the writer). A failure is forgotten, so the next call tries again.
   */
  ensureSchema(): Promise<void> {
    this.#schema ??= this.#createSchema().then(
      () => {
        this.#schemaReady = true;
      },
      (err: unknown) => {
        this.#schema = undefined;
        throw err;
      },
    );
    return this.#schema;
  }

  /**
   * Runs a read-only query on a reader; with `after`, on one that has replayed that position, else
   * on the writer (see TandemDb.read).
   */
  async read<R extends object = Row>(sql: string, params: unknown[] = [], after?: string): Promise<R[]> {
    const db = this.#require();
    if (!this.#schemaReady) {
      // Reads still work from a replica while the writer is down: try, but do not insist.
      await this.ensureSchema().catch((err: Error) => this.#log(`schema not ready: ${err.message}`));
    }
    const schemaPosition = this.#schemaPosition;
    this.#schemaPosition = undefined;
    try {
      // A position of the caller's own is of a write made with the table in place: it is enough.
      return (await db.read<R>(sql, params, { after: after ?? schemaPosition })).rows;
    } catch (err) {
      throw new DatabaseUnavailable(`read failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * Runs `fn` in a transaction on the writer; also returns the position after it, which a later
   * read can pass as `after` to see this write (read-your-writes, see tandem/db).
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<{ result: T; position: string }> {
    const db = this.#require();
    try {
      await this.ensureSchema();
      return await db.transaction(fn);
    } catch (err) {
      throw new DatabaseUnavailable(`write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * `SELECT 1` on the writer and on the readers, each bounded by `timeout` ms. The reader side is
   * up when any reader answers (or, with no reader configured, when the writer does).
   */
  async health(timeout: number): Promise<{ writer: Health; reader: Health }> {
    const h = await this.#require().health(timeout);
    return { writer: h.writer, reader: h.readers.includes('up') ? 'up' : 'down' };
  }

  /** Closes every pool (waits for checked-out connections to come back). */
  async end(): Promise<void> {
    await this.#db?.close();
  }

  async #createSchema(): Promise<void> {
    const dialect = this.dialect;
    const { position } = await this.#require().transaction((tx) => dialect.createSchema(tx));
    this.#schemaPosition = position;
  }

  #require(): TandemDb {
    if (!this.#db) throw new DatabaseUnavailable('no database is configured for this server');
    return this.#db;
  }
}
