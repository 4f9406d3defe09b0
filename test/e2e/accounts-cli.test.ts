import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const cli = join(process.cwd(), 'bin/runway.mjs');

/** `runway admin users|tokens|device …` against the stack (as its operator) and `runway workspace members …`. */
describe('the runway CLI: accounts and access', () => {
  let s: TestStack;
  let dir: string;
  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-accounts-cli-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  const runwayWith = (input: string | undefined, ...args: string[]) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUNWAY_CONFIG_DIR: dir,
      RUNWAY_DATA_DIR: s.dataDir,
      RUNWAY_HTTP_PORT: new URL(s.url).port,
      RUNWAY_TOKEN: s.adminToken,
    };
    delete env.RUNTIME__API_BASE_URL;
    return run(process.execPath, [cli, '--api-url', s.api, ...args], { cwd: dir, env, input });
  };
  const runway = (...args: string[]) => runwayWith(undefined, ...args);
  const signIn = (email: string, password: string) =>
    fetch(`${s.url}/auth/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });

  it('disables and enables users, lists and revokes any token', async () => {
    const created = await runway(
      'admin',
      'users',
      'create',
      'cli-user@example.com',
      '--workspace',
      s.workspaceId,
    );
    assert.equal(created.code, 0, created.err);
    const dup = await runway('admin', 'users', 'create', 'CLI-user@example.com');
    assert.equal(dup.code, 1);
    assert.match(dup.err, /already exists \(HTTP 409\)/);
    const tok = await runway('--json', 'admin', 'tokens', 'create', '--user', 'cli-user@example.com');
    assert.equal(tok.code, 0, tok.err);
    const t = JSON.parse(tok.out) as { id: string; token: string };
    const listed = await runway('admin', 'tokens', 'list', '--user', 'cli-user@example.com');
    assert.equal(listed.code, 0, listed.err);
    assert.match(listed.out, new RegExp(`${t.id}\\s+cli-user@example\\.com\\s+cli\\s+active`));
    const off = await runway(
      'admin',
      'users',
      'disable',
      'cli-user@example.com',
      '--reason',
      'left the team',
    );
    assert.equal(off.code, 0, off.err);
    assert.match(off.out, /disabled/);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 401);
    const users = await runway('--json', 'admin', 'users', 'list');
    const rows = JSON.parse(users.out) as { email: string; disabled: boolean }[];
    assert.equal(rows.find((u) => u.email === 'cli-user@example.com')?.disabled, true);
    assert.equal((await runway('admin', 'users', 'enable', 'cli-user@example.com')).code, 0);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 200);
    const revoked = await runway('admin', 'tokens', 'revoke', t.id);
    assert.equal(revoked.code, 0, revoked.err);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 401);
    const all = await runway('--json', 'admin', 'tokens', 'list', '--all', '--state', 'revoked');
    assert.ok((JSON.parse(all.out) as { id: string }[]).some((x) => x.id === t.id));
  });

  it('lists, adds and removes workspace members', async () => {
    await s.call('POST', '/api/v1/admin/users', { email: 'member-cli@example.com' });
    const ws = ['--workspace', s.workspaceId];
    const add = await runway(
      'workspace',
      'members',
      'add',
      'member-cli@example.com',
      '--role',
      'viewer',
      ...ws,
    );
    assert.equal(add.code, 0, add.err);
    const promoted = await runway(
      'workspace',
      'members',
      'set-role',
      'member-cli@example.com',
      'member',
      ...ws,
    );
    assert.equal(promoted.code, 0, promoted.err);
    const list = await runway('workspace', 'members', 'list', ...ws);
    assert.match(list.out, /member-cli@example\.com\s+member/);
    const rm = await runway('workspace', 'members', 'remove', 'member-cli@example.com', ...ws);
    assert.equal(rm.code, 0, rm.err);
    assert.match(rm.out, /removed/);
    const again = await runway('workspace', 'members', 'list', ...ws);
    assert.doesNotMatch(again.out, /member-cli@example\.com/);
    const last = await runway('workspace', 'members', 'remove', 'admin@runway.local', ...ws);
    assert.equal(last.code, 1);
    assert.match(last.err, /last owner/);
  });

  it('shows which client asked for a login before approving it', async () => {
    const res = await fetch(`${s.url}/auth/v1/github/device-flow/code`, {
      method: 'POST',
      headers: { 'user-agent': 'dlthub-client/1.27 (cli test)' },
    });
    const code = ((await res.json()) as { user_code: string }).user_code;
    const show = await runway('admin', 'device', 'show', code);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /pending.*dlthub-client\/1\.27 \(cli test\) from \S*127\.0\.0\.1/);
    const ok = await runway('admin', 'device', 'approve', code);
    assert.equal(ok.code, 0, ok.err);
    assert.match(ok.out, /approved .*dlthub-client.*logged in as admin@runway\.local/);
  });

  it('creates users with a dashboard password from stdin and sets passwords, never from argv', async () => {
    const weak = await runwayWith(
      'short\n',
      'admin',
      'users',
      'create',
      'pia@example.com',
      '--password-stdin',
    );
    assert.equal(weak.code, 1);
    assert.match(weak.err, /at least 10 characters \(HTTP 400\)/);
    const users = await s.call('GET', '/api/v1/admin/users');
    assert.ok(!users.text.includes('pia@example.com'), 'nothing stored when the password is refused');
    const created = await runwayWith(
      'pia first password\n',
      'admin',
      'users',
      'create',
      'pia@example.com',
      '--password-stdin',
    );
    assert.equal(created.code, 0, created.err);
    assert.match(created.out, /user pia@example\.com created .* with a password/);
    assert.equal((await signIn('pia@example.com', 'pia first password')).status, 200);
    const set = await runwayWith(
      'pia second password',
      'admin',
      'users',
      'set-password',
      'pia@example.com',
      '--password-stdin',
    );
    assert.equal(set.code, 0, set.err);
    assert.equal((await signIn('pia@example.com', 'pia first password')).status, 401);
    assert.equal((await signIn('pia@example.com', 'pia second password')).status, 200);
    // Without a terminal and without --password-stdin, the CLI refuses instead of hanging.
    const noTty = await runwayWith('', 'admin', 'users', 'set-password', 'pia@example.com');
    assert.equal(noTty.code, 2, noTty.err);
    assert.match(noTty.err, /--password-stdin/);
  });
});
