import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium } from '../support/browser.js';
import { deviceFlowJwt026, runDlt026 } from '../support/dlt-cli-026.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();

interface Script {
  id: string;
  name: string;
  job_ref: string;
  script_type: string;
  script_url: string;
  public_url: string | null;
  public_link_enabled: boolean;
}
interface Run {
  id: string;
  number: number;
  status: string;
  runway_status: string;
  runway_trigger: string;
}

/** Polls `check` until it returns a value (generous deadline: the machine is shared). */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The interactive commands of the unmodified `dlt runtime` CLI of dlt 1.26.0 + dlt-runtime 0.26.1
 * (`serve`, `publish`, `unpublish`, `dashboard`, and the workspace URL of `info`) against one real
 * stack whose worker runs dlt 1.26.0 (.venv-026); the other commands: dlt-cli-026.test.ts.
 */
describe('the unmodified dlt runtime 0.26.1 CLI: serve, publish, unpublish, dashboard, info', () => {
  let s: TestStack;
  let dir: string;
  let jwt: string;
  /** The dashboard's wake run (started by the first test's visit, checked by the last). */
  let dashboardRun: string;
  const ws = () => `/api/v1/workspaces/${s.workspaceId}`;
  const dlt = (...args: string[]) => runDlt026(s, { cwd: dir, jwt }, ...args);
  const ok = async (...args: string[]) => {
    const r = await dlt(...args);
    assert.equal(r.code, 0, `dlt runtime ${args.join(' ')}:\n${r.out}`);
    return r.out;
  };
  const script = async (ref: string) => {
    const r = await s.call('GET', `${ws()}/scripts/${ref}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Script;
  };
  const runsOf = async (jobId: string) =>
    ((await s.call('GET', `${ws()}/runs?script_id=${jobId}`)).json as { items: Run[] }).items;

  before(async () => {
    s = await startTestStack({
      RUNWAY_PYTHON: join(root, '.venv-026', 'bin', 'python'),
      // dlt's dashboard takes 8-16 s to answer on a quiet machine; this one is shared.
      RUNWAY_INTERACTIVE_STARTUP_SECONDS: '120',
    });
    dir = mkdtempSync(join(tmpdir(), 'runway-dltws026i-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace-026-interactive'), dir, { recursive: true });
    jwt = await deviceFlowJwt026(s);
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  it('dashboard deploys the workspace when jobs.workspace.dashboard is missing, then opens its app URL', async () => {
    const absent = await s.call('GET', `${ws()}/scripts/jobs.workspace.dashboard`);
    assert.equal(absent.status, 404, absent.text);
    const out = await ok('dashboard');
    assert.match(out, /Dashboard not deployed\. Deploying workspace/, out);
    const dash = await script('jobs.workspace.dashboard');
    assert.equal(dash.script_type, 'interactive');
    assert.equal(dash.script_url, `${s.url}/i/${dash.id}/`);
    assert.ok(out.includes(`Dashboard is available at ${dash.script_url}`), out);
    assert.ok(out.includes(`OPENED ${dash.script_url}`), out);
    // The URL is the proxy's: a member's first visit starts the app (the starting page, one wake run).
    const first = await fetch(dash.script_url, {
      headers: { authorization: `Bearer ${jwt}`, accept: 'text/html' },
    });
    assert.equal(first.status, 503, await first.clone().text());
    assert.match(await first.text(), /Starting jobs\.workspace\.dashboard/);
    const woken = await waitFor('a wake run of the dashboard', async () =>
      (await runsOf(dash.id)).find((r) => r.runway_trigger === 'wake'),
    );
    dashboardRun = woken.id;
    // Anonymous visitors get nothing.
    assert.equal((await fetch(dash.script_url)).status, 401);
  });

  it('serve deploys, starts the app, waits until it runs and opens its URL, which serves the app', async () => {
    const out = await ok('serve', 'echo_app');
    assert.match(
      out,
      /Job jobs\.echo_app\.echo_app triggered \(trigger: manual:jobs\.echo_app\.echo_app\)/,
      out,
    );
    // The CLI waits for running before it opens the URL (it may or may not see starting first).
    assert.match(out, /Run status: running\nOpening /, out);
    // The trigger's answer carries the new run: its number and its status when the answer was read
    // (pending, or starting when a worker claimed it first).
    assert.match(out, /Run #:\s+1\n\s+Status:\s+(pending|starting)\n/, out);
    const app = await script('jobs.echo_app.echo_app');
    assert.equal(app.script_type, 'interactive');
    assert.equal(app.script_url, `${s.url}/i/${app.id}/`);
    assert.ok(out.includes(`Opening ${app.script_url}`), out);
    assert.ok(out.includes(`OPENED ${app.script_url}`), out);
    // The URL serves the app to the logged-in user (the CLI's JWT), at its root.
    const page = await fetch(`${app.script_url}hello?x=1`, { headers: { authorization: `Bearer ${jwt}` } });
    assert.equal(page.status, 200);
    assert.equal(await page.text(), 'echo app saw /hello?x=1\n');
    assert.equal((await fetch(app.script_url)).status, 401, 'no credentials, no app');
    const runs = await runsOf(app.id);
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.runway_status, 'running');
    // The worker (dlt 1.26.0) started it through dlt's job launcher, which passed the port in run_args.
    const detail = (await s.call('GET', `${ws()}/runs/${runs[0]!.id}`)).json as {
      status_timeline?: { status: string; reason: string }[];
    };
    const started = detail.status_timeline?.find((t) => t.status === 'running')?.reason ?? '';
    assert.match(started, /-m dlt\._workspace\.deployment\.launchers\.job --run-id/, started);

    // Serving it again, by its file this time (an ad-hoc manifest of that file), starts nothing
    // (concurrency 1) and points at the running app.
    const again = await ok('serve', 'echo_app.py');
    assert.match(again, /jobs\.echo_app\.echo_app: An instance of this job is already running/, again);
    assert.ok(again.includes(`Show the running instance: ${app.script_url}`), again);
    assert.equal((await script('jobs.echo_app.echo_app')).id, app.id, 'the same job');
    assert.equal((await runsOf(app.id)).length, 1, again);
  });

  it('publish prints a public URL that serves the app to anyone; unpublish makes it 404', async () => {
    const out = await ok('publish', 'echo_app');
    const url = /enabled successfully: (http\S+)/.exec(out)?.[1];
    assert.ok(url, out);
    assert.ok(url.startsWith(`${s.url}/p/`), url);
    const anon = await fetch(`${url}public`);
    assert.equal(anon.status, 200);
    assert.equal(await anon.text(), 'echo app saw /public\n');
    const app = await script('jobs.echo_app.echo_app');
    assert.equal(app.public_link_enabled, true);

    // A second publish keeps the link (Runway shows the URL once only; the CLI says it is enabled).
    const second = await ok('publish', 'echo_app');
    assert.match(second, /already enabled: \(a public link is enabled; Runway shows it only once/, second);
    assert.equal(app.public_url, null, 'other clients: the URL only in the answer that made it');
    assert.equal((await fetch(`${url}still`)).status, 200, 'the link was not rotated');

    const un = await ok('unpublish', 'echo_app');
    assert.match(un, /Public link for script jobs\.echo_app\.echo_app disabled successfully/, un);
    assert.equal((await fetch(`${url}public`)).status, 404);
    assert.equal((await script('jobs.echo_app.echo_app')).public_link_enabled, false);

    // publish again: a new link; the deprecated `publish --cancel` revokes it like unpublish.
    const third = /enabled successfully: (http\S+)/.exec(await ok('publish', 'echo_app'))?.[1];
    assert.ok(third && third !== url, third);
    assert.equal((await fetch(`${third}again`)).status, 200);
    assert.match(await ok('publish', '--cancel', 'echo_app'), /disabled successfully/);
    assert.equal((await fetch(`${third}again`)).status, 404);
  });

  it('info shows the workspace URL dlt builds from the API base URL; /w/<workspace> is its overview page', async () => {
    const info = ok('info'); // meanwhile, the page in Chromium
    // On Runway's own origin that path is the web dashboard's overview of the workspace, after sign-in.
    const made = await s.call('POST', '/api/v1/admin/users', {
      email: 'cli-user@example.com',
      password: 'cli-user-password-1',
      workspace_id: s.workspaceId,
      role: 'owner',
    });
    assert.equal(made.status, 201, made.text);
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${s.url}/w/${s.workspaceId}`);
      await page.getByLabel('Email').fill('cli-user@example.com', { timeout: 30_000 });
      await page.getByLabel('Password').fill('cli-user-password-1');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor({ timeout: 30_000 });
      assert.equal(new URL(page.url()).pathname, `/w/${s.workspaceId}`);
      // The overview lists the jobs the CLI deployed.
      await page.getByText('jobs.echo_app.echo_app').first().waitFor({ timeout: 30_000 });
    } finally {
      await browser.close();
    }
    const out = await info;
    // dlt-runtime 0.26.1 builds it itself: the API base URL's scheme and host name (no port, no path).
    assert.ok(out.includes(`Workspace URL: http://127.0.0.1/w/${s.workspaceId}`), out);
  });

  it("the dashboard URL the CLI opened serves dlt's workspace dashboard once its app runs", async () => {
    const dash = await script('jobs.workspace.dashboard');
    // Deployed now: `dashboard` prints the URL straight away (meanwhile, the app gets ready).
    const again = ok('dashboard');
    await waitFor(
      'the dashboard app to run',
      async () => {
        const r = await s.call('GET', `${ws()}/runs/${dashboardRun}`);
        const st = (r.json as Run).runway_status;
        assert.ok(!['failed', 'completed', 'cancelled'].includes(st), `the dashboard run ended: ${r.text}`);
        return st === 'running' ? true : undefined;
      },
      150_000,
    );
    const page = await fetch(dash.script_url, {
      headers: { authorization: `Bearer ${jwt}`, accept: 'text/html' },
    });
    const text = await page.text();
    assert.equal(page.status, 200, text.slice(0, 500));
    assert.match(text, /dlt workspace dashboard/, "dlt's own dashboard app");
    const out = await again;
    assert.doesNotMatch(out, /Deploying/, out);
    assert.ok(out.includes(`Dashboard is available at ${dash.script_url}`), out);
  });
});
