/**
 * `tandem/db`: the database client for applications behind Tandem, on PostgreSQL and MariaDB
 * alike. Writes and transactions go to the writer endpoint, plain reads to the reader endpoint,
 * and a read can wait for the application's own last write (read-your-writes):
 *
 * ```ts
 * import { TandemDb } from 'tandem/db';
 * const db = new TandemDb({ writer: process.env.DATABASE_WRITER_URL, readers: process.env.DATABASE_READER_URLS });
 * const { rows, position } = await db.write('INSERT INTO users (name) VALUES ($1) RETURNING id', ['Ada']);
 * const users = await db.read('SELECT * FROM users', [], { after: position }); // sees Ada
 * ```
 *
 * **Engine**: chosen from the writer URL's scheme: `postgres://` or `postgresql://` (node-postgres
 * pools), `mysql://` or `mariadb://` (mysql2 pools, for MariaDB). Every URL of one client must
 * name the same engine. `db.engine` says which it is (`postgres` or `mysql`).
 *
 * **Positions**: `position` is where the writer's log stood after the write: on PostgreSQL its
 * WAL position (LSN, like `0/3000060`), on MariaDB the session's GTID after the write
 * (`@@last_gtid`, like `0-1-42`; `@@gtid_binlog_pos` when the statement wrote nothing, which may be
 * a list like `0-1-42,1-2-7`). A read given `after` runs on a replica only once that replica has
 * replayed up to it (PostgreSQL: `pg_last_wal_replay_lsn()`; MariaDB: `MASTER_GTID_WAIT`), waiting
 * at most `readYourWritesWait`; past that it runs on the writer. A reader connection that turns out
 * to be a primary (not in recovery; MariaDB: not `read_only`) answers at once. The position is a
 * plain string, so it can travel between requests (in a cookie, say) and between processes; check
 * a value that comes from outside with `db.isPosition(value)` (or `isPosition(value, engine)`):
 * `read()` refuses an `after` that is not a position of its engine with a TypeError.
 *
 * **Placeholders**: write `$1`, `$2`… on both engines (PostgreSQL's own style; a number may repeat
 * and come in any order). On MariaDB they are replaced by the escaped values on the client (outside
 * quoted strings, quoted identifiers and comments), as mysql2 does for `?`; MariaDB's own `?`
 * style also works there (not mixed with `$n` in one statement). The number of values must match
 * the placeholders (like PostgreSQL, which refuses extra values). Values: strings, numbers,
 * bigints, booleans, null/undefined (NULL), Dates (sent in UTC on MariaDB), Buffers; other objects
 * and arrays are sent as JSON text on MariaDB (node-postgres sends arrays as PostgreSQL arrays).
 *
 * **Rows**: every query resolves to `{ rows, rowCount }`, `rows` an array of plain objects keyed
 * by column name, the same shape on both engines: integers (BIGINT too) are numbers while they
 * are safe integers and strings past that; DECIMAL/NUMERIC are strings; timestamps and dates are
 * Dates (MariaDB sessions run in UTC, `time_zone = '+00:00'`); MariaDB `BOOLEAN` (TINYINT(1)) is a
 * boolean; JSON columns are parsed. `rowCount` is the number of rows returned, or for a statement
 * without rows the number it changed (matched, for an UPDATE, as on PostgreSQL).
 *
 * **Transactions**: `transaction(fn)` gives `fn` a `Transaction` whose `query()` is the one above
 * (not the driver's own client); the transaction commits when `fn` resolves, rolls back when it
 * throws.
 *
 * The SQL itself is the engine's own dialect: `INSERT … RETURNING`, `DELETE … RETURNING`, `$n`
 * placeholders and plain SELECTs are portable; DDL usually is not.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';

/** The engine behind a TandemDb: PostgreSQL or MariaDB (`mysql`, as in `database.engine`). */
export type DbEngine = 'postgres' | 'mysql';

