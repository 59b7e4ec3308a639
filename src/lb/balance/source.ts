import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import type { BalancedServer, PickContext } from './balancer.js';
import { hashString } from './hash-function.js';
import { HashRing } from './hash-ring.js';

/**
 * `balance: source` — the client's IP address, hashed onto a consistent-hash ring (see HashRing;
 * like HAProxy's `balance source` with `hash-type consistent`): one client goes to the same server
 * as long as that server is eligible, on every load balancer with the same config, and a server
 * going down moves only its own clients. An IPv4 client seen through an IPv6 socket
 * (`::ffff:192.0.2.1`) hashes as its IPv4 address.
 */
export class SourceBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; each one's `backup` flag is already the effective one. */
  constructor(servers: readonly S[], options?: BackupOptions) {
    super(servers, (group) => new HashRing(group, clientIpHash), options);
  }
}

const V4_MAPPED = '::ffff:';

/** Hash of the client address, without the IPv4-mapped prefix; -1 when it is unknown. */
function clientIpHash(ctx: PickContext): number {
  const ip = ctx.clientIp;
  if (ip === '') return -1;
  const start = ip.startsWith(V4_MAPPED) && ip.includes('.') ? V4_MAPPED.length : 0;
  return hashString(ip, start);
}
