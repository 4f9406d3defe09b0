import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { runRunwayCli } from '../support/cli.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { withDltLoginLock } from '../support/dlt-secrets.js';

// The web dashboard end to end: the built SPA (web/dist) served by a whole Runway started the way
// `npm start` starts it, driven in Debian's headless Chromium. Screenshots of every page at 1280
// and 390 px land in test-results/web/ (look at them).
const root = process.cwd();
const SHOTS = join(root, 'test-results', 'web');
const dltBin = join(root, '.venv', 'bin', 'dlt');
// As root, dlt keeps its global secrets (the login token) in /var/dlt: saved and restored.
const globalSecrets = '/var/dlt/secrets.toml';
const ADMIN = 'admin@runway.local';
const ADMIN_PW = 'correct horse battery';
const VIEWER = 'vera@example.com';
const VIEWER_PW = 'viewer password 1';
const T = 30_000; // generous waits: the machine is shared and loaded

// Ticks until cancelled: the test sees lines arrive while the run runs, whatever the machine's speed.
const SLOW = `import time
i = 0
while True:
    i += 1
    print(f"tick {i}", flush=True)
    time.sleep(0.3)
`;
const FAILS = `import sys
print("about to fail", flush=True)
print("the source API answered 500", file=sys.stderr, flush=True)
sys.exit(3)
`;

