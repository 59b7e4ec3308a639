/**
 * A short, stable description of a network error for logs and the status page:
 * `connect ECONNREFUSED`, `read ECONNRESET`, `getaddrinfo ENOTFOUND`, else the message.
 */
export function describeError(err: unknown): string {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e?.code && e.syscall) return `${e.syscall} ${e.code}`;
  if (e?.code?.startsWith('E')) return e.code;
  return e?.message ?? String(err);
}
