/**
 * The demo's one resource: users. Each answer also says which database node gave it and its role,
 * read on the same connection as the data (in the same statement, or the same transaction), so the
 * answer and the node it names can never disagree. The statements are the same on PostgreSQL and
 * MariaDB; only the node's name and role come from the engine's dialect.
 */
import type { Database } from './database.js';

/** A user as stored (and as the API returns it). */
export interface User {
  id: number;
  name: string;
  email: string;
  created_at: string;
}

/** The database node that answered, e.g. "web-02 (replica)". */
export type NodeLabel = string;

/** The checked fields of a user to create. */
export interface NewUser {
  name: string;
  email: string;
}

interface Answer {
  node: string;
  /** true/false on PostgreSQL, 1/0 on MariaDB. */
  replica: boolean | number;
}

/** A users row as either engine returns it. */
interface UserRow {
  id: number | string;
  name: string;
  email: string;
  created_at: Date | string;
}

function label(row: Answer): NodeLabel {
  return `${row.node} (${row.replica ? 'replica' : 'primary'})`;
}

function toUser(row: UserRow): User {
  const at = row.created_at instanceof Date ? row.created_at.toISOString() : String(row.created_at);
  return { id: Number(row.id), name: row.name, email: row.email, created_at: at };
}

/** Every user, oldest first, read from a reader. */
export async function listUsers(db: Database, after?: string): Promise<{ users: User[]; node: NodeLabel }> {
  // One row even when there is no user, so the node is named in every case.
  const rows = await db.read<Answer & { [K in keyof UserRow]: UserRow[K] | null }>(
    `SELECT ${db.dialect.answeredBy}, u.id, u.name, u.email, u.created_at
       FROM (SELECT 1 AS one) AS answer LEFT JOIN users AS u ON TRUE
      ORDER BY u.id`,
    [],
    after,
  );
  const users = rows.filter((r): r is Answer & UserRow => r.id !== null).map(toUser);
  return { users, node: label(rows[0]!) };
}

/** Inserts a user on the writer. */
export async function createUser(
  db: Database,
  user: NewUser,
): Promise<{ user: User; node: NodeLabel; position: string }> {
  const { result, position } = await db.transaction(async (tx) => {
    const inserted = await tx.query<UserRow>(
      'INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id, name, email, created_at',
      [user.name, user.email],
    );
    const answer = await tx.query<Answer>(`SELECT ${db.dialect.answeredBy}`);
    return { user: toUser(inserted.rows[0]!), node: label(answer.rows[0]!) };
  });
  return { ...result, position };
}

/** Deletes a user on the writer; `deleted` is false when there was no such user. */
export async function deleteUser(
  db: Database,
  id: string,
): Promise<{ deleted: boolean; node: NodeLabel; position: string }> {
  const { result, position } = await db.transaction(async (tx) => {
    const deleted = await tx.query('DELETE FROM users WHERE id = $1 RETURNING id', [id]);
    const answer = await tx.query<Answer>(`SELECT ${db.dialect.answeredBy}`);
    return { deleted: deleted.rows.length > 0, node: label(answer.rows[0]!) };
  });
  return { ...result, position };
}

/** The checked fields of a new user, or the reason they are refused. */
export function validateNewUser(input: unknown): { user: NewUser } | { error: string } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { error: 'expected an object like {"name": "Ada", "email": "ada@example.org"}' };
  }
  const { name, email } = input as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim().length < 1 || name.trim().length > 100) {
    return { error: 'name must be a string of 1 to 100 characters' };
  }
  if (typeof email !== 'string' || !email.includes('@') || email.trim().length > 200) {
    return { error: 'email must be an address with an @, at most 200 characters' };
  }
  return { user: { name: name.trim(), email: email.trim() } };
}

/** A user id from a URL: digits only; beyond bigint it is `missing` (no such user can exist). */
export function parseUserId(text: string): { id: string } | { error: string } | { missing: true } {
  if (!/^\d+$/.test(text)) return { error: 'id must be a positive integer' };
  if (BigInt(text) > 9_223_372_036_854_775_807n) return { missing: true };
  return { id: text };
}