export interface TandemDbOptions {
  /** Writer URL (DATABASE_WRITER_URL): `postgres://…`, `postgresql://…`, `mysql://…` or `mariadb://…`. */
  writer: string | undefined;
  /** Reader URLs, an array or a comma-separated string (DATABASE_READER_URLS); default: the writer. */
  readers?: string | string[] | undefined;
  /** Longest a read waits for a replica to catch up with `after` before using the writer (ms). */
  readYourWritesWait?: number;
  /** Connections per pool. */
  poolSize?: number;
  /** Longest a new connection may take (ms); default 3000. */
  connectTimeout?: number;
  /** Longest one query may take, client-side (ms; keep it above readYourWritesWait); default: no limit. */
  queryTimeout?: number;
  /** Names the connections on the server (PostgreSQL application_name, MariaDB program_name). */
  applicationName?: string;
}

export interface ReadOptions {
  /** A position returned by write() or transaction(): the read sees at least that write. */
  after?: string | null | undefined;
}

/** Where a read was answered: a replica that had caught up, or the writer. */
export type AnsweredBy = 'reader' | 'writer';

/** A row: column name → value. */
export type Row = Record<string, unknown>;

/** What a query resolves to on either engine. */
export interface QueryResult<R> {
  rows: R[];
  /** Rows returned, or for a statement that returns none, rows it changed. */
  rowCount: number;
}

/** The connection a transaction() callback gets: every query runs on the writer, in the transaction. */
export interface Transaction {
  readonly engine: DbEngine;
  query<R extends object = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
}

/** Health of each pool, from `health()`. */
export interface DbHealth {
  writer: 'up' | 'down';
  readers: ('up' | 'down')[];
}

/** One connection checked out of a pool. */
interface Session {
  query(sql: string, params: readonly unknown[]): Promise<QueryResult<Row>>;
  /** Back to the pool; `broken` closes it instead (its state is unknown). */
  release(broken?: boolean): void;
}

interface Pool {
  connect(): Promise<Session>;
  end(): Promise<void>;
}

/** A reader that failed is tried only after the other readers and the writer for this long. */
const READER_REST_MS = 1000;

export class TandemDb {
  readonly engine: DbEngine;
  private readonly writer: Pool;
  private readonly readers: Pool[];
  /** Per reader: until when it is tried last (0 while it answers). */
  private readonly readerRestUntil: number[];
  private next = 0;
  private readonly wait: number;

  constructor(opts: TandemDbOptions) {
    if (!opts.writer) throw new TypeError('TandemDb: a writer URL is required (DATABASE_WRITER_URL)');
    this.engine = engineOf(opts.writer);
    const urls = Array.isArray(opts.readers)
      ? opts.readers
      : (opts.readers ?? '')
          .split(',')
          .map((u) => u.trim())
          .filter(Boolean);
    for (const url of urls) {
      if (engineOf(url) !== this.engine)
        throw new TypeError(`TandemDb: the reader URLs must name the writer's engine (${this.engine})`);
    }
    const settings: PoolSettings = {
      size: opts.poolSize ?? 5,
      connectTimeout: opts.connectTimeout ?? 3000,
      queryTimeout: opts.queryTimeout,
      applicationName: opts.applicationName,
    };
    const pool = (url: string) =>
      this.engine === 'postgres' ? postgresPool(url, settings) : mariaDbPool(url, settings);
    this.writer = pool(opts.writer);
    this.readers = urls.length > 0 ? urls.map(pool) : [this.writer];
    this.readerRestUntil = this.readers.map(() => 0);
    this.wait = Math.max(0, opts.readYourWritesWait ?? 500);
  }

  /** True when `value` is a position of this client's engine (check values from cookies, headers). */
  isPosition(value: unknown): value is string {
    return isPosition(value, this.engine);
  }

