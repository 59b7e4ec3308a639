/**
 * Setting up one database node's engine: finding the binaries and a data directory the engine's
 * user can reach, the generated passwords, the node-specific settings.
 */

import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { ResolvedConfig } from '../../config/load.js';
import type { DbNodeConfig } from '../../config/schema.js';
import { DatabaseError, UsageError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { findPostgresBinaries, type PostgresBinaries } from '../engines/binaries.js';
import type { DatabaseEngine, EngineDriver, Progress, Role } from '../engines/engine.js';
import { findMariaDbBinaries } from '../engines/mariadb-binaries.js';
import { MariaDbDriver } from '../engines/mariadb-driver.js';
import { MariaDbEngine } from '../engines/mariadb.js';
import { PostgresEngine } from '../engines/postgres.js';
import { PostgresDriver } from '../engines/postgres-driver.js';
import { canExecute, canUseDirectory, engineIdentity, type RunAs } from '../engines/run-as.js';
import { ensureSecret, readSecret } from '../secrets.js';
import { NodeAgent } from './node-agent.js';

/** Where state that the engine's user cannot reach under the data dir goes instead. */
const FALLBACK_ROOT = '/var/lib/tandem';

export interface DbNodeHandle {
  readonly name: string;
  readonly engine: DatabaseEngine;
  role(): Promise<Role>;
  stop(): Promise<void>;
}

/** Finds the node in the config, or throws a UsageError naming the known nodes. */
export function findDbNode(config: ResolvedConfig, name: string): DbNodeConfig {
  if (!config.database) throw new UsageError(`db: the config (${config.source}) has no database section`);
  const node = config.database.nodes.find((n) => n.name === name);
  if (!node)
    throw new UsageError(
      `db: no database node named "${name}" (known: ${config.database.nodes.map((n) => n.name).join(', ')})`,
    );
  return node;
}

/** True when the cluster runs MariaDB (`engine: mysql` or `mariadb`). */
export function isMariaDb(config: ResolvedConfig): boolean {
  return config.database?.engine === 'mysql' || config.database?.engine === 'mariadb';
}

/** The engine's name for messages: PostgreSQL or MariaDB. */
export function engineLabel(config: ResolvedConfig): string {
  return isMariaDb(config) ? 'MariaDB' : 'PostgreSQL';
}

/** SQL operations on any node, for the manager and the status commands (reads the admin password). */
export function createDriver(config: ResolvedConfig): EngineDriver {
  const password = readSecret(config.paths.dataDir, 'db-superuser') ?? '';
  return isMariaDb(config)
    ? new MariaDbDriver(password, config.database!.replication === 'sync')
    : new PostgresDriver(password);
}

/** The node's data directory under the Tandem data dir. */
export function nodeDataDir(config: ResolvedConfig, node: string): string {
  return join(config.paths.dataDir, 'db', node);
}

/** The node's engine, ready to start, and the generated passwords it uses. */
export interface NodeEngine {
  engine: DatabaseEngine;
  secrets: { superuser: string; replication: string; app: string };
}

/** Builds the engine of one node: binaries, data dir, identity, passwords, settings. */
export async function createNodeEngine(
  config: ResolvedConfig,
  name: string,
  log: Logger,
  progress: Progress,
): Promise<NodeEngine> {
  const node = findDbNode(config, name);
  const db = config.database!;
  const mariadb = isMariaDb(config);
  const runAs = engineIdentity(db.runAs, mariadb ? ['mysql', 'nobody'] : ['postgres', 'nobody']);
  if (runAs) progress(`running as root: ${engineLabel(config)} will run as user "${runAs.user}"`);
  const dataDir = reachableDataDir(nodeDataDir(config, name), runAs, log);
  const dataRoot = config.paths.dataDir;
  const secrets = {
    superuser: ensureSecret(dataRoot, 'db-superuser'),
    replication: ensureSecret(dataRoot, 'db-replication'),
    app: ensureSecret(dataRoot, 'db-app'),
  };
  if (mariadb) {
    const engine = new MariaDbEngine({
      name,
      host: node.host,
      port: node.port,
      dataDir,
      bins: findMariaDbBinaries(db.binDir),
      runAs,
      log,
      adminPassword: secrets.superuser,
      replicationPassword: secrets.replication,
      serverId: db.nodes.indexOf(node) + 1,
      sync: db.replication === 'sync',
      binlogExpireDays: db.binlogExpireDays,
    });
    return { engine, secrets };
  }
  const bins = reachableBinaries(await findPostgresBinaries(db.binDir), runAs, log);
  // Every node carries it: a replica may be promoted. A slot past it is invalidated; its replica
  // is cloned afresh when it is back (NodeAgent), rather than the primary's disk filling up.
  const settings: Record<string, string> = {
    max_slot_wal_keep_size: db.maxSlotWalKeepSize === 'unlimited' ? '-1' : db.maxSlotWalKeepSize,
  };
  if (db.replication === 'sync') {
    // Every node carries the setting: it only acts on the node that is primary.
    const others = db.nodes.filter((n) => n.name !== name);
    settings['synchronous_standby_names'] = `ANY 1 (${others.map((r) => `"${r.name}"`).join(', ')})`;
    settings['synchronous_commit'] = db.synchronousCommit;
  }
  const engine = new PostgresEngine({
    name,
    host: node.host,
    port: node.port,
    dataDir,
    bins,
    runAs,
    log,
    superuserPassword: secrets.superuser,
    replicationPassword: secrets.replication,
    clientHosts: [...db.nodes.map((n) => n.host), ...config.servers.map((s) => s.host)],
    settings,
    cloneMethod: db.cloneMethod,
  });
  return { engine, secrets };
}

/** Starts one node (see NodeAgent) without its HTTP API: for tests and embedding. */
export async function startDbNode(
  config: ResolvedConfig,
  name: string,
  log: Logger,
  progress: Progress,
): Promise<DbNodeHandle> {
  const agent = new NodeAgent(config, name, log, progress, { api: false });
  await agent.start();
  return agent;
}

/**
 * When running as root and the engine's user cannot execute the binaries where npm put them
 * (a project under /root, mode 0700), a copy goes to /var/lib/tandem, once per version.
 */
function reachableBinaries(bins: PostgresBinaries, runAs: RunAs | undefined, log: Logger): PostgresBinaries {
  if (canExecute(runAs, bins.postgres)) return bins;
  const nativeDir = dirname(dirname(bins.postgres));
  const hash = createHash('sha256').update(nativeDir).digest('hex').slice(0, 12);
  const target = join(FALLBACK_ROOT, `postgres-${bins.major}-${hash}`);
  if (!existsSync(join(target, 'bin', 'postgres'))) {
    log.warn(`user ${runAs!.user} cannot run ${bins.postgres}; copying the PostgreSQL binaries to ${target}`);
    mkdirSync(FALLBACK_ROOT, { recursive: true, mode: 0o755 });
    cpSync(nativeDir, target, { recursive: true, verbatimSymlinks: true });
  }
  const moved = { ...bins, postgres: join(target, 'bin', 'postgres'), initdb: join(target, 'bin', 'initdb') };
  if (!canExecute(runAs, moved.postgres))
    throw new DatabaseError(
      `user ${runAs!.user} cannot run ${moved.postgres} either; check the permissions of ${target}`,
    );
  return moved;
}

/**
 * The data dir of a node, or when the engine's user cannot reach it (the project lives under a
 * private directory like /root), a directory under /var/lib/tandem with a symlink left in its
 * place so the state is still found under the data dir.
 */
function reachableDataDir(dir: string, runAs: RunAs | undefined, log: Logger): string {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true, mode: 0o755 });
  if (existsSync(dir)) {
    try {
      return readlinkSync(dir); // an earlier run already moved it
    } catch {
      // a plain directory
    }
  }
  if (canUseDirectory(runAs, parent)) return dir;
  const hash = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  const target = join(FALLBACK_ROOT, `data-${hash}`, dir.split('/').pop()!);
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
  if (!canUseDirectory(runAs, dirname(target)))
    throw new DatabaseError(`user ${runAs!.user} can reach neither ${parent} nor ${dirname(target)}`);
  log.warn(
    `user ${runAs!.user} cannot reach ${parent}; the data of this node lives in ${target} (symlinked from ${dir})`,
  );
  if (!existsSync(dir)) symlinkSync(target, dir);
  return target;
}
