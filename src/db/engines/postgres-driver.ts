/**
 * SQL-level operations on any PostgreSQL node of the cluster (see EngineDriver): what the cluster
 * manager, the node agents and the status commands ask of nodes by address.
 */
import type pg from 'pg';
import { DatabaseError } from '../../errors.js';
import { pgClient } from '../pg-client.js';
import type { EngineDriver, LogKept, NodeAddress, NodeProbe, Progress, ReplicaLink } from './engine.js';

export const SUPERUSER = 'postgres';
export const REPLICATION_USER = 'replicator';

/** Name of the physical replication slot the primary keeps for a replica node. */
export function slotName(node: string): string {
  return `tandem_${node.replace(/[^a-z0-9]/g, '_')}`;
}

/** Bytes between two LSNs written like `0/3000060` (a - b), or null if either is unknown. */
export function lsnDiff(a: string | null | undefined, b: string | null | undefined): number | null {
  if (!a || !b) return null;
  return Number(lsnToBigInt(a) - lsnToBigInt(b));
}

export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

/**
 * Creates the physical slot (reserving WAL at once) if it does not exist. A slot the primary
 * invalidated (it kept more WAL than max_slot_wal_keep_size) is made again: its replica is
 * cloned afresh, and its new copy needs a slot that keeps WAL.
 */
export async function ensureSlot(client: pg.Client, slot: string): Promise<void> {
  await client.query(
    `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
      WHERE slot_name = $1 AND wal_status = 'lost' AND NOT active`,
    [slot],
  );
  await client.query(
    `SELECT pg_create_physical_replication_slot($1, true)
       WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`,
    [slot],
  );
}

export class PostgresDriver implements EngineDriver {
  readonly label = 'PostgreSQL';
  readonly lagUnit = 'bytes' as const;

  constructor(private readonly superuserPassword: string) {}

  /** A superuser client to a node, not connected. Its own writes never wait for a sync replica. */
  client(node: { host: string; port: number }, timeoutMs = 2000): pg.Client {
    return pgClient({
      host: node.host,
      port: node.port,
      user: SUPERUSER,
      password: this.superuserPassword,
      database: 'postgres',
      connectionTimeoutMillis: timeoutMs,
      options: '-c synchronous_commit=local',
      query_timeout: Math.max(timeoutMs, 2000),
    });
  }

  /** Runs `fn` with a connected superuser client to `node`. */
  async with<T>(node: NodeAddress, fn: (c: pg.Client) => Promise<T>, timeoutMs = 2000): Promise<T> {
    const client = this.client(node, timeoutMs);
    try {
      await client.connect();
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  probe(node: NodeAddress, timeoutMs: number): Promise<NodeProbe> {
    return this.with(
      node,
      async (c) => {
        const res = await c.query<{ r: boolean; lsn: string | null; replay: string | null }>(
          `SELECT pg_is_in_recovery() AS r,
                  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
                  (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS replay`,
        );
        const row = res.rows[0]!;
        return {
          role: row.r ? 'replica' : 'primary',
          position: row.lsn ?? row.replay,
          replayed: row.replay,
        };
      },
      timeoutMs,
    );
  }

  diff(ahead: string | null | undefined, behind: string | null | undefined): number | null {
    return lsnDiff(ahead, behind);
  }

  /** WAL bytes between the primary's position and the replica's replay: the same as `diff`. */
  lagBytes(primary: NodeProbe, replica: NodeProbe): number | null {
    return lsnDiff(primary.position, replica.replayed);
  }

  promote(node: NodeAddress, peers: string[], _progress: Progress): Promise<string | null> {
    return this.with(node, async (c) => {
      // Apply what was received first (bounded): it was acknowledged by this replica.
      const deadline = Date.now() + 5000;
      for (;;) {
        const r = await c.query<{ d: string | null }>(
          'SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text AS d',
        );
        if (Number(r.rows[0]?.d ?? 0) <= 0 || Date.now() > deadline) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      // The peers' slots are made while this node is still a replica: a slot made on a replica keeps
      // WAL from the replica's last restartpoint, which is no later than the last checkpoint the old
      // primary shares with it. That WAL is where a pg_rewind of the old primary starts replaying.
      // Made after the promotion, a slot keeps WAL only from the first checkpoint as primary, and
      // that checkpoint may already have recycled what the rewind needs.
      for (const peer of peers) await ensureSlot(c, slotName(peer));
      const res = await c.query<{ ok: boolean }>('SELECT pg_promote(true, 60) AS ok');
      if (!res.rows[0]?.ok) throw new DatabaseError(`${node.name} did not finish its promotion within 60 s`);
      const lsn = await c.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      return lsn.rows[0]?.lsn ?? null;
    });
  }

  async prepareForReplica(primary: NodeAddress, replica: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.with(primary, (c) => ensureSlot(c, slotName(replica)));
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

  async replicaLinks(primary: NodeAddress): Promise<Map<string, ReplicaLink>> {
    const rows = await this.with(
      primary,
      async (c) =>
        (
          await c.query<{ name: string; sync: string; lag: number | null }>(
            `SELECT application_name AS name, sync_state AS sync,
                    extract(epoch FROM replay_lag)::float8 AS lag
               FROM pg_stat_replication`,
          )
        ).rows,
      1500,
    );
    // replay_lag is null once a replica has caught up and nothing new is written: 0 s behind.
    return new Map(rows.map((r) => [r.name, { lagSeconds: r.lag ?? 0, mode: r.sync }]));
  }

  logKept(node: NodeAddress, replicas: readonly string[]): Promise<LogKept> {
    const bySlot = new Map(replicas.map((r) => [slotName(r), r]));
    return this.with(
      node,
      async (c) => {
        const wal = await c.query<{ bytes: string }>(
          'SELECT coalesce(sum(size), 0)::text AS bytes FROM pg_ls_waldir()',
        );
        const slots = await c.query<{
          name: string;
          retained: string | null;
          safe: string | null;
          status: string | null;
        }>(
          `SELECT slot_name AS name, wal_status AS status, safe_wal_size::text AS safe,
                  CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL
                       ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text END AS retained
             FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`,
        );
        return {
          bytes: Number(wal.rows[0]?.bytes ?? 0),
          slots: slots.rows.map((r) => ({
            replica: bySlot.get(r.name) ?? r.name,
            retainedBytes: r.retained === null ? null : Number(r.retained),
            safeBytes: r.safe === null || r.status === 'lost' ? null : Math.max(0, Number(r.safe)),
            lost: r.status === 'lost',
          })),
        };
      },
      1500,
    );
  }

  replicaLagSeconds(node: NodeAddress): Promise<number | null> {
    return this.with(
      node,
      async (c) => {
        const res = await c.query<{ lag: number | null }>(
          `SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                       ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8 AS lag`,
        );
        return res.rows[0]?.lag ?? null;
      },
      1500,
    );
  }
}
