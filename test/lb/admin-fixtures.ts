/**
 * Fixtures for the admin API, stats and reload tests: configs resolved from raw (YAML-shaped)
 * objects the test can change and resolve again, and small HTTP clients for the admin API and
 * for requests whose connection the test wants to see.
 */
import { type Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { PACKAGE_ROOT, type ResolvedConfig, validateConfig } from '../../src/config/load.js';
import { type Reply, TEST_ADMIN_TOKEN } from './fixtures.js';

/** `raw` validated and shaped like loadConfig's result, with `dataDir` (default: the package root). */
export function resolve(raw: unknown, dataDir = PACKAGE_ROOT, source = 'test config'): ResolvedConfig {
  const config = validateConfig(structuredClone(raw), source);
  return {
    ...config,
    dataDir,
    source,
    paths: { dataDir, static: PACKAGE_ROOT, codebaseDir: PACKAGE_ROOT },
  };
}

/** The admin port of lb-01 in `config`. */
export function adminPort(config: ResolvedConfig): number {
  return config.loadBalancers[0]!.admin.port;
}

/** One request to the admin API; `token: null` sends no Authorization header. */
export function admin(
  port: number,
  method: string,
  path: string,
  opts: { token?: string | null; body?: string } = {},
): Promise<Reply & { json: Record<string, unknown> }> {
  const token = opts.token === undefined ? TEST_ADMIN_TOKEN : opts.token;
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString();
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = {};
          }
          resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, body, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A GET over `agent`, with the client socket it went over (to tell a reused connection). */
export function getVia(
  agent: Agent,
  port: number,
  path: string,
): Promise<{ status: number; text: string; socket: Socket }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('error', reject);
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text, socket: req.socket! }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Names of the servers that answered `n` sequential GETs of `/` (fixtures' backends answer their name). */
export async function servedBy(
  port: number,
  n: number,
  fetchOne: (port: number) => Promise<{ text: string }>,
): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await fetchOne(port)).text);
  return out;
}

/** How often each name occurs. */
export function count(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
  return counts;
}
