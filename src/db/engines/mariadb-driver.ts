/**
 * SQL-level operations on any MariaDB node of the cluster (see EngineDriver).
 *
 * Positions are GTID positions (`0-1-42`: domain, server id, sequence number). Tandem runs every
 * node with gtid_strict_mode, so within a domain the sequence number only grows across the whole
 * cluster, whichever node wrote it: the distance between two positions is a count of transactions.
 */
import mysql from 'mysql2/promise';
import { DatabaseError } from '../../errors.js';
import type { EngineDriver, NodeAddress, NodeProbe, Progress, ReplicaLink } from './engine.js';

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
          };
        return { role: 'primary', position: String(v['binlog']), replayed: String(v['binlog']) };
      },
      timeoutMs,
    );
  }

  diff(ahead: string | null | undefined, behind: string | null | undefined): number | null {
    return gtidDiff(ahead, behind);
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

  /** `semi-sync` when this replica acknowledges commits to its primary, else `async`. */
  async replicaMode(node: NodeAddress): Promise<string> {
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

/** Lets a primary take writes; with sync replication, each commit waits for a replica's ack. */
export async function openForWrites(c: mysql.Connection, sync: boolean): Promise<void> {
  if (sync) await c.query('SET GLOBAL rpl_semi_sync_master_enabled = ON');
  await c.query('SET GLOBAL read_only = OFF');
}
