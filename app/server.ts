/**
 * The demo codebase Tandem's servers run: a small users app on node:http and PostgreSQL or
 * MariaDB (through tandem/db, the same code on both).
 *
 * Environment (set by the application server for each process):
 *   PORT, HOST                  where to listen (default 3000 on 127.0.0.1)
 *   TANDEM_SERVER_NAME          the server this process belongs to (X-Served-By)
 *   TANDEM_PROCESS_INDEX        this process's index on its server
 *   DATABASE_WRITER_URL         the primary; absent when the stack has no database
 *   DATABASE_READER_URLS        the replicas, comma-separated (reads fall back to the writer)
 *
 * SIGTERM/SIGINT: stop accepting, finish the requests in progress, close the pools, exit 0.
 */
import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { Database } from './database.js';
import { createHandler } from './routes.js';

/** Requests still running this long after SIGTERM are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

const env = process.env;
const port = Number(env['PORT'] ?? 3000);
const host = env['HOST'] ?? '127.0.0.1';
const server = env['TANDEM_SERVER_NAME'] ?? hostname();
const processIndex = env['TANDEM_PROCESS_INDEX'] ?? '0';

function log(message: string): void {
  process.stdout.write(`${new Date().toISOString()} ${message}\n`);
}

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`PORT must be a port number, not ${JSON.stringify(env['PORT'])}\n`);
  process.exit(2);
}

const db = new Database({
  writerUrl: env['DATABASE_WRITER_URL'] || undefined,
  readerUrls: (env['DATABASE_READER_URLS'] ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean),
  applicationName: `tandem-demo ${server}#${processIndex}`,
  log,
});

const http = createServer(createHandler({ db, server, processIndex, log }));
http.on('error', (err) => {
  process.stderr.write(`cannot listen on ${host}:${port}: ${err.message}\n`);
  process.exit(1);
});
http.listen(port, host, () => {
  log(`listening on http://${host}:${port} (${server}, process ${processIndex}, pid ${process.pid})`);
  if (!db.configured) {
    log('no database configured: the users pages answer 503');
    return;
  }
  db.ensureSchema().then(
    () => log('database schema ready'),
    (err: Error) => log(`database not ready yet (${err.message}): will retry on the next request`),
  );
});

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log(`${signal}: finishing requests in progress`);
  const cut = setTimeout(() => http.closeAllConnections(), SHUTDOWN_GRACE_MS);
  await new Promise<void>((resolve) => {
    http.close(() => resolve());
    http.closeIdleConnections();
  });
  clearTimeout(cut);
  await db.end();
  log('stopped');
  process.exit(0);
}
function stop(why: string): void {
  shutdown(why).catch((err: Error) => {
    process.stderr.write(`stop failed: ${err.message}\n`);
    process.exit(1);
  });
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

// Under Tandem, never outlive the server that started us (if it was killed without a chance to stop us).
if (env['TANDEM_SERVER_NAME']) {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop('parent exited');
  }, 1000).unref();
}
