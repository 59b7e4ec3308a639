/**
 * The admin API's bearer token: the one in the config (`loadBalancers[].admin.token`), or one
 * generated once and kept in `<dataDir>/secrets/lb-<name>-admin.token` (mode 0600), so restarts
 * and `tandem reload` use the same token. Compared in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** `<dataDir>/secrets/lb-<name>-admin.token`. */
export function adminTokenPath(dataDir: string, lbName: string): string {
  return join(dataDir, 'secrets', `lb-${lbName}-admin.token`);
}

/** The token file's value, or undefined if it was never generated. */
export function readAdminToken(dataDir: string, lbName: string): string | undefined {
  try {
    return readFileSync(adminTokenPath(dataDir, lbName), 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Reads the token file, creating it (32 random bytes, base64url, mode 0600) if it does not exist yet. */
export function ensureAdminToken(dataDir: string, lbName: string): string {
  const existing = readAdminToken(dataDir, lbName);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  const value = randomBytes(32).toString('base64url');
  const file = adminTokenPath(dataDir, lbName);
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readAdminToken(dataDir, lbName)!;
    throw err;
  }
  chmodSync(file, 0o600); // the umask may have narrowed the mode, never widened it: make it exact
  return value;
}

/**
 * True if the `Authorization` header carries `Bearer <token>`. The comparison takes the same time
 * whatever the header holds (both sides are hashed to 32 bytes first, so not even the length leaks).
 */
export function authorized(header: string | undefined, token: string): boolean {
  if (header === undefined) return false;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  const given = createHash('sha256')
    .update(match?.[1] ?? '')
    .digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && match !== null;
}
