/**
 * What a primary needs before the stack can use it: the replication role, the codebase's role
 * and database, and one physical replication slot per replica. Idempotent: run on every start of
 * a primary, it also re-applies the passwords kept under the data dir.
 */
import type pg from 'pg';
import type { DatabaseConfig } from '../../config/schema.js';
import { REPLICATION_USER, slotName } from '../engines/postgres.js';

export interface BootstrapSecrets {
  replication: string;
  app: string;
}

export async function bootstrapPrimary(
  client: pg.Client,
  db: DatabaseConfig,
  primaryName: string,
  secrets: BootstrapSecrets,
): Promise<void> {
  await ensureRole(client, REPLICATION_USER, 'REPLICATION LOGIN', secrets.replication);
  await ensureRole(client, db.user, 'LOGIN', secrets.app);
  const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [db.name]);
  if (exists.rowCount === 0) {
    await client.query(
      `CREATE DATABASE ${client.escapeIdentifier(db.name)} OWNER ${client.escapeIdentifier(db.user)}`,
    );
  }
  for (const node of db.nodes) {
    if (node.name === primaryName) continue;
    await ensureSlot(client, slotName(node.name));
  }
}

/** Creates the physical slot (reserving WAL at once) if it does not exist. */
export async function ensureSlot(client: pg.Client, slot: string): Promise<void> {
  await client.query(
    `SELECT pg_create_physical_replication_slot($1, true)
       WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
    [slot],
  );
}

async function ensureRole(
  client: pg.Client,
  role: string,
  attributes: string,
  password: string,
): Promise<void> {
  const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
  await client.query(
    `${verb} ROLE ${client.escapeIdentifier(role)} WITH ${attributes} PASSWORD ${client.escapeLiteral(password)}`,
  );
}
