import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig, validateConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/index.js';

const TANDEM = join(import.meta.dirname, '../../../bin/tandem.js');

/** A small valid config; each case below breaks one thing in it. */
function base(): Record<string, any> {
  return {
    servers: [
      { name: 'web-01', port: 18081, app: { port: 19101 } },
      { name: 'web-02', port: 18082, app: { port: 19201 } },
    ],
    loadBalancers: [{ name: 'lb-01', frontends: [{ port: 18080, backend: 'web' }] }],
    backends: [{ name: 'web', servers: [{ name: 'web-01' }, { name: 'web-02', weight: 2 }] }],
    database: {
      nodes: [
        { name: 'web-01', port: 25432, role: 'primary' },
        { name: 'web-02', port: 25433, role: 'replica' },
      ],
    },
  };
}

function problemsOf(raw: unknown): string[] {
  try {
    validateConfig(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.problems.flatMap((p) => p.split('\n  - '));
  }
  assert.fail('config was accepted');
}

describe('config validation', () => {
  test('the built-in default is the design topology', (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const c = loadConfig({ cwd: dir.path });
    assert.equal(c.source, 'built-in default');
    assert.deepEqual(
      c.servers.map((s) => s.name),
      ['web-01', 'web-02'],
    );
    assert.equal(c.loadBalancers[0]!.name, 'lb-01');
    assert.equal(c.loadBalancers[0]!.frontends[0]!.port, 8080);
    assert.equal(c.backends[0]!.balance, 'roundrobin');
    assert.equal(c.backends[0]!.mode, 'active-active');
    assert.deepEqual(
      c.database!.nodes.map((n) => [n.name, n.role]),
      [
        ['web-01', 'primary'],
        ['web-02', 'replica'],
      ],
    );
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.servers[0]), 'config is frozen');
  });

  test('defaults fill in and durations accept strings', () => {
    const raw = base();
    raw['backends'][0].healthCheck = { interval: '2s', timeout: 250 };
    const c = validateConfig(raw);
    assert.equal(c.backends[0]!.healthCheck.interval, 2000);
    assert.equal(c.backends[0]!.healthCheck.timeout, 250);
    assert.equal(c.backends[0]!.healthCheck.rise, 2);
    assert.equal(c.backends[0]!.servers[0]!.weight, 1);
    assert.equal(c.servers[0]!.app.processes, 2);
  });

  test('unknown key, with a suggestion', () => {
    const raw = base();
    raw['backends'][0].servers[1].wieght = 3;
    assert.deepEqual(problemsOf(raw), [
      'backends[0].servers[1].wieght: unknown key (did you mean "weight"?)',
    ]);
  });

  test('wrong type', () => {
    const raw = base();
    raw['servers'][0].port = 'eighty';
    assert.match(problemsOf(raw)[0]!, /^servers\[0\]\.port: must be a port number/);
  });

  test('negative weight', () => {
    const raw = base();
    raw['backends'][0].servers[1].weight = -1;
    assert.deepEqual(problemsOf(raw), ['backends[0].servers[1].weight: must be an integer ≥ 0 (got -1)']);
  });

  test('loadBalancers[].workers: auto (the default) or a number of worker processes', () => {
    assert.equal(validateConfig(base()).loadBalancers[0]!.workers, 'auto');
    const raw = base();
    raw['loadBalancers'][0].workers = 4;
    assert.equal(validateConfig(raw).loadBalancers[0]!.workers, 4);
    for (const bad of [0, 1.5, 'many', 65]) {
      raw['loadBalancers'][0].workers = bad;
      assert.deepEqual(problemsOf(raw), [
        `loadBalancers[0].workers: must be auto or an integer between 1 and 64 (got ${JSON.stringify(bad)})`,
      ]);
    }
  });

  test('loadBalancers[].spreadConnections: lopsided by default, even or off; true and false still read', () => {
    assert.equal(validateConfig(base()).loadBalancers[0]!.spreadConnections, 'lopsided');
    const raw = base();
    for (const [given, read] of [
      ['lopsided', 'lopsided'],
      ['even', 'even'],
      ['off', 'off'],
      [true, 'even'],
      [false, 'off'],
    ] as const) {
      raw['loadBalancers'][0].spreadConnections = given;
      assert.equal(validateConfig(raw).loadBalancers[0]!.spreadConnections, read, String(given));
    }
    for (const bad of ['yes', 'Even', 1]) {
      raw['loadBalancers'][0].spreadConnections = bad;
      assert.deepEqual(problemsOf(raw), [
        `loadBalancers[0].spreadConnections: must be "lopsided", "even" or "off" (got ${JSON.stringify(bad)})`,
      ]);
    }
  });

  test('database.maxSlotWalKeepSize: 4GB by default, a size in MB, GB or TB, or unlimited', () => {
    assert.equal(validateConfig(base()).database!.maxSlotWalKeepSize, '4096MB');
    const raw = base();
    for (const [given, mib] of [
      ['512MB', '512MB'],
      ['2gb', '2048MB'],
      ['1TB', '1048576MB'],
      ['4096MB', '4096MB'],
      ['unlimited', 'unlimited'],
    ] as const) {
      raw['database'].maxSlotWalKeepSize = given;
      assert.equal(validateConfig(raw).database!.maxSlotWalKeepSize, mib, given);
    }
    for (const [bad, why] of [
      ['4 gigs', 'must be a size like "512MB", "4GB" or "1TB", or "unlimited"'],
      [4096, 'must be a size like "512MB", "4GB" or "1TB", or "unlimited"'],
      ['16MB', 'must be at least 64MB, or "unlimited"'],
    ] as const) {
      raw['database'].maxSlotWalKeepSize = bad;
      assert.deepEqual(problemsOf(raw), [`database.maxSlotWalKeepSize: ${why} (got ${JSON.stringify(bad)})`]);
    }
  });

  test('database.binlogExpireDays: 7 by default, 0 (never) to 99 whole days', () => {
    assert.equal(validateConfig(base()).database!.binlogExpireDays, 7);
    const raw = base();
    raw['database'].binlogExpireDays = 0;
    assert.equal(validateConfig(raw).database!.binlogExpireDays, 0);
    for (const [bad, why] of [
      [-1, 'must be ≥ 0'],
      [1.5, 'must be a whole number of days'],
      [100, 'must be at most 99 days (MariaDB’s limit)'],
      ['7d', 'must be a number of days'],
    ] as const) {
      raw['database'].binlogExpireDays = bad;
      const [problem] = problemsOf(raw);
      assert.ok(
        problem?.startsWith(`database.binlogExpireDays: ${why}`),
        `${JSON.stringify(bad)}: ${problem}`,
      );
    }
  });

  test('database endpoints: the writer leaves a node at its first failed check, the reader at its third', () => {
    const c = validateConfig(base());
    const check = (name: string) => c.backends.find((b) => b.name === name)!.healthCheck;
    assert.deepEqual([check('db-writer').fall, check('db-writer').path], [1, '/primary']);
    assert.equal(check('db-reader').fall, 3);
    assert.match(check('db-reader').path, /^\/replica\?maxLag=/);
    for (const name of ['db-writer', 'db-reader']) assert.equal(check(name).timeout, 500);
  });

  test('duplicate server name', () => {
    const raw = base();
    raw['servers'][1].name = 'web-01';
    assert.ok(problemsOf(raw).some((p) => p.startsWith('servers[1].name: duplicate name "web-01"')));
  });

  test('backend naming a server that does not exist', () => {
    const raw = base();
    raw['backends'][0].servers[1].name = 'web-09';
    assert.deepEqual(problemsOf(raw), [
      'backends[0].servers[1].name: no server named "web-09" in servers (known: web-01, web-02)',
    ]);
  });

  test('frontend naming a backend that does not exist, two primaries, an address used twice', () => {
    const raw = base();
    raw['loadBalancers'][0].frontends[0].backend = 'api';
    raw['database'].nodes[1].role = 'primary';
    raw['servers'][1].port = 18081;
    const problems = problemsOf(raw);
    assert.ok(
      problems.some((p) => p.startsWith('loadBalancers[0].frontends[0].backend: no backend named "api"')),
    );
    assert.ok(
      problems.some((p) => p.startsWith('database.nodes: must have exactly one node with role: primary')),
    );
    assert.ok(
      problems.some((p) =>
        p.startsWith('servers[1].port: address 127.0.0.1:18081 is already used by servers[0].port'),
      ),
    );
  });

  test('a required key missing', () => {
    const raw = base();
    delete raw['servers'][0].port;
    assert.match(problemsOf(raw)[0]!, /^servers\[0\]\.port: is required/);
  });
});

