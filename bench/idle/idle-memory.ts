/**
 * The idle-connections test: the memory a proxy needs to hold many idle keep-alive client
 * connections (10,000 by default). A client process opens them, sends one request on each, reads
 * the answer and leaves them open; the proxy's resident memory (its whole process tree) is read
 * before and while they are held.
 */
import { fileURLToPath } from 'node:url';
import type { ChildGroup } from '../children.js';
import type { RunningContender } from '../contenders/contender.js';
import { openFilesLimit, rssBytes, sharedOnceBytes } from '../proc-stats.js';

const CLIENT = fileURLToPath(new URL('./idle-client.js', import.meta.url));
const MiB = 1024 * 1024;
/** Longest time the client may take to open and use every connection. */
const OPEN_TIMEOUT_MS = 180_000;

/** What the idle test found for one contender. */
export interface IdleResult {
  contender: string;
  /** Connections asked for (`--idle-connections`). */
  connections: number;
  /** Connections the client tried to open: fewer than asked for when the proxy cannot hold more. */
  attempted: number;
  /** Why fewer were attempted: `maxconn 9950: open-files hard limit 20000`. */
  limitedBy?: string;
  /** Connections that got their answer and were then held open. */
  held: number;
  failed: number;
  /** Why the first failed connection failed. */
  firstError?: string;
  /** Held connections the proxy had not closed when memory was read. */
  stillOpen: number;
  /** Resident memory of the proxy before the client connected, in MiB. */
  rssBeforeMiB: number;
  /** Resident memory of the proxy while holding the connections (highest reading), in MiB. */
  rssHeldMiB: number;
  /**
   * Memory while holding them with the pages the proxy's processes share counted once (see
   * sharedOnceBytes), in MiB: below rssHeldMiB for a proxy of several processes.
   */
  sharedOnceHeldMiB?: number;
  /** (rssHeld − rssBefore) / held, in KiB. */
  perConnectionKiB: number;
}

/**
 * Runs the idle test against `running` (a freshly started contender), which needs
 * `filesPerConnection` open files per client connection (2 for a TCP proxy: one to a server each).
 * Returns a reason string instead when it cannot run (no proxy process, too low an open-files limit).
 */
export async function measureIdle(
  contender: string,
  running: RunningContender,
  connections: number,
  children: ChildGroup,
  filesPerConnection = 1,
): Promise<IdleResult | string> {
  const pid = running.pid;
  if (pid === undefined) return 'no proxy process to measure';
  const limit = openFilesLimit(pid);
  const needed = connections * filesPerConnection + 64;
  if (limit !== undefined && limit < needed) {
    return (
      `its open-files limit is ${limit}, too low for ${connections} connections (needs about ${needed}; ` +
      'raise the hard limit: ulimit -Hn)'
    );
  }
  const attempted = Math.min(connections, running.capacity?.connections ?? connections);
  const rssBefore = rssBytes(pid);
  const client = children.spawn(
    `idle client → ${contender}`,
    process.execPath,
    [CLIENT, String(running.port), String(attempted)],
    {
      raiseFdLimit: true,
      stdin: true,
    },
  );
  try {
    const opened = JSON.parse(
      await client.waitForLine(
        'result of opening the connections',
        (l) => l.startsWith('{"held"'),
        OPEN_TIMEOUT_MS,
      ),
    ) as { held: number; failed: number; firstError: string };
    const { rss: rssHeld, sharedOnce } = await settledMemory(pid);
    const checked = client.waitForLine('open count', (l) => l.startsWith('{"open"'), 10_000);
    client.proc.stdin!.write('check\n');
    const stillOpen = (JSON.parse(await checked) as { open: number }).open;
    const result: IdleResult = {
      contender,
      connections,
      attempted,
      held: opened.held,
      failed: opened.failed,
      stillOpen,
      rssBeforeMiB: rssBefore / MiB,
      rssHeldMiB: rssHeld / MiB,
      perConnectionKiB: opened.held > 0 ? (rssHeld - rssBefore) / opened.held / 1024 : NaN,
    };
    if (sharedOnce !== undefined) result.sharedOnceHeldMiB = sharedOnce / MiB;
    if (opened.firstError) result.firstError = opened.firstError;
    if (attempted < connections) result.limitedBy = running.capacity!.why;
    return result;
  } finally {
    client.proc.stdin!.end();
    await children.stop(client);
  }
}

/**
 * Reads the RSS of `pid`'s tree every 250 ms until two readings in a row differ by less than 1 %
 * (at most 5 s) and returns the highest reading, and the highest of its shared-once memory
 * (sharedOnceBytes) read at the same times.
 */
async function settledMemory(pid: number): Promise<{ rss: number; sharedOnce: number | undefined }> {
  let highest = rssBytes(pid);
  let sharedOnce = sharedOnceBytes(pid);
  let previous = highest;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const now = rssBytes(pid);
    highest = Math.max(highest, now);
    const once = sharedOnceBytes(pid);
    if (once !== undefined) sharedOnce = Math.max(sharedOnce ?? 0, once);
    if (Math.abs(now - previous) < previous * 0.01) break;
    previous = now;
  }
  return { rss: highest, sharedOnce };
}
