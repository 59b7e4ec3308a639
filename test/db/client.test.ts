/**
 * tandem/db against a real primary and replica: writes go to the writer, reads to the replica,
 * and a read given the position of a write sees it, even while the replica lags (it then waits,
 * and falls back to the writer).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { type DbNodeHandle, startDbNode } from '../../src/db/cluster/db-node.js';
import { TandemDb } from '../../src/db/client.js';
import { readSecret } from '../../src/db/secrets.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/index.js';
import { primaryAndReplica } from '../helpers/stack.js';

test('tandem/db: read/write split and read-your-writes while the replica lags', async (t) => {
  const dir = tempDir();
  const { config, p1, p2 } = await primaryAndReplica(dir.path);
  const log = createLogger('test');
  const handles: DbNodeHandle[] = [];
  let db: TandemDb | undefined = undefined;
  t.after(async () => {
    await db?.close();
    for (const h of handles.reverse()) await h.stop();
    dir.cleanup();
  });
  handles.push(await startDbNode(config, 'web-01', log, () => undefined));
  handles.push(await startDbNode(config, 'web-02', log, () => undefined));
  const password = encodeURIComponent(readSecret(config.paths.dataDir, 'db-superuser')!);
  const url = (port: number) => `postgres://postgres:${password}@127.0.0.1:${port}/app`;
  db = new TandemDb({ writer: url(p1), readers: url(p2), readYourWritesWait: 300 });

  await db.write('CREATE TABLE notes (id serial PRIMARY KEY, body text)');
  const first = await db.write<{ id: number }>("INSERT INTO notes (body) VALUES ('one') RETURNING id");
  const read1 = await db.read<{ body: string }>('SELECT body FROM notes', [], { after: first.position });
  assert.equal(read1.answeredBy, 'reader');
  assert.deepEqual(
    read1.rows.map((r) => r.body),
    ['one'],
  );

  // Make the replica lag: pause its replay.
  const replica = new pg.Client({ connectionString: url(p2) });
  replica.on('error', () => undefined); // the node stops at the end of the test
  await replica.connect();
  await replica.query('SELECT pg_wal_replay_pause()');
  const second = await db.write("INSERT INTO notes (body) VALUES ('two') RETURNING id");
  const stale = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id');
  assert.equal(stale.answeredBy, 'reader');
  assert.deepEqual(
    stale.rows.map((r) => r.body),
    ['one'],
    'without read-your-writes the lagging replica misses the write',
  );
  const started = Date.now();
  const fresh = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id', [], {
    after: second.position,
  });
  assert.equal(
    fresh.answeredBy,
    'writer',
    'after waiting for the replica, the read falls back to the writer',
  );
  assert.ok(Date.now() - started >= 290, 'it waited for the replica first');
  assert.deepEqual(
    fresh.rows.map((r) => r.body),
    ['one', 'two'],
  );

  // Replay resumes: the replica catches up and answers again.
  await replica.query('SELECT pg_wal_replay_resume()');
  const caught = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id', [], {
    after: second.position,
  });
  await replica.end();
  assert.equal(caught.answeredBy, 'reader');
  assert.deepEqual(
    caught.rows.map((r) => r.body),
    ['one', 'two'],
  );
});
