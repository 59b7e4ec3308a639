/**
 * The demo's one resource: users. Each query also returns which database node answered and its
 * role, in the same statement, so the answer and the node it names can never disagree.
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

/** The name of the node (its cluster_name, else its address) and whether it is a replica. */
const ANSWERED_BY = `coalesce(nullif(current_setting('cluster_name'), ''),
    host(inet_server_addr()) || ':' || inet_server_port(), 'local') AS node,
  pg_is_in_recovery() AS replica`;

interface Answer {
  node: string;
  replica: boolean;
}

function label(row: Answer): NodeLabel {
  return `${row.node} (${row.replica ? 'replica' : 'primary'})`;
}

/** Every user, oldest first, read from a reader. */
export async function listUsers(db: Database, after?: string): Promise<{ users: User[]; node: NodeLabel }> {
  const row = await db.read<Answer & { users: User[] }>(
    `SELECT ${ANSWERED_BY},
       coalesce((SELECT json_agg(u ORDER BY u.id) FROM users u), '[]'::json) AS users`,
    [],
    after,
  );
  return { users: row.users, node: label(row) };
}

/** Inserts a user on the writer. */
export async function createUser(
  db: Database,
  user: NewUser,
): Promise<{ user: User; node: NodeLabel; position: string }> {
  const row = await db.write<Answer & { user: User }>(
    `WITH inserted AS (INSERT INTO users (name, email) VALUES ($1, $2) RETURNING *)
     SELECT ${ANSWERED_BY}, row_to_json(i) AS user FROM inserted i`,
    [user.name, user.email],
  );
  return { user: row.user, node: label(row), position: row.position };
}

/** Deletes a user on the writer; `deleted` is false when there was no such user. */
export async function deleteUser(
  db: Database,
  id: string,
): Promise<{ deleted: boolean; node: NodeLabel; position: string }> {
  const row = await db.write<Answer & { deleted: number }>(
    `WITH deleted AS (DELETE FROM users WHERE id = $1 RETURNING id)
     SELECT ${ANSWERED_BY}, (SELECT count(*) FROM deleted)::int AS deleted`,
    [id],
  );
  return { deleted: row.deleted > 0, node: label(row), position: row.position };
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