  /** Runs one statement on the writer; returns its rows and the writer's position after it. */
  async write<R extends object = Row>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<{ rows: R[]; rowCount: number; position: string }> {
    const session = await this.writer.connect();
    let broken = false;
    try {
      const result = await session.query(sql, params);
      return { rows: result.rows as R[], rowCount: result.rowCount, position: await this.position(session) };
    } catch (err) {
      broken = isNodeError(err);
      throw err;
    } finally {
      session.release(broken);
    }
  }

  /** Runs `fn` in a transaction on the writer; returns its result and the writer's position after commit. */
  async transaction<T>(fn: (tx: Transaction) => Promise<T>): Promise<{ result: T; position: string }> {
    const session = await this.writer.connect();
    let broken = false;
    /** True once `fn` or COMMIT failed: whether ROLLBACK worked then says if the session is reusable. */
    let rolledBack = false;
    try {
      await session.query('START TRANSACTION', []);
      let result: T;
      try {
        const tx: Transaction = {
          engine: this.engine,
          query: async <R extends object = Row>(sql: string, params: readonly unknown[] = []) =>
            (await session.query(sql, params)) as QueryResult<R>,
        };
        result = await fn(tx);
        await session.query('COMMIT', []);
      } catch (err) {
        rolledBack = true;
        await session.query('ROLLBACK', []).catch(() => {
          broken = true; // the transaction may still be open on it: never reuse it
        });
        throw err;
      }
      return { result, position: await this.position(session) };
    } catch (err) {
      if (!rolledBack && isNodeError(err)) broken = true;
      throw err;
    } finally {
      session.release(broken);
    }
  }

  /**
   * Runs a read on a replica (round robin over the readers); with `after`, only on one that has
   * replayed up to that position, else on the writer once `readYourWritesWait` has passed. A
   * reader that cannot be reached (or loses the connection) is skipped: the next reader answers,
   * then the writer, and the failed one is tried last for a second. A read that fails on a replica
   * for any other reason (a table it has not replayed yet) is run again on the writer, whose answer
   * or error is the result.
   */
  async read<R extends object = Row>(
    sql: string,
    params: readonly unknown[] = [],
    opts: ReadOptions = {},
  ): Promise<{ rows: R[]; rowCount: number; answeredBy: AnsweredBy }> {
    const after = opts.after || undefined;
    if (after !== undefined && !this.isPosition(after))
      throw new TypeError(
        `TandemDb.read: "after" is not a ${this.engine} position: ${JSON.stringify(after)}`,
      );
    type Answer = QueryResult<Row> & { answeredBy: AnsweredBy };
    const onWriter = async (): Promise<Answer> => ({
      ...(await this.run(this.writer, sql, params)),
      answeredBy: 'writer',
    });
    const answer = async (): Promise<Answer> => {
      if (this.readers[0] === this.writer) return onWriter();
      const n = this.readers.length;
      const first = this.next++ % n;
      const rotation = Array.from({ length: n }, (_, i) => (first + i) % n);
      const now = Date.now();
      const order: (number | 'writer')[] = [
        ...rotation.filter((i) => this.readerRestUntil[i]! <= now),
        'writer',
        ...rotation.filter((i) => this.readerRestUntil[i]! > now),
      ];
      let lastError: unknown;
      for (const node of order) {
        try {
          if (node === 'writer') return await onWriter();
          const result = await this.readOn(this.readers[node]!, sql, params, after);
          this.readerRestUntil[node] = 0;
          // undefined: the replica has not replayed `after` in time, so the writer answers.
          return result === undefined ? await onWriter() : { ...result, answeredBy: 'reader' };
        } catch (err) {
          if (node !== 'writer' && !isNodeError(err)) {
            // An SQL error on a replica (a table it has not replayed yet, say): the writer decides.
            return await onWriter();
          }
          if (!isNodeError(err)) throw err;
          lastError = err;
          if (node !== 'writer') this.readerRestUntil[node] = Date.now() + READER_REST_MS;
        }
      }
      throw lastError;
    };
    const { rows, rowCount, answeredBy } = await answer();
    return { rows: rows as R[], rowCount, answeredBy };
  }

