/**
 * Generated secrets (database passwords) kept under `<dataDir>/secrets/`, one file each, mode 0600.
 * Created once and reused, so restarts keep working with the same credentials.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type SecretName = 'db-superuser' | 'db-replication' | 'db-app';

export function secretPath(dataDir: string, name: SecretName): string {
  return join(dataDir, 'secrets', `${name}.password`);
}

/** Reads the secret, creating it (random, URL-safe) if it does not exist yet. */
export function ensureSecret(dataDir: string, name: SecretName): string {
  const existing = readSecret(dataDir, name);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  const value = randomBytes(24).toString('base64url');
  const file = secretPath(dataDir, name);
  try {
    writeFileSync(file, `${value}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return readSecret(dataDir, name)!;
    throw err;
  }
  chmodSync(file, 0o600);
  return value;
}

/** The secret's value, or undefined if it was never generated. */
export function readSecret(dataDir: string, name: SecretName): string | undefined {
  try {
    return readFileSync(secretPath(dataDir, name), 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
