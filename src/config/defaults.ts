/**
 * The built-in topology used when there is no tandem.yaml: the design's classic picture on
 * 127.0.0.1. One load balancer in front of two servers, PostgreSQL primary on web-01 and a
 * streaming replica on web-02, weighted round robin, active-active.
 */
export const DEFAULT_CONFIG = {
  dataDir: '.tandem',
  servers: [
    { name: 'web-01', host: '127.0.0.1', port: 8081, app: { port: 9101, processes: 2 } },
    { name: 'web-02', host: '127.0.0.1', port: 8082, app: { port: 9201, processes: 2 } },
  ],
  loadBalancers: [
    {
      name: 'lb-01',
      host: '127.0.0.1',
      frontends: [{ name: 'http', host: '127.0.0.1', port: 8080, backend: 'web' }],
      stats: { host: '127.0.0.1', port: 8404 },
    },
  ],
  backends: [
    {
      name: 'web',
      balance: 'roundrobin',
      mode: 'active-active',
      healthCheck: { path: '/healthz', interval: '1s', timeout: '1s', rise: 2, fall: 3 },
      servers: [
        { name: 'web-01', weight: 1 },
        { name: 'web-02', weight: 1 },
      ],
    },
  ],
  database: {
    engine: 'postgres',
    replication: 'async',
    nodes: [
      { name: 'web-01', host: '127.0.0.1', port: 15432, role: 'primary' },
      { name: 'web-02', host: '127.0.0.1', port: 15433, role: 'replica' },
    ],
  },
};
