/**
 * `tandem up` without the terminal: starts the components placed on this machine stage by stage,
 * waits for the load balancers to see their servers healthy, keeps the run state file current,
 * and stops everything in reverse order.
 */
import { get } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { READER, WRITER } from '../config/db-endpoints.js';
import type { ResolvedConfig } from '../config/load.js';
import { StartupError, TandemError } from '../errors.js';
import { readClusterState } from '../db/cluster/cluster-state.js';
import { acquireLock, type RunState, releaseLock, writeState } from './state-file.js';
import { SupervisedComponent } from './supervised-component.js';
import { componentsOf, isLocalHost, STAGE_NAMES } from './topology.js';

const TANDEM_BIN = fileURLToPath(new URL('../../../bin/tandem.js', import.meta.url));

export interface OrchestratorEvents {
  /** A line for the operator: `component` is the component id, or undefined for the stack. */
  onProgress(component: string | undefined, message: string): void;
}

export class Orchestrator {
  readonly components: SupervisedComponent[];
  readonly remote: { id: string; host: string }[];
  private state: RunState['state'] = 'starting';
  private readonly startedAt = new Date();
  private locked = false;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly events: OrchestratorEvents,
  ) {
    const all = componentsOf(config, readClusterState(config.paths.dataDir)?.primary);
    const commonArgs = ['-d', config.paths.dataDir];
    if (config.source !== 'built-in default') commonArgs.push('-c', config.source);
    this.components = all
      .filter((c) => isLocalHost(c.host))
      .map(
        (spec) =>
          new SupervisedComponent(spec, {
            tandem: [process.execPath, TANDEM_BIN],
            commonArgs,
            logDir: join(config.paths.dataDir, 'logs'),
            stopTimeoutMs: spec.kind === 'db' ? 90_000 : 15_000,
          }),
      );
    this.remote = all.filter((c) => !isLocalHost(c.host)).map((c) => ({ id: c.id, host: c.host }));
    for (const c of this.components) {
      c.on('progress', (m: string) => this.events.onProgress(c.spec.id, m));
      c.on('change', () => this.saveState());
      c.on('crashed', (why: string) => this.events.onProgress(c.spec.id, `crashed (${why}); restarting`));
      c.on('restarted', () => this.events.onProgress(c.spec.id, 'restarted and ready again'));
    }
  }

  /** URLs an operator opens: each frontend, each stats page. */
  urls(): { label: string; url: string }[] {
    const out: { label: string; url: string }[] = [];
    for (const lb of this.config.loadBalancers) {
      for (const f of lb.frontends) {
        if (f.mode === 'tcp') {
          const what = f.name === WRITER ? 'database writer' : f.name === READER ? 'database reader' : f.name;
          out.push({ label: `${what} (via ${lb.name})`, url: `tcp://${f.host}:${f.port}` });
        } else out.push({ label: `site (via ${lb.name})`, url: `http://${f.host}:${f.port}/` });
      }
      out.push({ label: `${lb.name} stats`, url: `http://${lb.stats.host}:${lb.stats.port}/` });
    }
    return out;
  }

  /** Starts every local component; on any failure stops what started and throws. */
  async up(): Promise<void> {
    acquireLock(this.config.paths.dataDir);
    this.locked = true;
    this.saveState();
    if (this.components.length === 0)
      throw new StartupError(
        'no component of this config is placed on this machine (no host matches one of its addresses)',
      );
    try {
      const stages = [...new Set(this.components.map((c) => c.spec.stage))].sort((a, b) => a - b);
      for (const stage of stages) {
        if (this.state === 'stopping') return; // asked to stop while starting
        const group = this.components.filter((c) => c.spec.stage === stage);
        this.events.onProgress(
          undefined,
          `starting ${STAGE_NAMES[stage]}: ${group.map((c) => c.spec.name).join(', ')}`,
        );
        await Promise.all(group.map((c) => c.start()));
      }
      await this.waitHealthy();
      if (this.state === 'stopping') return;
      this.state = 'running';
      this.saveState();
    } catch (err) {
      if (this.state === 'stopping') return; // a stop request interrupted the start: not a failure
      this.events.onProgress(undefined, 'start failed; stopping what was started');
      await this.down();
      throw err instanceof TandemError ? err : new StartupError((err as Error).message, { cause: err });
    }
  }

  /** Waits until each local load balancer reports every server of its backends up. */
  private async waitHealthy(): Promise<void> {
    for (const lb of this.config.loadBalancers) {
      if (!this.components.some((c) => c.spec.id === `lb ${lb.name}`)) continue;
      const url = `http://${lb.stats.host}:${lb.stats.port}/status`;
      const deadline = Date.now() + 60_000;
      let last = '';
      this.events.onProgress(`lb ${lb.name}`, 'waiting for health checks to pass on every server');
      for (;;) {
        const down = await serversDown(url, (this.config.database?.nodes.length ?? 0) > 1).catch(
          (err: Error) => [`stats unreachable: ${err.message}`],
        );
        if (down.length === 0) {
          this.events.onProgress(`lb ${lb.name}`, 'every server passes its health checks');
          break;
        }
        const line = `waiting for health checks: ${down.join(', ')} not up yet`;
        if (line !== last) this.events.onProgress(`lb ${lb.name}`, line);
        last = line;
        if (Date.now() > deadline) {
          this.events.onProgress(`lb ${lb.name}`, `still down after 60 s: ${down.join(', ')}; going on`);
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Forwards a reload to each running load balancer (SIGHUP: it reads the config file again and
   * applies it without dropping connections). Returns the ids of those signalled.
   */
  reload(): string[] {
    return this.components.filter((c) => c.spec.kind === 'lb' && c.signal('SIGHUP')).map((c) => c.spec.id);
  }

  /** Stops every component, load balancers first, the primary last. */
  async down(): Promise<void> {
    this.state = 'stopping';
    this.saveState();
    const stages = [...new Set(this.components.map((c) => c.spec.stage))].sort((a, b) => b - a);
    for (const stage of stages) {
      await Promise.all(
        this.components
          .filter((c) => c.spec.stage === stage)
          .map(async (c) => {
            const running = c.pid !== undefined;
            await c.stop();
            if (running) this.events.onProgress(c.spec.id, 'stopped');
          }),
      );
    }
    if (this.locked) releaseLock(this.config.paths.dataDir);
    this.locked = false;
  }

  private saveState(): void {
    if (!this.locked) return;
    writeState(this.config.paths.dataDir, {
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      updatedAt: new Date().toISOString(),
      state: this.state,
      config: this.config.source,
      dataDir: this.config.paths.dataDir,
      urls: this.urls(),
      components: this.components.map((c) => c.info()),
      remote: this.remote,
    });
  }
}

/**
 * Names (`backend/server`) of servers a load balancer's stats report as not up. `replicas`: the
 * database has replicas, so the reader endpoint is only ready once one of them passes.
 */
export function serversDown(statsUrl: string, replicasExpected: boolean): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const req = get(statsUrl, { timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => {
        try {
          const status = JSON.parse(body) as {
            backends: { name: string; servers: { name: string; state: string; backup: boolean }[] }[];
          };
          resolve(
            status.backends.flatMap((b) => {
              const down = b.servers.filter((s) => s.state !== 'up');
              // The database endpoints pass on one node by design: the writer on the primary; the
              // reader on the replicas (the primary is its fallback, not what to wait for).
              if (b.name === WRITER)
                return down.length < b.servers.length ? [] : [`${b.name} (no node passes the primary check)`];
              if (b.name === READER) {
                const replicaEntries = b.servers.filter((s) => !s.backup);
                const want = replicasExpected && replicaEntries.length > 0 ? replicaEntries : b.servers;
                return want.some((s) => s.state === 'up') ? [] : [`${b.name} (no replica passes its check)`];
              }
              return down.map((s) => `${b.name}/${s.name}`);
            }),
          );
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
