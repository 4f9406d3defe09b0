import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const dltBin = join(root, '.venv-026', 'bin', 'dlt');
// As root, dlt keeps its global secrets (the login token, the refresh token) in /var/dlt: save and restore them.
const globalSecrets = '/var/dlt/secrets.toml';

interface Page<T> {
  items: T[];
  total: number;
}
interface Job {
  id: string;
  name: string;
  job_ref: string;
  entry_point: string;
  kind?: string;
}
interface Run {
  id: string;
  number: number;
  status: string;
  runway_status: string;
  script_id: string;
}

/** Polls `check` until it returns a value (generous deadline: the machine is shared). */
async function waitFor<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The unmodified `dlt runtime` CLI of dlt 1.26.0 + dlt-runtime 0.26.1 (from .venv-026), every
 * command of its tree against one real stack; the 0.20.0 CLI keeps its own file (dlt-cli.test.ts).
 */
describe('the unmodified dlt runtime CLI (dlt 1.26.0 + dlt-runtime 0.26.1)', () => {
  let s: TestStack;
  let dir: string;
  let saved: string | undefined;
  let jwt: string | undefined;
  let refreshToken: string | undefined;
  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-dltws026-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace-026'), dir, { recursive: true });
    saved = existsSync(globalSecrets) ? readFileSync(globalSecrets, 'utf8') : undefined;
  });
  after(async () => {
    if (saved !== undefined) writeFileSync(globalSecrets, saved);
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  const env = () => ({
    ...process.env,
    RUNTIME__API_BASE_URL: s.api,
    RUNTIME__AUTH_BASE_URL: s.auth,
    RUNTIME__DLTHUB_TELEMETRY: 'false',
    DLT_DATA_DIR: join(dir, '_storage'),
    COLUMNS: '200',
    // After login, the tokens are handed over explicitly: /var/dlt is shared by every root process.
    ...(jwt ? { RUNTIME__AUTH_TOKEN: jwt } : {}),
    ...(refreshToken ? { RUNTIME__REFRESH_TOKEN: refreshToken } : {}),
  });
  const dlt = async (...args: string[]) => {
    const r = await run(dltBin, ['--non-interactive', 'runtime', ...args], { cwd: dir, env: env() });
    return { code: r.code, out: `${r.out}\n${r.err}` };
  };
  const ok = async (...args: string[]) => {
    const r = await dlt(...args);
    assert.equal(r.code, 0, `dlt runtime ${args.join(' ')}:\n${r.out}`);
    return r.out;
  };
  const ws = () => `/api/v1/workspaces/${s.workspaceId}`;
  const jobs = async () => ((await s.call('GET', `${ws()}/scripts`)).json as Page<Job>).items;
  const runsOf = async (jobId: string) =>
    ((await s.call('GET', `${ws()}/runs?script_id=${jobId}`)).json as Page<Run>).items;
  const jobNamed = async (name: string) => {
    const j = (await jobs()).find((x) => x.name === name);
    assert.ok(j, `job ${name} exists`);
    return j;
  };

  it('logs in with the WorkOS-style device flow (--resume) approved by an owner, with a refresh token', async () => {
    const start = await ok('login');
    const userCode = /\b([B-Z]{4}-[B-Z]{4})\b/.exec(start)?.[1];
    const deviceCode = /login --resume (\S+)/.exec(start)?.[1];
    assert.ok(userCode && deviceCode, `the CLI shows a user code and how to resume:\n${start}`);
    const approved = await s.call('POST', '/api/v1/device/approve', { user_code: userCode });
    assert.equal(approved.status, 201, approved.text);
    const out = await ok('login', '--resume', deviceCode, '--workspace', s.workspaceId);
    assert.match(out, /admin@runway\.local/);
    assert.match(
      readFileSync(join(dir, '.dlt/config.toml'), 'utf8'),
      new RegExp(`workspace_id = "${s.workspaceId}"`),
    );
    const secrets = readFileSync(globalSecrets, 'utf8');
    jwt = /auth_token\s*=\s*"([^"]+)"/.exec(secrets)?.[1];
    refreshToken = /refresh_token\s*=\s*"([^"]+)"/.exec(secrets)?.[1];
    assert.ok(jwt && refreshToken, `the CLI stored its JWT and refresh token:\n${secrets}`);
    // The code is consumed: resuming again is refused.
    const again = await dlt('login', '--resume', deviceCode);
    assert.notEqual(again.code, 0, again.out);
  });

  it('refreshes: a refresh token is rotated on use, a replay revokes its login', async () => {
    const first = await s.call('POST', '/auth/v1/auth/refresh', { refresh_token: refreshToken }, null);
    assert.equal(first.status, 200, first.text);
    const next = first.json as { jwt: string; refresh_token: string };
    assert.notEqual(next.refresh_token, refreshToken);
    const me = await s.call('GET', '/api/v1/me', undefined, next.jwt);
    assert.equal(me.status, 200, me.text);
    const replay = await s.call('POST', '/auth/v1/auth/refresh', { refresh_token: refreshToken }, null);
    assert.equal(replay.status, 401, replay.text);
    // The replay revoked the family: its newest refresh token is refused too.
    const after = await s.call('POST', '/auth/v1/auth/refresh', { refresh_token: next.refresh_token }, null);
    assert.equal(after.status, 401, after.text);
    const bad = await s.call('POST', '/auth/v1/auth/refresh', { refresh_token: 'rrt_nope' }, null);
    assert.equal(bad.status, 401, bad.text);
    const missing = await s.call('POST', '/auth/v1/auth/refresh', {}, null);
    assert.equal(missing.status, 400, missing.text);
  });

  it('deploys code, configuration and the manifest; a second deploy changes nothing', async () => {
    const out = await ok('deploy');
    assert.match(out, /jobs\.load_orders/, out);
    const deployments = (await s.call('GET', `${ws()}/deployments`)).json as Page<{
      version: number;
      requirements_size: number;
    }>;
    assert.deepEqual(
      deployments.items.map((d) => d.version),
      [1],
    );
    assert.ok(deployments.items[0]!.requirements_size > 0, 'the requirements.json was kept with the version');
    const names = (await jobs()).map((j) => j.name).sort();
    assert.deepEqual(names, ['jobs.load_orders', 'jobs.long_task', 'jobs.workspace.dashboard']);
    const load = await jobNamed('jobs.load_orders');
    assert.equal(load.entry_point, 'load_orders.py');

    const second = await ok('deploy');
    assert.match(second, /Unchanged jobs/, second);
    const again = (await s.call('GET', `${ws()}/deployments`)).json as Page<unknown>;
    assert.equal(again.total, 1, 'no new deployment version');
    const configs = (await s.call('GET', `${ws()}/configurations`)).json as Page<unknown>;
    assert.equal(configs.total, 1, 'no new configuration version');
  });

  it('deployment list / info / sync and configuration list / info / sync', async () => {
    assert.match(await ok('deployment', 'list'), /\b1\b/);
    await ok('deployment', 'info');
    await ok('deployment', '1', 'info');
    assert.match(await ok('deployment', 'sync'), /No changes detected in the deployment/);
    writeFileSync(join(dir, 'extra.py'), 'print("new")\n');
    const dry = await ok('deployment', 'sync', '--dry-run', '-v');
    assert.match(dry, /extra\.py/, dry);
    const synced = await ok('deployment', 'sync');
    assert.match(synced, /extra\.py|Synced/, synced);
    assert.equal(((await s.call('GET', `${ws()}/deployments`)).json as Page<unknown>).total, 2);

    assert.match(await ok('configuration', 'list'), /\b1\b/);
    const ci = await ok('configuration', 'info');
    assert.ok(!ci.includes('dev-key-not-secret'), 'no secret value in the CLI output');
    await ok('configuration', '1', 'info');
    assert.match(await ok('configuration', 'sync'), /No changes detected in the configuration/);
  });

  it('info, workspace list and workspace switch', async () => {
    const info = await ok('info');
    assert.match(info, new RegExp(s.workspaceId));
    const list = await ok('workspace', 'list');
    assert.match(list, new RegExp(s.workspaceId));
    const sw = await ok('workspace', 'switch', s.workspaceId);
    assert.match(sw, /Switched to workspace/);
  });

  it('job list / job info / jobs', async () => {
    const list = await ok('job', 'list');
    assert.match(list, /load_orders/);
    assert.match(list, /long_task/);
    assert.match(await ok('job', 'load_orders', 'info'), /load_orders/);
    assert.match(await ok('jobs'), /long_task/);
  });

  it('launch runs a job and logs shows its output; job-run list / info / logs', async () => {
    const out = await ok('launch', 'load_orders');
    const load = await jobNamed('jobs.load_orders');
    const done = await waitFor('the launched run to end', async () => {
      const r = (await runsOf(load.id))[0];
      return r && ['completed', 'failed', 'cancelled'].includes(r.status) ? r : undefined;
    });
    assert.equal(done.status, 'completed', out);
    const logs = await ok('logs', 'load_orders');
    assert.match(logs, /order step 3/);
    assert.match(logs, /orders loaded/);
    assert.match(await ok('job-run', 'load_orders', 'list'), /load_orders/);
    assert.match(await ok('job-runs'), /load_orders/);
    assert.match(await ok('job-run', 'load_orders', 'info'), /completed/i);
    assert.match(await ok('job-run', 'load_orders', '1', 'logs'), /orders loaded/);
  });

  it('trigger and run-pipeline start runs by job ref and selector', async () => {
    const load = await jobNamed('jobs.load_orders');
    const before = (await runsOf(load.id)).length;
    const dry = await ok('trigger', 'manual:jobs.load_*', '--dry-run');
    assert.match(dry, /load_orders/, dry);
    assert.equal((await runsOf(load.id)).length, before, 'a dry run starts nothing');
    await ok('trigger', 'load_orders');
    await waitFor('the triggered run', async () =>
      (await runsOf(load.id)).length === before + 1 ? true : undefined,
    );
  });

  it('follows a live run with logs -f, cancels it with job-run cancel, and bulk-cancels with cancel', async () => {
    const long = await jobNamed('jobs.long_task');
    await ok('trigger', 'long_task');
    await waitFor('the long task to run', async () =>
      (await runsOf(long.id))[0]?.runway_status === 'running' ? true : undefined,
    );
    const cancelled = await ok('job-run', 'long_task', 'cancel');
    assert.match(cancelled, /cancellation/i);
    await waitFor('run 1 cancelled', async () =>
      (await runsOf(long.id)).find((r) => r.number === 1)?.status === 'cancelled' ? true : undefined,
    );
    // Bulk: a dry run lists, the real one cancels every active run of the job.
    await ok('trigger', 'long_task');
    await waitFor('run 2 to run', async () =>
      (await runsOf(long.id)).find((r) => r.number === 2)?.runway_status === 'running' ? true : undefined,
    );
    const follow = dlt('logs', 'long_task', '-f');
    const dry = await ok('cancel', 'long_task', '--dry-run');
    assert.match(dry, /long_task/);
    assert.equal((await runsOf(long.id)).find((r) => r.number === 2)?.status, 'running');
    await ok('cancel', 'long_task');
    await waitFor('run 2 cancelled', async () =>
      (await runsOf(long.id)).find((r) => r.number === 2)?.status === 'cancelled' ? true : undefined,
    );
    const followed = await follow;
    assert.equal(followed.code, 0, followed.out);
    assert.match(followed.out, /long task started/);
  });

  it('logs out (local only): a command afterwards asks to log in', async () => {
    assert.match(await ok('logout'), /Logged out/);
  });
});
