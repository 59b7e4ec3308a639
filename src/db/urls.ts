/**
 * Connection URLs the codebase gets, as DATABASE_WRITER_URL and DATABASE_READER_URLS
 * (comma-separated): the load balancer's `writer` and `reader` endpoints, which follow failovers;
 * or, with `database.endpoints.enabled: false`, the nodes the config names primary and replicas.
 */
import type { ResolvedConfig } from '../config/load.js';
import { READER, WRITER } from '../config/db-endpoints.js';
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
    `${db.engine === 'postgres' ? 'postgres' : 'mysql'}://${db.user}:${password}@${n.host}:${n.port}/${db.name}`;
  const frontends = config.loadBalancers.flatMap((lb) => lb.frontends);
  const writer = frontends.find((f) => f.name === WRITER && f.backend === WRITER);
  const reader = frontends.find((f) => f.name === READER && f.backend === READER);
  if (db.endpoints.enabled && writer && reader) return { writer: url(writer), readers: [url(reader)] };
  const primary = db.nodes.find((n) => n.role === 'primary')!;
  const replicas = db.nodes.filter((n) => n.role === 'replica');
  return { writer: url(primary), readers: replicas.map(url) };
}
