/**
 * One SQL session API over both engines, for tests and the failover soak: connect as Tandem's
 * admin account (or the app's) to a node or an endpoint, run queries written with `$1` placeholders.
 */
import mysql from 'mysql2/promise';
import pg from 'pg';

export type Engine = 'postgres' | 'mysql';

export interface SqlSession {
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  end(): Promise<void>;
}

export interface SessionOptions {
  engine: Engine;
  port: number;
  password: string;
  /** Default: the engine's admin account (postgres / tandem). */
  user?: string;
  database?: string;
  timeoutMs?: number;
}

/** True for the error of a row whose primary key exists (the insert committed before). */
export function isDuplicateKey(err: unknown): boolean {
  const e = err as { code?: string; errno?: number };
  return e.code === '23505' || e.code === 'ER_DUP_ENTRY' || e.errno === 1062;
}

/** True for the error of a write refused because the node is read-only (a replica). */
export function isReadOnlyError(err: unknown): boolean {
  return /read-only|read_only|--read-only/i.test((err as Error).message);
}

export async function connect(opts: SessionOptions): Promise<SqlSession> {
  const timeout = opts.timeoutMs ?? 1000;
  const database = opts.database ?? 'app';
  if (opts.engine === 'postgres') {
    const c = new pg.Client({
      host: '127.0.0.1',
      port: opts.port,
      user: opts.user ?? 'postgres',
      password: opts.password,
      database,
      connectionTimeoutMillis: timeout,
      query_timeout: 3000,
    });
    c.on('error', () => undefined);
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
    return {
      query: async (sql, params) => (await c.query(sql, params)).rows as Record<string, unknown>[],
      end: () => c.end().catch(() => undefined),
    };
  }
  const c = await mysql.createConnection({
    host: '127.0.0.1',
    port: opts.port,
    user: opts.user ?? 'tandem',
    password: opts.password,
    database,
    connectTimeout: timeout,
  });
  c.on('error', () => undefined);
  return {
    query: async (sql, params) => {
      const [rows] = await c.query({ sql: sql.replace(/\$\d+/g, '?'), timeout: 3000 }, params);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    },
    end: async () => {
      c.destroy();
    },
  };
}

/** Runs one statement on a fresh session and closes it. */
export async function sql(
  opts: SessionOptions,
  text: string,
  params?: unknown[],
): Promise<Record<string, unknown>[]> {
  const s = await connect(opts);
  try {
    return await s.query(text, params);
  } finally {
    await s.end();
  }
}
