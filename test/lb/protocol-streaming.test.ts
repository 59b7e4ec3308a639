/**
 * Bodies stream through the proxy both ways without being buffered: a 1 GiB chunked upload and a
 * 256 MiB download pass through a `tandem lb` child process while its RSS is sampled from
 * /proc/<pid>/status. In each, one end first stops reading until the other end stalls, which
 * proves the backpressure runs end to end (a proxy that buffered would take the bytes in).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { tempDir, waitFor } from '../helpers/index.js';
import { TANDEM_BIN } from './fixtures.js';
import { rawConfigWith } from './protocol-fixtures.js';

const MiB = 1024 * 1024;
/**
 * Largest growth of the proxy's RSS over its level before the transfer. The upload's body chunks
 * are copies Node's HTTP parser makes (64 KiB each), garbage once written on. V8 13 (Node.js 24
 * and later) lets about 64 MiB of such memory outside its heap build up before it collects it:
 * measured on the 1 GiB upload, growth of 20 to 30 MiB on Node.js 20, 32 on 22, 66 to 74 on 24
 * and 69 on 26; and 85 MiB for a 3 GiB upload on 24, so it does not follow the body's size. The
 * bound leaves room for that collector's allowance there; a body held in memory would still break
 * it many times over.
 */
const RSS_BOUND = (Number(process.versions.v8.split('.')[0]) >= 13 ? 128 : 64) * MiB;
/** Bytes one end may get past a stalled peer: the socket buffers on the way, not the body. */
const STALL_BOUND = 64 * MiB;

/** 64 KiB of random bytes: every body is this block repeated (the last block cut short). */
const BLOCK = randomBytes(64 * 1024);

/** Checks that `data`, found at `offset` of a body, is the repeated BLOCK there. */
function matchesPattern(data: Buffer, offset: number): boolean {
  let pos = 0;
  while (pos < data.length) {
    const start = (offset + pos) % BLOCK.length;
    const n = Math.min(BLOCK.length - start, data.length - pos);
    if (BLOCK.compare(data, pos, pos + n, start, start + n) !== 0) return false;
    pos += n;
  }
  return true;
}

/** Writes `total` bytes of the pattern to `out`, honouring backpressure; `progress` sees each write. */
async function writePattern(
  out: NodeJS.WritableStream,
  total: number,
  progress: (sent: number) => void,
): Promise<void> {
  let sent = 0;
  while (sent < total) {
    const n = Math.min(BLOCK.length, total - sent);
    const ok = out.write(n === BLOCK.length ? BLOCK : BLOCK.subarray(0, n));
    sent += n;
    progress(sent);
    if (!ok) await new Promise((resolve) => out.once('drain', resolve));
  }
}

