import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newUser, type Json } from '../jobs/support.js';
import { startTestStack, type TestStack } from '../support/stack.js';

type Row = Record<string, unknown>;
const items = (r: { json: unknown }) => (r.json as { items: Row[] }).items;

describe('accounts: invariants under races and offboarding', () => {
  let s: TestStack;
  before(async () => {
    s = await startTestStack();
  });
  after(() => s.stop());

  const tokenFor = async (userId: string, body: Json = { name: 't' }, as?: string) => {
    const t = await s.call('POST', `/api/v1/admin/users/${userId}/tokens`, body, as);
    assert.equal(t.status, 201, t.text);
    return t.json as { id: string; token: string; expires_at: string | null; parent_id: string | null };
  };

  it('three concurrent creations of one email give one user and 409s; projections stay healthy', async () => {
    const emails = ['race@example.com', 'RACE@example.com', 'Race@Example.COM'];
    const answers = await Promise.all(
      emails.map((email) => s.call('POST', '/api/v1/admin/users', { email })),
    );
    assert.deepEqual(
      answers.map((a) => a.status).sort(),
      [201, 409, 409],
      answers.map((a) => a.text).join('\n'),
    );
    for (const a of answers.filter((x) => x.status === 409))
      assert.match((a.json as { detail: string }).detail, /already exists/);
    const winner = answers.find((a) => a.status === 201)!.json as { id: string; email: string };
    assert.equal(winner.email, 'race@example.com');
    const users = items(await s.call('GET', '/api/v1/admin/users'));
    assert.deepEqual(
      users.filter((u) => u.email === 'race@example.com').map((u) => u.id),
      [winner.id],
    );
    // A later attempt is refused too, and the read models still follow: a token is issued, works,
    // is revoked (which waits for the users projection) and stops working.
    assert.equal((await s.call('POST', '/api/v1/admin/users', { email: 'race@example.com' })).status, 409);
    const t = await tokenFor(winner.id);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 200);
    const revoked = await s.call('POST', `/api/v1/tokens/${t.id}/revoke`);
    assert.equal(revoked.status, 201, revoked.text);
    assert.equal((revoked.json as { state: string }).state, 'revoked');
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 401);
  });

  it('disables a user: their tokens stop at once; enabling restores them; nobody disables themselves', async () => {
    const u = await s.call('POST', '/api/v1/admin/users', { email: 'dora@example.com' });
    assert.equal(u.status, 201, u.text);
    const id = (u.json as { id: string }).id;
    const t = await tokenFor(id);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 200);
    const off = await s.call('POST', '/api/v1/admin/users/dora@example.com/disable', { reason: 'left' });
    assert.equal(off.status, 201, off.text);
    assert.equal((off.json as { disabled: boolean }).disabled, true);
    const denied = await s.call('GET', '/api/v1/tokens', undefined, t.token);
    assert.equal(denied.status, 401);
    assert.match((denied.json as { detail: string }).detail, /disabled/);
    assert.equal((await s.call('POST', `/api/v1/admin/users/${id}/tokens`, { name: 'x' })).status, 409);
    const listed = items(await s.call('GET', '/api/v1/admin/users')).find((x) => x.id === id)!;
    assert.equal(listed.disabled, true);
    // Not by a non-admin, not oneself.
    assert.equal((await s.call('POST', `/api/v1/admin/users/${id}/disable`, {}, t.token)).status, 401);
    const me = (await s.call('GET', '/api/v1/me')).json as { user_id: string };
    const self = await s.call('POST', `/api/v1/admin/users/${me.user_id}/disable`, {});
    assert.equal(self.status, 409, self.text);
    const on = await s.call('POST', `/api/v1/admin/users/${id}/enable`, {});
    assert.equal(on.status, 201, on.text);
    assert.equal((await s.call('GET', '/api/v1/tokens', undefined, t.token)).status, 200);
    assert.equal((await s.call('POST', '/api/v1/admin/users/nobody@example.com/disable', {})).status, 404);
  });

  it('lets an admin list and revoke any token, and no one else', async () => {
    const carl = await newUser(s, 'carl@example.com');
    const list = await s.call('GET', '/api/v1/admin/tokens?user=carl@example.com&state=active');
    assert.equal(list.status, 200, list.text);
    const carls = items(list);
    assert.ok(carls.length >= 1 && carls.every((t) => t.email === 'carl@example.com'));
    assert.ok(!list.text.includes('hash'), 'no hashes');
    const all = items(await s.call('GET', '/api/v1/admin/tokens'));
    assert.ok(all.some((t) => t.email === 'admin@runway.local'));
    assert.equal((await s.call('GET', '/api/v1/admin/tokens', undefined, carl.token)).status, 403);
    const adminToken = all.find((t) => t.email === 'admin@runway.local')!.id as string;
    assert.equal(
      (await s.call('POST', `/api/v1/admin/tokens/${adminToken}/revoke`, undefined, carl.token)).status,
      404,
      'a user cannot revoke (or see) another user’s token',
    );
    const target = carls[0]!.id as string;
    const r = await s.call('POST', `/api/v1/admin/tokens/${target}/revoke`);
    assert.equal(r.status, 201, r.text);
    assert.equal((await s.call('GET', '/api/v1/me', undefined, carl.token)).status, 401);
    const revoked = items(await s.call('GET', '/api/v1/admin/tokens?user=carl@example.com&state=revoked'));
    assert.deepEqual(
      revoked.map((t) => t.id),
      [target],
    );
  });

  it('bounds a token minted by a token by its parent expiry', async () => {
    const parentExpiry = new Date(Date.now() + 3_600_000);
    const parent = await s.call('POST', '/api/v1/tokens', {
      name: 'parent',
      expires_at: parentExpiry.toISOString(),
    });
    assert.equal(parent.status, 201, parent.text);
    const p = parent.json as { id: string; token: string; expires_at: string };
    for (const body of [{ name: 'no expiry asked' }, { name: 'later', expires_in_days: 30 }]) {
      const child = await s.call('POST', '/api/v1/tokens', body, p.token);
      assert.equal(child.status, 201, child.text);
      const c = child.json as { expires_at: string; parent_id: string };
      assert.equal(c.parent_id, p.id);
      assert.equal(Date.parse(c.expires_at), Date.parse(p.expires_at), `${body.name}: clamped to the parent`);
    }
    const sooner = new Date(Date.now() + 600_000).toISOString();
    const early = await s.call('POST', '/api/v1/tokens', { name: 'sooner', expires_at: sooner }, p.token);
    assert.equal(Date.parse((early.json as { expires_at: string }).expires_at), Date.parse(sooner));
    // Minted for another user by an admin's expiring token: bounded as well.
    const u = await s.call('POST', '/api/v1/admin/users', { email: 'erin@example.com' }, p.token);
    assert.equal(u.status, 201, u.text);
    const forErin = await tokenFor((u.json as { id: string }).id, { name: 'e' }, p.token);
    assert.equal(Date.parse(forErin.expires_at!), Date.parse(p.expires_at));
  });

  it('removes members (owners, or oneself), never the last owner; a removed member loses access', async () => {
    const ws = s.workspaceId;
    const mia = await newUser(s, 'mia@example.com', 'member');
    const max = await newUser(s, 'max@example.com', 'member');
    assert.equal((await s.call('GET', `/api/v1/workspaces/${ws}`, undefined, mia.token)).status, 200);
    // A member cannot remove another member.
    assert.equal(
      (await s.call('DELETE', `/api/v1/workspaces/${ws}/members/${max.id}`, undefined, mia.token)).status,
      403,
    );
    const removed = await s.call('DELETE', `/api/v1/workspaces/${ws}/members/mia@example.com`);
    assert.equal(removed.status, 200, removed.text);
    assert.deepEqual([(removed.json as Json).user_id, (removed.json as Json).removed], [mia.id, true]);
    assert.equal((await s.call('GET', `/api/v1/workspaces/${ws}`, undefined, mia.token)).status, 404);
    const members = (await s.call('GET', `/api/v1/workspaces/${ws}/members`)).json as Row[];
    assert.ok(!members.some((m) => m.user_id === mia.id));
    assert.equal((await s.call('DELETE', `/api/v1/workspaces/${ws}/members/${mia.id}`)).status, 404);
    // Leaving on one's own.
    const left = await s.call('DELETE', `/api/v1/workspaces/${ws}/members/${max.id}`, undefined, max.token);
    assert.equal(left.status, 200, left.text);
    // The last owner stays.
    const me = (await s.call('GET', '/api/v1/me')).json as { user_id: string };
    const last = await s.call('DELETE', `/api/v1/workspaces/${ws}/members/${me.user_id}`);
    assert.equal(last.status, 409, last.text);
    assert.match((last.json as { detail: string }).detail, /last owner/);
  });

  it('device approval: owners only, shows the client that asked, rate limited, bounded by the approver', async () => {
    const start = async () => {
      const res = await fetch(`${s.url}/auth/v1/github/device-flow/code`, {
        method: 'POST',
        headers: { 'user-agent': 'dlt-runtime/0.26.1 (test)' },
      });
      assert.equal(res.status, 201);
      return (await res.json()) as { device_code: string; user_code: string };
    };
    // A member of the admin's workspace who owns none cannot approve (or look).
    const u = await s.call('POST', '/api/v1/admin/users', {
      email: 'nora@example.com',
      workspace_id: s.workspaceId,
      role: 'member',
    });
    const nora = await tokenFor((u.json as { id: string }).id);
    const c1 = await start();
    assert.equal((await s.call('GET', `/api/v1/device/${c1.user_code}`, undefined, nora.token)).status, 403);
    assert.equal(
      (await s.call('POST', '/api/v1/device/approve', { user_code: c1.user_code }, nora.token)).status,
      403,
    );
    // An owner sees who asked, then approves with an expiring token: the JWT expires no later.
    const shown = await s.call('GET', `/api/v1/device/${c1.user_code}`);
    assert.equal(shown.status, 200, shown.text);
    const client = (shown.json as { client: { user_agent: string; ip: string; requested_at: string } })
      .client;
    assert.equal(client.user_agent, 'dlt-runtime/0.26.1 (test)');
    assert.match(client.ip, /127\.0\.0\.1/);
    assert.ok(Math.abs(Date.parse(client.requested_at) - Date.now()) < 60_000);
    const approver = await s.call('POST', '/api/v1/tokens', { name: 'approver', expires_in_days: 1 });
    const a = approver.json as { token: string; expires_at: string };
    const ok = await s.call('POST', '/api/v1/device/approve', { user_code: c1.user_code }, a.token);
    assert.equal(ok.status, 201, ok.text);
    assert.equal(
      (ok.json as { client: { user_agent: string } }).client.user_agent,
      'dlt-runtime/0.26.1 (test)',
    );
    const done = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c1.device_code },
      null,
    );
    assert.equal(done.status, 201, done.text);
    const jwt = (done.json as { jwt: string }).jwt;
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as { exp: number };
    assert.ok(claims.exp * 1000 <= Date.parse(a.expires_at), 'the login expires no later than its approver');
    // Rate limited per approving user (10 a minute; this test used 2 of the admin's so far).
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++)
      statuses.push((await s.call('POST', '/api/v1/device/approve', { user_code: 'BBBB-CCCC' })).status);
    assert.ok(statuses.includes(429), statuses.join(','));
    assert.ok(
      statuses.slice(0, 7).every((x) => x === 404),
      statuses.join(','),
    );
  });
});
