import { connect } from 'node:net';
import type { UpstreamServer } from '../backend/upstream-server.js';
import { describeError } from '../describe-error.js';
import { ActiveHealthCheck } from './active-check.js';
import type { CheckTiming, HealthChangeListener, Probe, ProbeResult, ProbeTarget } from './health-check.js';

/**
 * One TCP check (`healthCheck.type: tcp`, like HAProxy's plain `check` in `mode tcp`): it passes
 * when a connection opens, which is then closed at once without sending anything.
 */
export class TcpProbe implements Probe {
  run(target: ProbeTarget, signal: AbortSignal): Promise<ProbeResult> {
    return new Promise((resolve) => {
      const socket = connect({ host: target.host, port: target.port });
      let settled = false;
      const settle = (ok: boolean, outcome: string) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve({ ok, outcome });
      };
      const onAbort = () => settle(false, 'aborted');
      signal.addEventListener('abort', onAbort);
      socket.once('connect', () => settle(true, 'connected'));
      socket.once('error', (err) => settle(false, describeError(err)));
      // Closed before it connected, without an error: a failure all the same.
      socket.once('close', () => settle(false, 'connection closed'));
    });
  }
}

/** An active health check of `server` by TCP connect (see ActiveHealthCheck and TcpProbe). */
export class TcpHealthCheck extends ActiveHealthCheck {
  constructor(server: UpstreamServer, timing: CheckTiming, onChange: HealthChangeListener) {
    super(server, new TcpProbe(), timing, onChange);
  }
}
