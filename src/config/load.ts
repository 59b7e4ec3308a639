/**
 * Loading tandem.yaml: read, parse, validate against the one schema, check the references
 * between sections, resolve paths, freeze. Every problem is reported with its config path.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../errors.js';
import { withDatabaseEndpoints } from './db-endpoints.js';
import { DEFAULT_CONFIG } from './defaults.js';
import { configSchema, type TandemConfig } from './schema.js';

/** Root of the Tandem package (where package.json, app/ and dist/ are). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** A validated, frozen config with absolute paths. */
export interface ResolvedConfig extends TandemConfig {
  /** Where the config came from: a file path, or "built-in default". */
  readonly source: string;
  /** Absolute paths derived from the config. */
  readonly paths: {
    readonly dataDir: string;
    readonly static: string;
    readonly codebaseDir: string;
  };
}

export interface LoadOptions {
  /** Explicit config file; when absent, ./tandem.yaml if it exists, else the built-in default. */
  file?: string | undefined;
  /** Overrides `dataDir` (absolute, or relative to the working directory). */
  dataDir?: string | undefined;
  cwd?: string | undefined;
}

/** Loads, validates and freezes the config. Throws ConfigError with one line per problem. */
export function loadConfig(opts: LoadOptions = {}): ResolvedConfig {
  const cwd = opts.cwd ?? process.cwd();
  let file = opts.file ? resolve(cwd, opts.file) : undefined;
  if (!file && existsSync(resolve(cwd, 'tandem.yaml'))) file = resolve(cwd, 'tandem.yaml');

  let raw: unknown;
  let source: string;
  let baseDir: string;
  if (file) {
    source = file;
    baseDir = dirname(file);
    raw = readYaml(file);
  } else {
    source = 'built-in default';
    baseDir = PACKAGE_ROOT;
    raw = structuredClone(DEFAULT_CONFIG);
  }
  const config = validateConfig(raw, source);
  const dataDir = opts.dataDir ? resolve(cwd, opts.dataDir) : resolve(file ? baseDir : cwd, config.dataDir);
  const resolved: ResolvedConfig = {
    ...config,
    dataDir,
    source,
    paths: {
      dataDir,
      static: resolve(baseDir, config.codebase.static),
      codebaseDir: resolve(baseDir, config.codebase.dir),
    },
  };
  return deepFreeze(resolved);
}

