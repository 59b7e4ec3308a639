/**
 * The node agent's HTTP API, like Patroni's REST API: what the load balancer's role-aware checks
 * ask. `GET /primary` answers 200 only on the node that runs as primary AND is the primary of the
 * current term in the cluster state — a returning old primary never passes it. `GET /replica`
 * answers 200 on a running replica (with `?maxLagBytes=N`: only within N bytes of WAL of the
 * primary), `GET /health` on any running node, `GET /status` with JSON.
 */
import { type Server, createServer } from 'node:http';
import type { ResolvedConfig } from '../../config/load.js';
import type { DbNodeConfig } from '../../config/schema.js';
import { listenError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { readClusterState } from './cluster-state.js';
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
        const maxLag = Number(new URLSearchParams(url.split('?')[1] ?? '').get('maxLagBytes') ?? NaN);
        if (!Number.isFinite(maxLag)) return [200, body];
        const lagBytes = await agent.lagBytes();
        return [
          lagBytes !== null && lagBytes <= maxLag ? 200 : 503,
          { ...body, lagBytes, maxLagBytes: maxLag },
        ];
      }
      case '/health':
        return [running ? 200 : 503, body];
      case '/status':
        return [200, body];
      default:
        return [404, { error: `no such endpoint: ${path} (try /primary, /replica, /health, /status)` }];
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(listenError(`database node ${node.name} API`, `${node.host}:${port}`, err)),
    );
    server.listen(port, node.host, () => resolve());
  });
  log.info(`API on http://${node.host}:${port} (/primary, /replica, /health, /status)`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
