import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { livePidsWithArg } from '#libs/testing';
import { startTestStack, type TestStack } from '../support/stack.js';
import { alive, newUser, uploadPackage, waitForStatus, type Json } from './support.js';

const SECRET = 'pa55-w0rd-that-must-not-leak';

const code = {
  'pipelines/ok.py': [
    'import os, pathlib',
    'print("profile", os.environ["WORKSPACE__PROFILE"])',
    'print("run", os.environ["RUNTIME__RUN_ID"])',
    'print("workspace marker", pathlib.Path(".dlt/.workspace").exists())',
    'print("secret", pathlib.Path(".dlt/prod.secrets.toml").read_text().strip())',
    'print("mode", oct(pathlib.Path(".dlt/prod.secrets.toml").stat().st_mode & 0o777))',
    'data = pathlib.Path(os.environ["DLT_DATA_DIR"]); data.mkdir(parents=True, exist_ok=True)',
    'counter = data / "count"; n = int(counter.read_text()) + 1 if counter.exists() else 1; counter.write_text(str(n))',
    'print("count", n)',
    '',
  ].join('\n'),
  'exit3.py':
    'import sys\nprint("about to fail")\nprint("boom: something broke", file=sys.stderr)\nsys.exit(3)\n',
  'stubborn.py': [
    'import os, signal, subprocess, sys, time',
    'signal.signal(signal.SIGTERM, signal.SIG_IGN)',
    "child = subprocess.Popen([sys.executable, '-c', 'import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)', os.environ['RUNTIME__RUN_ID']])",
    'print(f"child {child.pid}", flush=True)',
    'time.sleep(600)',
    '',
  ].join('\n'),
  'sleep.py': 'import time\nprint("sleeping", flush=True)\ntime.sleep(600)\n',
};

