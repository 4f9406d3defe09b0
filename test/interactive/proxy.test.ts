import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { loadRunwayPackage } from '../../services/gateway/src/grpc/grpc-server.js';
import { newUser } from '../jobs/support.js';
import { runRunwayCli } from '../support/cli.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const dltBin = join(root, '.venv', 'bin', 'dlt');
type Unary = (
  req: object,
  md: grpc.Metadata,
  cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
) => void;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

/** A WebSocket that records what it receives and when it closed. */
function openSocket(url: string, headers: Record<string, string> = {}) {
  const received: string[] = [];
  const ws = new WebSocket(url, { headers } as unknown as string[]);
  let closed = false;
  const opened = new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`WebSocket ${url} failed`));
  });
  ws.onmessage = (e) => received.push(String(e.data));
  ws.onclose = () => (closed = true);
  return {
    ws,
    opened,
    received,
    isClosed: () => closed,
    async roundTrip(text: string): Promise<string> {
      const before = received.length;
      ws.send(text);
      return until(`an answer to ${text}`, async () => received[before], 15_000);
    },
  };
}

describe('interactive apps through the gateway proxy (real marimo, real Chromium)', () => {
  let s: TestStack;
  let dir: string;
  let config: string;
  let browser: Browser | undefined;
  let notebook: { id: string; url: string };
  let echo: { id: string; url: string };
  const ws = () => `/api/v1/workspaces/${s.workspaceId}`;

  before(async () => {
    s = await startTestStack({ RUNWAY_INTERACTIVE_IDLE: '8s' });
    dir = mkdtempSync(join(tmpdir(), 'runway-interactive-'));
    config = mkdtempSync(join(tmpdir(), 'runway-interactive-cfg-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace'), dir, { recursive: true });
    cpSync(join(root, 'test/fixtures/interactive'), dir, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(config, { recursive: true, force: true });
    await s.stop();
  });

  /**
   * A WebSocket to an app once it answers. An app being stopped for idleness still shows as
   * running for a moment after its endpoint closed: then the app is woken and the socket retried.
   */
  const socketToApp = async (prefix: string, url: string, token: string | null) => {
    for (let attempt = 1; ; attempt++) {
      await whenReady(prefix, token);
      const sock = openSocket(url, token ? { authorization: `Bearer ${token}` } : {});
      try {
        await sock.opened;
        return sock;
      } catch (err) {
        if (attempt >= 3) throw err;
        await sleep(1000);
      }
    }
  };

  /** A GET of a path exactly as given (fetch would normalize `..` away). */
  const rawGet = (path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> =>
    new Promise((resolve, reject) =>
      httpRequest({ host: '127.0.0.1', port: new URL(s.url).port, path, headers }, (res) => {
        res.resume();
        resolve(res);
      })
        .on('error', reject)
        .end(),
    );

  /** The app's status as the starting page polls it, until it answers (waking it if stopped). */
  const whenReady = (prefix: string, token: string | null = s.adminToken) =>
    until(
      `${prefix} to answer`,
      async () => {
        const r = await s.call('GET', `${prefix}.runway/status`, undefined, token);
        assert.equal(r.status, 200, r.text);
        const st = r.json as { ready: boolean; failed: boolean; message: string | null };
        assert.ok(!st.failed, `the app failed: ${st.message}`);
        return st.ready ? st : undefined;
      },
      90_000,
    );

  it('runway serve deploys, runs the notebook and prints its URL once it answers', async () => {
    const r = await runRunwayCli(s, dir, config, 'serve', 'notebook.py');
    assert.equal(r.code, 0, r.out + r.err);
    const url = r.out.trim();
    const job = await s.call('GET', `${ws()}/scripts/notebook.py`);
    const body = job.json as { id: string; script_url: string; script_type: string };
    assert.equal(body.script_type, 'interactive');
    assert.equal(url, `${s.url}/i/${body.id}/`);
    assert.equal(body.script_url, url);
    notebook = { id: body.id, url };
    const page = await fetch(url, {
      headers: { authorization: `Bearer ${s.adminToken}`, accept: 'text/html' },
    });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /marimo/i);
  });

  it('a plain Python app gets HTTP and WebSocket through /i/<job>/, without Runway credentials', async () => {
    const r = await runRunwayCli(s, dir, config, '--json', 'serve', 'echo_app.py');
    assert.equal(r.code, 0, r.out + r.err);
    const out = JSON.parse(r.out) as { job_id: string; url: string };
    echo = { id: out.job_id, url: out.url };
    const res = await fetch(`${echo.url}some/path?x=1`, {
      headers: { authorization: `Bearer ${s.adminToken}`, cookie: 'runway_session=secret; theirs=1' },
    });
    assert.equal(res.status, 200);
    const seen = (await res.json()) as { path: string; query: string; headers: Record<string, string> };
    assert.equal(seen.path, '/some/path');
    assert.equal(seen.query, 'x=1');
    assert.equal(seen.headers.authorization, undefined, 'no Authorization header reaches the app');
    assert.equal(seen.headers.cookie, 'theirs=1', "Runway's cookies do not reach the app");
    assert.equal(seen.headers['x-runway-app-key'], undefined, 'the worker keeps the app key');

    const sock = await socketToApp(`/i/${echo.id}/`, `${echo.url.replace(/^http/, 'ws')}ws`, s.adminToken);
    assert.equal(await sock.roundTrip('hello'), 'echo:hello');
    assert.equal(await sock.roundTrip('again'), 'echo:again');
    sock.ws.close();
  });

  it('streams a large, slow response through without buffering it', async () => {
    const auth = { authorization: `Bearer ${s.adminToken}` };
    const res: IncomingMessage = await new Promise((resolve, reject) =>
      httpRequest(`${echo.url}big?blocks=32`, { headers: auth }, resolve).on('error', reject).end(),
    );
    assert.equal(res.statusCode, 200);
    const hash = createHash('sha256');
    let bytes = 0;
    let released = false;
    await new Promise<void>((resolve, reject) => {
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        // The app sends its first MiB and waits for /release: this data can only come unbuffered.
        if (!released && bytes >= 1024 * 1024) {
          released = true;
          void fetch(`${echo.url}release`, { headers: auth }).catch(reject);
        }
      });
      res.on('end', resolve);
      res.on('error', reject);
    });
    assert.equal(bytes, 32 * 1024 * 1024);
    const want = createHash('sha256');
    for (let i = 0; i < 32; i++)
      want.update(Buffer.alloc(1024 * 1024, createHash('sha256').update(String(i)).digest()));
    assert.equal(hash.digest('hex'), want.digest('hex'));
  });

  it('refuses a non-member (404), redirects a logged-out browser to sign in, 401 for API clients', async () => {
    const other = await newUser(s, 'outsider@example.com');
    const r = await s.call('GET', `/i/${notebook.id}/`, undefined, other.token);
    assert.equal(r.status, 404, r.text);
    const ws404 = openSocket(`${echo.url.replace(/^http/, 'ws')}ws`, {
      authorization: `Bearer ${other.token}`,
    });
    await assert.rejects(ws404.opened);

    const browserLike = await fetch(`${s.url}/i/${notebook.id}/?a=b`, {
      headers: { accept: 'text/html,application/xhtml+xml' },
      redirect: 'manual',
    });
    assert.equal(browserLike.status, 302);
    assert.equal(
      browserLike.headers.get('location'),
      `/signin?next=${encodeURIComponent(`/i/${notebook.id}/?a=b`)}`,
    );
    const api = await s.call('GET', `/i/${notebook.id}/`, undefined, null);
    assert.equal(api.status, 401, api.text);
    const bad = await s.call('GET', `/i/${notebook.id}/`, undefined, 'rwy_nope_nope');
    assert.equal(bad.status, 401, bad.text);
    // Climbing out of the app is refused before anything is forwarded.
    // (fetch would normalize the path: a raw request sends it as it is.)
    const climb = await rawGet(`/i/${notebook.id}/%2e%2e/%2e%2e/api/v1/me`, {
      authorization: `Bearer ${s.adminToken}`,
    });
    assert.equal(climb.statusCode, 400);
  });

  it('renders the notebook and a cell output in headless Chromium: signed in, and logged out through a public link', async () => {
    browser = await launchChromium();
    // A member signed in to the dashboard (session cookie) opens /i/<job>/.
    const ann = await s.call('POST', '/api/v1/admin/users', {
      email: 'ann@example.com',
      password: 'ann-password-123',
      workspace_id: s.workspaceId,
      role: 'member',
    });
    assert.equal(ann.status, 201, ann.text);
    const signIn = await fetch(`${s.url}/auth/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'ann@example.com', password: 'ann-password-123' }),
    });
    assert.equal(signIn.status, 200, await signIn.text());
    const session = /runway_session=([^;]+)/.exec(signIn.headers.getSetCookie().join('\n'))?.[1];
    assert.ok(session);
    // A logged-out visitor is sent to the sign-in page with the way back.
    const anon = await browser.newContext();
    const ap = await anon.newPage();
    await ap.goto(notebook.url);
    assert.equal(new URL(ap.url()).pathname, '/signin');
    assert.equal(new URL(ap.url()).searchParams.get('next'), `/i/${notebook.id}/`);

    const made = await s.call('POST', `${ws()}/public-links`, { job: 'notebook.py' });
    assert.equal(made.status, 201, made.text);
    const link = (made.json as { public_url: string }).public_url;
    assert.match(link, new RegExp(`^${s.url}/p/[A-Za-z0-9_-]{43}/$`));
    const again = await s.call('POST', `${ws()}/public-links`, { job: 'notebook.py' });
    assert.equal(again.status, 409, 'enable on an enabled link says so');
    const job = (await s.call('GET', `${ws()}/scripts/notebook.py`)).json as Record<string, unknown>;
    assert.equal(job.public_link_enabled, true);
    assert.equal(job.public_url, null, 'the link is never shown again');
    assert.ok(!JSON.stringify(job).includes(link.split('/p/')[1]!.slice(0, 43)));

    // The member (session cookie) through /i/, the logged-out visitor through the public link, at once.
    const member = await browser.newContext();
    await member.addCookies([{ name: 'runway_session', value: session, url: s.url }]);
    const mp = await member.newPage();
    await Promise.all(
      [
        { page: mp, url: notebook.url },
        { page: ap, url: link },
      ].map(async ({ page, url }) => {
        await page.goto(url);
        await page.getByText('The answer is').first().waitFor({ timeout: 90_000 });
        assert.match(await page.content(), /The answer is <strong>42<\/strong>/, url);
      }),
    );
    await member.close();
    await anon.close();

    // The link opens this app and nothing else.
    const token = link.split('/p/')[1]!.replace(/\/$/, '');
    assert.equal((await rawGet(`/p/${token}/../../api/v1/me`)).statusCode, 400);
    assert.equal((await rawGet(`/p/${token}/%2E%2E/%2e%2e/api/v1/me`)).statusCode, 400);
    const me = await fetch(`${s.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(me.status, 401);
  });

  it('revoking a public link closes its open WebSocket and keep-alive connection at once', async () => {
    const made = await s.call('POST', `${ws()}/public-links`, { job: 'echo_app.py' });
    assert.equal(made.status, 201, made.text);
    const link = (made.json as { public_url: string }).public_url;
    const sock = await socketToApp(`/p/${link.split('/p/')[1]}`, `${link.replace(/^http/, 'ws')}ws`, null);
    assert.equal(await sock.roundTrip('public'), 'echo:public');

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    let keptAliveClosed = false;
    const first: IncomingMessage = await new Promise((resolve, reject) =>
      httpRequest(`${link}page`, { agent }, resolve).on('error', reject).end(),
    );
    assert.equal(first.statusCode, 200);
    first.resume();
    await new Promise((r) => first.on('end', r));
    first.socket?.once('close', () => (keptAliveClosed = true));

    const revoked = await s.call('POST', `${ws()}/public-links`, { job: 'echo_app.py', action: 'revoke' });
    assert.equal(revoked.status, 201, revoked.text);
    assert.deepEqual((revoked.json as { enabled: boolean; public_url: null }).public_url, null);
    await until('the WebSocket to be closed', async () => (sock.isClosed() ? true : undefined), 10_000);
    await until(
      'the keep-alive connection to be closed',
      async () => (keptAliveClosed ? true : undefined),
      10_000,
    );
    const gone = await fetch(`${link}page`);
    assert.equal(gone.status, 404);
    agent.destroy();

    // Rotating: the new link works, the old one does not.
    const again = await s.call('POST', `${ws()}/public-links`, { job: 'echo_app.py' });
    const first2 = (again.json as { public_url: string }).public_url;
    const rotated = await s.call('POST', `${ws()}/public-links`, { job: 'echo_app.py', action: 'rotate' });
    const second = (rotated.json as { public_url: string }).public_url;
    assert.notEqual(first2, second);
    assert.equal((await fetch(`${first2}x`)).status, 404);
    assert.equal((await fetch(`${second}x`)).status, 200);

    // dlt runtime 0.26.1's publish / unpublish routes: a new link each time, and revocation.
    const published = await s.call('POST', `${ws()}/scripts/echo_app.py/public-url`);
    assert.equal(published.status, 201, published.text);
    const third = (published.json as { public_url: string; script_type: string }).public_url;
    assert.match(third, /\/p\/[A-Za-z0-9_-]{43}\/$/);
    assert.equal((await fetch(`${second}x`)).status, 404, 'publishing again rotated the link');
    assert.equal((await fetch(`${third}x`)).status, 200);
    const unpublished = await s.call('DELETE', `${ws()}/scripts/echo_app.py/public-url`);
    assert.equal(unpublished.status, 200, unpublished.text);
    assert.equal((unpublished.json as { public_link_enabled: boolean }).public_link_enabled, false);
    assert.equal((await fetch(`${third}x`)).status, 404);
    assert.equal((await s.call('GET', `${ws()}/scripts/echo_app.py`)).status, 200, 'the job itself stays');

    // gRPC ChangePublicLink: the same use case (a viewer may not).
    const pkg = loadRunwayPackage();
    const client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as never as grpc.Client & Record<string, Unary>;
    const call = (req: object, token: string) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${token}`);
        client.ChangePublicLink!(req, md, (err, res) => resolve({ err, res }));
      });
    const viewer = await newUser(s, 'viewer@example.com', 'viewer');
    const denied = await call({ workspace_id: s.workspaceId, id_or_name: 'echo_app.py' }, viewer.token);
    assert.equal(denied.err?.code, grpc.status.PERMISSION_DENIED);
    const g = await call({ workspace_id: s.workspaceId, id_or_name: 'echo_app.py' }, s.adminToken);
    assert.equal(g.err, null, String(g.err));
    assert.equal(g.res.enabled, true);
    assert.equal((await fetch(`${String(g.res.public_url)}x`)).status, 200);
    const gr = await call(
      { workspace_id: s.workspaceId, id_or_name: 'echo_app.py', action: 'revoke' },
      s.adminToken,
    );
    assert.equal(gr.err, null, String(gr.err));
    assert.equal(gr.res.public_url, '');
    assert.equal((await fetch(`${String(g.res.public_url)}x`)).status, 404);
    client.close();
  });

  it('an idle app stops; opening its URL shows the starting page and wakes it (one run)', async () => {
    // No connection is open any more: the worker stops the app after the idle time.
    const idle = await until(
      'the echo app to stop for being idle',
      async () => {
        const r = await s.call('GET', `${ws()}/runs?script_id=${echo.id}&limit=1`);
        const last = (r.json as { items: { id: string; number: number; runway_status: string }[] }).items[0];
        return last && last.runway_status === 'completed' ? last : undefined;
      },
      60_000,
    );
    const visits = await Promise.all(
      [1, 2, 3].map(() =>
        fetch(echo.url, { headers: { authorization: `Bearer ${s.adminToken}`, accept: 'text/html' } }),
      ),
    );
    for (const v of visits) {
      assert.equal(v.status, 503);
      const html = await v.text();
      assert.match(html, /Starting echo_app\.py/);
      assert.match(html, /\.runway\/status/);
    }
    await whenReady(`/i/${echo.id}/`);
    const runs = await s.call('GET', `${ws()}/runs?script_id=${echo.id}&limit=10`);
    const items = (runs.json as { items: { id: string; number: number; runway_trigger: string }[] }).items;
    const woken = items.filter((r) => r.runway_trigger === 'wake' && r.number > idle.number);
    assert.equal(woken.length, 1, `one wake run for three visitors: ${JSON.stringify(items)}`);
    assert.notEqual(woken[0]!.id, idle.id);
    const res = await fetch(`${echo.url}after-wake`, {
      headers: { authorization: `Bearer ${s.adminToken}` },
    });
    assert.equal(res.status, 200);
  });

  it('the unmodified dlt runtime serve and dashboard (0.20) open URLs that serve the notebook and the dashboard', async () => {
    const env = (jwt?: string) => ({
      ...process.env,
      RUNTIME__API_BASE_URL: s.api,
      RUNTIME__AUTH_BASE_URL: s.auth,
      RUNTIME__DLTHUB_TELEMETRY: 'false',
      DLT_DATA_DIR: join(dir, '_storage'),
      // webbrowser.open runs this: the URL the CLI opens lands in its output.
      BROWSER: 'echo OPENED %s',
      RUNTIME__WORKSPACE_ID: s.workspaceId,
      ...(jwt ? { RUNTIME__AUTH_TOKEN: jwt } : {}),
    });
    // A CLI login JWT from this stack's device flow (the dlt CLI's own login is tested in
    // test/e2e/dlt-cli.test.ts; as root it keeps the token in /var/dlt, shared by every root process).
    const started = await fetch(`${s.auth}/v1/github/device-flow/code`, { method: 'POST' });
    assert.equal(started.status, 201);
    const device = (await started.json()) as { device_code: string; user_code: string };
    const approval = await s.call('POST', '/api/v1/device/approve', { user_code: device.user_code });
    assert.equal(approval.status, 201, approval.text);
    const issued = await fetch(`${s.auth}/v1/github/device-flow/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ device_code: device.device_code }),
    });
    assert.equal(issued.status, 201);
    const jwt = ((await issued.json()) as { jwt: string }).jwt;

    const serve = await run(dltBin, ['--non-interactive', 'runtime', 'serve', 'notebook.py'], {
      cwd: dir,
      env: env(jwt),
    });
    const served = `${serve.out}\n${serve.err}`;
    assert.equal(serve.code, 0, served);
    assert.match(served, /Run status: running/);
    assert.match(served, new RegExp(`Job is accessible on ${s.url}/i/${notebook.id}/`));
    assert.match(served, new RegExp(`OPENED ${s.url}/i/${notebook.id}/`));
    const page = await fetch(notebook.url, {
      headers: { authorization: `Bearer ${jwt}`, accept: 'text/html' },
    });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /marimo/i);

    const dash = await run(dltBin, ['--non-interactive', 'runtime', 'dashboard'], {
      cwd: dir,
      env: env(jwt),
    });
    const dashOut = `${dash.out}\n${dash.err}`;
    assert.equal(dash.code, 0, dashOut);
    const opened = new RegExp(`OPENED (${s.url}/i/([0-9a-f-]{36})/)`).exec(dashOut);
    assert.ok(opened, dashOut);
    const dashboardJob = (await s.call('GET', `${ws()}/scripts/dashboard`)).json as { id: string };
    assert.equal(opened[2], dashboardJob.id);
    // Opening it starts the dashboard app (not running yet): the starting page, and one wake run of it.
    const first = await fetch(opened[1]!, {
      headers: { authorization: `Bearer ${jwt}`, accept: 'text/html' },
    });
    assert.equal(first.status, 503);
    assert.match(await first.text(), /Starting dashboard/);
    const woken = await s.call('GET', `${ws()}/runs?script_id=${dashboardJob.id}&limit=1`);
    const last = (woken.json as { items: { runway_trigger: string; runway_status: string }[] }).items[0];
    assert.equal(last?.runway_trigger, 'wake');
    assert.ok(!['failed', 'cancelled'].includes(last.runway_status), last.runway_status);
  });
});
