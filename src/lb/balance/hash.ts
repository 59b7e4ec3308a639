import type { BackendConfig } from '../../config/schema.js';
import { ActiveBackupBalancer, type BackupOptions } from './active-backup.js';
import type { BalancedServer, PickContext } from './balancer.js';
import { cookieValue } from './cookie-value.js';
import { hashString } from './hash-function.js';
import { HashRing, type KeyHash } from './hash-ring.js';

/** What `balance: hash` hashes (`backends[].hashOn`). */
export type HashOnConfig = NonNullable<BackendConfig['hashOn']>;

/**
 * `balance: hash` — consistent hashing (see HashRing) on a key of the request, set by `hashOn`:
 * `uri` hashes the path without the query string (HAProxy's `balance uri`), `header` the value of
 * one request header, `cookie` the value of one cookie. The same key goes to the same server while
 * it is eligible; a request without the key (no such header or cookie, an empty value, or TCP
 * mode) is balanced by smooth weighted round robin.
 */
export class HashBalancer<S extends BalancedServer> extends ActiveBackupBalancer<S> {
  /** `servers` in config order; `on` says what to hash. */
  constructor(servers: readonly S[], on: HashOnConfig, options?: BackupOptions) {
    const keyHash = keyHashOf(on);
    super(servers, (group) => new HashRing(group, keyHash), options);
  }
}

/** The KeyHash of a `hashOn` setting. */
function keyHashOf(on: HashOnConfig): KeyHash {
  switch (on.type) {
    case 'uri':
      return uriHash;
    case 'header': {
      const name = (on.name ?? '').toLowerCase();
      return (ctx) => {
        const value = ctx.header(name);
        return value === undefined || value === '' ? -1 : hashString(value);
      };
    }
    case 'cookie': {
      const name = on.name ?? '';
      return (ctx) => {
        const header = ctx.header('cookie');
        const value = header === undefined ? undefined : cookieValue(header, name);
        return value === undefined || value === '' ? -1 : hashString(value);
      };
    }
  }
}

/** Hash of the request path, up to the query string. */
function uriHash(ctx: PickContext): number {
  const url = ctx.url;
  if (url === undefined) return -1;
  const query = url.indexOf('?');
  return hashString(url, 0, query < 0 ? url.length : query);
}
