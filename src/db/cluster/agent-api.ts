/**
 * The node agent's HTTP API, like Patroni's REST API: what the load balancer's role-aware checks
 * ask. `GET /primary` answers 200 only on the node that runs as primary AND is the primary of the
 * current term in the cluster state — a returning old primary never passes it. `GET /replica`
 * answers 200 on a running replica (with `?maxLag=N`: only within N of the primary, in the
 * engine's unit: bytes of WAL for PostgreSQL, transactions for MariaDB; `maxLagBytes` is the same),
 * `GET /health` on any running node, `GET /status` with JSON, `GET /metrics` for Prometheus (role,
 * term, replication lag in bytes of the primary's log on both engines, in transactions on MariaDB,
 * and in seconds; the log the node keeps on disk, and on a PostgreSQL primary what each replica's
 * slot holds and how much more it may hold before it is invalidated).
 */
import { type Server, createServer } from 'node:http';
import type { ResolvedConfig } from '../../config/load.js';
import type { DbNodeConfig } from '../../config/schema.js';
import { listenError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { readClusterState } from './cluster-state.js';
import type { SlotKept } from '../engines/engine.js';
import type { NodeAgent } from './node-agent.js';

export interface AgentApi {
  readonly port: number;
  close(): Promise<void>;
}

/** The API port of a node: `apiPort`, or the database port + 10000. */
export function agentApiPort(node: DbNodeConfig): number {
  return node.apiPort ?? node.port + 10000;
}

export async function startAgentApi(
  agent: NodeAgent,
  config: ResolvedConfig,
  node: DbNodeConfig,
  log: Logger,
): Promise<AgentApi> {
  const port = agentApiPort(node);
  const server: Server = createServer((req, res) => {
    void answer(req.url ?? '/').then(
      ([status, body]) => {
        if (typeof body === 'string') {
          res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
          res.end(body);
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(`${JSON.stringify(body)}\n`);
      },
      (err: Error) => {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ error: err.message })}\n`);
      },
    );
  });

  async function answer(url: string): Promise<[number, unknown]> {
    const path = url.split('?')[0];
    const snap = agent.snapshot();
    const state = readClusterState(config.paths.dataDir);
    const body = { ...snap, clusterTerm: state?.term ?? null, clusterPrimary: state?.primary ?? null };
    const running = snap.activity === 'running';
    switch (path) {
      case '/primary': {
        const ok =
          running &&
          state?.primary === agent.name &&
          state.term === agent.term &&
          state.demote !== agent.name &&
          (await agent.role()) === 'primary';
        return [ok ? 200 : 503, body];
      }
      case '/replica': {
        if (!running || (await agent.role()) !== 'replica') return [503, body];
        const query = new URLSearchParams(url.split('?')[1] ?? '');
        const maxLag = Number(query.get('maxLag') ?? query.get('maxLagBytes') ?? NaN);
        if (!Number.isFinite(maxLag)) return [200, body];
        const { lag, bytes } = await agent.replicationLag();
        const unit = agent.engine.driver.lagUnit;
        return [
          lag !== null && lag <= maxLag ? 200 : 503,
          { ...body, lag, lagUnit: unit, lagBytes: bytes, maxLag },
        ];
      }
      case '/health':
        return [running ? 200 : 503, body];
      case '/status':
        return [200, body];
      case '/metrics':
        return [200, await metrics(running, state?.term ?? null)];
      default:
        return [
          404,
          { error: `no such endpoint: ${path} (try /primary, /replica, /health, /status, /metrics)` },
        ];
    }
  }

  /** The node's gauges in the Prometheus text format. */
  async function metrics(running: boolean, term: number | null): Promise<string> {
    const role = running ? await agent.role().catch(() => null) : null;
    const replica = role === 'replica';
    const [{ lag, bytes }, seconds] = replica
      ? await Promise.all([agent.replicationLag(), agent.lagSeconds()])
      : [{ lag: null, bytes: null }, null];
    const kept = running
      ? await agent.engine.driver
          .logKept(
            { name: node.name, host: node.host, port: node.port },
            config.database!.nodes.filter((n) => n.name !== node.name).map((n) => n.name),
          )
          .catch(() => null)
      : null;
    const slots = role === 'primary' ? (kept?.slots ?? []) : [];
    const unit = agent.engine.driver.lagUnit;
    const label = `{node="${agent.name}"}`;
    const gauge = (name: string, help: string, value: number | null) =>
      value === null ? [] : [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name}${label} ${value}`];
    /** One sample per replica slot (a primary's); none when there is no value. */
    const perSlot = (name: string, help: string, value: (s: SlotKept) => number | null) => {
      const samples = slots.flatMap((s) => {
        const v = value(s);
        return v === null ? [] : [`${name}{node="${agent.name}",replica="${s.replica}"} ${v}`];
      });
      return samples.length === 0 ? [] : [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...samples];
    };
    return `${[
      ...gauge('tandem_db_up', '1 when the node runs and answers, else 0.', running && role ? 1 : 0),
      ...gauge('tandem_db_primary', '1 when the node is the primary, else 0.', role === 'primary' ? 1 : 0),
      ...gauge('tandem_db_term', 'The cluster term (grows at each change of primary).', term),
      ...gauge(
        'tandem_db_replication_lag_bytes',
        `How far this replica's replay is behind the primary, in bytes of ${unit === 'bytes' ? 'WAL' : "the primary's binary log"}.`,
        bytes,
      ),
      ...(unit === 'transactions'
        ? gauge(
            'tandem_db_replication_lag_transactions',
            "How far this replica's replay is behind the primary, in transactions.",
            lag,
          )
        : []),
      ...gauge(
        'tandem_db_replication_lag_seconds',
        "Seconds this replica's replay is behind the primary.",
        seconds,
      ),
      ...gauge(
        'tandem_db_log_bytes',
        `Bytes of ${unit === 'bytes' ? 'WAL files' : 'binary logs'} on this node's disk.`,
        kept?.bytes ?? null,
      ),
      ...perSlot(
        'tandem_db_slot_retained_bytes',
        "WAL this primary keeps for a replica's slot (from the replica's restart position).",
        (s) => s.retainedBytes,
      ),
      ...perSlot(
        'tandem_db_slot_safe_bytes',
        "WAL that can still be written before a replica's slot is invalidated (database.maxSlotWalKeepSize).",
        (s) => s.safeBytes,
      ),
      ...perSlot(
        'tandem_db_slot_lost',
        "1 when the primary invalidated a replica's slot: that replica is cloned afresh when it is back.",
        (s) => (s.lost ? 1 : 0),
      ),
    ].join('\n')}\n`;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(listenError(`database node ${node.name} API`, `${node.host}:${port}`, err)),
    );
    server.listen(port, node.host, () => resolve());
  });
  log.info(`API on http://${node.host}:${port} (/primary, /replica, /health, /status, /metrics)`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
