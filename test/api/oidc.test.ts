import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Provider from 'oidc-provider';
import { freePort } from '#libs/testing';
import { startTestStack, type TestStack } from '../support/stack.js';

const CLIENT_ID = 'runway-dashboard';
const CLIENT_SECRET = 'a-test-client-secret-of-enough-length';

/** A browser across two sites: cookies per host, redirects followed by hand (each hop is checked). */
class Browser {
  private readonly jars = new Map<string, Map<string, string>>();

  private jar(url: URL): Map<string, string> {
    let j = this.jars.get(url.host);
    if (!j) this.jars.set(url.host, (j = new Map()));
    return j;
  }

  cookie(base: string, name: string): string | undefined {
    return this.jar(new URL(base)).get(name);
  }

  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const u = new URL(url);
    const jar = this.jar(u);
    const headers: Record<string, string> = { 'user-agent': 'Mozilla/5.0 (oidc test)' };
    if (jar.size > 0) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(u, { method: init.method ?? 'GET', headers, body, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((x) => x.trim());
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq);
      const gone =
        attrs.some((a) => /^max-age=0$/i.test(a)) ||
        attrs.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) < Date.now());
      if (gone) jar.delete(name);
      else jar.set(name, pair!.slice(eq + 1));
    }
    const location = res.headers.get('location');
    return {
      status: res.status,
      location: location ? new URL(location, u).href : null,
      text: await res.text(),
    };
  }

  /** GETs `url` and follows redirects while they stay on `until`'s side of the flow. */
  async follow(url: string, stopAt: (u: string) => boolean) {
    let r = await this.request(url);
    let hops = 0;
    while (r.location && !stopAt(r.location) && hops++ < 10) r = await this.request(r.location);
    return r;
  }
}

const formAction = (html: string) => {
  const m = /<form[^>]*action="([^"]+)"/.exec(html);
  assert.ok(m, `a form in:\n${html.slice(0, 500)}`);
  return m[1]!.replace(/&amp;/g, '&');
};