function readYaml(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(err);
    throw new ConfigError(file, [`cannot read the config file: ${why}`]);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return `${pos ? `line ${pos.line}, column ${pos.col}: ` : ''}not valid YAML: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const value = doc.toJS() as unknown;
  return value ?? {};
}

/** Validates a parsed config object. Exported for tests and for `tandem config --check`. */
export function validateConfig(raw: unknown, source = 'config'): TandemConfig {
  const result = configSchema.safeParse(withDatabaseEndpoints(raw), { reportInput: true });
  if (!result.success) throw new ConfigError(source, result.error.issues.map(formatIssue));
  const problems = crossCheck(result.data);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return result.data;
}

/** `backends[0].servers[1].weight` from ['backends', 0, 'servers', 1, 'weight']. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(top level)';
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((k) => {
        const hint = suggest(k);
        return `${formatPath([...issue.path, k])}: unknown key${hint ? ` (did you mean "${hint}"?)` : ''}`;
      })
      .join('\n  - ');
  }
  const input = (issue as { input?: unknown }).input;
  if (issue.code === 'invalid_type' && input === undefined) {
    return `${where}: is required (${issue.message})`;
  }
  if (issue.code === 'invalid_type' && issue.message.startsWith('Invalid input')) {
    return `${where}: must be ${issue.expected}, not ${describe(input)}`;
  }
  return `${where}: ${issue.message}${input !== undefined && issue.code !== 'custom' ? ` (got ${describe(input)})` : ''}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

const KNOWN_KEYS = collectKeys(configSchema);

function collectKeys(schema: unknown, out = new Set<string>(), seen = new Set<unknown>()): Set<string> {
  if (!schema || typeof schema !== 'object' || seen.has(schema)) return out;
  seen.add(schema);
  const def = (schema as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
  if (!def) return out;
  const shape = def['shape'] as Record<string, unknown> | undefined;
  if (shape) {
    for (const [k, v] of Object.entries(shape)) {
      out.add(k);
      collectKeys(v, out, seen);
    }
  }
  for (const key of ['element', 'innerType', 'in', 'out']) collectKeys(def[key], out, seen);
  return out;
}

function suggest(key: string): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const known of KNOWN_KEYS) {
    const d = levenshtein(key.toLowerCase(), known.toLowerCase());
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** Rules that span sections: unique names, references that resolve, no address used twice. */
function crossCheck(c: TandemConfig): string[] {
  const problems: string[] = [];
  const unique = (list: readonly { name: string }[], section: string) => {
    const seen = new Map<string, number>();
    list.forEach((item, i) => {
      const first = seen.get(item.name);
      if (first !== undefined)
        problems.push(`${section}[${i}].name: duplicate name "${item.name}" (also ${section}[${first}])`);
      else seen.set(item.name, i);
    });
  };
  unique(c.servers, 'servers');
  unique(c.loadBalancers, 'loadBalancers');
  unique(c.backends, 'backends');
  if (c.database) unique(c.database.nodes, 'database.nodes');

  const serverNames = new Set(c.servers.map((s) => s.name));
  const backendNames = new Set(c.backends.map((b) => b.name));
  c.backends.forEach((b, i) => {
    unique(b.servers, `backends[${i}].servers`);
    problems.push(...hashOnProblems(b, i));
    b.servers.forEach((s, j) => {
      // A server with its own `address` (a database node behind a TCP frontend) needs no entry in servers.
      if (s.address === undefined && !serverNames.has(s.name))
        problems.push(
          `backends[${i}].servers[${j}].name: no server named "${s.name}" in servers (known: ${[...serverNames].join(', ')})`,
        );
    });
  });
  c.loadBalancers.forEach((lb, i) => {
    lb.frontends.forEach((f, j) => {
      if (!backendNames.has(f.backend))
        problems.push(
          `loadBalancers[${i}].frontends[${j}].backend: no backend named "${f.backend}" in backends (known: ${[...backendNames].join(', ')})`,
        );
    });
  });
  if (c.database) {
    const primaries = c.database.nodes.filter((n) => n.role === 'primary');
    if (primaries.length !== 1)
      problems.push(
        `database.nodes: must have exactly one node with role: primary (found ${primaries.length})`,
      );
    if (c.database.replication === 'sync' && c.database.nodes.length < 2)
      problems.push('database.replication: sync needs at least one replica in database.nodes');
  }

  // No two listeners on one address.
  const addresses = new Map<string, string>();
  const claim = (host: string, port: number, path: string) => {
    const key = `${host}:${port}`;
    const other = addresses.get(key);
    if (other) problems.push(`${path}: address ${key} is already used by ${other}`);
    else addresses.set(key, path);
  };
  c.loadBalancers.forEach((lb, i) => {
    lb.frontends.forEach((f, j) => {
      claim(f.host, f.port, `loadBalancers[${i}].frontends[${j}].port`);
    });
    claim(lb.stats.host, lb.stats.port, `loadBalancers[${i}].stats.port`);
    claim(lb.admin.host, lb.admin.port, `loadBalancers[${i}].admin.port`);
  });
  c.servers.forEach((s, i) => {
    claim(s.host, s.port, `servers[${i}].port`);
    for (let p = 0; p < s.app.processes; p++) {
      if (s.app.port + p > 65535)
        problems.push(`servers[${i}].app.port: ports up to ${s.app.port + p} exceed 65535`);
      else claim(s.host, s.app.port + p, `servers[${i}].app.port${p ? ` (+${p}, process ${p + 1})` : ''}`);
    }
  });
  c.database?.nodes.forEach((n, i) => {
    claim(n.host, n.port, `database.nodes[${i}].port`);
    const api = n.apiPort ?? n.port + 10000;
    if (api > 65535) problems.push(`database.nodes[${i}].apiPort: port + 10000 exceeds 65535; set apiPort`);
    else claim(n.host, api, `database.nodes[${i}].apiPort`);
  });
  return problems;
}

/** `balance: hash` needs `hashOn`, a header or cookie its name; `hashOn` goes with `balance: hash` only. */
function hashOnProblems(b: TandemConfig['backends'][number], i: number): string[] {
  const where = `backends[${i}].hashOn`;
  const on = b.hashOn;
  if (on === undefined)
    return b.balance === 'hash'
      ? [`${where}: is required with balance: hash (like hashOn: { type: header, name: X-User-Id })`]
      : [];
  if (b.balance !== 'hash') return [`${where}: only applies to balance: hash (balance is ${b.balance})`];
  if (on.type !== 'uri' && on.name === undefined)
    return [`${where}.name: is required with hashOn.type: ${on.type}`];
  if (on.type === 'uri' && on.name !== undefined)
    return [`${where}.name: not used with hashOn.type: uri (the path is hashed)`];
  return [];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
