/**
 * Finding the MariaDB programs: `database.binDir` when set, else the machine's (PATH, /usr/sbin,
 * /usr/bin). Tandem needs the server, its install script, the dump tool and the client.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { MissingDependencyError } from '../../errors.js';

export interface MariaDbBinaries {
  server: string;
  installDb: string;
  dump: string;
  client: string;
  /** e.g. `10.11.19-MariaDB`. */
  version: string;
}

const INSTALL_HINT =
  'Install MariaDB (Debian/Ubuntu: `apt-get install mariadb-server`; it is not started as a service by ' +
  'Tandem, which runs its own instances), or set database.binDir to the directory that holds mariadbd.';

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function find(names: string[], dirs: string[]): string | undefined {
  for (const dir of dirs) for (const name of names) if (executable(join(dir, name))) return join(dir, name);
  return undefined;
}

/** Locates the binaries; throws MissingDependencyError saying what to install or configure. */
export function findMariaDbBinaries(binDir?: string): MariaDbBinaries {
  const path = (process.env['PATH'] ?? '').split(delimiter).filter(Boolean);
  const dirs = binDir ? [binDir] : [...path, '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  // Client tools sit beside the server, or in bin/ when the server is in sbin/.
  const toolDirs = binDir ? [binDir, join(binDir, '..', 'bin')] : dirs;
  const server = find(['mariadbd', 'mysqld'], dirs);
  if (!server)
    throw new MissingDependencyError(
      binDir
        ? `database.binDir: no mariadbd or mysqld in ${binDir}. ${INSTALL_HINT}`
        : `database.engine is mysql, but no MariaDB server (mariadbd) was found on this machine. ${INSTALL_HINT}`,
    );
  let version: string;
  try {
    version = execFileSync(server, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new MissingDependencyError(
      `${server} --version failed: ${(err as Error).message}. ${INSTALL_HINT}`,
    );
  }
  if (!/MariaDB/i.test(version))
    throw new MissingDependencyError(
      `${server} is Oracle MySQL (${version.trim()}); Tandem's mysql engine needs MariaDB (10.5 or later) for ` +
        `its GTID replication. ${INSTALL_HINT}`,
    );
  const tools = {
    installDb: find(['mariadb-install-db', 'mysql_install_db'], toolDirs),
    dump: find(['mariadb-dump', 'mysqldump'], toolDirs),
    client: find(['mariadb', 'mysql'], toolDirs),
  };
  const missing = Object.entries(tools)
    .filter(([, v]) => !v)
    .map(([k]) => ({ installDb: 'mariadb-install-db', dump: 'mariadb-dump', client: 'mariadb' })[k]);
  if (missing.length > 0)
    throw new MissingDependencyError(
      `found ${server}, but not ${missing.join(', ')} beside it. Install the MariaDB client tools ` +
        '(Debian/Ubuntu: `apt-get install mariadb-server mariadb-client`), or set database.binDir.',
    );
  return {
    server,
    installDb: tools.installDb!,
    dump: tools.dump!,
    client: tools.client!,
    version: /(\d+\.\d+\.\d+-MariaDB)/.exec(version)?.[1] ?? version.trim(),
  };
}
