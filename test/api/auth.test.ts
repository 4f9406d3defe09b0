import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';

type Json = Record<string, unknown>;
const decodeJwt = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Json;

describe('accounts, tokens and the device flow', () => {
  let s: TestStack;
  before(async () => {
    s = await startTestStack();
  });
  after(() => s.stop());

  it('logs the CLI in through the device flow once an owner approves the code', async () => {
    const code = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null);
    assert.equal(code.status, 201, code.text);
    const c = code.json as {
      device_code: string;
      user_code: string;
      verification_uri: string;
      interval: number;
    };
    assert.match(c.user_code, /^[A-Z]{4}-[A-Z]{4}$/);
    assert.equal(c.interval, 1);
    const pending = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(pending.status, 428, 'pending is neither 201 nor 400, so the CLI keeps polling');
    const approve = await s.call('POST', '/api/v1/device/approve', { user_code: c.user_code.toLowerCase() });
    assert.equal(approve.status, 201, approve.text);
    const done = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(done.status, 201, done.text);
    const login = done.json as { email: string; id: string; jwt: string };
    assert.equal(login.email, 'admin@runway.local');
    const claims = decodeJwt(login.jwt);
    assert.equal(claims.aud, 'cli');
    assert.equal(claims.sub, login.id);
    assert.equal(claims.email, login.email);
    assert.ok((claims.exp as number) > Date.now() / 1000);
    const me = await s.call('GET', '/api/v1/me', undefined, login.jwt);
    assert.equal(me.status, 200, me.text);
    assert.equal((me.json as { default_workspace: { id: string } }).default_workspace.id, s.workspaceId);
    // The code is single-use; an unknown code aborts the CLI's loop with 400.
    assert.equal(
      (await s.call('POST', '/auth/v1/github/device-flow/token', { device_code: c.device_code }, null))
        .status,
      400,
    );
    assert.equal(
      (await s.call('POST', '/auth/v1/github/device-flow/token', { device_code: 'nope' }, null)).status,
      400,
    );
    assert.equal((await s.call('POST', '/api/v1/device/approve', { user_code: 'BBBB-CCCC' })).status, 404);
    // A tampered JWT is refused.
    const [h, b] = login.jwt.split('.');
    assert.equal((await s.call('GET', '/api/v1/me', undefined, `${h}.${b}.AAAA`)).status, 401);
  });

  it('creates a new user default workspace on the first /me and scopes every workspace', async () => {
    const user = await s.call('POST', '/api/v1/admin/users', { email: 'bob@example.com' });
    assert.equal(user.status, 201, user.text);
    const bobId = (user.json as { id: string }).id;
    const tok = await s.call('POST', `/api/v1/admin/users/${bobId}/tokens`, { name: 'bob cli' });
    assert.equal(tok.status, 201, tok.text);
    const bob = (tok.json as { token: string }).token;
    const me = await s.call('GET', '/api/v1/me', undefined, bob);
    assert.equal(me.status, 200, me.text);
    const bobWs = (me.json as { default_workspace: { id: string } }).default_workspace.id;
    assert.notEqual(bobWs, s.workspaceId);
    const again = await s.call('GET', '/api/v1/me', undefined, bob);
    assert.equal(
      (again.json as { default_workspace: { id: string } }).default_workspace.id,
      bobWs,
      'created once',
    );
    // Bob cannot see the admin's workspace, and the admin cannot see Bob's: 404, not 403.
    assert.equal((await s.call('GET', `/api/v1/workspaces/${s.workspaceId}`, undefined, bob)).status, 404);
    assert.equal((await s.call('GET', `/api/v1/workspaces/${bobWs}`)).status, 404);
    // Bob is not an admin.
    assert.equal(
      (await s.call('POST', '/api/v1/admin/users', { email: 'eve@example.com' }, bob)).status,
      403,
    );
  });

  it('lets a viewer read but not write', async () => {
    const user = await s.call('POST', '/api/v1/admin/users', {
      email: 'vera@example.com',
      workspace_id: s.workspaceId,
      role: 'viewer',
    });
    assert.equal(user.status, 201, user.text);
    const tok = await s.call('POST', `/api/v1/admin/users/${(user.json as { id: string }).id}/tokens`, {
      name: 'v',
    });
    const vera = (tok.json as { token: string }).token;
    assert.equal((await s.call('GET', `/api/v1/workspaces/${s.workspaceId}`, undefined, vera)).status, 200);
    const w = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/rename`, { name: 'x' }, vera);
    assert.equal(w.status, 403);
    assert.match((w.json as { detail: string }).detail, /permission denied/);
  });

  it('refuses revoked and expired tokens with 401, and never returns token hashes', async () => {
    const created = await s.call('POST', '/api/v1/tokens', { name: 'short' });
    assert.equal(created.status, 201, created.text);
    const t = created.json as { id: string; token: string };
    assert.equal((await s.call('GET', '/api/v1/me', undefined, t.token)).status, 200);
    const list = await s.call('GET', '/api/v1/tokens');
    assert.ok(!list.text.includes('hash'), 'no hashes in token listings');
    assert.ok(!list.text.includes(t.token), 'no secrets in token listings');
    assert.equal((await s.call('POST', `/api/v1/tokens/${t.id}/revoke`)).status, 201);
    const revoked = await s.call('GET', '/api/v1/me', undefined, t.token);
    assert.equal(revoked.status, 401);
    assert.match((revoked.json as { detail: string }).detail, /revoked/);

    const soon = await s.call('POST', '/api/v1/tokens', {
      name: 'expiring',
      expires_at: new Date(Date.now() + 1500).toISOString(),
    });
    assert.equal(soon.status, 201, soon.text);
    const e = soon.json as { token: string };
    assert.equal((await s.call('GET', '/api/v1/me', undefined, e.token)).status, 200);
    await new Promise((r) => setTimeout(r, 1700));
    const expired = await s.call('GET', '/api/v1/me', undefined, e.token);
    assert.equal(expired.status, 401);
    assert.match((expired.json as { detail: string }).detail, /expired/);
    assert.equal(
      (await s.call('POST', '/api/v1/tokens', { name: 'past', expires_at: '2020-01-01T00:00:00Z' })).status,
      400,
    );
    assert.equal((await s.call('POST', '/api/v1/tokens', { nam: 'typo' })).status, 400);
  });

  it('creates a workspace once for a retried Idempotency-Key, and readably at once', async () => {
    const key = { 'idempotency-key': 'create-ws-1' };
    const a = await s.call('POST', '/api/v1/workspaces', { name: 'Analytics' }, undefined, key);
    assert.equal(a.status, 201, a.text);
    const b = await s.call('POST', '/api/v1/workspaces', { name: 'Analytics' }, undefined, key);
    assert.equal(b.status, 201, b.text);
    const id = (a.json as { id: string }).id;
    assert.equal((b.json as { id: string }).id, id);
    assert.equal((await s.call('GET', `/api/v1/workspaces/${id}`)).status, 200);
    const mine = (await s.call('GET', '/api/v1/workspaces')).json as { name: string }[];
    assert.equal(mine.filter((w) => w.name === 'Analytics').length, 1);
    const noKey = await s.call('POST', '/api/v1/workspaces', { name: 'Other' });
    assert.equal(noKey.status, 201, noKey.text);
    assert.equal((await s.call('POST', '/api/v1/workspaces', { name: '' })).status, 400);
  });
});
