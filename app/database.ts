/**
 * The demo codebase's database access: one pool on the writer (the primary) and one per reader
 * (the replicas). A read goes to the readers in turn and falls back to the next one, and at last
 * to the writer, when one cannot answer. Every failure reaches the caller as DatabaseUnavailable.
 */
import pg from 'pg';
import { waitForReplay } from '../src/db/client.js';

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
  /** Shown in pg_stat_activity. */
  applicationName: string;
  log: (message: string) => void;
}

/** Result of a health check of one side (writer or readers). */
export type Health = 'up' | 'down';

/** Longest a read waits for a replica to replay the reader's own last write before using the writer. */
const READ_YOUR_WRITES_WAIT_MS = 500;

/** The first row from a replica that has replayed up to `after`, or undefined if it lags too much. */
async function readAfter<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  sql: string,
  params: unknown[],
  after: string,
): Promise<R | undefined> {
  const client = await pool.connect();
  try {
    if (!(await waitForReplay(client, after, READ_YOUR_WRITES_WAIT_MS))) return undefined;
    return (await client.query<R>(sql, params)).rows[0]!;
  } finally {
    client.release();
  }
}

/** How long a reader that failed is tried only after the others and the writer. */
const READER_RETRY_MS = 1000;
/** Serialises schema creation across the processes of every server (any constant works). */
const SCHEMA_LOCK_KEY = 7_236_013;
const SCHEMA_SQL = `CREATE TABLE IF NOT EXISTS users (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
)`;

/** The writer pool and the reader pools of one codebase process. */
export class Database {
  readonly #log: (message: string) => void;
  readonly #writer: pg.Pool | undefined;
  readonly #readers: pg.Pool[];
  #nextReader = 0;
  /** Per reader: until when it is tried last (0 when it last answered). */
  readonly #readerDownUntil: number[];
  #schema: Promise<void> | undefined;
  #schemaReady = false;

  constructor(opts: DatabaseOptions) {
    this.#log = opts.log;
    const pool = (url: string, role: string) => {
      const p = new pg.Pool({
        connectionString: url,
        application_name: opts.applicationName,
        max: 5,
        connectionTimeoutMillis: 2000,
        idleTimeoutMillis: 10_000,
        query_timeout: 5000,
      });
      // An idle connection dropped by the server (restart, failover) must not crash the process.
      p.on('error', (err) => this.#log(`database ${role}: idle connection lost: ${err.message}`));
      return p;
    };
    this.#writer = opts.writerUrl ? pool(opts.writerUrl, 'writer') : undefined;
    this.#readers = this.#writer ? opts.readerUrls.map((url, i) => pool(url, `reader ${i}`)) : [];
    this.#readerDownUntil = this.#readers.map(() => 0);
  }

  /** False when the server has no database: every query then fails with DatabaseUnavailable. */
  get configured(): boolean {
    return this.#writer !== undefined;
  }

  /**
   * Creates the table once (on the writer, under an advisory lock so concurrent processes do not
   * race). A failure is forgotten, so the next call tries again.
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
   * Runs a read-only query on a reader (round robin), falling back to the next reader and then to
   * the writer. A reader that failed is tried last for READER_RETRY_MS, so an unreachable replica
   * does not slow every other read down.
   */
  async read<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], after?: string): Promise<R> {
    const writer = this.#requireWriter();
    if (!this.#schemaReady) {
      // Reads still work from a replica while the writer is down: try, but do not insist.
      await this.ensureSchema().catch((err: Error) => this.#log(`schema not ready: ${err.message}`));
    }
    const now = Date.now();
    const n = this.#readers.length;
    const first = n > 0 ? this.#nextReader++ % n : 0;
    const rotation = Array.from({ length: n }, (_, i) => (first + i) % n);
    const healthy = rotation.filter((i) => this.#readerDownUntil[i]! <= now);
    const resting = rotation.filter((i) => this.#readerDownUntil[i]! > now);
    const order: (number | 'writer')[] = [...healthy, 'writer', ...resting];
    let lastError: unknown;
    for (const node of order) {
      if (node === 'writer') {
        try {
          return await firstRow<R>(writer, sql, params);
        } catch (err) {
          lastError = err;
          continue;
        }
      }
      try {
        const row = after
          ? await readAfter<R>(this.#readers[node]!, sql, params, after)
          : await firstRow<R>(this.#readers[node]!, sql, params);
        if (row === undefined) {
          // The replica has not replayed our own last write yet: the writer answers this one.
          return await firstRow<R>(writer, sql, params);
        }
        if (this.#readerDownUntil[node]! > 0) this.#log(`database reader ${node} answers again`);
        this.#readerDownUntil[node] = 0;
        return row;
      } catch (err) {
        lastError = err;
        if (this.#readerDownUntil[node] === 0) {
          this.#log(`database reader ${node} failed (${(err as Error).message}): trying it last for a while`);
        }
        this.#readerDownUntil[node] = Date.now() + READER_RETRY_MS;
      }
    }
    const message = lastError instanceof Error ? lastError.message : String(lastError);
    throw new DatabaseUnavailable(`read failed on every node: ${message}`, { cause: lastError });
  }

  /**
   * Runs a query on the writer; also returns the WAL position after it, which a later read can
   * pass as `after` to see this write (read-your-writes, see tandem/db).
   */
  async write<R extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<R & { position: string }> {
    const writer = this.#requireWriter();
    try {
      await this.ensureSchema();
      const client = await writer.connect();
      try {
        const row = (await client.query<R>(sql, params)).rows[0]!;
        const pos = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
        return { ...row, position: pos.rows[0]!.lsn };
      } finally {
        client.release();
      }
    } catch (err) {
      throw new DatabaseUnavailable(`write failed: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * `SELECT 1` on the writer and on the readers, each bounded by `timeout` ms. The reader side is
   * up when any reader answers (or, with no reader configured, when the writer does).
   */
  async health(timeout: number): Promise<{ writer: Health; reader: Health }> {
    const writer = this.#requireWriter();
    const ping = (pool: pg.Pool): Promise<Health> =>
      withTimeout(pool.query('SELECT 1'), timeout).then(
        () => 'up',
        () => 'down',
      );
    const [writerHealth, ...readers] = await Promise.all([writer, ...this.#readers].map(ping));
    const reader = this.#readers.length === 0 ? writerHealth! : readers.includes('up') ? 'up' : 'down';
    return { writer: writerHealth!, reader };
  }

  /** Closes every pool (waits for checked-out connections to come back). */
  async end(): Promise<void> {
    await Promise.all([this.#writer, ...this.#readers].map((p) => p?.end()));
  }

  async #createSchema(): Promise<void> {
    const client = await this.#requireWriter().connect();
    let failed = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
      await client.query(SCHEMA_SQL);
      await client.query('COMMIT');
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      // A failed transaction leaves the connection in an unknown state: discard it.
      client.release(failed);
    }
  }

  #requireWriter(): pg.Pool {
    if (!this.#writer) throw new DatabaseUnavailable('no database is configured for this server');
    return this.#writer;
  }
}

async function firstRow<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  sql: string,
  params: unknown[],
): Promise<R> {
  const result = await pool.query<R>(sql, params);
  const row = result.rows[0];
  if (!row) throw new Error('the query returned no row');
  return row;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