/** VmRSS of `pid` and of every process under it (a load balancer's workers), in bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  let total = Number(m[1]) * 1024;
  for (const child of childPids(pid)) total += rssIfAlive(child);
  return total;
}

/** rss(pid), or 0 for a process that is gone by now. */
function rssIfAlive(pid: number): number {
  try {
    return rss(pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/** The child processes of `pid` (from /proc, every thread's children). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`))
    for (const c of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/))
      if (c !== '') out.push(Number(c));
  return out;
}

/** Samples the RSS of `pid` every 50ms until stopped; `peak()` is the highest seen. */
function sampleRss(t: TestContext, pid: number): { peak: () => number; stop: () => void } {
  let peak = rss(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rss(pid));
  }, 50);
  const stop = () => clearInterval(timer);
  t.after(stop);
  return { peak: () => Math.max(peak, rss(pid)), stop };
}

/** Polls until `count()` has not changed for `quietMs` (the writer is blocked); returns its value. */
async function stalled(what: string, count: () => number, quietMs = 300): Promise<number> {
  let last = -1;
  let since = Date.now();
  return waitFor(
    what,
    () => {
      const now = count();
      if (now !== last) {
        last = now;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= quietMs && now > 0 ? now : undefined;
    },
    { timeout: 20_000, interval: 25 },
  );
}

/**
 * The backend: `/upload` reads nothing until `resumeUpload()`, then checks the body against the
 * pattern; `/download?n` sends n bytes of the pattern with a Content-Length.
 */
async function streamingBackend(t: TestContext) {
  const state = {
    port: 0,
    uploadReceived: 0,
    uploadOk: true,
    downloadSent: 0,
    paused: undefined as IncomingMessage | undefined,
    resumeUpload(): void {
      state.paused?.resume();
    },
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url === '/healthz') {
      res.end('ok');
    } else if (url === '/upload') {
      req.pause();
      state.paused = req;
      req.on('data', (d: Buffer) => {
        if (state.uploadOk && !matchesPattern(d, state.uploadReceived)) state.uploadOk = false;
        state.uploadReceived += d.length;
      });
      req.on('end', () => res.end(JSON.stringify({ length: state.uploadReceived, ok: state.uploadOk })));
      req.pause();
    } else if (url === '/sink') {
      req.resume();
      req.on('end', () => res.end('ok'));
    } else if (url.startsWith('/download?')) {
      const total = Number(url.slice('/download?'.length));
      res.writeHead(200, { 'content-length': String(total), 'content-type': 'application/octet-stream' });
      writePattern(res, total, (sent) => (state.downloadSent = sent)).then(
        () => res.end(),
        () => res.destroy(),
      );
    } else {
      res.end('ok');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as { port: number }).port;
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return state;
}

/** Runs `tandem lb` for a one-server config in a child process; resolves once it serves. */
async function startLbProcess(
  t: TestContext,
  backendPort: number,
): Promise<{ proc: ChildProcess; port: number }> {
  const dir = tempDir();
  t.after(dir.cleanup);
  const raw = await rawConfigWith(
    { servers: [{ name: 'web-01', port: backendPort }], serverTimeout: 60_000 },
    {},
  );
  const file = join(dir.path, 'tandem.yaml');
  writeFileSync(file, JSON.stringify(raw, null, 2));
  const port = raw['loadBalancers'][0].frontends[0].port as number;
  const proc = spawn(process.execPath, [TANDEM_BIN, 'lb', '--name', 'lb-01', '-c', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.resume();
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  await waitFor('tandem lb ready', () => out.includes(`ready on http://127.0.0.1:${port}`), {
    timeout: 15_000,
  });
  return { proc, port };
}

/** Warm-up exchanges (32 MiB each way), so that the baseline RSS already includes the proxy's code paths and heap. */
async function warmUp(port: number): Promise<void> {
  for (let i = 0; i < 8; i++) {
    for (const upload of [false, true]) {
      await new Promise<void>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            path: upload ? '/sink' : `/download?${4 * MiB}`,
            method: upload ? 'POST' : 'GET',
            agent: false,
          },
          (res) => {
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', reject);
        if (upload) writePattern(req, 4 * MiB, () => undefined).then(() => req.end(), reject);
        else req.end();
      });
    }
  }
}

test('a 1 GiB chunked upload streams through tandem lb with backpressure and flat memory', async (t) => {
  const backend = await streamingBackend(t);
  const lb = await startLbProcess(t, backend.port);
  await warmUp(lb.port);
  const base = rss(lb.proc.pid!);
  const sampler = sampleRss(t, lb.proc.pid!);

  const total = 1024 * MiB;
  let sent = 0;
  const started = Date.now();
  const reply = new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: lb.port, path: '/upload', method: 'POST', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    writePattern(req, total, (n) => (sent = n)).then(
      () => req.end(),
      (err: unknown) => reject(err as Error),
    );
  });
  // The server reads nothing yet: the client must be held back, not the proxy filled up.
  const atStall = await stalled('the client blocked by backpressure', () => sent);
  assert.ok(atStall < STALL_BOUND, `the client got ${atStall} bytes out while the server read nothing`);
  assert.equal(backend.uploadReceived, 0);
  backend.resumeUpload();

  const r = await Promise.race([
    reply,
    new Promise<never>((_, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`upload not done after 120 s (sent ${sent})`)),
        120_000,
      );
      t.after(() => clearTimeout(timer));
    }),
  ]);
  sampler.stop();
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { length: total, ok: true });
  const growth = sampler.peak() - base;
  t.diagnostic(
    `1 GiB up in ${Date.now() - started}ms; proxy RSS ${(base / MiB).toFixed(1)} MiB → peak ` +
      `${(sampler.peak() / MiB).toFixed(1)} MiB; client stalled after ${(atStall / MiB).toFixed(1)} MiB`,
  );
  assert.ok(growth < RSS_BOUND, `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
});

test('a 256 MiB download streams through tandem lb with backpressure and flat memory', async (t) => {
  const backend = await streamingBackend(t);
  const lb = await startLbProcess(t, backend.port);
  await warmUp(lb.port);
  const base = rss(lb.proc.pid!);
  const sampler = sampleRss(t, lb.proc.pid!);

  const total = 256 * MiB;
  let received = 0;
  let ok = true;
  let res: IncomingMessage | undefined;
  const started = Date.now();
  const done = new Promise<number>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: lb.port, path: `/download?${total}`, agent: false },
      (r) => {
        res = r;
        // Not a byte read until the server is blocked.
        r.pause();
        r.on('data', (d: Buffer) => {
          if (ok && !matchesPattern(d, received)) ok = false;
          received += d.length;
        });
        r.on('end', () => resolve(r.statusCode ?? 0));
        r.on('error', reject);
        r.pause();
      },
    );
    req.on('error', reject);
    req.end();
  });
  await waitFor('response headers', () => res !== undefined);
  const atStall = await stalled('the server blocked by backpressure', () => backend.downloadSent);
  assert.ok(atStall < STALL_BOUND, `the server got ${atStall} bytes out while the client read nothing`);
  res!.resume();

  const status = await Promise.race([
    done,
    new Promise<never>((_, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`download not done after 120 s (got ${received})`)),
        120_000,
      );
      t.after(() => clearTimeout(timer));
    }),
  ]);
  sampler.stop();
  assert.equal(status, 200);
  assert.equal(received, total);
  assert.ok(ok, 'the body arrived intact');
  const growth = sampler.peak() - base;
  t.diagnostic(
    `256 MiB down in ${Date.now() - started}ms; proxy RSS ${(base / MiB).toFixed(1)} MiB → peak ` +
      `${(sampler.peak() / MiB).toFixed(1)} MiB; server stalled after ${(atStall / MiB).toFixed(1)} MiB`,
  );
  assert.ok(growth < RSS_BOUND, `proxy RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
});
