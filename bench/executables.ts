/** Finding the programs the benchmark uses (it installs none of them) and their versions. */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Where daemons live on Debian and others, searched after PATH (it often lacks sbin for users). */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** The absolute path of the executable `name`, or undefined when it is not installed. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      continue; // not in this directory
    }
  }
  return undefined;
}

/**
 * `name version`: runs `file args` (whatever its exit code) and takes the version from the first
 * capture group of `pattern` in its output (stdout, then stderr).
 */
export function versionOf(name: string, file: string, args: string[], pattern: RegExp): Promise<string> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 5000 }, (_err, stdout, stderr) => {
      const m = pattern.exec(`${stdout}\n${stderr}`);
      resolve(m?.[1] ? `${name} ${m[1]}` : `${name} (unknown version)`);
    });
  });
}
