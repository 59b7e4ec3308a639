/**
 * The database `writer` and `reader` endpoints, derived from `database`: two TCP frontends on a
 * load balancer and their backends, added to the config before validation so every default and
 * rule applies to them and `tandem config` shows them. A frontend or backend the config already
 * has under an endpoint's name is its own and stays as written (the output of `tandem config`,
 * saved as a config file, reads back as the same config).
 *
 * - `db-writer`: every node, each checked on its agent's `GET /primary`, which only the primary
 *   of the current term passes. So the writer always reaches the current primary, and never a
 *   returning old one.
 * - `db-reader`: every node as an active server checked on `GET /replica?maxLag=N` (running
 *   replicas within the lag bound), and every node again as a backup checked on `GET /primary`:
 *   when no replica qualifies, reads go to the primary.
 */

/** Names the endpoints take in `backends` and in the load balancer's `frontends`. */
export const WRITER = 'db-writer';
export const READER = 'db-reader';

type Raw = Record<string, unknown>;

interface RawNode {
  name?: unknown;
  host?: unknown;
  port?: unknown;
  apiPort?: unknown;
}

/**
 * Returns a copy of the raw config with the endpoints added, or the config itself when it has no
 * database, no load balancer, or `database.endpoints.enabled: false`. Anything malformed is left
 * for the schema to report.
 */
export function withDatabaseEndpoints(raw: unknown): unknown {
  if (!isObject(raw) || !isObject(raw['database']) || !Array.isArray(raw['loadBalancers'])) return raw;
  const db = raw['database'];
  const endpoints = isObject(db['endpoints']) ? db['endpoints'] : {};
  if (endpoints['enabled'] === false) return raw;
  const nodes = Array.isArray(db['nodes']) ? (db['nodes'] as RawNode[]) : [];
  if (nodes.length === 0 || !nodes.every(isUsableNode)) return raw;
  const lbs = raw['loadBalancers'] as Raw[];
  const lbName = typeof endpoints['loadBalancer'] === 'string' ? endpoints['loadBalancer'] : lbs[0]?.['name'];
  const lbIndex = lbs.findIndex((l) => isObject(l) && l['name'] === lbName);
  if (lbIndex < 0 || !Array.isArray(lbs[lbIndex]!['frontends'])) return raw;
  const writer = isObject(endpoints['writer']) ? endpoints['writer'] : {};
  const reader = isObject(endpoints['reader']) ? endpoints['reader'] : {};
  const host = typeof lbs[lbIndex]!['host'] === 'string' ? lbs[lbIndex]!['host'] : '127.0.0.1';
  const maxLag = typeof reader['maxLagBytes'] === 'number' ? reader['maxLagBytes'] : 16 * 1024 * 1024;

  // The writer leaves a node at its first failed check: writes must never go on to an old
  // primary. The reader waits for three in a row (at the fast interval, about 0.3 s more): a
  // replica that misses one check under full load (a 500 ms timeout) still serves its reads, and
  // marking it down would close every session on it (measured: pgbench -S through the reader
  // aborted at once, every client, when a busy replica missed one check).
  const check = (path: string, fall: number) => ({
    path,
    interval: '300ms',
    fastInterval: '100ms',
    timeout: '500ms',
    rise: 1,
    fall,
  });
  const server = (n: RawNode, suffix = '', backup = false) => ({
    name: `${String(n.name)}${suffix}`,
    address: `${String(n.host ?? '127.0.0.1')}:${Number(n.port)}`,
    checkPort: typeof n.apiPort === 'number' ? n.apiPort : Number(n.port) + 10000,
    ...(backup ? { backup: true } : {}),
  });
  const backends = [
    {
      name: WRITER,
      balance: 'first',
      panicThreshold: 0, // never route to a node that failed its role check
      onMarkedDown: 'shutdown-sessions',
      healthCheck: check('/primary', 1),
      servers: nodes.map((n) => server(n)),
    },
    {
      name: READER,
      balance: 'leastconn',
      panicThreshold: 0,
      onMarkedDown: 'shutdown-sessions',
      onMarkedUp: 'shutdown-backup-sessions',
      allBackups: false,
      healthCheck: check(`/replica?maxLag=${maxLag}`, 3),
      servers: [
        ...nodes.map((n) => server(n)),
        ...nodes.map((n) => ({ ...server(n, '-as-primary', true), checkPath: '/primary' })),
      ],
    },
  ];
  const frontends = [
    {
      name: WRITER,
      host: writer['host'] ?? host,
      port: writer['port'] ?? 15400,
      backend: WRITER,
      mode: 'tcp',
    },
    {
      name: READER,
      host: reader['host'] ?? host,
      port: reader['port'] ?? 15401,
      backend: READER,
      mode: 'tcp',
    },
  ];
  const out = structuredClone(raw) as Raw;
  const outLbs = out['loadBalancers'] as Raw[];
  const ownFrontends = outLbs[lbIndex]!['frontends'] as unknown[];
  const ownBackends = Array.isArray(out['backends']) ? (out['backends'] as unknown[]) : [];
  outLbs[lbIndex] = { ...outLbs[lbIndex], frontends: [...ownFrontends, ...missing(frontends, ownFrontends)] };
  out['backends'] = [...ownBackends, ...missing(backends, ownBackends)];
  return out;
}

/** The entries of `generated` whose name none of `own` has. */
function missing<T extends { name: string }>(generated: T[], own: unknown[]): T[] {
  return generated.filter((g) => !own.some((o) => isObject(o) && o['name'] === g.name));
}

function isObject(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isUsableNode(n: unknown): n is RawNode {
  return isObject(n) && typeof n['name'] === 'string' && typeof n['port'] === 'number';
}
