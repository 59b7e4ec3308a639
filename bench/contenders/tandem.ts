/**
 * Tandem's load balancer as a contender: `node bin/tandem.js lb --name bench -c <generated config>`
 * with one frontend in front of backend `web` (web-01 and web-02), in HTTP mode (L7) or, once
 * Tandem has it, in TCP mode (L4).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import type { SpreadMode } from '../../src/config/schema.js';
import type { BackendAddress } from '../backend/backends.js';
import { HOST, freePort, freePorts } from '../net.js';
import type { Contender } from './contender.js';
import { waitUntilServing } from './ready.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'tandem.js');

/**
 * The tandem.yaml of the benchmark (JSON is YAML): servers web-01 and web-02 are the benchmark
 * backends, load balancer `bench` has one frontend (in `mode: tcp` for L4) and a stats port.
 */
export async function tandemConfig(
  mode: 'http' | 'tcp',
  backends: readonly BackendAddress[],
  frontendPort: number,
  dataDir: string,
  workers: 'auto' | number = 'auto',
  spreadConnections: SpreadMode = 'lopsided',
): Promise<Record<string, unknown>> {
  const [statsPort, adminPort, ...appPorts] = await freePorts(2 + backends.length);
  const frontend: Record<string, unknown> = { name: 'web', host: HOST, port: frontendPort, backend: 'web' };
  if (mode === 'tcp') frontend['mode'] = 'tcp';
  return {
    dataDir,
    servers: backends.map((b, i) => ({
      name: b.name,
      host: HOST,
      port: b.port,
      app: { port: appPorts[i]!, processes: 1 },
    })),
    loadBalancers: [
      {
        name: 'bench',
        host: HOST,
        frontends: [frontend],
        stats: { host: HOST, port: statsPort! },
        // Its own port: the L7 and L4 contenders run side by side.
        admin: { host: HOST, port: adminPort! },
        workers,
        spreadConnections,
        // The idle test holds client connections for a while: do not close them under it.
        keepAliveTimeout: '300s',
      },
    ],
    backends: [
      {
        name: 'web',
        healthCheck: { path: '/healthz', interval: '1s' },
        servers: backends.map((b) => ({ name: b.name })),
      },
    ],
  };
}

/**
 * Undefined when this build of Tandem accepts a `mode: tcp` frontend; else why not. Checked with
 * the project's own config validation, so it follows the code as TCP mode lands.
 */
export async function tcpModeUnsupported(): Promise<string | undefined> {
  const fake = [1, 2].map((i) => ({ name: `web-0${i}`, port: 40000 + i, pid: 0 }));
  const raw = await tandemConfig('tcp', fake, 40100, '/nonexistent');
  try {
    validateConfig(raw, 'benchmark config');
    return undefined;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (err.problems.some((p) => p.includes('.mode'))) return 'not implemented yet';
    return `the benchmark's TCP config is not valid: ${err.problems.join('; ')}`;
  }
}

function tandemContender(mode: 'http' | 'tcp'): Contender {
  const l4 = mode === 'tcp';
  return {
    id: l4 ? 'tandem-l4' : 'tandem-l7',
    label: l4 ? 'Tandem L4 (TCP)' : 'Tandem L7 (HTTP)',
    layer: mode,
    unavailable: () => (l4 ? tcpModeUnsupported() : Promise.resolve(undefined)),
    version: () => Promise.resolve(`Tandem (this tree), Node.js ${process.version}`),
    async start(env) {
      const port = await freePort();
      const file = join(env.dir, 'tandem.yaml');
      const config = await tandemConfig(
        mode,
        env.backends,
        port,
        join(env.dir, 'data'),
        env.tandemWorkers,
        env.tandemSpread,
      );
      writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
      const child = env.children.spawn(
        this.label,
        process.execPath,
        [BIN, 'lb', '--name', 'bench', '-c', file],
        {
          raiseFdLimit: true,
          cwd: env.dir,
          env: { ...process.env, TANDEM_LOG_LEVEL: 'warn' },
        },
      );
      await waitUntilServing(this.label, port, env.backends, child);
      const statsPort = (config['loadBalancers'] as { stats: { port: number } }[])[0]!.stats.port;
      return {
        port,
        pid: child.pid,
        stop: () => env.children.stop(child),
        workerConnections: () => workerConnectionsAt(statsPort),
      };
    },
  };
}

/** The client connections each worker holds now, from the load balancer's metrics; undefined if unreadable. */
async function workerConnectionsAt(statsPort: number): Promise<number[] | undefined> {
  try {
    const res = await fetch(`http://${HOST}:${statsPort}/metrics`, { signal: AbortSignal.timeout(1000) });
    return res.ok ? parseWorkerConnections(await res.text()) : undefined;
  } catch {
    return undefined;
  }
}

/** `tandem_lb_worker_connections` of a Prometheus text page, in worker order; undefined when absent. */
export function parseWorkerConnections(metrics: string): number[] | undefined {
  const byWorker = new Map<number, number>();
  for (const m of metrics.matchAll(/^tandem_lb_worker_connections\{[^}]*\bworker="(\d+)"[^}]*\} (\d+)$/gm))
    byWorker.set(Number(m[1]), Number(m[2]));
  if (byWorker.size === 0) return undefined;
  return [...byWorker.entries()].sort((a, b) => a[0] - b[0]).map(([, n]) => n);
}

/** Tandem in HTTP mode. */
export const tandemL7 = tandemContender('http');
/** Tandem in TCP mode (skipped while the config has no TCP frontends). */
export const tandemL4 = tandemContender('tcp');
