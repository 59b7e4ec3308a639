/**
 * tandem/db on MariaDB: `$n` placeholders turned into escaped values (never inside strings,
 * identifiers or comments), GTID positions checked before they reach the server, and against a
 * real primary and replica: writes go to the writer, reads to the replica, a read given the GTID of
 * a write sees it, and while the replica's SQL thread is stopped such a read waits for the bound
 * and then answers from the writer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type DbNodeHandle, startDbNode } from '../../src/db/cluster/db-node.js';
import {
  TandemDb,
  engineOf,
  isGtidPosition,
  isPosition,
  isWalPosition,
  toMariaDbSql,
} from '../../src/db/client.js';
import { findMariaDbBinaries } from '../../src/db/engines/mariadb-binaries.js';
import { readSecret } from '../../src/db/secrets.js';
import { createLogger } from '../../src/log.js';
import { freePort, skipUnless, tempDir } from '../helpers/index.js';
import { sql } from '../helpers/sql.js';
import { primaryAndReplica } from '../helpers/stack.js';

/** Why MariaDB tests cannot run here, or undefined when they can. */
function mariaDbMissing(): string | undefined {
  try {
    findMariaDbBinaries();
    return undefined;
  } catch (err) {
    return `MariaDB (apt-get install mariadb-server): ${(err as Error).message}`;
  }
}

test('placeholders: $n becomes the escaped value, outside quotes, identifiers and comments only', () => {
  assert.equal(
    toMariaDbSql('SELECT * FROM t WHERE a = $1 AND b = $2 OR c = $1', ['x', 2]),
    "SELECT * FROM t WHERE a = 'x' AND b = 2 OR c = 'x'",
  );
  assert.equal(
    toMariaDbSql(`SELECT '$1', "$1", \`$1\`, 'it''s $1', 'a\\'$1', $1 -- $1\n, $1 # $1\n /* $1 */`, [7]),
    `SELECT '$1', "$1", \`$1\`, 'it''s $1', 'a\\'$1', 7 -- $1\n, 7 # $1\n /* $1 */`,
  );
  assert.equal(toMariaDbSql('SELECT a$1, $1', [1]), 'SELECT a$1, 1', 'a$1 is an identifier');
  assert.equal(toMariaDbSql('SELECT 5--$1', [2]), 'SELECT 5--2', '-- without a space is not a comment');
  assert.equal(toMariaDbSql("SELECT ?, '?'", ["O'Hara"]), "SELECT 'O\\'Hara', '?'", "MariaDB's own ?");
  assert.equal(toMariaDbSql('SELECT $2, $1', ['a', 'b']), "SELECT 'b', 'a'");
  assert.equal(
    toMariaDbSql('VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      null,
      undefined,
      true,
      12n ** 20n,
      new Date(Date.UTC(2024, 1, 29, 23, 59, 58, 123)),
      Buffer.from('hi'),
      { a: "'" },
    ]),
    `VALUES (NULL, NULL, TRUE, 3833759992447475122176, '2024-02-29 23:59:58.123', X'6869', '{\\"a\\":\\"\\'\\"}')`,
  );
  assert.equal(toMariaDbSql("SELECT 'a' -- no values"), "SELECT 'a' -- no values");
  assert.throws(() => toMariaDbSql('SELECT $2', ['a']), TypeError);
  assert.throws(() => toMariaDbSql('SELECT $1', ['a', 'b']), TypeError, 'extra values, as PostgreSQL');
  assert.throws(() => toMariaDbSql('SELECT $1, ?', ['a', 'b']), TypeError, 'mixed styles');
  assert.throws(() => toMariaDbSql('SELECT ?', []), TypeError);
  assert.throws(() => toMariaDbSql('SELECT $1', [Number.NaN]), TypeError);
  assert.throws(() => toMariaDbSql("SELECT '$1'", ['a']), TypeError, 'a $1 in a string is no placeholder');
});

test('positions: GTID lists and LSNs are told apart; anything else is refused', () => {
  for (const good of ['0-1-42', '0-1-42,1-2-7', '4294967295-4294967295-18446744073709551615'])
    assert.ok(isGtidPosition(good) && isPosition(good, 'mysql') && isWalPosition(good), good);
  for (const bad of [
    '',
    '0-1',
    '0-1-42,',
    ',0-1-42',
    '0-1-42, 1-2-7',
    '0-1-42,0-2-43', // one domain twice
    '4294967296-1-1',
    '0-1-18446744073709551616',
    "0-1-1'; DROP TABLE users; --",
    '0/3000060',
    '-1-1-1',
    ['0-1-1'],
    42,
    null,
  ])
    assert.ok(!isGtidPosition(bad) && !isPosition(bad, 'mysql'), JSON.stringify(bad));
  assert.ok(isPosition('0/3000060', 'postgres') && isWalPosition('0/3000060'));
  assert.ok(!isPosition('0-1-42', 'postgres'));
  assert.equal(engineOf('mariadb://a@h/db'), 'mysql');
  assert.equal(engineOf('postgresql://a@h/db'), 'postgres');
  assert.throws(() => engineOf('http://h/'), TypeError);
  assert.throws(
    () => new TandemDb({ writer: 'mysql://a@127.0.0.1/x', readers: 'postgres://a@127.0.0.1/x' }),
    TypeError,
  );
});

