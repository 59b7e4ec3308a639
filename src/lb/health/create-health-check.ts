import type { HealthCheckConfig } from '../../config/schema.js';
import type { UpstreamServer } from '../backend/upstream-server.js';
import type { HealthChangeListener, HealthCheck } from './health-check.js';
import { HttpHealthCheck } from './http-check.js';
import { TcpHealthCheck } from './tcp-check.js';

/** The active health check a backend's `healthCheck.type` names, for one of its servers. */
export function createHealthCheck(
  server: UpstreamServer,
  config: HealthCheckConfig,
  onChange: HealthChangeListener,
): HealthCheck {
  switch (config.type) {
    case 'http':
      return new HttpHealthCheck(
        server,
        server.checkPath === undefined ? config : { ...config, path: server.checkPath },
        onChange,
      );
    case 'tcp':
      return new TcpHealthCheck(server, config, onChange);
  }
}