  /** `SELECT 1` on the writer and on each reader, each bounded by `timeoutMs`. */
  async health(timeoutMs: number): Promise<DbHealth> {
    const ping = (pool: Pool): Promise<'up' | 'down'> =>
      withTimeout(this.run(pool, 'SELECT 1', []), timeoutMs).then(
        () => 'up',
        () => 'down',
      );
    const [writer, ...readers] = await Promise.all([
      ping(this.writer),
      ...this.readers.filter((p) => p !== this.writer).map(ping),
    ]);
    return { writer: writer!, readers: readers.length > 0 ? readers : [writer!] };
  }

  async close(): Promise<void> {
    await Promise.all([this.writer, ...this.readers.filter((p) => p !== this.writer)].map((p) => p.end()));
  }

  /** The rows from a reader, or undefined when it did not replay up to `after` in time. */
  private async readOn(
    pool: Pool,
    sql: string,
    params: readonly unknown[],
    after: string | undefined,
  ): Promise<QueryResult<Row> | undefined> {
    const session = await pool.connect();
    let broken = false;
    try {
      if (after !== undefined && !(await this.caughtUp(session, after))) return undefined;
      return await session.query(sql, params);
    } catch (err) {
      broken = isNodeError(err);
      throw err;
    } finally {
      session.release(broken);
    }
  }

  private async run(pool: Pool, sql: string, params: readonly unknown[]): Promise<QueryResult<Row>> {
    const session = await pool.connect();
    let broken = false;
    try {
      return await session.query(sql, params);
    } catch (err) {
      broken = isNodeError(err);
      throw err;
    } finally {
      session.release(broken);
    }
  }

  /** The writer's position after this session's last write. */
  private async position(session: Session): Promise<string> {
    if (this.engine === 'postgres') {
      const r = await session.query('SELECT pg_current_wal_lsn()::text AS lsn', []);
      return String(r.rows[0]!['lsn']);
    }
    // The session's own last transaction; the whole log's position when the statement wrote nothing.
    const r = await session.query('SELECT @@last_gtid AS g, @@gtid_binlog_pos AS p', []);
    const row = r.rows[0]!;
    return String(row['g'] || row['p'] || '');
  }