describe('jobs and runs through the compatible API', () => {
  let s: TestStack;
  let ws: string;
  const base = () => `/api/v1/workspaces/${ws}`;
  const upsert = (body: Json, token?: string) => s.call('POST', `${base()}/scripts`, body, token);
  const createRun = (name: string, token?: string, extra: Json = {}) =>
    s.call('POST', `${base()}/runs`, { script_id_or_name_or_secret: name, profile: null, ...extra }, token);
  const launchJob = (name: string, extra: Json = {}) =>
    upsert({
      name,
      description: `The ${name} script`,
      entry_point: name,
      script_type: 'batch',
      active: true,
      profile: null,
      schedule: null,
      ...extra,
    });

  before(async () => {
    s = await startTestStack({ RUNWAY_KILL_GRACE_SECONDS: '1' });
    ws = s.workspaceId;
    await uploadPackage(
      s,
      'deployments',
      Object.entries(code).map(([path, content]) => ({ path, content })),
    );
    await uploadPackage(s, 'configurations', [
      { path: 'config.toml', content: 'log_level = "WARNING"\n' },
      { path: 'prod.secrets.toml', content: `[sources.demo]\napi_key = "${SECRET}"\n` },
    ]);
  });
  after(() => s.stop());

  it('upserts scripts by name, bumping the version only on a change, and finds them by id or name with slashes', async () => {
    const a = await launchJob('pipelines/ok.py');
    assert.equal(a.status, 201, a.text);
    const job = a.json as Json;
    assert.equal(job.name, 'pipelines/ok.py');
    assert.equal(job.script_url, '');
    assert.equal(job.version, 1);
    assert.equal(job.active, true);
    assert.equal(job.schedule, null);
    assert.equal(
      (await launchJob('pipelines/ok.py')).json &&
        ((await launchJob('pipelines/ok.py')).json as Json).version,
      1,
      'unchanged: no version',
    );
    const scheduled = await upsert({
      name: 'pipelines/ok.py',
      description: 'The pipelines/ok.py scheduled job',
      entry_point: 'pipelines/ok.py',
      script_type: 'batch',
      active: true,
      schedule: '*/5 * * * *',
    });
    assert.equal((scheduled.json as Json).version, 2);
    assert.equal((scheduled.json as Json).schedule, '*/5 * * * *');
    // launch sends schedule: null, which clears it (and makes version 3).
    const launched = await launchJob('pipelines/ok.py');
    assert.equal((launched.json as Json).version, 3);
    assert.equal((launched.json as Json).schedule, null);
    assert.equal(
      (
        await upsert({
          name: 'x.py',
          description: '',
          entry_point: 'x.py',
          script_type: 'batch',
          schedule: '  ',
        })
      ).status,
      400,
    );

    const byName = await s.call('GET', `${base()}/scripts/pipelines/ok.py`);
    assert.equal(byName.status, 200, byName.text);
    assert.equal((byName.json as Json).id, job.id);
    assert.equal((byName.json as Json).last_run, null);
    const byId = await s.call('GET', `${base()}/scripts/${job.id as string}`);
    assert.equal((byId.json as Json).name, 'pipelines/ok.py');
    const versions = await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions?limit=100&offset=0`);
    assert.equal(versions.status, 200, versions.text);
    const items = (versions.json as { items: Json[] }).items;
    assert.deepEqual(
      items.map((v) => v.version),
      [3, 2, 1],
    );
    assert.equal(
      (await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions/latest`)).json &&
        ((await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions/latest`)).json as Json).version,
      3,
    );
    const v2 = await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions/2`);
    assert.equal((v2.json as Json).schedule, '*/5 * * * *');
    const v1 = await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions/${items[2]!.id as string}`);
    assert.equal((v1.json as Json).version, 1);
    assert.equal((await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions/9`)).status, 404);
    assert.equal((await s.call('GET', `${base()}/scripts/pipelines/nope.py`)).status, 404);
    // A job may itself be named like a versions path: the whole path wins.
    await launchJob('pipelines/ok.py/versions');
    assert.equal(
      ((await s.call('GET', `${base()}/scripts/pipelines/ok.py/versions`)).json as Json).name,
      'pipelines/ok.py/versions',
    );
  });

  it('runs a job: 201 with the nested script, starting visible to a 2 s poller, then completed with the whole timeline', async () => {
    await launchJob('pipelines/ok.py');
    const t0 = Date.now();
    const r = await createRun('pipelines/ok.py');
    assert.equal(r.status, 201, r.text);
    const run = r.json as Json;
    assert.equal(run.number, 1);
    assert.equal(run.trigger, 'manual');
    assert.equal(run.runway_trigger, 'api', 'an API token makes an api run (shown as manual to the dlt CLI)');
    assert.equal(run.profile, 'prod');
    assert.equal((run.script as Json).name, 'pipelines/ok.py');
    assert.ok(['pending', 'starting'].includes(run.status as string));
    // The dlt CLI polls right away, then every 2 s, until it sees starting.
    const polled: string[] = [];
    for (;;) {
      const g = await s.call('GET', `${base()}/runs/${run.id as string}`);
      polled.push((g.json as Json).status as string);
      if (['starting', 'failed', 'cancelled'].includes(polled.at(-1)!) || Date.now() - t0 > 10_000) break;
      await new Promise((res) => setTimeout(res, 2_000));
    }
    assert.equal(polled.at(-1), 'starting', `polled ${polled.join(',')}`);
    const done = await waitForStatus(s, run.id as string, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(
      (done.status_timeline as Json[]).map((t) => t.status),
      ['pending', 'starting', 'running', 'finalizing', 'completed'],
    );
    assert.ok(done.time_started && done.time_ended && done.duration !== null);
    assert.equal(done.exit_code, 0);
    assert.equal(done.deployment_version, 1);
    assert.equal(done.configuration_version, 1);
    assert.equal(done.script_version, 3);
    const logs = await s.call('GET', `${base()}/runs/${run.id as string}/logs`);
    assert.equal(logs.status, 200);
    const text = (logs.json as { logs: string }).logs;
    assert.match(text, /profile prod/);
    assert.match(text, new RegExp(`run ${run.id as string}`));
    assert.match(text, /workspace marker True/);
    assert.match(text, /mode 0o600/);
    assert.match(text, /secret \[sources\.demo\]/);
    assert.ok(!text.includes(SECRET), 'the secret value is masked in the output');
    assert.match(text, /api_key = "\*\*\*"/);
    assert.match(text, /count 1/);
    assert.equal(((logs.json as { run: Json }).run.script as Json).name, 'pipelines/ok.py');
    // A second run of the job sees the data dir of the first (DLT_DATA_DIR per job).
    const second = await createRun('pipelines/ok.py');
    assert.equal((second.json as Json).number, 2);
    await waitForStatus(s, (second.json as Json).id as string, ['completed']);
    const logs2 = await s.call('GET', `${base()}/runs/${(second.json as Json).id as string}/logs`);
    assert.match((logs2.json as { logs: string }).logs, /count 2/);
    // The script now shows its last run.
    const job = await s.call('GET', `${base()}/scripts/pipelines/ok.py`);
    assert.equal(((job.json as Json).last_run as Json).number, 2);
  });

  it('fails a script that exits 3 with the exit code and the last stderr lines', async () => {
    await launchJob('exit3.py');
    const r = await createRun('exit3.py');
    const run = await waitForStatus(s, (r.json as Json).id as string, ['failed', 'completed']);
    assert.equal(run.status, 'failed');
    assert.equal(run.exit_code, 3);
    assert.equal(run.failure_reason, 'exit_code');
    assert.deepEqual(run.stderr_tail, ['boom: something broke']);
    assert.deepEqual(
      (run.status_timeline as Json[]).map((t) => t.status),
      ['pending', 'starting', 'running', 'finalizing', 'failed'],
    );
    // Cancelling a finished run: a 4xx whose detail holds "terminal state", not as its first words.
    const c = await s.call('POST', `${base()}/runs/${run.id as string}/cancel`);
    assert.equal(c.status, 400, c.text);
    const detail = (c.json as { detail: string }).detail;
    assert.match(detail, /terminal state/);
    assert.ok(!/^terminal state/i.test(detail));
    assert.match(detail, /^run 1 is already in a terminal state \(failed\)$/);
  });

  it('cancels a script that ignores SIGTERM and its child: cancelling, then cancelled once both are gone', async () => {
    await launchJob('stubborn.py');
    const r = await createRun('stubborn.py');
    const id = (r.json as Json).id as string;
    let childPid = 0;
    const until = Date.now() + 30_000;
    while (!childPid && Date.now() < until) {
      const logs = await s.call('GET', `${base()}/runs/${id}/logs`);
      childPid = Number(/child (\d+)/.exec((logs.json as { logs: string | null }).logs ?? '')?.[1] ?? 0);
      if (!childPid) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(childPid > 0 && livePidsWithArg(id).length > 0);
    const c = await s.call('POST', `${base()}/runs/${id}/cancel`, undefined, undefined);
    assert.equal(c.status, 201, c.text);
    assert.equal((c.json as Json).status, 'cancelling');
    assert.equal(((c.json as Json).script as Json).name, 'stubborn.py');
    const run = await waitForStatus(s, id, ['cancelled', 'failed', 'completed'], 30_000);
    assert.equal(run.status, 'cancelled');
    assert.deepEqual(livePidsWithArg(id), [], 'the child process is gone');
    assert.equal(alive((run.pid as number) ?? 0), false);
    const statuses = (run.status_timeline as Json[]).map((t) => t.status);
    assert.deepEqual(statuses.slice(-2), ['cancelling', 'cancelled']);
    // A second cancel of the now finished run is refused.
    assert.equal((await s.call('POST', `${base()}/runs/${id}/cancel`)).status, 400);
  });

  it('stops a run at its job timeout with reason timeout', async () => {
    await launchJob('sleep.py', { timeout_seconds: 3 });
    const r = await createRun('sleep.py');
    const run = await waitForStatus(
      s,
      (r.json as Json).id as string,
      ['failed', 'completed', 'cancelled'],
      30_000,
    );
    assert.equal(run.status, 'failed');
    assert.equal(run.failure_reason, 'timeout');
    assert.equal(run.signal, 'SIGTERM');
    assert.equal((run.script as Json).timeout_seconds as number, 3);
  });

  it('lists runs newest first with limit, offset and filters, and serves the latest run', async () => {
    const all = await s.call('GET', `${base()}/runs?limit=100&offset=0`);
    assert.equal(all.status, 200, all.text);
    const page = all.json as { items: Json[]; total: number; limit: number; offset: number };
    assert.equal(page.total, 5);
    const dates = page.items.map((r) => Date.parse(r.date_added as string));
    assert.deepEqual(
      dates,
      [...dates].sort((a, b) => b - a),
      'newest first',
    );
    for (const item of page.items) assert.equal(typeof (item.script as Json).name, 'string');
    const one = await s.call('GET', `${base()}/runs?limit=1&offset=1`);
    assert.equal((one.json as { items: Json[] }).items[0]!.id, page.items[1]!.id);
    const ok = await s.call('GET', `${base()}/scripts/pipelines/ok.py`);
    const byJob = await s.call(
      'GET',
      `${base()}/runs?script_id=${(ok.json as Json).id as string}&limit=100&offset=0`,
    );
    assert.deepEqual(
      (byJob.json as { items: Json[] }).items.map((r) => r.number),
      [2, 1],
    );
    const failed = await s.call('GET', `${base()}/runs?status=failed&limit=100&offset=0`);
    assert.ok((failed.json as { items: Json[] }).items.every((r) => r.status === 'failed'));
    assert.equal((await s.call('GET', `${base()}/runs?status=bogus`)).status, 400);
    const latest = await s.call('GET', `${base()}/runs/latest?script_id=${(ok.json as Json).id as string}`);
    assert.equal((latest.json as Json).number, 2);
    const scripts = await s.call('GET', `${base()}/scripts?limit=100&offset=0`);
    const names = (scripts.json as { items: Json[] }).items.map((j) => j.name as string);
    assert.deepEqual(names, [...names].sort());
  });

  it('answers 404 for unknown scripts and runs, and a 4xx for a run of an inactive job or an unknown profile', async () => {
    assert.equal((await createRun('nope.py')).status, 404);
    assert.equal((await s.call('GET', `${base()}/runs/00000000-0000-4000-8000-000000000000`)).status, 404);
    assert.equal((await s.call('GET', `${base()}/runs/not-a-uuid/logs`)).status, 404);
    assert.equal(
      (await s.call('POST', `${base()}/runs/00000000-0000-4000-8000-000000000000/cancel`)).status,
      404,
    );
    await launchJob('exit3.py', { active: false });
    const inactive = await createRun('exit3.py');
    assert.equal(inactive.status, 400, inactive.text);
    assert.match((inactive.json as { detail: string }).detail, /inactive/);
    await launchJob('exit3.py', { active: true });
    const profile = await createRun('exit3.py', undefined, { profile: 'staging' });
    assert.equal(profile.status, 400, profile.text);
    assert.match((profile.json as { detail: string }).detail, /profile staging does not exist/);
    await upsert({ name: 'missing.py', description: '', entry_point: 'missing.py', script_type: 'batch' });
    const missing = await createRun('missing.py');
    assert.equal(missing.status, 400, missing.text);
    assert.match((missing.json as { detail: string }).detail, /not a file of deployment 1/);
    const runs = await s.call('GET', `${base()}/runs?limit=1000`);
    assert.ok(
      !(runs.json as { items: Json[] }).items.some((r) => (r.script as Json).name === 'missing.py'),
      'nothing recorded',
    );
  });

  it('lets viewers read but not write, and hides other workspaces', async () => {
    const viewer = await newUser(s, 'viewer@example.com', 'viewer');
    assert.equal((await s.call('GET', `${base()}/scripts`, undefined, viewer.token)).status, 200);
    assert.equal(
      (
        await launchJob('pipelines/ok.py', {}).then(() =>
          upsert({ name: 'v.py', description: '', entry_point: 'v.py', script_type: 'batch' }, viewer.token),
        )
      ).status,
      403,
    );
    assert.equal((await createRun('pipelines/ok.py', viewer.token)).status, 403);
    const runs = await s.call('GET', `${base()}/runs?limit=1`, undefined, viewer.token);
    const someRun = (runs.json as { items: Json[] }).items[0]!;
    assert.equal(
      (await s.call('POST', `${base()}/runs/${someRun.id as string}/cancel`, undefined, viewer.token)).status,
      403,
    );
    const bob = await newUser(s, 'bob@example.com');
    // Bob's own workspace does not hold the admin's run; the admin's workspace is not Bob's.
    assert.equal(
      (
        await s.call(
          'GET',
          `/api/v1/workspaces/${bob.workspaceId}/runs/${someRun.id as string}`,
          undefined,
          bob.token,
        )
      ).status,
      404,
    );
    assert.equal(
      (
        await s.call(
          'POST',
          `/api/v1/workspaces/${bob.workspaceId}/runs/${someRun.id as string}/cancel`,
          undefined,
          bob.token,
        )
      ).status,
      404,
    );
    assert.equal(
      (await s.call('GET', `${base()}/runs/${someRun.id as string}`, undefined, bob.token)).status,
      404,
    );
    assert.equal(
      (
        await s.call(
          'GET',
          `/api/v1/workspaces/${bob.workspaceId}/scripts/pipelines/ok.py`,
          undefined,
          bob.token,
        )
      ).status,
      404,
    );
  });
});
