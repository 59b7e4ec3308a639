/**
 * SQL-level operations on any MariaDB node of the cluster (see EngineDriver).
 *
 * Positions are GTID positions (`0-1-42`: domain, server id, sequence number). Tandem runs every
 * node with gtid_strict_mode, so within a domain the sequence number only grows across the whole
 * cluster, whichever node wrote it: the distance between two positions is a count of transactions.
 *
 * Lag in bytes comes from binary log coordinates instead: a replica's SHOW SLAVE STATUS says up to
 * which file and offset of its primary's binary log it has applied (Relay_Master_Log_File,
 * Exec_Master_Log_Pos), the primary's SHOW BINARY LOGS lists its files and their sizes. Every node
 * names its binary log after itself (`<node>-bin.000003`), so coordinates in another node's log
 * never match the primary's files.
 */
import mysql from 'mysql2/promise';
import { DatabaseError } from '../../errors.js';
import type {
  EngineDriver,
  LogCoordinates,
  LogKept,
  NodeAddress,
  NodeProbe,
  Progress,
  ReplicaLink,
} from './engine.js';

/** Tandem's administrative account on every MariaDB node. */
export const MARIADB_ADMIN = 'tandem';
export const MARIADB_REPLICATION_USER = 'replicator';

/** `0-1-42,1-2-7` → Map(domain → [server, seq]). An empty string is the empty position. */
export function parseGtids(list: string): Map<number, { server: number; seq: number }> {
  const out = new Map<number, { server: number; seq: number }>();
  for (const part of list.split(',')) {
    const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part);
    if (!m) continue;
    const domain = Number(m[1]);
    const seq = Number(m[3]);
    const prev = out.get(domain);
    if (!prev || seq > prev.seq) out.set(domain, { server: Number(m[2]), seq });
  }
  return out;
}

/** Transactions `a` is past `b` (summed over domains), or null when either is unknown. */
export function gtidDiff(a: string | null | undefined, b: string | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined) return null;
  const pa = parseGtids(a);
  const pb = parseGtids(b);
  let total = 0;
  for (const d of new Set([...pa.keys(), ...pb.keys()]))
    total += (pa.get(d)?.seq ?? 0) - (pb.get(d)?.seq ?? 0);
  return total;
}

/**
 * True when every transaction of `position` (a node's gtid_binlog_pos) is in the history of a
 * node whose gtid_binlog_state is `state`: same domain and server, sequence number reached.
 * False means the node has transactions the other never had (it must be re-cloned).
 */
export function gtidContained(position: string, state: string): boolean {
  const have = new Map<string, number>();
  for (const part of state.split(',')) {
    const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(part);
    if (m) have.set(`${m[1]}-${m[2]}`, Number(m[3]));
  }
  for (const [domain, { server, seq }] of parseGtids(position))
    if ((have.get(`${domain}-${server}`) ?? -1) < seq) return false;
  return true;
}

/**
 * Bytes of the primary's binary log from `applied` (a replica's file and offset) to the end of the
 * primary's last file, summed across files; null when the primary does not list that file (purged,
 * or another node's log) or the offset is past the end of a file that is not the last. An offset
 * past the end of the last file is a replica seen a moment after the primary: 0.
 */
export function binlogBytesBehind(
  files: readonly { name: string; size: number }[] | undefined,
  applied: { file: string; offset: number } | undefined,
): number | null {
  if (!files || !applied || !applied.file) return null;
  const at = files.findIndex((f) => f.name === applied.file);
  if (at < 0) return null;
  const last = at === files.length - 1;
  if (applied.offset > files[at]!.size) return last ? 0 : null;
  let total = files[at]!.size - applied.offset;
  for (const f of files.slice(at + 1)) total += f.size;
  return total;
}

export type Row = Record<string, unknown>;

export class MariaDbDriver implements EngineDriver {
  readonly label = 'MariaDB';
  readonly lagUnit = 'transactions' as const;

  constructor(
    private readonly password: string,
    private readonly sync: boolean,
  ) {}

  /** Runs `fn` on a new admin connection to `node`. */
  async with<T>(node: NodeAddress, fn: (c: mysql.Connection) => Promise<T>, timeoutMs = 2000): Promise<T> {
    const c = await mysql.createConnection({
      host: node.host,
      port: node.port,
      user: MARIADB_ADMIN,
      password: this.password,
      connectTimeout: timeoutMs,
      multipleStatements: false,
    });
    c.on('error', () => undefined); // a server gone between queries: the next query says so
    try {
      return await fn(c);
    } finally {
      c.destroy();
    }
  }

  async probe(node: NodeAddress, timeoutMs: number): Promise<NodeProbe> {
    return this.with(
      node,
      async (c) => {
        const slave = await slaveStatus(c);
        const [rows] = await c.query<mysql.RowDataPacket[]>(
          'SELECT @@gtid_binlog_pos AS binlog, @@gtid_slave_pos AS applied',
        );
        const v = rows[0]!;
        if (slave)
          return {
            role: 'replica',
            position: String(slave['Gtid_IO_Pos'] ?? '') || String(v['applied']),
            replayed: String(v['applied']),
            log: { applied: appliedCoordinates(slave) },
          };
        return {
          role: 'primary',
          position: String(v['binlog']),
          replayed: String(v['binlog']),
          log: { files: await binlogFiles(c) },
        };
      },
      timeoutMs,
    );
  }

