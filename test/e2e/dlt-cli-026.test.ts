import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dltGlobalSecrets, withDltLoginLock } from '../support/dlt-secrets.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const dltBin = join(root, '.venv-026', 'bin', 'dlt');
// As root, dlt keeps its global secrets (the login token, the refresh token) in /var/dlt: save and restore them.
const globalSecrets = dltGlobalSecrets;

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
    // /var/dlt is shared by every root process (another test's CLI may have left a token there):
    // until login the token is set empty, after it the login's token is handed over explicitly.
    RUNTIME__AUTH_TOKEN: jwt ?? '',
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
  /** Runs read-only commands at most 4 at a time (each CLI start costs seconds); outputs in order. */
  const okAll = async (...commands: string[][]) => {
    const outs: string[] = new Array<string>(commands.length);
    let next = 0;
    const worker = async () => {
      while (next < commands.length) {
        const i = next++;
        outs[i] = await ok(...commands[i]!);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    return outs;
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
    // The token file is shared by every root process: no other test logs in meanwhile.
    await withDltLoginLock(async () => {
      const start = await ok('login');
      const userCode = /\b([B-Z]{4}-[B-Z]{4})\b/.exec(start)?.[1];
      const deviceCode = /login --resume (\S+)/.exec(start)?.[1];
      assert.ok(userCode && deviceCode, `the CLI shows a user code and how to resume:\n${start}`);
      // Pending: 403 (the CLI keeps polling).
      const pending = await s.call(
        'POST',
        '/auth/v1/workos/device-flow/token',
        { device_code: deviceCode },
        null,
      );
      assert.equal(pending.status, 403, pending.text);
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
      const mine = await s.call('GET', '/api/v1/me', undefined, jwt);
      assert.equal(mine.status, 200, `the stored JWT is this login's (/var/dlt is shared): ${mine.text}`);
      const claims = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as {
        sub: string;
        email: string;
        exp: number;
      };
      assert.equal(claims.email, 'admin@runway.local');
      assert.ok(claims.exp * 1000 - Date.now() <= 3600_000, 'a refreshable JWT lives at most an hour');
      // The code is consumed: polling it again is refused with a 400 (the CLI stops).
      const again = await s.call(
        'POST',
        '/auth/v1/workos/device-flow/token',
        { device_code: deviceCode },
        null,
      );
      assert.equal(again.status, 400, again.text);
    });
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
    assert.match(out, /New jobs:[\s\S]*\+ load_orders[\s\S]*\+ long_task/, out);
    assert.match(out, /4 added, 0 updated, 0 archived/, out);
    const deployments = (await s.call('GET', `${ws()}/deployments`)).json as Page<{
      version: number;
      requirements_size: number;
    }>;
    assert.deepEqual(
      deployments.items.map((d) => d.version),
      [1],
    );
    assert.ok(deployments.items[0]!.requirements_size > 0, 'the requirements.json was kept with the version');
    // Runway's own interactive `dashboard` job is in every workspace; the CLI knows it as jobs.dashboard.
    const names = (await jobs())
      .map((j) => j.name)
      .filter((n) => n !== 'dashboard')
      .sort();
    assert.deepEqual(names, [
      'jobs.load_orders',
      'jobs.long_task',
      'jobs.pipelines.orders_pipe',
      'jobs.workspace.dashboard',
    ]);
    assert.equal((await jobNamed('jobs.load_orders')).entry_point, 'load_orders.py');

    const second = await ok('deploy');
    assert.match(second, /Unchanged jobs/, second);
    assert.match(second, /0 added, 0 updated, 0 archived/, second);
    const again = (await s.call('GET', `${ws()}/deployments`)).json as Page<unknown>;
    assert.equal(again.total, 1, 'no new deployment version');
    const configs = (await s.call('GET', `${ws()}/configurations`)).json as Page<unknown>;
    assert.equal(configs.total, 1, 'no new configuration version');
  });

  it('info, workspace list, deployment / configuration list / info / sync, job list / info, jobs', async () => {
    // The syncs first, alone: they hash the local files (.dlt/config.toml among them).
    assert.match(await ok('deployment', 'sync'), /No changes detected in the deployment/);
    assert.match(await ok('configuration', 'sync'), /No changes detected in the configuration/);
    const [info, wsList, dList, dInfo, d1, cList, cInfo, c1, jList, jInfo, jobsOut] = await okAll(
      ['info'],
      ['workspace', 'list'],
      ['deployment', 'list'],
      ['deployment', 'info'],
      ['deployment', '1', 'info'],
      ['configuration', 'list'],
      ['configuration', 'info'],
      ['configuration', '1', 'info'],
      ['job', 'list'],
      ['job', 'load_orders', 'info'],
      ['jobs'],
    );
    assert.match(info!, new RegExp(s.workspaceId));
    // The manifest's four jobs and Runway's own interactive `dashboard` job.
    assert.match(info!, /# registered jobs: 5/, info);
    assert.match(wsList!, new RegExp(s.workspaceId));
    for (const o of [dList!, dInfo!, d1!, cList!, cInfo!, c1!]) assert.match(o, /\b1\b/, o);
    assert.ok(!cInfo!.includes('dev-key-not-secret'), 'no secret value in the CLI output');
    assert.match(jList!, /load_orders/);
    assert.match(jList!, /long_task/);
    // The stored definition: labelled by its pipeline name, the entry point its function.
    assert.match(jList!, /orders_pipe \(orders_pipe\)\s+1\s+pipelines::orders_pipe\s+batch/);
    assert.match(jInfo!, /load_orders\s+1\s+load_orders\s+batch/);
    assert.match(jobsOut!, /long_task/);
  });

  it('workspace switch, and a changed file makes a new deployment version (deployment sync)', async () => {
    assert.match(await ok('workspace', 'switch', s.workspaceId), /Switched to workspace/);
    writeFileSync(join(dir, 'extra.py'), 'print("new")\n');
    const dry = await ok('deployment', 'sync', '--dry-run', '-v');
    assert.match(dry, /extra\.py/, dry);
    assert.equal(((await s.call('GET', `${ws()}/deployments`)).json as Page<unknown>).total, 1);
    assert.match(await ok('deployment', 'sync'), /1 added, 0 updated, 0 deleted/);
    assert.equal(((await s.call('GET', `${ws()}/deployments`)).json as Page<unknown>).total, 2);
  });

  it('launch runs a job; logs, job-run list / info / logs and job-runs show it', async () => {
    await ok('launch', 'load_orders');
    const load = await jobNamed('jobs.load_orders');
    const done = await waitFor('the launched run to end', async () => {
      const r = (await runsOf(load.id))[0];
      return r && ['completed', 'failed', 'cancelled'].includes(r.status) ? r : undefined;
    });
    assert.equal(done.status, 'completed');
    const [logs, runList, runs, runInfo, run1Logs] = await okAll(
      ['logs', 'load_orders'],
      ['job-run', 'load_orders', 'list'],
      ['job-runs'],
      ['job-run', 'load_orders', 'info'],
      ['job-run', 'load_orders', '1', 'logs'],
    );
    assert.match(logs!, /order step 3[\s\S]*orders loaded/);
    assert.match(runList!, /load_orders/);
    assert.match(runs!, /load_orders/);
    assert.match(runInfo!, /completed/i);
    assert.match(run1Logs!, /orders loaded/);
  });

  it('trigger (by selector, dry run) and run-pipeline (by pipeline name) start runs', async () => {
    const load = await jobNamed('jobs.load_orders');
    const before = (await runsOf(load.id)).length;
    const [dry, pipe] = await okAll(
      ['trigger', 'manual:jobs.load_*', '--dry-run'],
      ['run-pipeline', 'orders_pipe'],
    );
    assert.match(dry!, /load_orders/, dry);
    assert.equal((await runsOf(load.id)).length, before, 'a dry run starts nothing');
    const pipeJob = await jobNamed('jobs.pipelines.orders_pipe');
    const run = await waitFor('the pipeline run to end', async () => {
      const r = (await runsOf(pipeJob.id))[0];
      return r && ['completed', 'failed', 'cancelled'].includes(r.status) ? r : undefined;
    });
    assert.equal(run.status, 'completed', pipe);
  });

  it('trigger by name, job-run cancel, logs -f of a live run, cancel (bulk, with a dry run)', async () => {
    const long = await jobNamed('jobs.long_task');
    await ok('trigger', 'long_task');
    await waitFor('the long task to run', async () =>
      (await runsOf(long.id))[0]?.runway_status === 'running' ? true : undefined,
    );
    assert.match(await ok('job-run', 'long_task', 'cancel'), /cancellation of run # 1/i);
    await waitFor('run 1 cancelled', async () =>
      (await runsOf(long.id)).find((r) => r.number === 1)?.status === 'cancelled' ? true : undefined,
    );
    const trig = await s.call('POST', `${ws()}/scripts/trigger`, { job_refs: ['jobs.long_task'] });
    assert.equal(trig.status, 201, trig.text);
    await waitFor('run 2 to run', async () =>
      (await runsOf(long.id)).find((r) => r.number === 2)?.runway_status === 'running' ? true : undefined,
    );
    const follow = dlt('logs', 'long_task', '-f');
    const dry = await ok('cancel', 'long_task', '--dry-run');
    assert.match(dry, /Would cancel run # 2 of jobs\.long_task \(was running\)/, dry);
    assert.equal((await runsOf(long.id)).find((r) => r.number === 2)?.status, 'running');
    assert.match(await ok('cancel', 'long_task'), /1 run\(s\) cancelled/);
    await waitFor('run 2 cancelled', async () =>
      (await runsOf(long.id)).find((r) => r.number === 2)?.status === 'cancelled' ? true : undefined,
    );
    const followed = await follow;
    assert.equal(followed.code, 0, followed.out);
    assert.match(followed.out, /long task started/);
    assert.doesNotMatch(followed.out, /Failed to parse log line/);
  });

  it('logs out (local only)', async () => {
    assert.match(await withDltLoginLock(() => ok('logout')), /Logged out/);
    assert.doesNotMatch(readFileSync(globalSecrets, 'utf8'), /refresh_token\s*=\s*"rrt_/);
  });
});
