/**
 * `tandem/db`: the database client for applications behind Tandem. Writes and transactions go
 * to the writer endpoint, plain reads to the reader endpoint, and a read can wait for the
 * application's own last write (read-your-writes):
 *
 * ```ts
 * import { TandemDb } from 'tandem/db';
 * const db = new TandemDb({ writer: process.env.DATABASE_WRITER_URL, readers: process.env.DATABASE_READER_URLS });
 * const { rows, position } = await db.write('INSERT INTO users (name) VALUES ($1) RETURNING id', ['Ada']);
 * const users = await db.read('SELECT * FROM users', [], { after: position }); // sees Ada
 * ```
 *
 * `position` is the writer's WAL position after the write (PostgreSQL LSN, like `0/3000060`). A
 * read given `after` runs on a replica only once that replica has replayed up to it, waiting at
 * most `readYourWritesWait`; past that it runs on the writer. The position is a plain string, so
 * it can travel between requests (in a cookie, say) and between processes.
 */
import pg from 'pg';

export interface TandemDbOptions {
  /** Writer URL (DATABASE_WRITER_URL). */
  writer: string | undefined;
  /** Reader URLs, an array or a comma-separated string (DATABASE_READER_URLS); default: the writer. */
  readers?: string | string[] | undefined;
  /** Longest a read waits for a replica to catch up with `after` before using the writer (ms). */
  readYourWritesWait?: number;
  /** Connections per pool. */
  poolSize?: number;
}

export interface ReadOptions {
  /** A position returned by write() or transaction(): the read sees at least that write. */
  after?: string | null | undefined;
}

/** Where a read was answered: a replica that had caught up, or the writer. */
export type AnsweredBy = 'reader' | 'writer';

export class TandemDb {
  private readonly writer: pg.Pool;
  private readonly readers: pg.Pool[];
  private next = 0;
  private readonly wait: number;

  constructor(opts: TandemDbOptions) {
    if (!opts.writer) throw new TypeError('TandemDb: a writer URL is required (DATABASE_WRITER_URL)');
    const size = opts.poolSize ?? 5;
    const pool = (url: string) => {
      const p = new pg.Pool({ connectionString: url, max: size, connectionTimeoutMillis: 3000 });
      p.on('error', () => undefined); // an idle connection lost: the next query reconnects
      return p;
    };
    this.writer = pool(opts.writer);
    const urls = Array.isArray(opts.readers)
      ? opts.readers
      : (opts.readers ?? '')
          .split(',')
          .map((u) => u.trim())
          .filter(Boolean);
    this.readers = urls.length > 0 ? urls.map(pool) : [this.writer];
    this.wait = opts.readYourWritesWait ?? 500;
  }

  /** Runs a statement on the writer; returns its rows and the WAL position after it. */
  async write<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
  ): Promise<{ rows: R[]; position: string }> {
    return this.transaction(async (client) => (await client.query<R>(sql, params)).rows).then(
      ({ result, position }) => ({ rows: result, position }),
    );
  }

  /** Runs `fn` in a transaction on the writer; returns its result and the WAL position after commit. */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<{ result: T; position: string }> {
    const client = await this.writer.connect();
    try {
      await client.query('BEGIN');
      let result: T;
      try {
        result = await fn(client);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      const pos = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      return { result, position: pos.rows[0]!.lsn };
    } finally {
      client.release();
    }
  }

  /**
   * Runs a read on a replica (round robin over the readers); with `after`, only on one that has
   * replayed up to that position, else on the writer once `readYourWritesWait` has passed.
   */
  async read<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    opts: ReadOptions = {},
  ): Promise<{ rows: R[]; answeredBy: AnsweredBy }> {
    const pool = this.readers[this.next++ % this.readers.length]!;
    if (pool === this.writer)
      return { rows: (await this.writer.query<R>(sql, params)).rows, answeredBy: 'writer' };
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch {
      return { rows: (await this.writer.query<R>(sql, params)).rows, answeredBy: 'writer' };
    }
    try {
      if (opts.after && !(await waitForReplay(client, opts.after, this.wait))) {
        return { rows: (await this.writer.query<R>(sql, params)).rows, answeredBy: 'writer' };
      }
      return { rows: (await client.query<R>(sql, params)).rows, answeredBy: 'reader' };
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.writer, ...this.readers.filter((p) => p !== this.writer)].map((p) => p.end()));
  }
}

/** True for a WAL position as PostgreSQL writes it (`0/3000060`): what `after` accepts from outside. */
export function isWalPosition(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(value);
}

/**
 * Polls a replica connection until it has replayed up to `lsn` (or is not a replica at all), for
 * at most `waitMs`. True when a read on this connection now sees everything up to `lsn`.
 */
export async function waitForReplay(client: pg.ClientBase, lsn: string, waitMs: number): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const r = await client.query<{ ok: boolean }>(
      'SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok',
      [lsn],
    );
    if (r.rows[0]?.ok) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((res) => setTimeout(res, 10));
  }
}