  diff(ahead: string | null | undefined, behind: string | null | undefined): number | null {
    return gtidDiff(ahead, behind);
  }

  lagBytes(primary: NodeProbe, replica: NodeProbe): number | null {
    return binlogBytesBehind(primary.log?.files, replica.log?.applied);
  }

  /**
   * Applies every transaction the replica received (with semi-sync, those include every
   * acknowledged commit), stops replication for good, opens the node for writes.
   */
  promote(node: NodeAddress, _peers: string[], progress: Progress): Promise<string | null> {
    return this.with(
      node,
      async (c) => {
        const slave = await slaveStatus(c);
        if (slave) {
          await c.query('STOP SLAVE IO_THREAD');
          const received = String((await slaveStatus(c))?.['Gtid_IO_Pos'] ?? '');
          if (received) {
            const [r] = await c.query<mysql.RowDataPacket[]>('SELECT MASTER_GTID_WAIT(?, 60) AS w', [
              received,
            ]);
            if (Number(r[0]?.['w']) !== 0)
              progress(`${node.name} did not apply all it had received (${received}) within 60 s`);
          }
          await c.query('STOP SLAVE');
          await c.query('RESET SLAVE ALL');
        }
        await openForWrites(c, this.sync);
        const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@gtid_binlog_pos AS p');
        return String(rows[0]?.['p'] ?? '') || null;
      },
      5000,
    );
  }

  async prepareForReplica(primary: NodeAddress, _replica: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.with(primary, (c) => c.query('SELECT 1'));
        return;
      } catch (err) {
        if (Date.now() > deadline)
          throw new DatabaseError(
            `the primary ${primary.name} (${primary.host}:${primary.port}) did not accept connections within ${timeoutMs / 1000} s: ${(err as Error).message}`,
          );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /** MariaDB's primary does not list its replicas by name: each replica reports for itself. */
  async replicaLinks(): Promise<Map<string, ReplicaLink>> {
    return new Map();
  }

  /** The binary logs' total size; MariaDB keeps no slots (binlogExpireDays bounds what it keeps). */
  logKept(node: NodeAddress, _replicas: readonly string[]): Promise<LogKept> {
    return this.with(
      node,
      async (c) => ({ bytes: ((await binlogFiles(c)) ?? []).reduce((n, f) => n + f.size, 0), slots: [] }),
      1500,
    );
  }

  replicaLagSeconds(node: NodeAddress): Promise<number | null> {
    return this.with(
      node,
      async (c) => {
        const s = await slaveStatus(c);
        const v = s?.['Seconds_Behind_Master'];
        return v === null || v === undefined ? null : Number(v);
      },
      1500,
    );
  }

  /** `semi-sync` when its primary waits for this replica's acknowledgement of each commit, else `async`. */
  async replicaMode(node: NodeAddress): Promise<string> {
    // Every replica runs the semi-sync slave plugin (it may become primary); it only matters when
    // the primary waits for it, which Tandem turns on in sync mode alone.
    if (!this.sync) return 'async';
    return this.with(node, async (c) => {
      const [rows] = await c.query<mysql.RowDataPacket[]>("SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'");
      return String(rows[0]?.['Value']) === 'ON' ? 'semi-sync' : 'async';
    });
  }
}

/** The replica's `SHOW SLAVE STATUS` row, or undefined on a node that replicates from nobody. */
export async function slaveStatus(c: mysql.Connection): Promise<Row | undefined> {
  const [rows] = await c.query<mysql.RowDataPacket[]>('SHOW SLAVE STATUS');
  return rows[0] as Row | undefined;
}

/** Up to where a replica has applied its primary's binary log, or undefined before it has started. */
function appliedCoordinates(slave: Row): LogCoordinates['applied'] {
  const file = String(slave['Relay_Master_Log_File'] ?? '');
  const offset = Number(slave['Exec_Master_Log_Pos']);
  return file && Number.isFinite(offset) ? { file, offset } : undefined;
}

/**
 * The node's binary log files and sizes, oldest first; the last one's size is the current position
 * (what SHOW MASTER STATUS gives). It does not wait on commits held for a semi-sync ack. Undefined
 * on a server without a binary log (not one Tandem started): its lag in bytes is unknown.
 */
async function binlogFiles(c: mysql.Connection): Promise<LogCoordinates['files']> {
  try {
    const [rows] = await c.query<mysql.RowDataPacket[]>('SHOW BINARY LOGS');
    return rows.map((r) => ({ name: String(r['Log_name']), size: Number(r['File_size']) }));
  } catch (err) {
    if ((err as { code?: string }).code === 'ER_NO_BINARY_LOGGING') return undefined;
    throw err;
  }
}

/** Lets a primary take writes; with sync replication, each commit waits for a replica's ack. */
export async function openForWrites(c: mysql.Connection, sync: boolean): Promise<void> {
  if (sync) await c.query('SET GLOBAL rpl_semi_sync_master_enabled = ON');
  await c.query('SET GLOBAL read_only = OFF');
}
