/**
 * Connection URLs the codebase gets: writes to the primary, reads to the replicas (falling back
 * to the primary). Handed to application processes as DATABASE_WRITER_URL and
 * DATABASE_READER_URLS (comma-separated).
 */
import type { ResolvedConfig } from '../config/load.js';
import { ensureSecret } from './secrets.js';

export interface DatabaseUrls {
  writer: string;
  readers: string[];
}

/** Writer and reader URLs for the codebase, or undefined when the config has no database. */
export function databaseUrls(config: ResolvedConfig): DatabaseUrls | undefined {
  const db = config.database;
  if (!db) return undefined;
  const password = encodeURIComponent(ensureSecret(config.paths.dataDir, 'db-app'));
  const url = (n: { host: string; port: number }) =>
    `postgres://${db.user}:${password}@${n.host}:${n.port}/${db.name}`;
  const primary = db.nodes.find((n) => n.role === 'primary')!;
  const replicas = db.nodes.filter((n) => n.role === 'replica');
  return { writer: url(primary), readers: replicas.map(url) };
}