describe('dashboard sign-in with OpenID Connect (a real provider: oidc-provider)', () => {
  let s: TestStack;
  /** A second Runway on the same provider, with RUNWAY_OIDC_AUTO_CREATE=on. */
  let auto: TestStack;
  let op: Server;
  let issuer: string;

  before(async () => {
    const opPort = await freePort();
    issuer = `http://127.0.0.1:${opPort}`;
    const oidcEnv = {
      RUNWAY_OIDC_ISSUER: issuer,
      RUNWAY_OIDC_CLIENT_ID: CLIENT_ID,
      RUNWAY_OIDC_CLIENT_SECRET: CLIENT_SECRET,
      RUNWAY_OIDC_NAME: 'Acme SSO',
    };
    [s, auto] = await Promise.all([
      startTestStack(oidcEnv),
      startTestStack({ ...oidcEnv, RUNWAY_OIDC_AUTO_CREATE: 'on' }),
    ]);
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENT_ID,
          client_secret: CLIENT_SECRET,
          redirect_uris: [`${s.url}/auth/oidc/callback`, `${auto.url}/auth/oidc/callback`],
          grant_types: ['authorization_code'],
          response_types: ['code'],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
      // The login name typed into the provider's form is the account; its email is <login>@example.com.
      findAccount: (_ctx, sub) => ({
        accountId: sub,
        claims: () => ({ sub, email: `${sub}@example.com`, email_verified: true, name: `${sub} (sso)` }),
      }),
      claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
      pkce: { required: () => true },
    });
    op = provider.listen(opPort);
    const u = await s.call('POST', '/api/v1/admin/users', {
      email: 'olga@example.com',
      workspace_id: s.workspaceId,
      role: 'member',
    });
    assert.equal(u.status, 201, u.text);
  });
  after(async () => {
    await new Promise((r) => op.close(r));
    await Promise.all([s.stop(), auto.stop()]);
  });

  /** From Runway's start route through the provider's login and consent forms back to Runway. */
  async function signInAt(b: Browser, login: string, returnTo: string, at: TestStack = s) {
    const s = at;
    const start = await b.request(`${s.url}/auth/oidc/start?return_to=${encodeURIComponent(returnTo)}`);
    assert.equal(start.status, 302, start.text);
    const authz = new URL(start.location!);
    assert.equal(authz.origin, issuer);
    assert.equal(authz.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(authz.searchParams.get('state') && authz.searchParams.get('nonce'));
    assert.equal(authz.searchParams.get('redirect_uri'), `${s.url}/auth/oidc/callback`);
    const toRunway = (u: string) => u.startsWith(s.url);
    let page = await b.follow(start.location!, toRunway);
    // The provider's login form, then its consent form, each redirecting through the provider.
    for (let step = 0; step < 4 && !page.location; step++) {
      const action = new URL(formAction(page.text), issuer).href;
      const form: Record<string, string> = page.text.includes('name="login"')
        ? { prompt: 'login', login, password: 'anything' }
        : { prompt: 'consent' };
      page = await b.request(action, { method: 'POST', form });
      if (page.location && !toRunway(page.location)) page = await b.follow(page.location, toRunway);
    }
    assert.ok(page.location && toRunway(page.location), `back at Runway: ${page.status} ${page.text}`);
    return b.request(page.location);
  }

  it('advertises the provider, signs a known user in by email and returns to the page asked for', async () => {
    const providers = await s.call('GET', '/auth/providers', undefined, null);
    assert.deepEqual(providers.json, { password: true, oidc: { name: 'Acme SSO' } });
    const b = new Browser();
    const done = await signInAt(b, 'olga', '/jobs?status=failed');
    assert.equal(done.status, 302, done.text);
    assert.equal(done.location, `${s.url}/jobs?status=failed`);
    const cookie = b.cookie(s.url, 'runway_session');
    assert.ok(cookie, 'session cookie set');
    const me = await b.request(`${s.url}/auth/session`);
    assert.equal(me.status, 200, me.text);
    const body = JSON.parse(me.text) as { user: { email: string }; workspaces: { role: string }[] };
    assert.equal(body.user.email, 'olga@example.com');
    assert.deepEqual(
      body.workspaces.map((w) => w.role),
      ['member'],
    );
    const sessions = await b.request(`${s.url}/api/v1/me/sessions`);
    assert.match(sessions.text, /"method":"oidc"/);
  });

  it('refuses an unknown email (auto-create off) and off-site return paths, in words', async () => {
    const stranger = await signInAt(new Browser(), 'stranger', '/');
    assert.equal(stranger.status, 403);
    assert.match(stranger.text, /no Runway account for stranger@example\.com/);
    const b = new Browser();
    const done = await signInAt(b, 'olga', '//evil.example/phish');
    assert.equal(done.status, 302, done.text);
    assert.equal(done.location, `${s.url}/`, 'only same-origin paths');
  });

  it('refuses a callback whose state does not match the flow it started', async () => {
    const b = new Browser();
    const start = await b.request(`${s.url}/auth/oidc/start?return_to=/`);
    assert.equal(start.status, 302);
    const state = new URL(start.location!).searchParams.get('state')!;
    const forged = await b.request(`${s.url}/auth/oidc/callback?code=abc&state=${state}x`);
    assert.equal(forged.status, 400, forged.text);
    assert.match(forged.text, /could not be verified/);
    const noFlow = await new Browser().request(`${s.url}/auth/oidc/callback?code=abc&state=${state}`);
    assert.equal(noFlow.status, 400);
    assert.match(noFlow.text, /expired or was started in another browser/);
    assert.equal(b.cookie(s.url, 'runway_session'), undefined);
  });

  it('creates the user on a first sign-in when RUNWAY_OIDC_AUTO_CREATE=on', async () => {
    const b = new Browser();
    const done = await signInAt(b, 'newbie', '/', auto);
    assert.equal(done.status, 302, done.text);
    const me = await b.request(`${auto.url}/auth/session`);
    assert.equal(me.status, 200, me.text);
    const body = JSON.parse(me.text) as { user: { email: string; name: string; admin: boolean } };
    assert.deepEqual(body.user.email, 'newbie@example.com');
    assert.equal(body.user.name, 'newbie (sso)');
    assert.equal(body.user.admin, false);
    const users = await auto.call('GET', '/api/v1/admin/users');
    assert.match(users.text, /newbie@example\.com/);
  });
});
