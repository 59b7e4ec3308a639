/**
 * CPU time and memory of a process and everything it forked, read from /proc (Linux): a
 * multi-process proxy (nginx's workers, a load balancer with workers) is measured as a whole.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';

let clockTicks: number | undefined;

/** Clock ticks per second of the utime/stime fields (`getconf CLK_TCK`, 100 on Linux). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100; // getconf missing: the kernel's USER_HZ is 100 on every Linux port Node runs on
    }
  }
  return clockTicks;
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // the process has exited
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** `pid` and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const fields = statFields(child);
    if (!fields) continue;
    const parent = Number(fields[1]); // field 4: ppid
    let list = children.get(parent);
    if (!list) children.set(parent, (list = []));
    list.push(child);
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    if (!statFields(p)) continue;
    tree.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return tree;
}

/** User + system CPU seconds used so far by `pid` and its live descendants. */
export function cpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
  }
  return ticks / ticksPerSecond();
}

/** A `Vm*` line of /proc/<pid>/status in bytes (0 when the process is gone). */
function statusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return 0;
  }
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Resident memory now, in bytes, summed over the process tree. */
export function rssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusBytes(p, 'VmRSS'), 0);
}

/** Private and shared resident bytes of one process, from the text of /proc/<pid>/smaps_rollup. */
export function parseSmapsRollup(text: string): { private: number; shared: number } {
  const kB = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return {
    private: kB('Private_Clean') + kB('Private_Dirty') + kB('Private_Hugetlb'),
    shared: kB('Shared_Clean') + kB('Shared_Dirty') + kB('Shared_Hugetlb'),
  };
}

/**
 * Resident memory of the process tree with the pages its processes share counted once, in bytes:
 * every process's private pages, plus the largest shared set among them (the program's code and
 * libraries, which every worker of the same program maps). Summed RSS counts those shared pages
 * once per process. Undefined without smaps_rollup (Linux before 4.14).
 */
export function sharedOnceBytes(pid: number): number | undefined {
  let priv = 0;
  let shared = 0;
  for (const p of processTree(pid)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && statFields(p)) return undefined;
      continue; // the process has exited
    }
    const m = parseSmapsRollup(text);
    priv += m.private;
    shared = Math.max(shared, m.shared);
  }
  return priv + shared;
}

/** Peak resident memory (VmHWM), in bytes, summed over the process tree. */
export function peakRssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusBytes(p, 'VmHWM'), 0);
}

/**
 * Resets the peak RSS of every process of the tree to its current RSS (`echo 5 > clear_refs`), so
 * that the next peakRssBytes() is the peak of what follows. Returns false where that is not
 * allowed: the peak then counts from the process's start.
 */
export function resetPeakRss(pid: number): boolean {
  let ok = true;
  for (const p of processTree(pid)) {
    try {
      writeFileSync(`/proc/${p}/clear_refs`, '5');
    } catch {
      ok = false; // not our process, or a kernel without it: the caller reports it
    }
  }
  return ok;
}

/** The soft (or hard) limit on open files of a process, from /proc/<pid>/limits; undefined if unknown. */
export function openFilesLimit(pid: number, which: 'soft' | 'hard' = 'soft'): number | undefined {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    if (!m) return undefined;
    const value = which === 'soft' ? m[1]! : m[2]!;
    return value === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(value);
  } catch {
    return undefined; // no /proc (not Linux) or the process is gone
  }
}
