/**
 * PostgreSQL behind the DatabaseEngine interface: initdb, cloning a streaming replica
 * (pg_basebackup, or the low-level backup API with a file copy), start, stop, role.
 *
 * Node-specific settings (port, address, cluster_name, replication settings) are passed on the
 * postgres command line on every start, so a data directory copied from another node never
 * carries that node's identity.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  copyFileSync,
  type Dirent,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type pg from 'pg';
import { DatabaseError, PortInUseError, WalUnavailableError } from '../../errors.js';
import { isProcessAlive } from '../../process-alive.js';
import type { Logger } from '../../log.js';
import type { PostgresBinaries } from './binaries.js';
import type { BootstrapPlan, DatabaseEngine, Progress, ReplicationSource, Role } from './engine.js';
import { PostgresDriver, REPLICATION_USER, SUPERUSER, ensureSlot, slotName } from './postgres-driver.js';
import type { RunAs } from './run-as.js';

export interface PostgresOptions {
  /** Node name; also the PostgreSQL cluster_name and the replica's application_name. */
  name: string;
  host: string;
  port: number;
  /** The PostgreSQL data directory of this node. */
  dataDir: string;
  bins: PostgresBinaries;
  runAs?: RunAs | undefined;
  log: Logger;
  /** Superuser (`postgres`) password. */
  superuserPassword: string;
  /** Password of the `replicator` role, used by a replica to stream. */
  replicationPassword: string;
  /** Addresses (other than loopback) that may connect: the other nodes and the servers. */
  clientHosts: string[];
  /** Extra server settings (`-c name=value`), e.g. synchronous_standby_names. */
  settings?: Record<string, string> | undefined;
  /** How to clone a replica: pg_basebackup when available, or the file copy. */
  cloneMethod?: 'auto' | 'pg_basebackup' | 'copy' | undefined;
}

export { REPLICATION_USER, SUPERUSER, slotName } from './postgres-driver.js';

/** Files and directories a clone must not copy from a running primary (per the PostgreSQL docs). */
const CLONE_SKIP_CONTENTS = new Set([
  'pg_wal',
  'pg_replslot',
  'pg_stat_tmp',
  'pg_dynshmem',
  'pg_notify',
  'pg_serial',
  'pg_snapshots',
  'pg_subtrans',
]);
const CLONE_SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'standby.signal',
  'recovery.signal',
  'backup_label',
  'tablespace_map',
  'pg_internal.init',
]);

export class PostgresEngine implements DatabaseEngine {
  private child: ChildProcess | undefined;
  private stopping = false;
  private exitListener: ((description: string) => void) | undefined;
  private readonly recentLines: string[] = [];
  /** The WAL file this replica asked its primary for and was told is gone (since the last start). */
  private walGone: string | null = null;
  /** The primary invalidated this replica's slot (it kept more than max_slot_wal_keep_size for it). */
  private slotLost = false;
  readonly driver: PostgresDriver;

