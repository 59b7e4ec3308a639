/**
 * PostgreSQL refuses to run as root. When Tandem runs as root, the engine's processes run as an
 * unprivileged system user: `database.runAs`, else `postgres` if it exists, else `nobody`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { MissingDependencyError } from '../../errors.js';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

/** The identity to run the engine as, or undefined when we are not root (run as ourselves). */
export function engineIdentity(configured?: string, defaults = ['postgres', 'nobody']): RunAs | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const candidates = configured ? [configured] : defaults;
  for (const user of candidates) {
    const ids = lookup(user);
    if (ids) return { user, ...ids };
  }
  throw new MissingDependencyError(
    configured
      ? `database.runAs: there is no system user "${configured}" on this machine. Create it (useradd --system ${configured}) or pick another.`
      : `running as root, and none of the users ${defaults.map((u) => `"${u}"`).join(', ')} exists to run the database engine as. Create one (useradd --system ${defaults[0]}) or set database.runAs.`,
  );
}

function lookup(user: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(
      execFileSync('id', ['-u', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    const gid = Number(
      execFileSync('id', ['-g', user], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** True if `who` can reach (traverse) `dir`, checked by that user itself, not guessed from modes. */
export function canUseDirectory(who: RunAs | undefined, dir: string): boolean {
  if (!who) return true;
  const r = spawnSync('/bin/sh', ['-c', 'test -x "$1"', 'sh', dir], {
    uid: who.uid,
    gid: who.gid,
    stdio: 'ignore',
  });
  return r.status === 0;
}

/** True if `who` can execute `file`. */
export function canExecute(who: RunAs | undefined, file: string): boolean {
  if (!who) return true;
  const r = spawnSync(file, ['--version'], { uid: who.uid, gid: who.gid, stdio: 'ignore' });
  return r.status === 0;
}
