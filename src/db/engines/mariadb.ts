/**
 * MariaDB behind the DatabaseEngine interface (`database.engine: mysql`).
 *
 * - Every node writes a binary log with GTIDs (gtid_strict_mode, log_slave_updates), so any
 *   replica can become primary and the others follow it by GTID (MASTER_USE_GTID=slave_pos).
 * - Every start is read-only, with replication not started: the agent opens a node for writes
 *   only once the cluster state names it primary, so a returning old primary never takes writes.
 * - A replica is cloned with a consistent logical dump of the primary (mariadb-dump
 *   --single-transaction --gtid), loaded without writing to the replica's own binary log.
 * - Sync replication is semi-synchronous replication waiting after sync: a commit returns once a
 *   replica has the transaction (in its relay log), and it waits for one indefinitely.
 * - A former primary rejoins by GTID when everything it has is in the new primary's history;
 *   when it has transactions the new primary never got, it is re-cloned (its old directory kept).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import mysql from 'mysql2/promise';
import { DatabaseError, PortInUseError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BootstrapPlan, DatabaseEngine, Progress, ReplicationSource, Role } from './engine.js';
import type { MariaDbBinaries } from './mariadb-binaries.js';
import {
  MARIADB_ADMIN,
  MARIADB_REPLICATION_USER,
  MariaDbDriver,
  gtidContained,
  openForWrites,
  slaveStatus,
} from './mariadb-driver.js';
import { assertPortFree } from './postgres.js';
import type { RunAs } from './run-as.js';

export interface MariaDbOptions {
  name: string;
  host: string;
  port: number;
  dataDir: string;
  bins: MariaDbBinaries;
  runAs?: RunAs | undefined;
  log: Logger;
  /** Password of Tandem's admin account (`tandem`). */
  adminPassword: string;
  replicationPassword: string;
  /** Unique per node (its position in the config, from 1). */
  serverId: number;
  sync: boolean;
  /** Binary log files older than this many days are purged (MariaDB `binlog_expire_logs_seconds`); 0: never. */
  binlogExpireDays: number;
}

/** The file that says, while the engine is stopped, which primary the node must follow. */
const FOLLOW_FILE = 'tandem-follow.json';

export class MariaDbEngine implements DatabaseEngine {
  private child: ChildProcess | undefined;
  private stopping = false;
  private exitListener: ((description: string) => void) | undefined;
  private readonly recentLines: string[] = [];
  /** The replica's primary no longer has the binary log it asked for (error 1236), since the last start. */
  private binlogGone: string | null = null;
  readonly driver: MariaDbDriver;