  constructor(private readonly opts: PostgresOptions) {
    this.driver = new PostgresDriver(opts.superuserPassword);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  isInitialized(): boolean {
    return existsSync(join(this.opts.dataDir, 'PG_VERSION'));
  }

  onUnexpectedExit(listener: (description: string) => void): void {
    this.exitListener = listener;
  }

  async initialize(progress: Progress): Promise<void> {
    const { dataDir, bins } = this.opts;
    progress(`initialising the database cluster (initdb, PostgreSQL ${bins.major})`);
    this.makeDataDir();
    const pwfile = join(dirname(dataDir), `.${this.opts.name}.pwfile`);
    writeFileSync(pwfile, `${this.opts.superuserPassword}\n`, { mode: 0o600 });
    this.chown(pwfile);
    try {
      await this.runTool(bins.initdb, [
        '-D',
        dataDir,
        '-U',
        SUPERUSER,
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
        // Checksums catch corruption, and let pg_rewind turn a former primary into a replica.
        '--data-checksums',
        '--no-instructions',
      ]);
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    } finally {
      rmSync(pwfile, { force: true });
    }
    this.writeHba();
    // In the file too (not only on the command line): pg_rewind's own crash recovery reads it.
    appendFileSync(join(dataDir, 'postgresql.conf'), '\n# Tandem\nwal_log_hints = on\n');
  }

  async cloneFrom(source: ReplicationSource, progress: Progress): Promise<void> {
    const method = this.pickCloneMethod(source);
    this.makeDataDir();
    try {
      if (method === 'pg_basebackup') {
        progress(`cloning the replica from ${source.name} (pg_basebackup)`);
        await this.runTool(
          this.opts.bins.pgBasebackup!,
          [
            '-D',
            this.opts.dataDir,
            '-h',
            source.host,
            '-p',
            String(source.port),
            '-U',
            REPLICATION_USER,
            '-X',
            'stream',
            '-S',
            slotName(this.opts.name),
            '-c',
            'fast',
            '-w',
          ],
          { PGPASSWORD: this.opts.replicationPassword },
        );
      } else {
        progress(`cloning the replica from ${source.name} (backup API + file copy)`);
        await this.copyClone(source);
      }
      this.configureStandby(source);
      this.chown(this.opts.dataDir, true);
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

  private pickCloneMethod(source: ReplicationSource): 'pg_basebackup' | 'copy' {
    const wanted = this.opts.cloneMethod ?? 'auto';
    if (wanted === 'pg_basebackup' || (wanted === 'auto' && this.opts.bins.pgBasebackup)) {
      if (!this.opts.bins.pgBasebackup)
        throw new DatabaseError(
          `${this.opts.name}: database.cloneMethod is pg_basebackup, but no pg_basebackup of PostgreSQL ${this.opts.bins.major} was found on this machine`,
        );
      return 'pg_basebackup';
    }
    if (!source.localDataDir || !existsSync(join(source.localDataDir, 'PG_VERSION')))
      throw new DatabaseError(
        `${this.opts.name}: cannot clone from ${source.name}: no pg_basebackup of PostgreSQL ${this.opts.bins.major} ` +
          'on this machine, and the primary is not on this machine for a file copy. Install the PostgreSQL client ' +
          `tools of version ${this.opts.bins.major} (Debian: postgresql-${this.opts.bins.major}) or set database.binDir.`,
      );
    return 'copy';
  }

  /** Non-exclusive low-level base backup: pg_backup_start, copy the files, pg_backup_stop. */
  private async copyClone(source: ReplicationSource): Promise<void> {
    const client = this.client(source);
    await client.connect();
    try {
      await client.query('SELECT pg_backup_start($1, true)', [`tandem clone for ${this.opts.name}`]);
      let stopped = false;
      try {
        copyTree(source.localDataDir!, this.opts.dataDir, true);
        const res = await client.query<{ labelfile: string; spcmapfile: string | null }>(
          'SELECT labelfile, spcmapfile FROM pg_backup_stop(false)',
        );
        stopped = true;
        const row = res.rows[0]!;
        writeFileSync(join(this.opts.dataDir, 'backup_label'), row.labelfile);
        if (row.spcmapfile) writeFileSync(join(this.opts.dataDir, 'tablespace_map'), row.spcmapfile);
      } finally {
        if (!stopped) await client.query('SELECT pg_backup_stop(false)').catch(() => undefined);
      }
    } finally {
      await client.end();
    }
  }

  /** standby.signal plus the connection to the primary and the slot, in postgresql.auto.conf. */
  /** True when the data directory is set to start as a standby (standby.signal present). */
  isStandbyOnDisk(): boolean {
    return existsSync(join(this.opts.dataDir, 'standby.signal'));
  }

  /**
   * Turns the stopped data directory of a former primary into a replica of `source`: pg_rewind
   * when one of the same version exists (fast: copies only what diverged), else a fresh clone
   * with the old directory kept aside. Never deletes data.
   */
  async rejoin(source: ReplicationSource, progress: Progress): Promise<void> {
    const rewind = this.opts.bins.pgRewind;
    if (rewind) {
      progress(`rewinding to follow ${source.name} (pg_rewind)`);
      try {
        // A just-promoted primary writes its new timeline to its control file at its next
        // checkpoint; pg_rewind reads it there (without it: "no rewind required", wrongly).
        const client = this.client(source);
        await client.connect();
        try {
          await client.query('CHECKPOINT');
        } finally {
          await client.end();
        }
        const output = await this.runTool(
          rewind,
          [
            '-D',
            this.opts.dataDir,
            `--source-server=host=${source.host} port=${source.port} user=${SUPERUSER} dbname=postgres`,
          ],
          { PGPASSWORD: this.opts.superuserPassword },
        );
        for (const line of output.split('\n')) if (line.startsWith('pg_rewind:')) this.opts.log.info(line);
        this.configureStandby(source);
        this.chown(this.opts.dataDir, true);
        return;
      } catch (err) {
        this.opts.log.warn((err as Error).message);
        const lines = (err as Error).message.trim().split('\n');
        progress(`pg_rewind failed (${lines[lines.length - 1]?.trim()}); cloning afresh instead`);
      }
    }
    await this.cloneAfresh(source, progress);
  }

  async cloneAfresh(source: ReplicationSource, progress: Progress): Promise<void> {
    const aside = `${this.opts.dataDir}.old-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    renameSync(this.opts.dataDir, aside);
    progress(`kept the former data directory as ${aside}`);
    await this.cloneFrom(source, progress);
  }

  /** Points a replica at another primary (takes effect on reload; PostgreSQL ≥ 13). */
  async follow(source: ReplicationSource): Promise<void> {
    const client = this.client();
    await client.connect();
    try {
      await client.query(
        `ALTER SYSTEM SET primary_conninfo = ${client.escapeLiteral(this.conninfo(source))}`,
      );
      await client.query(
        `ALTER SYSTEM SET primary_slot_name = ${client.escapeLiteral(slotName(this.opts.name))}`,
      );
      await client.query('SELECT pg_reload_conf()');
    } finally {
      await client.end();
    }
  }

  /** True when this replica's WAL receiver streams from its primary. */
  async isStreaming(): Promise<boolean> {
    const client = this.client();
    await client.connect();
    try {
      const res = await client.query<{ s: string }>('SELECT status AS s FROM pg_stat_wal_receiver');
      return res.rows[0]?.s === 'streaming';
    } finally {
      await client.end();
    }
  }

  cannotCatchUp(): string | null {
    if (this.slotLost)
      return 'the primary invalidated its replication slot, which held more WAL than database.maxSlotWalKeepSize allows';
    if (this.walGone) return `the primary no longer has WAL file ${this.walGone}, which it needs`;
    return null;
  }

  /** Promotes a running replica to primary and waits until it accepts writes. */
  async promote(): Promise<void> {
    const client = this.client();
    await client.connect();
    try {
      const res = await client.query<{ ok: boolean }>('SELECT pg_promote(true, 60) AS ok');
      if (!res.rows[0]?.ok)
        throw new DatabaseError(`${this.opts.name}: promotion did not finish within 60 s`);
    } finally {
      await client.end();
    }
  }

  private conninfo(source: ReplicationSource): string {
    return [
      `host=${source.host}`,
      `port=${source.port}`,
      `user=${REPLICATION_USER}`,
      `password=${this.opts.replicationPassword}`,
      `application_name=${this.opts.name}`,
    ].join(' ');
  }

  /** standby.signal plus the connection to the primary and the slot, in postgresql.auto.conf. */
  configureStandby(source: ReplicationSource): void {
    const dir = this.opts.dataDir;
    writeFileSync(join(dir, 'standby.signal'), '');
    this.chown(join(dir, 'standby.signal'));
    const conninfo = this.conninfo(source);
    const autoConf = join(dir, 'postgresql.auto.conf');
    const kept = existsSync(autoConf)
      ? readFileSync(autoConf, 'utf8')
          .split('\n')
          .filter((l) => !/^\s*(primary_conninfo|primary_slot_name)\s*=/.test(l))
      : [];
    const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;
    kept.push(
      `primary_conninfo = ${quote(conninfo)}`,
      `primary_slot_name = ${quote(slotName(this.opts.name))}`,
      '',
    );
    writeFileSync(autoConf, kept.join('\n'), { mode: 0o600 });
    this.chown(autoConf);
  }

  async start(progress: Progress): Promise<void> {
    const { host, port, name } = this.opts;
    await this.stopOrphan();
    await assertPortFree(host, port, `database node ${name}`);
    progress(`starting PostgreSQL on ${host}:${port}`);
    const args = ['-D', this.opts.dataDir];
    for (const [k, v] of Object.entries(this.serverSettings())) args.push('-c', `${k}=${v}`);
    const child = spawn(this.opts.bins.postgres, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
    });
    this.child = child;
    this.stopping = false;
    this.walGone = null;
    this.slotLost = false;
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
    progress('waiting for PostgreSQL to accept connections');
    const ready = await Promise.race([this.waitAcceptingConnections(), exited.then((d) => d)]);
    if (ready === 'wal gone') {
      // A replica that cannot reach a consistent state: it would wait for that WAL for ever.
      await this.stop();
      throw new WalUnavailableError(name, this.walGone!);
    }
    if (ready !== true) {
      const tail = this.recentLines.slice(-8).join('\n    ');
      if (/could not bind|Address already in use/i.test(tail))
        throw new PortInUseError(`database node ${name}`, `${host}:${port}`);
      throw new DatabaseError(
        `${name}: PostgreSQL ${ready} before accepting connections. Its last lines:\n    ${tail}`,
      );
    }
  }

  private serverSettings(): Record<string, string> {
    return {
      listen_addresses: this.opts.host,
      port: String(this.opts.port),
      cluster_name: this.opts.name,
      unix_socket_directories: '',
      wal_level: 'replica',
      max_wal_senders: '10',
      max_replication_slots: '10',
      hot_standby: 'on',
      hot_standby_feedback: 'on',
      wal_log_hints: 'on',
      // A replica retries its primary every 0.5 s (default 5 s): it follows a new primary quickly.
      wal_retrieve_retry_interval: '500ms',
      log_line_prefix: '%m [%p] ',
      ...this.opts.settings,
    };
  }

  private async waitAcceptingConnections(): Promise<true | 'wal gone'> {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const client = this.client();
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } catch (err) {
        if (Date.now() > deadline)
          throw new DatabaseError(
            `${this.opts.name}: PostgreSQL did not accept connections within 120 s: ${(err as Error).message}`,
          );
      } finally {
        await client.end().catch(() => undefined);
      }
      if (!this.child) return new Promise<true>(() => undefined); // exited: the race reports it
      if (this.walGone) return 'wal gone';
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** A superuser client to this node, or to `at` (another node of the cluster); not connected. */
  client(at: { host: string; port: number } = this.opts): pg.Client {
    return this.driver.client(at);
  }

  /**
   * The replication role, the codebase's role and database, one physical slot per replica.
   * Idempotent: run on every start of a primary, it also re-applies the passwords.
   */
  async bootstrap(plan: BootstrapPlan): Promise<void> {
    const client = this.client();
    await client.connect();
    try {
      await ensureRole(client, REPLICATION_USER, 'REPLICATION LOGIN', plan.secrets.replication);
      await ensureRole(client, plan.user, 'LOGIN', plan.secrets.app);
      const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [plan.database]);
      if (exists.rowCount === 0)
        await client.query(
          `CREATE DATABASE ${client.escapeIdentifier(plan.database)} OWNER ${client.escapeIdentifier(plan.user)}`,
        );
      for (const replica of plan.replicas) await ensureSlot(client, slotName(replica));
    } finally {
      await client.end();
    }
  }

  /** A PostgreSQL primary takes writes as soon as it runs. */
  async openForWrites(): Promise<void> {}

  /** Read-only by default, client sessions ended, a checkpoint; resolves with the WAL position. */
  async fenceForSwitchover(): Promise<string> {
    const client = this.client();
    await client.connect();
    try {
      await client.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await client.query('SELECT pg_reload_conf()');
      await client.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = $1 AND pid <> pg_backend_pid()',
        ['client backend'],
      );
      await client.query('CHECKPOINT');
      const res = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      await client.query('ALTER SYSTEM RESET default_transaction_read_only');
      return res.rows[0]!.lsn;
    } finally {
      await client.end();
    }
  }

  async role(): Promise<Role> {
    const client = this.client();
    await client.connect();
    try {
      const res = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
      return res.rows[0]!.r ? 'replica' : 'primary';
    } finally {
      await client.end();
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this.stopping = true;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT'); // fast shutdown: roll back open transactions, checkpoint, exit
    const timer = setTimeout(() => child.kill('SIGQUIT'), 60_000);
    await exited;
    clearTimeout(timer);
  }

  /** A postmaster left running by a killed `tandem db` still owns the data dir: shut it down. */
  private async stopOrphan(): Promise<void> {
    const pidFile = join(this.opts.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0 || !isProcessAlive(pid)) return;
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return; // not on /proc (not Linux) or gone: leave it to postgres's own check
    }
    if (!cmdline.includes('postgres')) return;
    this.opts.log.warn(
      `a PostgreSQL (pid ${pid}) left from an earlier run holds ${this.opts.dataDir}: shutting it down`,
    );
    process.kill(pid, 'SIGINT');
    const deadline = Date.now() + 60_000;
    while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (isProcessAlive(pid)) process.kill(pid, 'SIGQUIT');
  }

  private makeDataDir(): void {
    const dir = this.opts.dataDir;
    mkdirSync(dirname(dir), { recursive: true, mode: 0o755 });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { mode: 0o700 });
    this.chown(dir);
  }

  private writeHba(): void {
    const lines = [
      '# Written by Tandem. Connections over TCP only, password (SCRAM) for every role.',
      '# TYPE  DATABASE     USER        ADDRESS        METHOD',
      `host    all          all         127.0.0.1/32   scram-sha-256`,
      `host    all          all         ::1/128        scram-sha-256`,
      `host    replication  ${REPLICATION_USER}  127.0.0.1/32   scram-sha-256`,
      `host    replication  ${REPLICATION_USER}  ::1/128        scram-sha-256`,
    ];
    for (const h of new Set(this.opts.clientHosts)) {
      if (h.startsWith('127.') || h === '::1' || h === 'localhost') continue;
      const cidr = h.includes(':') ? `${h}/128` : /^\d+\.\d+\.\d+\.\d+$/.test(h) ? `${h}/32` : h;
      lines.push(`host    all          all         ${cidr}   scram-sha-256`);
      lines.push(`host    replication  ${REPLICATION_USER}  ${cidr}   scram-sha-256`);
    }
    const file = join(this.opts.dataDir, 'pg_hba.conf');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    this.chown(file);
  }

  private chown(path: string, recursive = false): void {
    const who = this.opts.runAs;
    if (!who) return;
    chownSync(path, who.uid, who.gid);
    if (!recursive) return;
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const p = join(path, entry.name);
      if (entry.isDirectory()) this.chown(p, true);
      else if (entry.isSymbolicLink()) lchownSync(p, who.uid, who.gid);
      else chownSync(p, who.uid, who.gid);
    }
  }

  /** Runs initdb / pg_basebackup / pg_rewind as the engine's user; resolves with their output. */
  private runTool(bin: string, args: string[], env: Record<string, string> = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn(bin, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
        cwd: dirname(this.opts.dataDir),
        ...(this.opts.runAs ? { uid: this.opts.runAs.uid, gid: this.opts.runAs.gid } : {}),
      });
      let output = '';
      child.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        output += d.toString();
      });
      child.once('error', (err) =>
        reject(new DatabaseError(`${this.opts.name}: cannot run ${bin}: ${err.message}`)),
      );
      child.once('exit', (code, signal) => {
        if (code === 0) resolve(output);
        else
          reject(
            new DatabaseError(
              `${this.opts.name}: ${bin.split('/').pop()} failed (${signal ?? `exit code ${code}`}):\n    ${output.trim().split('\n').slice(-8).join('\n    ')}`,
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
        const gone = /requested WAL segment ([0-9A-F]{24}) has already been removed/.exec(line);
        if (gone) this.walGone = gone[1]!;
        if (/can no longer get changes from replication slot|slot has been invalidated/.test(line))
          this.slotLost = true;
        this.opts.log.info(`postgres: ${line}`);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }
}

async function ensureRole(
  client: pg.Client,
  role: string,
  attributes: string,
  password: string,
): Promise<void> {
  const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
  const verb = exists.rowCount === 0 ? 'CREATE' : 'ALTER';
  await client.query(
    `${verb} ROLE ${client.escapeIdentifier(role)} WITH ${attributes} PASSWORD ${client.escapeLiteral(password)}`,
  );
}

/** Copies a live data directory for a base backup, skipping what the docs say to skip. */
function copyTree(from: string, to: string, top: boolean): void {
  mkdirSync(to, { recursive: true, mode: 0o700 });
  let entries: Dirent[];
  try {
    entries = readdirSync(from, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed while copying: fine
    throw err;
  }
  for (const entry of entries) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (CLONE_SKIP_FILES.has(entry.name) || entry.name.startsWith('pgsql_tmp')) continue;
    try {
      if (entry.isDirectory()) {
        if (CLONE_SKIP_CONTENTS.has(entry.name)) {
          mkdirSync(dst, { mode: 0o700 });
          if (entry.name === 'pg_wal') mkdirSync(join(dst, 'archive_status'), { mode: 0o700 });
          continue;
        }
        copyTree(src, dst, false);
      } else if (entry.isSymbolicLink()) {
        symlinkSync(readlinkSync(src), dst);
      } else if (entry.isFile()) {
        copyFileSync(src, dst);
        chmodSync(dst, lstatSync(src).mode & 0o777);
      }
    } catch (err) {
      // Files can vanish while a live cluster is copied; WAL replay makes the copy consistent.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  if (top) chmodSync(to, 0o700);
}

/** Fails with PortInUseError if host:port is already taken. */
export function assertPortFree(host: string, port: number, component: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new PortInUseError(component, `${host}:${port}`));
      else resolve(); // other problems are reported by the engine itself
    });
    srv.listen(port, host, () => srv.close(() => resolve()));
  });
}
