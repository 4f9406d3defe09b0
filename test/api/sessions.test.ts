import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { after, before, describe, it } from 'node:test';
import { startTestStack, type TestStack } from '../support/stack.js';

type Json = Record<string, unknown>;
const IDLE_SECONDS = 6;

/** A browser's view of Runway: the cookies it was given, sent back on every request. */
class Browser {
  readonly cookies = new Map<string, string>();
  /** Set-Cookie lines of the last response. */
  lastSetCookie: string[] = [];
  constructor(
    private readonly base: string,
    private readonly ua = 'Mozilla/5.0 (test browser)',
  ) {}

  get csrf(): string {
    return this.cookies.get('runway_csrf') ?? '';
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
    opts: { csrf?: string | null; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; json: Json; text: string; headers: Headers }> {
    const h: Record<string, string> = { 'user-agent': this.ua, ...opts.headers };
    if (this.cookies.size > 0)
      h.cookie = [...this.cookies].map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('; ');
    // Like the SPA: unsafe requests echo the CSRF cookie unless the test says otherwise.
    const csrf = opts.csrf === undefined ? this.csrf : opts.csrf;
    if (csrf !== null && !['GET', 'HEAD'].includes(method)) h['x-csrf-token'] = csrf;
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(`${this.base}${path}`, {
      method,
      headers: h,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: 'manual',
    });
    this.lastSetCookie = res.headers.getSetCookie();
    for (const line of this.lastSetCookie) {
      const [pair, ...attrs] = line.split(';').map((x) => x.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const value = decodeURIComponent(pair!.slice(eq + 1));
      if (attrs.some((a) => /^max-age=0$/i.test(a))) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await res.text();
    let json: Json = {};
    try {
      json = JSON.parse(text) as Json;
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text, headers: res.headers };
  }

  async signIn(email: string, password: string) {
    const r = await this.call('POST', '/auth/session', { email, password });
    assert.equal(r.status, 200, r.text);
    return r;
  }
}

describe('dashboard sign-in: password sessions, CSRF, expiry, sessions, passwords, roles', () => {
  let s: TestStack;
  let annId: string;
  const ANN = 'ann@example.com';
  const ANN_PW = 'correct horse battery';
  const ADMIN_PW = 'admin password 1';
  before(async () => {
    s = await startTestStack({ RUNWAY_SESSION_IDLE: `${IDLE_SECONDS}s`, RUNWAY_SESSION_MAX: '1h' });
    // A weak password is refused before anything is stored.
    const weak = await s.call('POST', '/api/v1/admin/users', { email: ANN, password: 'short' });
    assert.equal(weak.status, 400, weak.text);
    assert.match((weak.json as Json).detail as string, /at least 10 characters/);
    assert.equal((await s.call('POST', '/api/v1/admin/users', { email: ANN, password: ANN })).status, 400);
    const u = await s.call('POST', '/api/v1/admin/users', {
      email: ANN,
      name: 'Ann',
      password: ANN_PW,
      workspace_id: s.workspaceId,
      role: 'member',
    });
    assert.equal(u.status, 201, u.text);
    annId = (u.json as { id: string }).id;
    const adminPw = await s.call('POST', '/api/v1/admin/users/admin@runway.local/password', {
      password: ADMIN_PW,
    });
    assert.equal(adminPw.status, 200, adminPw.text);
  });
  after(() => s.stop());

  it('signs in with a password: HttpOnly session and readable CSRF cookies, one message for any failure', async () => {
    const providers = await new Browser(s.url).call('GET', '/auth/providers');
    assert.deepEqual(providers.json, { password: true, oidc: null });

    const b = new Browser(s.url);
    const r = await b.signIn(ANN, ANN_PW);
    assert.deepEqual((r.json as { user: Json }).user, { id: annId, email: ANN, name: 'Ann', admin: false });
    const session = b.lastSetCookie.find((c) => c.startsWith('runway_session='))!;
    const csrf = b.lastSetCookie.find((c) => c.startsWith('runway_csrf='))!;
    assert.match(session, /; HttpOnly/);
    assert.match(session, /; SameSite=Lax/);
    assert.match(session, /; Path=\//);
    assert.doesNotMatch(session, /Secure/, 'plain http on loopback: not Secure');
    assert.doesNotMatch(csrf, /HttpOnly/, 'the page reads the CSRF cookie');
    assert.equal((r.json as Json).csrf_token, b.csrf);
    assert.ok(b.cookies.get('runway_session')!.length >= 40);

    const me = await b.call('GET', '/auth/session');
    assert.equal(me.status, 200, me.text);
    const body = me.json as { user: Json; workspaces: Json[]; session: Json };
    assert.equal(body.user.email, ANN);
    assert.deepEqual(
      body.workspaces.map((w) => [w.id, w.role]),
      [[s.workspaceId, 'member']],
    );
    assert.ok(Date.parse(body.session.idle_expires_at as string) <= Date.now() + IDLE_SECONDS * 1000 + 1000);
    // The existing API works with the cookie too.
    assert.equal((await b.call('GET', `/api/v1/workspaces/${s.workspaceId}/members`)).status, 200);

    // Wrong password, unknown email and a user without a password: the same 401 and message.
    assert.equal((await s.call('POST', '/api/v1/admin/users', { email: 'nopw@example.com' })).status, 201);
    const answers = await Promise.all([
      new Browser(s.url).call('POST', '/auth/session', { email: ANN, password: 'wrong password!' }),
      new Browser(s.url).call('POST', '/auth/session', { email: 'nobody@example.com', password: 'x' }),
      new Browser(s.url).call('POST', '/auth/session', { email: 'nopw@example.com', password: 'x' }),
    ]);
    for (const a of answers) {
      assert.equal(a.status, 401, a.text);
      assert.equal(a.json.detail, 'wrong email or password');
      assert.deepEqual(a.headers.getSetCookie(), []);
    }
    assert.equal((await new Browser(s.url).call('GET', '/auth/session')).status, 401);
    assert.equal((await new Browser(s.url).call('POST', '/auth/session', { email: ANN })).status, 400);
    // A sign-in form posted from another site is refused.
    const foreign = await new Browser(s.url).call(
      'POST',
      '/auth/session',
      { email: ANN, password: ANN_PW },
      { headers: { origin: 'https://evil.example' } },
    );
    assert.equal(foreign.status, 403, foreign.text);
  });

  it('refuses cookie-authenticated writes without the CSRF header; bearer tokens need none', async () => {
    const b = new Browser(s.url);
    await b.signIn(ANN, ANN_PW);
    const none = await b.call('POST', '/api/v1/tokens', { name: 'from page' }, { csrf: null });
    assert.equal(none.status, 403, none.text);
    assert.match(none.json.detail as string, /X-CSRF-Token/);
    const wrong = await b.call('POST', '/api/v1/tokens', { name: 'from page' }, { csrf: 'forged' });
    assert.equal(wrong.status, 403, wrong.text);
    // Another session's CSRF value does not fit this session.
    const other = new Browser(s.url);
    await other.signIn(ANN, ANN_PW);
    assert.equal((await b.call('POST', '/api/v1/tokens', { name: 'x' }, { csrf: other.csrf })).status, 403);
    const ok = await b.call('POST', '/api/v1/tokens', { name: 'from page' });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.json.parent_id, null, 'a token made in the dashboard does not end with the session');
    // The token minted in the page works as a bearer without any CSRF header, cookies or not.
    const token = ok.json.token as string;
    const bearer = await s.call('POST', '/api/v1/tokens', { name: 'by bearer' }, token);
    assert.equal(bearer.status, 201, bearer.text);
    const both = await b.call(
      'POST',
      '/api/v1/tokens',
      { name: 'bearer wins' },
      { csrf: null, headers: { authorization: `Bearer ${token}` } },
    );
    assert.equal(both.status, 201, both.text);
  });

  it('lists and revokes sessions; signing out revokes the session server-side', async () => {
    const laptop = new Browser(s.url, 'Laptop/1.0');
    const phone = new Browser(s.url, 'Phone/2.0');
    await laptop.signIn(ANN, ANN_PW);
    await phone.signIn(ANN, ANN_PW);
    const list = await laptop.call('GET', '/api/v1/me/sessions');
    assert.equal(list.status, 200, list.text);
    const items = (list.json as { items: Json[] }).items;
    const mine = items.find((i) => i.current === true)!;
    assert.equal(mine.user_agent, 'Laptop/1.0');
    assert.equal(mine.method, 'password');
    assert.match(mine.ip as string, /127\.0\.0\.1/);
    const phoneRow = items.find((i) => i.user_agent === 'Phone/2.0')!;
    assert.equal(phoneRow.current, false);
    assert.ok(!list.text.includes(phone.cookies.get('runway_session')!), 'no cookie values listed');
    // Another user cannot revoke Ann's session.
    assert.equal((await s.call('DELETE', `/api/v1/me/sessions/${phoneRow.id as string}`)).status, 404);
    assert.equal((await phone.call('GET', '/auth/session')).status, 200);
    const revoked = await laptop.call('DELETE', `/api/v1/me/sessions/${phoneRow.id as string}`);
    assert.equal(revoked.status, 200, revoked.text);
    const after = await phone.call('GET', '/auth/session');
    assert.equal(after.status, 401);
    assert.match(after.json.detail as string, /signed out/);

    // Sign-out needs the CSRF header, then the session is gone even for a copy of the cookie.
    const copied = laptop.cookies.get('runway_session')!;
    assert.equal((await laptop.call('DELETE', '/auth/session', undefined, { csrf: null })).status, 403);
    const out = await laptop.call('DELETE', '/auth/session');
    assert.equal(out.status, 200, out.text);
    assert.ok(laptop.lastSetCookie.some((c) => /^runway_session=;.*Max-Age=0/.test(c)));
    assert.equal(laptop.cookies.size, 0, 'cookies cleared');
    const replay = await fetch(`${s.url}/auth/session`, { headers: { cookie: `runway_session=${copied}` } });
    assert.equal(replay.status, 401);
  });

  it(`expires a session unused for ${IDLE_SECONDS} s, while use keeps another alive`, async () => {
    const idle = new Browser(s.url);
    const busy = new Browser(s.url);
    await idle.signIn(ANN, ANN_PW);
    await busy.signIn(ANN, ANN_PW);
    const until = Date.now() + (IDLE_SECONDS + 1.5) * 1000;
    while (Date.now() < until) {
      assert.equal((await busy.call('GET', '/auth/session')).status, 200, 'a used session stays');
      await new Promise((r) => setTimeout(r, 500));
    }
    const expired = await idle.call('GET', '/auth/session');
    assert.equal(expired.status, 401);
    assert.match(expired.json.detail as string, /session expired/);
  });

  it('rate limits failed sign-ins per email and address (429), without locking out other emails', async () => {
    const u = await s.call('POST', '/api/v1/admin/users', {
      email: 'rita@example.com',
      password: 'rita password 1',
    });
    assert.equal(u.status, 201, u.text);
    const b = new Browser(s.url);
    for (let i = 0; i < 5; i++)
      assert.equal(
        (await b.call('POST', '/auth/session', { email: 'rita@example.com', password: `no${i}` })).status,
        401,
      );
    const limited = await b.call('POST', '/auth/session', {
      email: 'rita@example.com',
      password: 'rita password 1',
    });
    assert.equal(limited.status, 429, limited.text);
    assert.ok(Number(limited.headers.get('retry-after')) > 0, 'Retry-After header');
    assert.ok(((limited.json.extra as Json).retry_after as number) > 0);
    assert.equal(
      (await new Browser(s.url).call('POST', '/auth/session', { email: ANN, password: ANN_PW })).status,
      200,
    );
  });

  it('changes passwords: strength rule, current password checked, other sessions end; admin set-password', async () => {
    const u = await s.call('POST', '/api/v1/admin/users', {
      email: 'paul@example.com',
      password: 'paul password 1',
    });
    assert.equal(u.status, 201, u.text);
    const a = new Browser(s.url);
    const other = new Browser(s.url);
    await a.signIn('paul@example.com', 'paul password 1');
    await other.signIn('paul@example.com', 'paul password 1');
    const weak = await a.call('POST', '/api/v1/me/password', { current: 'paul password 1', new: 'short' });
    assert.equal(weak.status, 400, weak.text);
    const same = await a.call('POST', '/api/v1/me/password', {
      current: 'paul password 1',
      new: 'PAUL@example.com',
    });
    assert.equal(same.status, 400, same.text);
    const wrong = await a.call('POST', '/api/v1/me/password', {
      current: 'nope nope nope',
      new: 'paul password 2',
    });
    assert.equal(wrong.status, 403, wrong.text);
    const ok = await a.call('POST', '/api/v1/me/password', {
      current: 'paul password 1',
      new: 'paul password 2',
    });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await a.call('GET', '/auth/session')).status, 200, 'the current session stays');
    assert.equal((await other.call('GET', '/auth/session')).status, 401, 'the other session ended');
    assert.equal(
      (
        await new Browser(s.url).call('POST', '/auth/session', {
          email: 'paul@example.com',
          password: 'paul password 1',
        })
      ).status,
      401,
    );
    await new Browser(s.url).signIn('paul@example.com', 'paul password 2');
    // A user without a local password (OIDC only) is told so.
    const nopw = await s.call('POST', '/api/v1/admin/users/nopw@example.com/tokens', { name: 't' });
    const admin = await s.call(
      'POST',
      '/api/v1/me/password',
      { current: 'whatever 123', new: 'nopw password 1' },
      (nopw.json as { token: string }).token,
    );
    assert.equal(admin.status, 409, admin.text);
    // An admin sets a password; a non-admin cannot.
    const set = await s.call('POST', '/api/v1/admin/users/paul@example.com/password', {
      password: 'paul password 3',
    });
    assert.equal(set.status, 200, set.text);
    assert.equal((await a.call('GET', '/auth/session')).status, 401, "paul's sessions ended");
    // Signing in again in the same browser replaces its session; disabling the user ends them all.
    const again = new Browser(s.url);
    await again.signIn('paul@example.com', 'paul password 3');
    const first = again.cookies.get('runway_session')!;
    await again.signIn('paul@example.com', 'paul password 3');
    const replaced = await fetch(`${s.url}/auth/session`, { headers: { cookie: `runway_session=${first}` } });
    assert.equal(replaced.status, 401, 'the previous session of this browser ended');
    assert.equal((await again.call('GET', '/auth/session')).status, 200);
    assert.equal((await s.call('POST', '/api/v1/admin/users/paul@example.com/disable', {})).status, 201);
    const disabled = await again.call('GET', '/auth/session');
    assert.equal(disabled.status, 401);
    assert.match(disabled.json.detail as string, /disabled/);
    const byAnn = new Browser(s.url);
    await byAnn.signIn(ANN, ANN_PW);
    assert.equal(
      (
        await byAnn.call('POST', '/api/v1/admin/users/paul@example.com/password', {
          password: 'hijacked pw 1',
        })
      ).status,
      403,
    );
  });

  it('changes member roles (owners only; the last owner stays) and refuses every write route to a viewer', async () => {
    const ws = s.workspaceId;
    const v = await s.call('POST', '/api/v1/admin/users', {
      email: 'vic@example.com',
      password: 'vic password 1',
      workspace_id: ws,
      role: 'member',
    });
    assert.equal(v.status, 201, v.text);
    const owner = new Browser(s.url);
    await owner.signIn('admin@runway.local', ADMIN_PW);
    const demote = await owner.call('PATCH', `/api/v1/workspaces/${ws}/members/vic@example.com`, {
      role: 'viewer',
    });
    assert.equal(demote.status, 200, demote.text);
    assert.equal(demote.json.role, 'viewer');
    const members = await owner.call('GET', `/api/v1/workspaces/${ws}/members`);
    assert.equal(
      (members.json as unknown as Json[]).find((m) => m.email === 'vic@example.com')!.role,
      'viewer',
    );
    assert.equal(
      (await owner.call('PATCH', `/api/v1/workspaces/${ws}/members/vic@example.com`, { role: 'boss' }))
        .status,
      400,
    );
    assert.equal(
      (await owner.call('PATCH', `/api/v1/workspaces/${ws}/members/nobody@example.com`, { role: 'member' }))
        .status,
      404,
    );
    // The last owner can be neither demoted nor removed.
    const last = await owner.call('PATCH', `/api/v1/workspaces/${ws}/members/admin@runway.local`, {
      role: 'member',
    });
    assert.equal(last.status, 409, last.text);
    assert.match(last.json.detail as string, /last owner/);
    assert.equal(
      (await owner.call('DELETE', `/api/v1/workspaces/${ws}/members/admin@runway.local`)).status,
      409,
    );
    // A member (not owner) cannot change roles.
    const ann = new Browser(s.url);
    await ann.signIn(ANN, ANN_PW);
    assert.equal(
      (await ann.call('PATCH', `/api/v1/workspaces/${ws}/members/vic@example.com`, { role: 'owner' })).status,
      403,
    );

    // Every unsafe route of a workspace, as the OpenAPI document lists them, refuses the viewer.
    const vic = new Browser(s.url);
    await vic.signIn('vic@example.com', 'vic password 1');
    const doc = (await s.call('GET', '/api/openapi.json', undefined, null)).json as {
      paths: Record<string, Record<string, unknown>>;
    };
    const tried: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/api/v1/workspaces/{')) continue;
      for (const method of Object.keys(ops).map((m) => m.toUpperCase())) {
        if (!['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)) continue;
        const concrete = path.replace(/\{[^}]+\}/, ws).replace(/\{[^}]+\}/g, 'x');
        const r = await vic.call(method, concrete, {});
        tried.push(`${method} ${path} → ${r.status}`);
        assert.equal(r.status, 403, `${method} ${concrete}: ${r.text}`);
      }
    }
    assert.ok(tried.length >= 10, tried.join('\n'));
    // …while reading works.
    assert.equal((await vic.call('GET', `/api/v1/workspaces/${ws}`)).status, 200);
    const role = ((await vic.call('GET', '/auth/session')).json as { workspaces: Json[] }).workspaces;
    assert.deepEqual(
      role.map((w) => w.role),
      ['viewer'],
    );
  });

  it('approves and denies CLI device logins from a session with CSRF; the verification URL is the page', async () => {
    const start = async () => {
      const r = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null, {
        'user-agent': 'dlt-runtime-cli/test',
      });
      assert.equal(r.status, 201, r.text);
      return r.json as { device_code: string; user_code: string; verification_uri: string };
    };
    const c = await start();
    assert.equal(c.verification_uri, `${s.url}/device?code=${c.user_code}`);
    // Ann owns no workspace: she may not approve logins (docs/accounts.md); an owner may.
    const member = new Browser(s.url);
    await member.signIn(ANN, ANN_PW);
    assert.equal((await member.call('GET', `/api/v1/device/${c.user_code}`)).status, 403);
    const owner = new Browser(s.url);
    await owner.signIn('admin@runway.local', ADMIN_PW);
    const shown = await owner.call('GET', `/api/v1/device/${c.user_code}`);
    assert.equal(shown.status, 200, shown.text);
    assert.equal((shown.json.client as Json).user_agent, 'dlt-runtime-cli/test');
    assert.equal(shown.json.status, 'pending');
    const forged = await owner.call(
      'POST',
      '/api/v1/device/approve',
      { user_code: c.user_code },
      { csrf: null },
    );
    assert.equal(forged.status, 403);
    const approved = await owner.call('POST', '/api/v1/device/approve', { user_code: c.user_code });
    assert.equal(approved.status, 201, approved.text);
    const poll = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(poll.status, 201, poll.text);
    assert.equal((poll.json as Json).email, 'admin@runway.local', 'the CLI is logged in as the approver');

    const d = await start();
    const denied = await owner.call('POST', '/api/v1/device/deny', { user_code: d.user_code });
    assert.equal(denied.status, 200, denied.text);
    assert.equal(denied.json.status, 'denied');
    const refused = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: d.device_code },
      null,
    );
    assert.equal(refused.status, 400);
    assert.match((refused.json as Json).detail as string, /denied/);
    assert.equal(
      (await owner.call('POST', '/api/v1/device/approve', { user_code: d.user_code })).status,
      404,
    );
  });

  it('offers the account use cases over gRPC through the same service (sign-in itself stays REST)', async () => {
    type Unary = (
      req: object,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    const pkg = loadRunwayPackage();
    const client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Unary>;
    const call = (method: string, req: object, token: string = s.adminToken) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        client[method]!(req, md, (err, res) => resolve({ err, res }));
      });
    try {
      const u = await s.call('POST', '/api/v1/admin/users', {
        email: 'gina@example.com',
        workspace_id: s.workspaceId,
        role: 'member',
      });
      assert.equal(u.status, 201, u.text);
      const weak = await call('SetUserPassword', { user: 'gina@example.com', password: 'short' });
      assert.equal(weak.err?.code, grpc.status.INVALID_ARGUMENT);
      const set = await call('SetUserPassword', { user: 'gina@example.com', password: 'gina password 1' });
      assert.equal(set.err, null, set.err?.message);
      assert.equal(set.res.password_set, true);
      const b = new Browser(s.url, 'Gina/1.0');
      await b.signIn('gina@example.com', 'gina password 1');
      const tok = await s.call('POST', `/api/v1/admin/users/gina@example.com/tokens`, { name: 'g' });
      const gina = (tok.json as { token: string }).token;
      const list = await call('ListMySessions', {}, gina);
      assert.equal(list.err, null, list.err?.message);
      const items = list.res.items as Json[];
      assert.deepEqual(
        items.map((i) => [i.user_agent, i.current]),
        [['Gina/1.0', false]],
      );
      const changed = await call(
        'ChangeMyPassword',
        { current: 'gina password 1', new: 'gina password 2' },
        gina,
      );
      assert.equal(changed.err, null, changed.err?.message);
      assert.equal((await b.call('GET', '/auth/session')).status, 401, 'her sessions ended');
      await b.signIn('gina@example.com', 'gina password 2');
      const id = ((await b.call('GET', '/auth/session')).json.session as Json).id as string;
      const revoked = await call('RevokeMySession', { id }, gina);
      assert.equal(revoked.err, null, revoked.err?.message);
      assert.equal((await b.call('GET', '/auth/session')).status, 401);
      const role = await call('ChangeMemberRole', {
        workspace_id: s.workspaceId,
        user: 'gina@example.com',
        role: 'viewer',
      });
      assert.equal(role.err, null, role.err?.message);
      assert.equal(role.res.role, 'viewer');
      const byGina = await call(
        'ChangeMemberRole',
        { workspace_id: s.workspaceId, user: 'gina@example.com', role: 'owner' },
        gina,
      );
      assert.equal(byGina.err?.code, grpc.status.PERMISSION_DENIED);
      const code = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null);
      const denied = await call('DenyDeviceLogin', { user_code: (code.json as Json).user_code as string });
      assert.equal(denied.err, null, denied.err?.message);
      assert.equal(denied.res.denied, true);
    } finally {
      client.close();
    }
  });
});