  /** True once the session's node has replayed up to `after` (at once on a primary), within the wait. */
  private async caughtUp(session: Session, after: string): Promise<boolean> {
    if (this.engine === 'postgres') {
      const deadline = Date.now() + this.wait;
      for (;;) {
        const r = await session.query(
          'SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok',
          [after],
        );
        if (r.rows[0]?.['ok']) return true;
        if (Date.now() >= deadline) return false;
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    // MASTER_GTID_WAIT: 0 once the replica applied up to `after`, -1 on timeout. A node that is not
    // read-only is a primary: it has every write it acknowledged.
    const r = await session.query('SELECT IF(@@read_only = 0, 0, MASTER_GTID_WAIT($1, $2)) AS w', [
      after,
      this.wait / 1000,
    ]);
    return Number(r.rows[0]?.['w']) === 0;
  }
}

/** A PostgreSQL WAL position as the server writes it (`0/3000060`). */
export function isLsn(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(value);
}

/** A MariaDB GTID position: `domain-server-sequence` (`0-1-42`), or a comma-separated list of them. */
export function isGtidPosition(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 1024) return false;
  const parts = value.split(',');
  const domains = new Set<string>();
  for (const part of parts) {
    const m = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/.exec(part);
    if (!m || Number(m[1]) > 0xffffffff || Number(m[2]) > 0xffffffff) return false;
    if (BigInt(m[3]!) > 0xffffffffffffffffn || domains.has(m[1]!)) return false;
    domains.add(m[1]!);
  }
  return true;
}

/**
 * True for a position `write()` can return, from either engine (or only `engine`'s): what `after`
 * accepts from outside.
 */
export function isPosition(value: unknown, engine?: DbEngine): value is string {
  if (engine === 'postgres') return isLsn(value);
  if (engine === 'mysql') return isGtidPosition(value);
  return isLsn(value) || isGtidPosition(value);
}

/** Either engine's position (a PostgreSQL LSN or a MariaDB GTID position); see isPosition. */
export function isWalPosition(value: unknown): value is string {
  return isPosition(value);
}

/**
 * Polls a PostgreSQL replica connection until it has replayed up to `lsn` (or is not a replica at
 * all), for at most `waitMs`. True when a read on this connection now sees everything up to `lsn`.
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

/** The engine a URL names, from its scheme. */
export function engineOf(url: string): DbEngine {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  throw new TypeError(
    `TandemDb: unsupported database URL scheme ${scheme ? `"${scheme}://"` : '(none)'}: expected postgres://, postgresql://, mysql:// or mariadb://`,
  );
}

/**
 * The statement MariaDB receives for `sql` with `params`: each `$n` (or `?`) outside quoted
 * strings, quoted identifiers and comments replaced by the escaped value. Throws a TypeError when
 * the placeholders and the values do not match.
 */
export function toMariaDbSql(sql: string, params: readonly unknown[] = []): string {
  let out = '';
  let copied = 0;
  let highest = 0;
  let questionMarks = 0;
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = endOfQuoted(sql, i);
    } else if (c === '#' || (c === '-' && sql[i + 1] === '-' && (i + 2 >= n || /\s/.test(sql[i + 2]!)))) {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? n : eol + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === '$' && isDigit(sql[i + 1]) && !isIdentifierChar(sql[i - 1])) {
      let j = i + 1;
      while (isDigit(sql[j])) j++;
      const k = Number(sql.slice(i + 1, j));
      if (k < 1 || k > params.length)
        throw new TypeError(`placeholder $${k} has no value (${params.length} given)`);
      highest = Math.max(highest, k);
      out += sql.slice(copied, i) + sqlLiteral(params[k - 1]);
      copied = i = j;
    } else if (c === '?') {
      if (questionMarks >= params.length)
        throw new TypeError(`more ? placeholders than values (${params.length} given)`);
      out += sql.slice(copied, i) + sqlLiteral(params[questionMarks++]);
      copied = i = i + 1;
    } else {
      i++;
    }
  }
  if (highest > 0 && questionMarks > 0)
    throw new TypeError('use either $1, $2… or ? placeholders in one statement, not both');
  const used = Math.max(highest, questionMarks);
  if (used !== params.length)
    throw new TypeError(`the statement has ${used} placeholder(s) but ${params.length} value(s) were given`);
  return out + sql.slice(copied);
}

/** Index just past the quoted string or identifier opening at `start` (MariaDB's default escaping). */
function endOfQuoted(sql: string, start: number): number {
  const quote = sql[start]!;
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '\\' && quote !== '`') i += 2;
    else if (c === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else i++;
  }
  return sql.length; // unterminated: the server reports it
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function isIdentifierChar(c: string | undefined): boolean {
  return c !== undefined && /[\w$\u0080-\uffff]/.test(c);
}

/** A JavaScript value as a MariaDB literal. */
function sqlLiteral(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  switch (typeof value) {
    case 'boolean':
      return value ? 'TRUE' : 'FALSE';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`cannot send ${value} to MariaDB`);
      return String(value);
    case 'bigint':
      return value.toString();
    case 'string':
      return mysql.escape(value);
    case 'object':
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw new TypeError('cannot send an invalid Date');
        return mysql.escape(value, false, 'Z');
      }
      if (value instanceof Uint8Array) return mysql.escape(Buffer.from(value));
      return mysql.escape(JSON.stringify(value));
    default:
      throw new TypeError(`cannot send a ${typeof value} as a query value`);
  }
}

/**
 * True when an error is about the node or the connection (unreachable, shut down, connection lost,
 * timed out), not about the statement: another node may answer the same read.
 */
