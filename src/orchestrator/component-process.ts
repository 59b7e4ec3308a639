/**
 * What every component process (`tandem lb|server|db`) shares: reporting to `tandem up` when it
 * runs under it (IPC), logging otherwise, and one clean shutdown path for SIGINT, SIGTERM and the
 * loss of the parent (so no component outlives the orchestrator).
 */
import type { Logger } from '../log.js';
import type { ComponentMessage } from './messages.js';

/** Sends a message to the orchestrator if there is one; logs it otherwise. */
export function report(log: Logger, msg: ComponentMessage): void {
  if (process.send && process.connected) {
    process.send(msg);
  }
  if (msg.type === 'progress') log.info(msg.message);
  else if (msg.type === 'ready') log.info(`ready on ${msg.address}${msg.role ? ` (${msg.role})` : ''}`);
  else if (msg.type === 'fatal') log.error(msg.message);
}

/**
 * Runs `stop` once on SIGINT, SIGTERM or when the IPC channel to the parent closes, then exits
 * with code 0 (or 1 if stop failed). A second signal while stopping forces exit.
 */
export function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (why: string) => {
    if (stopping) {
      if (why !== 'disconnect') {
        log.warn(`${why} again while stopping: exiting now`);
        process.exit(1);
      }
      return;
    }
    stopping = true;
    log.info(`stopping (${why})`);
    stop().then(
      () => {
        log.info('stopped');
        process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
      },
      (err: unknown) => {
        log.error(`stop failed: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
  if (process.send) process.on('disconnect', () => handler('disconnect'));
}
