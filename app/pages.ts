/**
 * The server-rendered pages of the demo codebase. Every value that comes from a user or the
 * database goes through `escapeHtml`.
 */
import type { User } from './users.js';

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Who answered: shown at the top of every page. */
export interface Origin {
  /** The server (TANDEM_SERVER_NAME) and the process within it. */
  server: string;
  process: string;
  /** The database node that answered the read, e.g. "web-02 (replica)", when there was one. */
  dbNode?: string | undefined;
}

/** What the users page shows. */
export interface UsersPage {
  origin: Origin;
  users: User[];
  /** A refused form submission: the reason and what was typed. */
  error?: { message: string; name: string; email: string } | undefined;
}

/** The users page: who answered, the users with a delete button each, the form to add one. */
export function renderUsersPage(page: UsersPage): string {
  const rows = page.users
    .map(
      (u) => `      <tr>
        <td>${escapeHtml(u.id)}</td>
        <td>${escapeHtml(u.name)}</td>
        <td>${escapeHtml(u.email)}</td>
        <td><time datetime="${escapeHtml(u.created_at)}">${escapeHtml(formatTime(u.created_at))}</time></td>
        <td><form method="post" action="/users/${escapeHtml(u.id)}/delete">
          <button type="submit" aria-label="Delete ${escapeHtml(u.name)}">Delete</button></form></td>
      </tr>`,
    )
    .join('\n');
  const table =
    page.users.length === 0
      ? '<p class="empty">No users yet: add the first one below.</p>'
      : `<table>
      <thead><tr><th>#</th><th>Name</th><th>Email</th><th>Added</th><th></th></tr></thead>
      <tbody>
${rows}
      </tbody>
    </table>`;
  const error = page.error ? `<p class="error" role="alert">${escapeHtml(page.error.message)}</p>` : '';
  return layout(
    'Users',
    page.origin,
    `<section>
    <h2>Users</h2>
    ${table}
  </section>
  <section>
    <h2>Add a user</h2>
    ${error}
    <form method="post" action="/users" class="add">
      <label>Name <input name="name" required maxlength="100" value="${escapeHtml(page.error?.name ?? '')}"></label>
      <label>Email <input name="email" type="email" required maxlength="200" value="${escapeHtml(page.error?.email ?? '')}"></label>
      <button type="submit">Add</button>
    </form>
  </section>`,
  );
}

/** A page that says the database cannot answer right now. */
export function renderUnavailablePage(origin: Origin, why: string): string {
  return layout(
    'Database unavailable',
    origin,
    `<section>
    <h2>Database unavailable</h2>
    <p class="error" role="alert">${escapeHtml(why)}</p>
    <p>The page will work again once a database node answers. <a href="/">Try again</a>.</p>
  </section>`,
  );
}

/** A page with one message: not found, bad request. */
export function renderMessagePage(origin: Origin, title: string, message: string): string {
  return layout(
    title,
    origin,
    `<section>
    <h2>${escapeHtml(title)}</h2>
    <p>${escapeHtml(message)} <a href="/">Back to the users</a>.</p>
  </section>`,
  );
}

function layout(title: string, origin: Origin, main: string): string {
  const db = origin.dbNode
    ? `Database read answered by <strong>${escapeHtml(origin.dbNode)}</strong>`
    : 'No database answered this request';
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${escapeHtml(title)} · Tandem demo</title>
  <link rel="stylesheet" href="/style.css">
  <link rel="icon" href="/favicon.svg" type="image/svg+xml">
</head>
<body>
  <header>
    <h1>Tandem demo</h1>
    <p class="origin">
      <span class="badge">Served by <strong>${escapeHtml(origin.server)}</strong>
        <small>(${escapeHtml(origin.process)})</small></span>
      <span class="badge">${db}</span>
    </p>
  </header>
  <main>
  ${main}
  </main>
</body>
</html>
`;
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace('T', ' ').slice(0, 19);
}
