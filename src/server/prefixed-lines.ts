/**
 * Copies a child process's output to one of our own streams line by line, each line prefixed with
 * the process's tag (`[app#0] `), so the output of several processes stays readable when mixed.
 */
import type { Readable, Writable } from 'node:stream';

/** A line longer than this is cut and written anyway, so a line without end cannot grow unbounded. */
const MAX_LINE = 64 * 1024;

/**
 * Writes every line of `input` to `output` as `prefix + line + "\n"`; a last line without a
 * newline is written when `input` ends. `output` is never ended (it is shared).
 */
export function pipePrefixedLines(input: Readable, output: Writable, prefix: string): void {
  let pending = '';
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      output.write(`${prefix}${pending.slice(0, newline)}\n`);
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
    if (pending.length > MAX_LINE) {
      output.write(`${prefix}${pending}\n`);
      pending = '';
    }
  });
  const flush = () => {
    if (pending !== '') output.write(`${prefix}${pending}\n`);
    pending = '';
  };
  input.on('end', flush);
  input.on('error', (err) => {
    flush();
    output.write(`${prefix}(output lost: ${err.message})\n`);
  });
}
