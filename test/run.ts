/**
 * `npm test`: every compiled test file (`*.test.js`) under dist/test and dist/bench/test, run by
 * node:test in one `node --test` with the files named. Named files, not directories: Node.js 20
 * searches a directory given to `--test`, Node.js 22 and later take each argument as a file or a
 * glob pattern and fail on a directory.
 *
 * Arguments: those starting with `-` go to `node --test`, their values after `=`
 * (`npm test -- --test-name-pattern=failover`); any other is a directory or test file under dist
 * (`test/lb`), and only those tests run.
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
const ROOTS = ['test', join('bench', 'test')];

/** The `*.test.js` files at or under `path`, sorted, as paths relative to the working directory. */
function testFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return path.endsWith('.test.js') ? [relative(process.cwd(), path)] : [];
  const found: string[] = [];
  for (const entry of readdirSync(path)) found.push(...testFiles(join(path, entry)));
  return found.sort();
}

const args = process.argv.slice(2);
const options = args.filter((a) => a.startsWith('-'));
const only = args.filter((a) => !a.startsWith('-'));
const roots = (only.length > 0 ? only : ROOTS).map((root) => join(dist, root));
let files: string[];
try {
  files = roots.flatMap(testFiles);
} catch (err) {
  process.stderr.write(`cannot list the tests: ${(err as Error).message} (run "npm run build" first?)\n`);
  process.exit(1);
}
if (files.length === 0) {
  process.stderr.write(`no test files (*.test.js) under ${roots.join(' or ')}: run "npm run build" first\n`);
  process.exit(1);
}
const child = spawn(process.execPath, ['--test', ...options, ...files], { stdio: 'inherit' });
// Ctrl-C reaches the test runner too (same process group): this one waits for it to end. A
// SIGTERM sent to this process alone is passed on.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => {
  process.exit(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
});
