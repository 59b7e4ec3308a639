import pg from 'pg';

/**
 * A pg.Client that cannot crash the process: node-postgres emits 'error' on the client when the
 * server ends the connection between queries (a node shutting down or killed), and an 'error'
 * event without a listener throws. Failures of a query still reject that query's promise.
 */
export function pgClient(config: pg.ClientConfig): pg.Client {
  const client = new pg.Client(config);
  client.on('error', () => undefined); // the next query on this client fails and says why
  return client;
}
