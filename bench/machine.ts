/** A description of the machine a benchmark ran on, for the results and the README. */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  kernel: string;
  node: string;
  /** 1-minute load average when the run started: above ~0.3 per core, something else was busy. */
  loadAverageAtStart: number;
}

/** This machine. */
export function describeMachine(): Machine {
  let os = 'Linux';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    os = process.platform; // no /etc/os-release
  }
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os,
    kernel: release(),
    node: process.version,
    loadAverageAtStart: Math.round(loadavg()[0]! * 100) / 100,
  };
}

/** `Intel Xeon … (2 cores), 7.8 GiB, Debian GNU/Linux 12, Linux 6.1, Node.js v20.20.2`. */
export function machineLine(m: Machine): string {
  return `${m.cpu} (${m.cores} cores), ${m.memoryGiB} GiB, ${m.os}, Linux ${m.kernel}, Node.js ${m.node}`;
}