function isNodeError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return true;
  const e = err as { code?: unknown; sqlState?: unknown; fatal?: unknown };
  if (e.fatal === true) return true;
  const state =
    typeof e.sqlState === 'string'
      ? e.sqlState
      : typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)
        ? e.code
        : undefined;
  if (state === undefined) return !(err instanceof TypeError);
  // 08: connection exception; 53: insufficient resources; 57: operator intervention (shutdown,
  // cancelled); 70100: MariaDB's connection killed.
  return /^(08|53|57)/.test(state) || state === '70100';
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

interface PoolSettings {
  size: number;
  connectTimeout: number;
  queryTimeout: number | undefined;
  applicationName: string | undefined;
}

/** int8 (BIGINT, count(*)) as a number while it is a safe integer, as MariaDB's rows have it. */
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === 20 && format !== 'binary')
      return (text: string) => {
        const n = Number(text);
        return Number.isSafeInteger(n) ? n : text;
      };
    return pg.types.getTypeParser(oid, format as 'text');
  }) as typeof pg.types.getTypeParser,
};

function postgresPool(url: string, s: PoolSettings): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: s.size,
    connectionTimeoutMillis: s.connectTimeout,
    ...(s.queryTimeout !== undefined ? { query_timeout: s.queryTimeout } : {}),
    ...(s.applicationName !== undefined ? { application_name: s.applicationName } : {}),
    types: pgTypes,
  });
  pool.on('error', () => undefined); // an idle connection lost: the next query reconnects
  return {
    async connect() {
      const client = await pool.connect();
      return {
        async query(sql, params) {
          const r = await client.query<Row>(sql, params as unknown[]);
          return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
        },
        release(broken) {
          client.release(broken ? true : undefined);
        },
      };
    },
    end: () => pool.end(),
  };
}

/** MariaDB `BOOLEAN` (TINYINT(1)) as a boolean, like PostgreSQL's. */
const castBooleans: mysql.TypeCast = (field, next) => {
  if (field.type === 'TINY' && field.length === 1) {
    const text = field.string();
    return text === null ? null : text !== '0';
  }
  return next();
};

/** mysql://user:password@host:port/database (mariadb:// alike), percent-decoded. */
function mariaDbConnection(url: string): mysql.PoolOptions {
  const u = new URL(url.replace(/^mariadb:/i, 'mysql:'));
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    ...(database ? { database } : {}),
  };
}

function mariaDbPool(url: string, s: PoolSettings): Pool {
  const pool = mysql.createPool({
    ...mariaDbConnection(url),
    connectionLimit: s.size,
    connectTimeout: s.connectTimeout,
    waitForConnections: true,
    multipleStatements: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    dateStrings: false,
    timezone: 'Z',
    typeCast: castBooleans,
    ...(s.applicationName !== undefined ? { connectAttributes: { program_name: s.applicationName } } : {}),
  });
  /** Connections whose session is set up (UTC). */
  const ready = new WeakSet<object>();
  return {
    async connect() {
      const conn = await pool.getConnection();
      if (!ready.has(conn.connection)) {
        try {
          await conn.query("SET time_zone = '+00:00'");
        } catch (err) {
          conn.destroy();
          throw err;
        }
        ready.add(conn.connection);
      }
      return {
        async query(sql, params) {
          const text = toMariaDbSql(sql, params);
          const [result] = await conn.query({
            sql: text,
            ...(s.queryTimeout !== undefined ? { timeout: s.queryTimeout } : {}),
          });
          if (!Array.isArray(result)) {
            return { rows: [], rowCount: (result as mysql.ResultSetHeader).affectedRows };
          }
          const rows = (Array.isArray(result[0]) ? result[0] : result) as Row[]; // CALL: its first result set
          return { rows, rowCount: rows.length };
        },
        release(broken) {
          if (broken) conn.destroy();
          else conn.release();
        },
      };
    },
    end: () => pool.end(),
  };
}
