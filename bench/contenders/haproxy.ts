/**
 * HAProxy as a contender, in `mode http` and `mode tcp`: run in the foreground (`haproxy -db`) with
 * a generated config, one thread per core, round robin over the two backends with HTTP checks; in
 * `mode http` it adds the same request fields as Tandem (SAME_FIELDS_AS_TANDEM).
 */
import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable, versionOf } from '../executables.js';
import { HOST, freePort } from '../net.js';
import { openFilesLimit } from '../proc-stats.js';
import type { Contender, ContenderEnv, RunningContender } from './contender.js';
import { waitUntilServing } from './ready.js';

/**
 * `mode http` adds to each request what Tandem's load balancer adds by default (and `option
 * forwardfor` the X-Forwarded-For): X-Forwarded-Proto, X-Forwarded-Host, an RFC 7239 Forwarded
 * element and a request id, the id also sent back to the client. Both proxies then do the same
 * work per request, and the backends read the same fields from both.
 */
const SAME_FIELDS_AS_TANDEM = [
  '    unique-id-format %{+X}o%ci-%cp-%fp-%Ts-%rt',
  '    http-request set-header X-Forwarded-Proto http',
  '    http-request set-header X-Forwarded-Host %[req.hdr(host)] if { req.hdr(host) -m found }',
  '    http-request add-header Forwarded "for=%[src];proto=http;host=\\"%[req.hdr(host)]\\""',
  '    http-request set-header X-Request-Id %[unique-id]',
  '    http-response set-header X-Request-Id %[unique-id]',
];

/** The haproxy.cfg of the benchmark. */
export function haproxyConfig(
  mode: 'http' | 'tcp',
  port: number,
  backends: ContenderEnv['backends'],
  maxconn: number,
): string {
  const http = mode === 'http';
  return [
    'global',
    `    maxconn ${maxconn}`,
    `    nbthread ${availableParallelism()}`,
    '',
    'defaults',
    `    mode ${mode}`,
    '    timeout connect 5s',
    '    timeout client 300s',
    '    timeout server 60s',
    ...(http ? ['    timeout http-keep-alive 300s', '    option forwardfor'] : []),
    '',
    'frontend web',
    `    bind ${HOST}:${port}`,
    ...(http ? SAME_FIELDS_AS_TANDEM : []),
    '    default_backend web',
    '',
    'backend web',
    '    balance roundrobin',
    '    option httpchk GET /healthz',
    ...backends.map((b) => `    server ${b.name} ${HOST}:${b.port} check inter 1s`),
    '',
  ].join('\n');
}

/**
 * HAProxy's `maxconn` asks for at least this many, whatever the idle test needs: HAProxy keeps idle
 * server connections for reuse only while its descriptors in use are under a share of all it may
 * have (`tune.pool-low-fd-ratio`, 20 %), and those follow maxconn. Measured on this project's
 * machine at concurrency 256 with small answers: maxconn 1024 (what `--idle-connections 0` gave)
 * about 24,000 req/s, a new server connection per request; 9,000, or 1024 with the ratio at 90 %,
 * 59,000 to 62,000.
 */
const MIN_MAXCONN = 10_000;

/**
 * `maxconn` for HAProxy: room for `clientConnections` (at least MIN_MAXCONN) within an open-files
 * limit of `files`, each client connection possibly needing one to a server and HAProxy a few
 * files of its own; never below 256.
 */
export function haproxyMaxconn(clientConnections: number, files: number): number {
  const wanted = Math.max(clientConnections, MIN_MAXCONN);
  return Math.max(256, Math.min(wanted, Math.floor((files - 100) / 2)));
}

function haproxyContender(mode: 'http' | 'tcp'): Contender {
  return {
    id: `haproxy-${mode}`,
    label: `HAProxy mode ${mode}`,
    layer: mode,
    unavailable: () =>
      Promise.resolve(findExecutable('haproxy') ? undefined : 'not installed (apt-get install haproxy)'),
    version: () => versionOf('HAProxy', findExecutable('haproxy')!, ['-v'], /HAProxy version (\S+)/),
    async start(env) {
      const port = await freePort();
      const files = Math.min(65536, openFilesLimit(process.pid, 'hard') ?? 1024);
      const maxconn = haproxyMaxconn(env.maxClientConnections, files);
      const file = join(env.dir, 'haproxy.cfg');
      writeFileSync(file, haproxyConfig(mode, port, env.backends, maxconn));
      const child = env.children.spawn(this.label, findExecutable('haproxy')!, ['-db', '-f', file], {
        raiseFdLimit: true,
        cwd: env.dir,
      });
      await waitUntilServing(this.label, port, env.backends, child);
      const running: RunningContender = { port, pid: child.pid, stop: () => env.children.stop(child) };
      if (maxconn < env.maxClientConnections) {
        running.capacity = {
          connections: maxconn,
          why: `maxconn ${maxconn}: open-files hard limit ${files}`,
        };
      }
      return running;
    },
  };
}

/** HAProxy `mode http`: the reference for L7 throughput ratios. */
export const haproxyHttp = haproxyContender('http');
/** HAProxy `mode tcp`: the reference for L4 throughput ratios. */
export const haproxyTcp = haproxyContender('tcp');
