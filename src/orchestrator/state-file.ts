/**
 * The run state under `<dataDir>/run/`: `tandem.pid` (one `tandem up` per data dir) and
 * `state.json` (what `tandem status` reads), written atomically.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StartupError } from '../errors.js';
import { isProcessAlive } from '../process-alive.js';
import type { ComponentInfo } from './supervised-component.js';

export interface RunState {
  pid: number;
  startedAt: string;
  updatedAt: string;
  state: 'starting' | 'running' | 'stopping';
  config: string;
  dataDir: string;
  urls: { label: string; url: string }[];
  components: ComponentInfo[];
  /** Components the config places on other machines. */
  remote: { id: string; host: string }[];
}

export function runDir(dataDir: string): string {
  return join(dataDir, 'run');
}

/** Takes the data dir for this process; fails if a live `tandem up` already holds it. */
export function acquireLock(dataDir: string): void {
  mkdirSync(runDir(dataDir), { recursive: true, mode: 0o755 });
  const file = join(runDir(dataDir), 'tandem.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = lockHolder(dataDir);
      if (holder !== undefined)
        throw new StartupError(
          `a Tandem stack is already running for ${dataDir} (pid ${holder}). ` +
            'Stop it with `tandem stop`, or use another --data-dir.',
        );
      rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  throw new StartupError(`cannot take the lock ${file}`);
}

/** The pid of the live `tandem up` holding this data dir, if any. */
export function lockHolder(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(runDir(dataDir), 'tandem.pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return isProcessAlive(pid) ? pid : undefined;
}

export function releaseLock(dataDir: string): void {
  rmSync(join(runDir(dataDir), 'tandem.pid'), { force: true });
  rmSync(join(runDir(dataDir), 'state.json'), { force: true });
}

export function writeState(dataDir: string, state: RunState): void {
  const file = join(runDir(dataDir), 'state.json');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, file);
}

export function readState(dataDir: string): RunState | undefined {
  try {
    return JSON.parse(readFileSync(join(runDir(dataDir), 'state.json'), 'utf8')) as RunState;
  } catch {
    return undefined;
  }
}