test('tandem/db on MariaDB: read/write split, read-your-writes by GTID, fallback while replication is paused', async (t) => {
  if (skipUnless(t, mariaDbMissing())) return;
  const dir = tempDir();
  const { config, p1, p2 } = await primaryAndReplica(dir.path, { engine: 'mysql' });
  const log = createLogger('test');
  const handles: DbNodeHandle[] = [];
  const clients: TandemDb[] = [];
  t.after(async () => {
    for (const c of clients) await c.close();
    for (const h of handles.reverse()) await h.stop();
    dir.cleanup();
  });
  handles.push(await startDbNode(config, 'web-01', log, () => undefined));
  handles.push(await startDbNode(config, 'web-02', log, () => undefined));
  // The codebase's own account: MASTER_GTID_WAIT and @@last_gtid need no privilege beyond it.
  const appPassword = encodeURIComponent(readSecret(config.paths.dataDir, 'db-app')!);
  const url = (port: number, scheme = 'mysql') => `${scheme}://app:${appPassword}@127.0.0.1:${port}/app`;
  const admin = {
    engine: 'mysql' as const,
    port: p2,
    password: readSecret(config.paths.dataDir, 'db-superuser')!,
  };
  const db = new TandemDb({ writer: url(p1), readers: url(p2, 'mariadb'), readYourWritesWait: 300 });
  clients.push(db);
  assert.equal(db.engine, 'mysql');

  await t.test('a read after a write sees it on the replica', async () => {
    await db.write('CREATE TABLE notes (id SERIAL PRIMARY KEY, body TEXT NOT NULL)');
    const first = await db.write<{ id: number }>('INSERT INTO notes (body) VALUES ($1) RETURNING id', [
      'one',
    ]);
    assert.deepEqual(first.rows, [{ id: 1 }]);
    assert.match(first.position, /^0-1-\d+$/, 'the GTID of the insert');
    assert.ok(db.isPosition(first.position));
    const read = await db.read<{ body: string }>('SELECT body FROM notes', [], { after: first.position });
    assert.equal(read.answeredBy, 'reader');
    assert.deepEqual(read.rows, [{ body: 'one' }]);
    const nodes = await db.read<{ port: number; ro: number }>('SELECT @@port AS port, @@read_only AS ro');
    assert.deepEqual(nodes.rows, [{ port: p2, ro: 1 }], 'plain reads go to the replica');
  });

  await t.test(
    'replication paused: a plain read is stale; a read after the write waits, then uses the writer',
    async () => {
      await sql(admin, 'STOP SLAVE SQL_THREAD');
      try {
        const second = await db.write('INSERT INTO notes (body) VALUES ($1)', ['two']);
        assert.equal(second.rowCount, 1);
        const stale = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id');
        assert.equal(stale.answeredBy, 'reader');
        assert.deepEqual(
          stale.rows.map((r) => r.body),
          ['one'],
          'without read-your-writes the paused replica misses the write',
        );
        const started = Date.now();
        const fresh = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id', [], {
          after: second.position,
        });
        const waited = Date.now() - started;
        assert.equal(fresh.answeredBy, 'writer', 'after waiting for the replica, the writer answers');
        assert.ok(waited >= 280, `it waited for the replica first (${waited} ms)`);
        assert.ok(waited < 2000, `and no longer than the bound, about (${waited} ms)`);
        assert.deepEqual(
          fresh.rows.map((r) => r.body),
          ['one', 'two'],
        );
      } finally {
        await sql(admin, 'START SLAVE SQL_THREAD');
      }
      const last = await db.write('INSERT INTO notes (body) VALUES ($1)', ['three']);
      const caught = await db.read<{ body: string }>('SELECT body FROM notes ORDER BY id', [], {
        after: last.position,
      });
      assert.equal(caught.answeredBy, 'reader', 'replication resumed: the replica answers again');
      assert.deepEqual(
        caught.rows.map((r) => r.body),
        ['one', 'two', 'three'],
      );
    },
  );

  await t.test(
    'transactions: committed together, their position read back; a rollback leaves nothing',
    async () => {
      const { result, position } = await db.transaction(async (tx) => {
        assert.equal(tx.engine, 'mysql');
        await tx.query('INSERT INTO notes (body) VALUES ($1), ($2)', ['four', 'five']);
        return (await tx.query<{ n: number }>('SELECT count(*) AS n FROM notes')).rows[0]!.n;
      });
      assert.equal(result, 5);
      const read = await db.read<{ n: number }>('SELECT count(*) AS n FROM notes', [], { after: position });
      assert.deepEqual([read.answeredBy, read.rows], ['reader', [{ n: 5 }]]);
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO notes (body) VALUES ($1)', ['never']);
          throw new Error('changed my mind');
        }),
        /changed my mind/,
      );
      const none = await db.read<{ n: number }>("SELECT count(*) AS n FROM notes WHERE body = 'never'");
      assert.equal(none.rows[0]!.n, 0);
      // A statement that writes nothing has no GTID of its own: the position is the log's.
      const nothing = await db.write('DELETE FROM notes WHERE id = $1', [999]);
      assert.equal(nothing.rowCount, 0);
      assert.ok(db.isPosition(nothing.position), nothing.position);
      const after = await db.read('SELECT 1 AS one', [], { after: nothing.position });
      assert.equal(after.answeredBy, 'reader');
    },
  );

  await t.test('bad "after" values are refused before reaching a node', async () => {
    for (const bad of ['0/3000060', 'garbage', "0-1-1' OR '1'='1", '0-1-1,0-1-2', '1-2'])
      await assert.rejects(db.read('SELECT 1', [], { after: bad }), TypeError, bad);
    for (const none of ['', null, undefined]) {
      const r = await db.read('SELECT 1 AS one', [], { after: none });
      assert.equal(r.answeredBy, 'reader');
    }
  });

  await t.test(
    'rows have the same shape as on PostgreSQL: plain objects, numbers, Dates, booleans',
    async () => {
      await db.write(
        `CREATE TABLE shapes (id BIGINT PRIMARY KEY, big BIGINT, flag BOOLEAN, amount DECIMAL(8,2),
        at TIMESTAMP(3) NULL, doc JSON, note TEXT)`,
      );
      const at = new Date(Date.UTC(2024, 6, 1, 12, 30, 15, 250));
      const w = await db.write('INSERT INTO shapes VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *', [
        1,
        2n ** 60n,
        false,
        '12.50',
        at,
        { tags: ['a', 'b'] },
        "it's '$1' ?",
      ]);
      const expected = {
        id: 1,
        big: '1152921504606846976',
        flag: false,
        amount: '12.50',
        at,
        doc: { tags: ['a', 'b'] },
        note: "it's '$1' ?",
      };
      assert.deepEqual(w.rows, [expected]);
      const r = await db.read('SELECT * FROM shapes', [], { after: w.position });
      assert.deepEqual(r.rows, [expected]);
      assert.equal(Object.getPrototypeOf(r.rows[0]), Object.prototype);
      await assert.rejects(
        db.read('SELECT nonsense FROM shapes'),
        /Unknown column/,
        'the SQL error is the answer',
      );
    },
  );

  await t.test(
    'a read the replica cannot answer yet (a table it has not replayed) is answered by the writer',
    async () => {
      await sql(admin, 'STOP SLAVE SQL_THREAD');
      try {
        await db.write('CREATE TABLE fresh (id INT PRIMARY KEY)');
        await db.write('INSERT INTO fresh VALUES (1)');
        const r = await db.read('SELECT id FROM fresh');
        assert.deepEqual([r.answeredBy, r.rows], ['writer', [{ id: 1 }]]);
      } finally {
        await sql(admin, 'START SLAVE SQL_THREAD');
      }
    },
  );

  await t.test(
    'a reader that is a primary answers at once; an unreachable reader falls back to the writer',
    async () => {
      const onPrimary = new TandemDb({ writer: url(p1), readers: url(p1), readYourWritesWait: 2000 });
      const unreachable = new TandemDb({
        writer: url(p1),
        readers: url(await freePort()),
        connectTimeout: 1000,
      });
      clients.push(onPrimary, unreachable);
      const w = await onPrimary.write('INSERT INTO notes (body) VALUES ($1)', ['six']);
      const started = Date.now();
      const r = await onPrimary.read('SELECT 1 AS one', [], { after: w.position });
      assert.equal(r.answeredBy, 'reader');
      assert.ok(Date.now() - started < 1000, 'a primary is not waited on');
      const fallback = await unreachable.read<{ port: number }>('SELECT @@port AS port');
      assert.deepEqual([fallback.answeredBy, fallback.rows], ['writer', [{ port: p1 }]]);
      assert.deepEqual(await unreachable.health(1000), { writer: 'up', readers: ['down'] });
      assert.deepEqual(await db.health(1000), { writer: 'up', readers: ['up'] });
    },
  );
});
