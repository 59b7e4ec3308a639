/**
 * `tandem reload [-c FILE] [-d DIR] [--name LB]`: validates the config, then asks each load
 * balancer it places on this machine (or only LB) to read it again and apply it, through the load
 * balancer's admin API (`POST /reload`), and prints what each one changed. Nothing is dropped:
 * requests in flight and open client connections go on. An invalid config changes nothing.
 */
import { request } from 'node:http';
import { loadConfig } from '../config/load.js';
import type { LoadBalancerConfig } from '../config/schema.js';
import { NotRunningError, UsageError } from '../errors.js';
import { formatAddress } from '../lb/address.js';
import { adminTokenPath, readAdminToken } from '../lb/admin/admin-token.js';
import { describeError } from '../lb/describe-error.js';
import { findLoadBalancer } from '../lb/load-balancer.js';
import { isLocalHost } from '../orchestrator/topology.js';
import { parse } from './args.js';

export const USAGE = `usage: tandem reload [-c FILE] [-d DIR] [--name LB]

Checks the config, then has each load balancer of it that runs on this machine (or only LB) read
it again and apply it, through its admin API: changed weights, servers, health checks, timeouts,
frontends. Requests in flight and open connections are not dropped. An invalid config changes
nothing. (Sending SIGHUP to \`tandem lb\`, or to \`tandem up\`, does the same.)

options:
  -n, --name NAME       only this load balancer (default: every one placed on this machine)
  -c, --config FILE     config file (default: ./tandem.yaml, else the built-in topology)
  -d, --data-dir DIR    state directory (default: dataDir of the config, .tandem)`;

/** How long one load balancer may take to answer. */
const TIMEOUT_MS = 30_000;

/** Entry point of `tandem reload`: 0 when every load balancer applied the config. */
export async function run(argv: string[]): Promise<number> {
  const { values } = parse('reload', argv, { name: { type: 'string', short: 'n' } });
  // An invalid config stops here (ConfigError, exit 2): nothing is asked of any load balancer.
  const config = loadConfig({ file: values.config, dataDir: values['data-dir'] });
  const targets = values.name
    ? [findLoadBalancer(config, values.name)]
    : config.loadBalancers.filter((l) => isLocalHost(l.host));
  if (targets.length === 0)
    throw new UsageError('reload: no load balancer of the config runs on this machine; name one with --name');

  let rejected = 0;
  const unreachable: string[] = [];
  for (const lb of targets) {
    const token = lb.admin.token ?? readAdminToken(config.paths.dataDir, lb.name);
    if (token === undefined) {
      unreachable.push(
        `${lb.name}: no admin token in ${adminTokenPath(config.paths.dataDir, lb.name)}: has it run with this data dir?`,
      );
      continue;
    }
    const url = `http://${formatAddress(lb.admin.host, lb.admin.port)}/reload`;
    let reply: { status: number; body: { source?: string; changes?: string[]; error?: string } };
    try {
      reply = await post(lb, token);
    } catch (err) {
      unreachable.push(
        `${lb.name}: no answer from its admin API at ${url} (${describeError(err)}): is it running? ` +
          'If its admin address just changed in the config, send it SIGHUP instead.',
      );
      continue;
    }
    if (reply.status === 200) {
      process.stdout.write(`${lb.name}: reloaded ${reply.body.source ?? ''}\n`);
      for (const line of reply.body.changes ?? []) process.stdout.write(`  - ${line}\n`);
    } else {
      rejected++;
      process.stderr.write(
        `tandem: ${lb.name}: not reloaded (HTTP ${reply.status}): ${reply.body.error ?? 'no reason given'}\n`,
      );
    }
  }
  if (unreachable.length > 0) throw new NotRunningError(unreachable.join('\n'));
  return rejected > 0 ? 1 : 0;
}

/** `POST /reload` on the admin API of `lb`; resolves with the status and the JSON body. */
function post(
  lb: LoadBalancerConfig,
  token: string,
): Promise<{ status: number; body: { source?: string; changes?: string[]; error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: lb.admin.host,
        port: lb.admin.port,
        method: 'POST',
        path: '/reload',
        headers: { authorization: `Bearer ${token}`, 'content-length': 0 },
        timeout: TIMEOUT_MS,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('error', reject);
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, never> });
          } catch {
            resolve({ status: res.statusCode ?? 0, body: { error: text.trim() } });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end();
  });
}