describe('the web dashboard in a real browser', () => {
  let s: TestStack;
  let dir: string;
  let configDir: string;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let savedSecrets: string | undefined;
  let slowJobId = '';

  const wsUrl = (rest = '') => `${s.url}/w/${s.workspaceId}${rest}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await s.call(method, `/api/v1${path}`, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${r.text}`);
    return r.json;
  };
  const deploy = async () => {
    const r = await runRunwayCli(s, dir, configDir, 'deploy');
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  };
  const shot = async (p: Page, name: string) => {
    for (const width of [1280, 390]) {
      await p.setViewportSize({ width, height: 900 });
      await p.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
      await p.screenshot({ path: join(SHOTS, `${name}-${width}.png`), fullPage: true });
    }
    await p.setViewportSize({ width: 1280, height: 900 });
  };
  const heading = (p: Page, name: string | RegExp) =>
    p.getByRole('heading', { level: 1, name }).waitFor({ timeout: T });
  const signIn = async (p: Page, email: string, password: string) => {
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(password);
    await p.getByRole('button', { name: 'Sign in' }).click();
  };

  before(async () => {
    assert.ok(existsSync(join(root, 'web', 'dist', 'index.html')), 'web/dist is built by scripts/setup.mjs');
    mkdirSync(SHOTS, { recursive: true });
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-webws-'));
    configDir = mkdtempSync(join(tmpdir(), 'runway-webcfg-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace'), dir, { recursive: true });
    writeFileSync(join(dir, 'slow.py'), SLOW);
    writeFileSync(join(dir, 'fails.py'), FAILS);
    savedSecrets = existsSync(globalSecrets) ? readFileSync(globalSecrets, 'utf8') : undefined;

    await api('POST', `/admin/users/${ADMIN}/password`, { password: ADMIN_PW });
    await api('POST', '/admin/users', { email: VIEWER, password: VIEWER_PW });
    await api('POST', `/workspaces/${s.workspaceId}/members`, { email: VIEWER, role: 'viewer' });
    await deploy();
    // A dlt pipeline run reports schemas and loads for the pipelines page (it runs meanwhile).
    await api('POST', `/workspaces/${s.workspaceId}/jobs`, { name: 'shop', entry_point: 'pipeline.py' });
    await api('POST', `/workspaces/${s.workspaceId}/runs`, { script_id_or_name: 'shop' });

    browser = await launchChromium();
    admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await admin.newPage();
  });

  after(async () => {
    await browser?.close();
    if (savedSecrets !== undefined) writeFileSync(globalSecrets, savedSecrets);
    else rmSync(globalSecrets, { force: true });
    rmSync(dir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
    await s?.stop();
  });

  it('serves the app at / (SPA fallback, cache headers) without shadowing the API', async () => {
    const index = await fetch(`${s.url}/w/anything/runs`, { headers: { accept: 'text/html' } });
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(asset, html);
    const js = await fetch(`${s.url}${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.equal((await fetch(`${s.url}/assets/missing-0123456789.js`)).status, 404);
    const apiMiss = await fetch(`${s.url}/api/v1/nothing-here`, { headers: { accept: 'text/html' } });
    assert.equal(apiMiss.status, 404);
    assert.match(apiMiss.headers.get('content-type') ?? '', /json/);
    assert.equal((await fetch(`${s.url}/api/v1/ping`)).status, 200);
    const auth = await fetch(`${s.url}/auth/session`, { headers: { accept: 'text/html' } });
    assert.equal(auth.status, 401, 'the auth routes answer, not the page');
  });

  it('signs in with a password (a wrong one is refused in words)', async () => {
    await page.goto(s.url);
    await page.getByRole('heading', { name: 'Sign in to Runway' }).waitFor({ timeout: T });
    await shot(page, 'signin');
    await signIn(page, ADMIN, 'not the password');
    await page.getByText('wrong email or password').waitFor({ timeout: T });
    await signIn(page, ADMIN, ADMIN_PW);
    await heading(page, 'Overview');
    await page.getByText('● Live').waitFor({ timeout: T });
    await page.getByRole('link', { name: 'shop' }).first().waitFor({ timeout: T });
    // Live over SSE: a job created elsewhere appears on the open page, without a reload.
    await api('POST', `/workspaces/${s.workspaceId}/jobs`, { name: 'fails', entry_point: 'fails.py' });
    await page.getByRole('link', { name: 'fails' }).waitFor({ timeout: T });
    await shot(page, 'overview');
  });

  it('approves a `dlt runtime login` device code in the page', async () => {
    // The token file is shared by every root process: no other test logs in meanwhile.
    await withDltLoginLock(async () => {
      rmSync(globalSecrets, { force: true }); // a login of another test run would make this one "already logged in"
      const child = spawn(dltBin, ['--non-interactive', 'runtime', 'login'], {
        cwd: dir,
        env: {
          ...process.env,
          RUNTIME__API_BASE_URL: s.api,
          RUNTIME__AUTH_BASE_URL: s.auth,
          RUNTIME__DLTHUB_TELEMETRY: 'false',
          DLT_DATA_DIR: join(dir, '_storage'),
        },
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      const until = Date.now() + 60_000;
      let code: string | undefined;
      while (!code && Date.now() < until) {
        code = /\b([B-Z]{4}-[B-Z]{4})\b/.exec(out)?.[1];
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(code, `the CLI shows a user code:\n${out}`);
      await page.goto(`${s.url}/device?code=${code}`);
      await heading(page, 'Approve a CLI login');
      await page.getByText(code).waitFor({ timeout: T });
      // Which client asked: the dlt CLI's own user agent.
      const client = await page.locator('dl.meta dd').first().textContent();
      assert.ok(client && client !== 'unknown', `the page names the client: ${client}`);
      await shot(page, 'device');
      await page.getByRole('button', { name: 'Approve' }).click();
      await page.getByText('Approved: the CLI is now signed in as you').waitFor({ timeout: T });
      assert.equal(await exited, 0, out);
      assert.match(out, /Logged in as admin@runway\.local/);
    });
  });

  it('creates a job, runs it, watches its log arrive live and cancels it', async () => {
    await page.goto(wsUrl('/jobs'));
    await heading(page, 'Jobs');
    await page.getByRole('link', { name: 'shop' }).waitFor({ timeout: T });
    await shot(page, 'jobs');
    await page.getByRole('link', { name: 'Create job' }).click();
    await heading(page, 'Create a job');
    await page.getByLabel('Name').fill('slow');
    await page.getByLabel(/Entry point/).fill('slow.py');
    await page.getByLabel('Description').fill('Prints a tick every 0.3 s until cancelled');
    await shot(page, 'job-create');
    await page.getByRole('button', { name: 'Create job' }).click();
    await heading(page, 'slow');
    slowJobId = /\/jobs\/([^/?]+)/.exec(page.url())?.[1] ?? '';
    assert.ok(slowJobId, page.url());
    await page.getByText('This job has not run yet.').waitFor({ timeout: T });
    await page.getByRole('button', { name: 'Run now' }).click();
    await heading(page, /Run #1 of slow/);
    const log = page.getByTestId('log');
    const status = page.locator('.page-header .badge');
    await log.getByText('tick 1', { exact: true }).waitFor({ timeout: 60_000 });
    // Live: more lines arrive on the open page while the run still runs (it cannot end by itself).
    await log.getByText('tick 4', { exact: true }).waitFor({ timeout: T });
    await status.getByText('running', { exact: true }).waitFor({ timeout: T });
    assert.match((await page.getByTestId('log-state').textContent()) ?? '', /following live/);
    await shot(page, 'run-live');
    // Cancel from the page; the log follow goes on to the sealed end.
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await status.getByText('cancelled').waitFor({ timeout: 60_000 });
    const state = page.getByTestId('log-state').getByText(/complete: \d+ lines/);
    await state.waitFor({ timeout: 60_000 });
    const count = Number(/(\d+) lines/.exec((await state.textContent()) ?? '')?.[1]);
    const lines = await log.locator('.line .tx').allTextContents();
    assert.equal(lines.length, count, 'every line of the log is on the page');
    // Each line once, in order.
    lines
      .filter((l) => l.startsWith('tick '))
      .forEach((l, i) => assert.equal(l, `tick ${i + 1}`, `line ${i + 1}: ${l}`));
    await page.getByTestId('failure-reason').waitFor({ timeout: T });
    // Search highlights matches.
    await page.getByPlaceholder('Search the log').fill('tick 2');
    const matching = lines.filter((l) => l.includes('tick 2')).length;
    await page.getByText(`${matching} matching`).waitFor({ timeout: T });
    await shot(page, 'run');
    const href = await page.getByRole('link', { name: 'Download' }).getAttribute('href');
    const download = await fetch(`${s.url}${href}`, { headers: { authorization: `Bearer ${s.adminToken}` } });
    assert.equal(download.status, 200);
    assert.match(await download.text(), /tick 4/);
  });

  it('changes the schedule with a live preview of the next runs, and names a bad cron', async () => {
    await page.goto(wsUrl(`/jobs/${slowJobId}`));
    await heading(page, 'slow');
    await page.getByRole('button', { name: 'Add a schedule' }).click();
    await page.getByLabel('Cron expression').fill('0 9 * * 1-5');
    await page.getByLabel('Time zone').fill('Europe/Berlin');
    const preview = page.getByTestId('schedule-preview');
    await preview.getByText('Next runs (Europe/Berlin)').waitFor({ timeout: T });
    await preview.locator('li').nth(4).waitFor({ timeout: T });
    // 09:00 in Berlin, whatever the offset of the season.
    for (const li of await preview.locator('li time').allTextContents()) assert.match(li, / 09:00:00$/);
    await shot(page, 'schedule-preview');
    await page.getByLabel('Cron expression').fill('61 * * * *');
    const err = page.getByTestId('cron-error');
    await err.waitFor({ timeout: T });
    assert.match((await err.textContent()) ?? '', /61/);
    assert.equal(await page.getByRole('button', { name: 'Save schedule' }).isDisabled(), true);
    await shot(page, 'schedule-error');
    await page.getByLabel('Cron expression').fill('0 9 * * 1-5');
    await preview.locator('li').nth(4).waitFor({ timeout: T });
    await page.getByRole('button', { name: 'Save schedule' }).click();
    await page.getByRole('button', { name: 'Change schedule' }).waitFor({ timeout: T });
    const job = (await api('GET', `/workspaces/${s.workspaceId}/scripts/${slowJobId}`)) as {
      schedule: string;
      timezone: string;
    };
    assert.equal(job.schedule, '0 9 * * 1-5');
    assert.equal(job.timezone, 'Europe/Berlin');
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Resume' }).waitFor({ timeout: T });
    await shot(page, 'job');
  });

  it('manages the public link of an interactive job: shown once, revoked at once', async () => {
    const job = (await api('POST', `/workspaces/${s.workspaceId}/jobs`, {
      name: 'app',
      entry_point: 'slow.py',
      kind: 'interactive',
    })) as { id: string };
    await page.goto(wsUrl(`/jobs/${job.id}`));
    await heading(page, 'app');
    await page.getByText('No public link').waitFor({ timeout: T });
    await page.getByRole('button', { name: 'Enable public link' }).click();
    const link = page.getByLabel('Public link (shown once: copy it now)');
    await link.waitFor({ timeout: T });
    const url = await link.inputValue();
    assert.match(url, /\/p\/[^/]+\/$/);
    await page.getByText('Enabled: anyone with the link').waitFor({ timeout: T });
    await shot(page, 'job-public-link');
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Revoke link' }).click();
    await page.getByText('No public link').waitFor({ timeout: T });
    const gone = await fetch(url, { redirect: 'manual' });
    assert.equal(gone.status, 404);
  });

  it("shows a failed run's reason, and filters the runs list", async () => {
    const run = (await api('POST', `/workspaces/${s.workspaceId}/runs`, { script_id_or_name: 'fails' })) as {
      id: string;
    };
    // The run may wait for a slot behind the earlier tests' runs on a loaded machine: the page is
    // opened once the run failed (its live updates are tested with the log above).
    for (const until = Date.now() + 180_000; ;) {
      const r = (await api('GET', `/workspaces/${s.workspaceId}/runs/${run.id}`)) as {
        status: string;
        runway_status?: string;
      };
      if (r.status === 'failed' || r.runway_status === 'failed') break;
      assert.ok(Date.now() < until, `the run did not fail: ${r.status}`);
      await new Promise((res) => setTimeout(res, 500));
    }
    await page.goto(wsUrl(`/runs/${run.id}`));
    const reason = page.getByTestId('failure-reason');
    await reason.waitFor({ timeout: T });
    await reason
      .getByText(/exit|code 3|failed/i)
      .first()
      .waitFor({ timeout: T });
    await page.getByText('the source API answered 500').first().waitFor({ timeout: T });
    await page.getByRole('list', { name: 'Status timeline' }).getByText('failed').waitFor({ timeout: T });
    await shot(page, 'run-failed');
    await page.goto(wsUrl('/runs'));
    await heading(page, 'Runs');
    await page.getByRole('link', { name: 'fails' }).first().waitFor({ timeout: T });
    await page.getByRole('group', { name: 'Status' }).getByLabel('failed').check();
    await page.waitForURL(/status=failed/, { timeout: T });
    await page.getByText(/1 run match/).waitFor({ timeout: T });
    assert.equal(await page.locator('table.runs tbody tr').count(), 1);
    await shot(page, 'runs');
  });

  it('browses deployment files and a diff of two versions', async () => {
    writeFileSync(join(dir, 'slow.py'), SLOW.replace('time.sleep(0.3)', 'time.sleep(0.5)'));
    writeFileSync(join(dir, 'extra.py'), 'print("new in version 2")\n');
    await deploy();
    await page.goto(wsUrl('/deployments'));
    await heading(page, 'Deployments');
    await page.getByRole('heading', { name: 'Files of version 2' }).waitFor({ timeout: T });
    await page.getByRole('button', { name: /^slow\.py/ }).click();
    // The file's text (the diff below also shows the line, as an added one).
    await page
      .getByTestId('file-view')
      .getByText(/time\.sleep\(0\.5\)/)
      .waitFor({ timeout: T });
    const diff = page.getByTestId('diff');
    await diff.waitFor({ timeout: T });
    await diff.getByText('+ extra.py').waitFor({ timeout: T });
    await diff.locator('.unified .add').getByText('time.sleep(0.5)').waitFor({ timeout: T });
    await diff.locator('.unified .del').getByText('time.sleep(0.3)').waitFor({ timeout: T });
    await shot(page, 'deployments');
  });

  it('shows configuration profiles, pipelines and settings', async () => {
    await page.goto(wsUrl('/configuration'));
    await heading(page, 'Configuration');
    await page.getByText(/Version \d+, uploaded/).waitFor({ timeout: T });
    await shot(page, 'configuration');
    // Secret values never reach the page.
    const secrets = readFileSync(join(dir, '.dlt', 'secrets.toml'), 'utf8');
    for (const v of secrets.matchAll(/=\s*"([^"]{6,})"/g))
      assert.ok(!(await page.content()).includes(v[1] ?? ''), 'no secret value on the page');

    const until = Date.now() + 90_000;
    while (Date.now() < until) {
      const p = (await api('GET', `/workspaces/${s.workspaceId}/pipelines`)) as { items: unknown[] };
      if (p.items.length > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    await page.goto(wsUrl('/pipelines'));
    await heading(page, 'Pipelines');
    await page.getByRole('link', { name: 'shop' }).click();
    await heading(page, 'Pipeline shop');
    await page.getByRole('img', { name: /Lineage/ }).waitFor({ timeout: T });
    await page.getByRole('img', { name: /Durations of the last/ }).waitFor({ timeout: T });
    await shot(page, 'pipeline');

    await page.goto(wsUrl('/settings'));
    await heading(page, 'Settings');
    await page.getByText('this browser').waitFor({ timeout: T });
    await page.getByLabel('Token name').fill('ci');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = await page.getByLabel('The new token').inputValue();
    assert.ok(token.length > 20);
    assert.equal((await s.call('GET', '/api/v1/me', undefined, token)).status, 200);
    await page.getByRole('row', { name: /^ci / }).first().waitFor({ timeout: T });
    await page.getByRole('cell', { name: VIEWER, exact: true }).waitFor({ timeout: T });
    await shot(page, 'settings');
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('button', { name: 'Revoke ci' }).click();
    await page.getByRole('row', { name: /ci\s*revoked/ }).waitFor({ timeout: T });
    assert.equal((await s.call('GET', '/api/v1/me', undefined, token)).status, 401);
  });

  it("gives a viewer a read-only view (and the server refuses the viewer's writes)", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const v = await ctx.newPage();
      await v.goto(wsUrl(`/jobs/${slowJobId}`));
      await signIn(v, VIEWER, VIEWER_PW);
      await heading(v, 'slow');
      await v.getByText('read-only').waitFor({ timeout: T });
      await v.getByRole('heading', { name: 'Run history' }).waitFor({ timeout: T });
      assert.equal(await v.getByRole('button', { name: 'Run now' }).count(), 0);
      assert.equal(await v.getByRole('button', { name: /schedule|Pause|Resume/ }).count(), 0);
      await shot(v, 'viewer-job');
      await v.goto(wsUrl('/jobs'));
      await heading(v, 'Jobs');
      await v.getByRole('link', { name: 'slow' }).waitFor({ timeout: T });
      assert.equal(await v.getByRole('link', { name: 'Create job' }).count(), 0);
      // The server refuses anyway: a hand-made request with the viewer's cookie and CSRF token.
      const cookies = await ctx.cookies(s.url);
      const csrf = cookies.find((c) => c.name === 'runway_csrf')?.value ?? '';
      const refused = await fetch(`${s.api}/v1/workspaces/${s.workspaceId}/runs`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-csrf-token': decodeURIComponent(csrf),
          cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; '),
        },
        body: JSON.stringify({ script_id_or_name: slowJobId }),
      });
      const status = refused.status;
      assert.equal(status, 403);
    } finally {
      await ctx.close();
    }
  });

  it('signs out', async () => {
    await page.goto(wsUrl());
    await heading(page, 'Overview');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Runway' }).waitFor({ timeout: T });
    await page.goto(wsUrl('/runs'));
    await page.getByRole('heading', { name: 'Sign in to Runway' }).waitFor({ timeout: T });
    const cookies = await admin.cookies(s.url);
    assert.equal(
      cookies.find((c) => c.name === 'runway_session'),
      undefined,
      'the session cookie is cleared',
    );
  });
});