describe('tandem CLI on a bad config', () => {
  const cases: [string, (raw: Record<string, any>) => void, RegExp][] = [
    [
      'unknown key',
      (r) => (r['backends'][0].servers[0].wieght = 1),
      /backends\[0\]\.servers\[0\]\.wieght: unknown key/,
    ],
    ['wrong type', (r) => (r['servers'][1].port = true), /servers\[1\]\.port: must be a port number/],
    [
      'negative weight',
      (r) => (r['backends'][0].servers[1].weight = -5),
      /backends\[0\]\.servers\[1\]\.weight: must be an integer ≥ 0/,
    ],
    [
      'duplicate server name',
      (r) => (r['servers'][1].name = 'web-01'),
      /servers\[1\]\.name: duplicate name "web-01"/,
    ],
    [
      'unknown server in a backend',
      (r) => (r['backends'][0].servers[0].name = 'nope'),
      /backends\[0\]\.servers\[0\]\.name: no server named "nope"/,
    ],
  ];
  for (const [name, breakIt, expected] of cases) {
    for (const command of ['config', 'up']) {
      test(`tandem ${command}: ${name} → exit 2, message names the path, no stack trace`, (t) => {
        const dir = tempDir();
        t.after(dir.cleanup);
        const raw = base();
        breakIt(raw);
        const file = join(dir.path, 'tandem.yaml');
        writeFileSync(file, JSON.stringify(raw)); // JSON is YAML
        const r = spawnSync(process.execPath, [TANDEM, command, '-c', file, '-d', join(dir.path, 'data')], {
          encoding: 'utf8',
          timeout: 20_000,
        });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, expected);
        assert.match(r.stderr, /^tandem: invalid config \(/);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      });
    }
  }

  test('the output of tandem config, saved as the config file, reads back as the same config', (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const config = (...args: string[]) =>
      spawnSync(process.execPath, [TANDEM, 'config', ...args], { cwd: dir.path, encoding: 'utf8' });
    const printed = config();
    assert.equal(printed.status, 0, printed.stderr);
    // The built-in topology, db-writer and db-reader included.
    assert.match(printed.stdout, /name: db-writer/);
    const file = join(dir.path, 'saved.yaml');
    writeFileSync(file, printed.stdout);
    const again = config('-c', file);
    assert.equal(again.status, 0, again.stderr);
    const body = (out: string) => out.replace(/^# effective config, from: .*\n/, '');
    assert.equal(body(again.stdout), body(printed.stdout));
    assert.equal((again.stdout.match(/name: db-writer/g) ?? []).length, 2, 'one frontend, one backend');
  });

  test('YAML syntax error names the line', (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const file = join(dir.path, 'tandem.yaml');
    writeFileSync(file, 'servers:\n  - name: web-01\n    port: [8081\n');
    const r = spawnSync(process.execPath, [TANDEM, 'config', '-c', file], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /line \d+, column \d+: not valid YAML/);
  });

  test('tandem config prints the effective config', (t) => {
    const dir = tempDir();
    t.after(dir.cleanup);
    const r = spawnSync(process.execPath, [TANDEM, 'config', '--json'], {
      encoding: 'utf8',
      cwd: dir.path,
    });
    assert.equal(r.status, 0, r.stderr);
    const c = JSON.parse(r.stdout) as { source: string; backends: { healthCheck: { interval: number } }[] };
    assert.equal(c.source, 'built-in default');
    assert.equal(c.backends[0]!.healthCheck.interval, 1000);
  });

  test('unknown command and unknown flag → exit 2 with usage', () => {
    const a = spawnSync(process.execPath, [TANDEM, 'launch'], { encoding: 'utf8' });
    assert.equal(a.status, 2);
    assert.match(a.stderr, /unknown command "launch"/);
    const b = spawnSync(process.execPath, [TANDEM, 'status', '--colour'], { encoding: 'utf8' });
    assert.equal(b.status, 2);
    assert.match(b.stderr, /status: Unknown option '--colour'/);
  });

  test('every command explains itself on --help and -h, and starts nothing', () => {
    const dir = tempDir();
    try {
      for (const command of ['up', 'status', 'cluster', 'stop', 'config', 'lb', 'reload', 'server', 'db']) {
        for (const flag of ['--help', '-h']) {
          // A data dir that must stay untouched: `up --help` must not bring anything up there.
          const r = spawnSync(process.execPath, [TANDEM, command, flag, '-d', join(dir.path, 'data')], {
            encoding: 'utf8',
            timeout: 10_000,
          });
          assert.equal(r.status, 0, `${command} ${flag}: ${r.stderr}`);
          assert.match(r.stdout, new RegExp(`^usage: tandem ${command}\\b`), `${command} ${flag}`);
          assert.match(r.stdout, /-c, --config FILE/);
        }
      }
      assert.equal(existsSync(join(dir.path, 'data')), false, 'no data dir was created');
      const sub = spawnSync(process.execPath, [TANDEM, 'db', 'switchover', '--help'], { encoding: 'utf8' });
      assert.equal(sub.status, 0);
      assert.match(sub.stdout, /tandem db switchover \[--to NODE\]/);
    } finally {
      dir.cleanup();
    }
  });

  test('a --timeout that is not a positive number of seconds is a usage error naming it', () => {
    for (const args of [
      ['stop', '--timeout', 'abc'],
      ['stop', '--timeout', '0'],
      ['db', 'switchover', '--timeout=-5'],
    ]) {
      const r = spawnSync(process.execPath, [TANDEM, ...args], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--timeout must be a positive number of seconds, got "/);
    }
  });
});