  constructor(private readonly opts: MariaDbOptions) {
    this.driver = new MariaDbDriver(opts.adminPassword, opts.sync);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private get self() {
    return { name: this.opts.name, host: this.opts.host, port: this.opts.port };
  }

  isInitialized(): boolean {
    return existsSync(join(this.opts.dataDir, 'mysql', 'global_priv.frm'));
  }

  isStandbyOnDisk(): boolean {
    return (
      existsSync(join(this.opts.dataDir, 'master.info')) || existsSync(join(this.opts.dataDir, FOLLOW_FILE))
    );
  }

  onUnexpectedExit(listener: (description: string) => void): void {
    this.exitListener = listener;
  }

  /** mariadb-install-db, then the accounts: Tandem's admin, root with a password, no anonymous user. */
  async initialize(progress: Progress): Promise<void> {
    progress(`initialising the database (mariadb-install-db, ${this.opts.bins.version})`);
    await this.installSystemTables();
  }

  private async installSystemTables(): Promise<void> {
    const { dataDir, bins } = this.opts;
    this.makeDataDir();
    try {
      await this.runTool(bins.installDb, [
        '--no-defaults',
        `--datadir=${dataDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--skip-name-resolve',
        `--tmpdir=${this.tmpDir()}`,
        ...(this.opts.runAs ? [`--user=${this.opts.runAs.user}`] : []),
      ]);
      const pw = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
      await this.runTool(
        bins.server,
        [
          '--no-defaults',
          '--bootstrap',
          `--datadir=${dataDir}`,
          `--tmpdir=${this.tmpDir()}`,
          '--log-warnings=0',
        ],
        {},
        [
          'FLUSH PRIVILEGES;',
          "DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');",
          'FLUSH PRIVILEGES;',
          `ALTER USER root@localhost IDENTIFIED BY ${pw(this.opts.adminPassword)};`,
          `CREATE USER ${MARIADB_ADMIN}@'%' IDENTIFIED BY ${pw(this.opts.adminPassword)};`,
          `GRANT ALL PRIVILEGES ON *.* TO ${MARIADB_ADMIN}@'%' WITH GRANT OPTION;`,
          '',
        ].join('\n'),
      );
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** A fresh instance loaded with a consistent dump of the primary, set to replicate from it. */
  async cloneFrom(source: ReplicationSource, progress: Progress): Promise<void> {
    progress(`cloning the replica from ${source.name} (mariadb-dump, consistent snapshot)`);
    try {
      await this.installSystemTables();
      await this.start(() => undefined, { networkOnlyLoopback: true });
      try {
        await this.loadDumpFrom(source);
        await this.driver.with(this.self, async (c) => {
          await c.query('SET sql_log_bin = 0');
          // The binary log starts where the primary's was: a promoted clone continues its numbering.
          const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@gtid_slave_pos AS p');
          const pos = String(rows[0]?.['p'] ?? '');
          await c.query('RESET MASTER');
          if (pos) await c.query('SET GLOBAL gtid_binlog_state = ?', [pos]);
          await this.changeMaster(c, source);
        });
      } finally {
        await this.stop();
      }
    } catch (err) {
      rmSync(this.opts.dataDir, { recursive: true, force: true });
      if (err instanceof DatabaseError) throw err;
      throw new DatabaseError(
        `${this.opts.name}: cloning from ${source.name} failed: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** mariadb-dump of the primary piped into this node's client, outside this node's binary log. */
  private loadDumpFrom(source: ReplicationSource): Promise<void> {
    const { bins } = this.opts;
    const env = { ...process.env, MYSQL_PWD: this.opts.adminPassword };
    const common = ['--no-defaults', `--user=${MARIADB_ADMIN}`, '--protocol=TCP'];
    const dump = spawn(
      bins.dump,
      [
        ...common,
        `--host=${source.host}`,
        `--port=${source.port}`,
        '--all-databases',
        '--single-transaction',
        '--gtid',
        '--master-data=1',
        '--routines',
        '--events',
        '--triggers',
        '--ignore-table=mysql.gtid_slave_pos',
      ],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const load = spawn(
      bins.client,
      [...common, `--host=${this.opts.host}`, `--port=${this.opts.port}`, '--init-command=SET sql_log_bin=0'],
      { env, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let errors = '';
    dump.stderr.on('data', (d: Buffer) => (errors += `mariadb-dump: ${d.toString()}`));
    load.stderr.on('data', (d: Buffer) => (errors += `mariadb: ${d.toString()}`));
    dump.stdout.pipe(load.stdin, { end: false });
    dump.stdout.on('end', () => load.stdin.end('\nFLUSH PRIVILEGES;\n'));
    load.stdin.on('error', () => undefined); // the client failed: its exit code says so
    const exit = (child: ChildProcess) =>
      new Promise<number | null>((resolve) => {
        child.once('error', () => resolve(-1));
        child.once('exit', (code) => resolve(code));
      });
    return Promise.all([exit(dump), exit(load)]).then(([a, b]) => {
      if (a !== 0 || b !== 0)
        throw new DatabaseError(
          `${this.opts.name}: copying ${source.name}'s data failed (dump exit ${a}, load exit ${b}):\n    ${errors.trim().split('\n').slice(-6).join('\n    ')}`,
        );
    });
  }

  private async changeMaster(c: mysql.Connection, source: ReplicationSource): Promise<void> {
    await c.query(
      'CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = ?, MASTER_PASSWORD = ?, ' +
        'MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 1, MASTER_HEARTBEAT_PERIOD = 1',
      [source.host, source.port, MARIADB_REPLICATION_USER, this.opts.replicationPassword],
    );
  }

  configureStandby(source: ReplicationSource): void {
    const file = join(this.opts.dataDir, FOLLOW_FILE);
    writeFileSync(file, JSON.stringify({ name: source.name, host: source.host, port: source.port }));
    this.chown(file);
  }

  /**
   * A former primary: when all it has is in the new primary's history, it follows by GTID from
   * its own position; otherwise (transactions the new primary never got) it is cloned afresh and
   * its old data directory kept aside.
   */
  async rejoin(source: ReplicationSource, progress: Progress): Promise<void> {
    progress(`checking whether ${this.opts.name}'s transactions are all in ${source.name}'s history`);
    let contained = false;
    let mine = '';
    await this.start(() => undefined, { networkOnlyLoopback: true });
    try {
      mine = await this.driver.with(this.self, async (c) => {
        const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@gtid_binlog_pos AS p');
        return String(rows[0]?.['p'] ?? '');
      });
      const theirs = await this.driver.with(source, async (c) => {
        const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@gtid_binlog_state AS s');
        return String(rows[0]?.['s'] ?? '');
      });
      contained = gtidContained(mine, theirs);
      if (contained)
        await this.driver.with(this.self, async (c) => {
          await c.query('SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos');
          await this.changeMaster(c, source);
        });
    } finally {
      await this.stop();
    }
    if (contained) {
      progress(`rejoining ${source.name} by GTID from ${mine || 'the start'}`);
      return;
    }
    progress(`${this.opts.name} has transactions ${source.name} never got (${mine}); cloning afresh`);
    await this.cloneAfresh(source, progress);
  }

  async cloneAfresh(source: ReplicationSource, progress: Progress): Promise<void> {
    const aside = `${this.opts.dataDir}.old-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(this.opts.dataDir, aside);
    progress(`kept the former data directory as ${aside}`);
    await this.cloneFrom(source, progress);
  }

  async start(progress: Progress, how: { networkOnlyLoopback?: boolean } = {}): Promise<void> {
    const { host, port, name, dataDir } = this.opts;
    await assertPortFree(host, port, `database node ${name}`);
    progress(`starting MariaDB on ${host}:${port}`);
    const args = [
      '--no-defaults',
      `--datadir=${dataDir}`,
      `--port=${port}`,
      `--bind-address=${how.networkOnlyLoopback ? '127.0.0.1' : host}`,
      `--socket=${this.socketPath()}`,
      `--pid-file=${join(dataDir, 'mariadbd.pid')}`,
      `--tmpdir=${this.tmpDir()}`,
      `--server-id=${this.opts.serverId}`,
      `--report-host=${name}`,
      `--log-bin=${name}-bin`,
      `--relay-log=${name}-relay-bin`,
      '--log-slave-updates=ON',
      '--gtid-strict-mode=ON',
      '--binlog-format=ROW',
      '--sync-binlog=1',
      '--innodb-flush-log-at-trx-commit=1',
      '--read-only=ON',
      '--skip-slave-start',
      '--skip-name-resolve',
      '--character-set-server=utf8mb4',
      '--innodb-buffer-pool-size=64M',
      '--rpl-semi-sync-slave-enabled=ON',
      '--rpl-semi-sync-master-wait-point=AFTER_SYNC',
      `--rpl-semi-sync-master-timeout=${this.opts.sync ? 4294967295 : 10000}`,
      '--slave-net-timeout=5',
      '--log-warnings=1',
      // Purged when a file is closed (at start, FLUSH LOGS, or at max_binlog_size).
      `--binlog-expire-logs-seconds=${this.opts.binlogExpireDays * 86400}`,
      ...(this.opts.runAs ? [`--user=${this.opts.runAs.user}`] : []),
    ];
    const child = spawn(this.opts.bins.server, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
    });
    this.child = child;
    this.stopping = false;
    this.binlogGone = null;
    this.pipeLines(child);
    const exited = new Promise<string>((resolve) => {
      child.once('exit', (code, signal) =>
        resolve(signal ? `killed by ${signal}` : `exited with code ${code}`),
      );
      child.once('error', (err) => resolve(`could not start: ${err.message}`));
    });
    exited.then((description) => {
      if (this.child === child) this.child = undefined;
      if (!this.stopping) this.exitListener?.(description);
    });
    progress('waiting for MariaDB to accept connections');
    const ready = await Promise.race([this.waitAcceptingConnections(), exited]);
    if (ready !== true) {
      const tail = this.recentLines.slice(-8).join('\n    ');
      if (/Address already in use|Can't start server: Bind/i.test(tail))
        throw new PortInUseError(`database node ${name}`, `${host}:${port}`);
      throw new DatabaseError(
        `${name}: MariaDB ${ready} before accepting connections. Its last lines:\n    ${tail}`,
      );
    }
    await this.driver.with(this.self, async (c) => {
      const follow = join(dataDir, FOLLOW_FILE);
      if (existsSync(follow)) {
        const source = JSON.parse(readFileSync(follow, 'utf8')) as ReplicationSource;
        if (await slaveStatus(c)) await c.query('STOP SLAVE');
        await this.changeMaster(c, source);
        rmSync(follow, { force: true });
      }
      if (!how.networkOnlyLoopback && (await slaveStatus(c))) await c.query('START SLAVE');
    });
  }

  /** A short socket path (the limit is 107 bytes): in the data dir when it fits, else under /tmp. */
  private socketPath(): string {
    const inDir = join(this.opts.dataDir, 'mariadbd.sock');
    if (inDir.length < 100) return inDir;
    return `/tmp/tandem-mariadb-${createHash('sha256').update(inDir).digest('hex').slice(0, 12)}.sock`;
  }

  private async waitAcceptingConnections(): Promise<true> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      try {
        await this.driver.with(this.self, (c) => c.query('SELECT 1'), 1000);
        return true;
      } catch (err) {
        if (Date.now() > deadline)
          throw new DatabaseError(
            `${this.opts.name}: MariaDB did not accept connections within 120 s: ${(err as Error).message}`,
          );
      }
      if (!this.child) return new Promise<true>(() => undefined); // exited: the race reports it
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async role(): Promise<Role> {
    return this.driver.with(this.self, async (c) => ((await slaveStatus(c)) ? 'replica' : 'primary'));
  }

  /** The replication account, the codebase's database and account. Idempotent. */
  async bootstrap(plan: BootstrapPlan): Promise<void> {
    await this.driver.with(this.self, async (c) => {
      const ensureUser = async (user: string, password: string) => {
        await c.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [user, password]);
        await c.query(`ALTER USER ?@'%' IDENTIFIED BY ?`, [user, password]);
      };
      // Written to the binary log (before semi-sync waits are on): replicas get the same accounts.
      // The admin account writes while the node is still read-only (ALL includes READ_ONLY ADMIN).
      await ensureUser(MARIADB_REPLICATION_USER, plan.secrets.replication);
      await c.query(`GRANT REPLICATION SLAVE, SLAVE MONITOR ON *.* TO ?@'%'`, [MARIADB_REPLICATION_USER]);
      await ensureUser(plan.user, plan.secrets.app);
      await c.query(`CREATE DATABASE IF NOT EXISTS \`${plan.database}\``);
      await c.query(`GRANT ALL PRIVILEGES ON \`${plan.database}\`.* TO ?@'%'`, [plan.user]);
    });
  }

  async openForWrites(): Promise<void> {
    await this.driver.with(this.self, (c) => openForWrites(c, this.opts.sync));
  }

  async follow(source: ReplicationSource): Promise<void> {
    await this.driver.with(this.self, async (c) => {
      await c.query('STOP SLAVE');
      await this.changeMaster(c, source);
      await c.query('START SLAVE');
    });
  }

  cannotCatchUp(): string | null {
    return this.binlogGone === null
      ? null
      : `the primary no longer has the binary log it needs (MariaDB: "${this.binlogGone}")`;
  }

  async isStreaming(): Promise<boolean> {
    return this.driver.with(this.self, async (c) => {
      const s = await slaveStatus(c);
      return s?.['Slave_IO_Running'] === 'Yes' && s['Slave_SQL_Running'] === 'Yes';
    });
  }

  async promote(): Promise<void> {
    await this.driver.promote(this.self, [], (m) => this.opts.log.warn(m));
  }

  /** Read-only, every client session killed, the binary log flushed; resolves with its GTID position. */
  async fenceForSwitchover(): Promise<string> {
    return this.driver.with(this.self, async (c) => {
      await c.query('SET GLOBAL read_only = ON');
      const [procs] = await c.query<mysql.RowDataPacket[]>(
        `SELECT ID AS id FROM information_schema.PROCESSLIST
          WHERE ID <> CONNECTION_ID() AND USER NOT IN ('system user', ?, ?) AND COMMAND NOT LIKE 'Binlog Dump%'`,
        [MARIADB_REPLICATION_USER, 'event_scheduler'],
      );
      for (const p of procs) await c.query('KILL CONNECTION ?', [p['id']]).catch(() => undefined);
      const [rows] = await c.query<mysql.RowDataPacket[]>('SELECT @@gtid_binlog_pos AS p');
      return String(rows[0]?.['p'] ?? '');
    });
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM'); // clean shutdown: commits flushed, replicas sent what they asked for
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(timer);
  }

  private makeDataDir(): void {
    const dir = this.opts.dataDir;
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o700 });
    this.chown(dir);
  }

  /**
   * The node's own directory for temporary files, beside its data directory. In the shared /tmp,
   * two instances initialising at once (two replicas cloned together) were seen to fail
   * "Unknown table 'mysql.tmp_user_sys'" about one time in twelve under load; never with their
   * own directories.
   */
  private tmpDir(): string {
    const dir = `${this.opts.dataDir}.tmp`;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.chown(dir);
      } catch (err) {
        throw new DatabaseError(
          `${this.opts.name}: cannot create its temporary directory ${dir}: ${(err as Error).message}. ` +
            'Check that the data directory is writable and its disk has room.',
          { cause: err },
        );
      }
    }
    return dir;
  }

  private chown(path: string): void {
    const who = this.opts.runAs;
    if (!who) return;
    chownSync(path, who.uid, who.gid); // the server creates its own files as the engine's user
  }

  /** Runs an install/bootstrap tool as the engine's user; resolves with its output. */
  private runTool(
    bin: string,
    args: string[],
    env: Record<string, string> = {},
    input?: string,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(bin, args, {
        stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
        cwd: dirname(this.opts.dataDir),
        ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
      });
      if (input !== undefined) child.stdin?.end(input);
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
      child.once('error', (err) =>
        reject(new DatabaseError(`${this.opts.name}: cannot run ${bin}: ${err.message}`)),
      );
      child.once('exit', (code, signal) => {
        if (code === 0) resolve(output);
        else
          reject(
            new DatabaseError(
              `${this.opts.name}: ${bin.split('/').pop()} failed (${signal ?? `exit code ${code}`}):\n    ${toolErrorLines(output).join('\n    ')}`,
            ),
          );
      });
    });
  }

  private pipeLines(child: ChildProcess): void {
    const onData = (buf: Buffer) => {
      for (const line of buf.toString().split('\n')) {
        if (!line.trim()) continue;
        this.recentLines.push(line);
        if (this.recentLines.length > 50) this.recentLines.shift();
        // "Got fatal error 1236 from master when reading data from binary log: 'Could not find GTID
        // state requested by slave in any binlog files. Probably ... purged.'"
        const gone = /Got fatal error 1236 from master[^:]*: '([^']*)/.exec(line);
        if (gone) this.binlogGone = gone[1]!.replace(/\.$/, '');
        this.opts.log.info(`mariadb: ${line}`);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }
}

/**
 * What a failed tool said that matters: its error lines (MariaDB's install script ends with a
 * page of advice after them), or its last lines when none says ERROR.
 */
export function toolErrorLines(output: string, max = 8): string[] {
  const lines = output
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => /\bERROR\b|\[ERROR\]|failed!/.test(l));
  return (errors.length > 0 ? errors : lines).slice(-max);
}
