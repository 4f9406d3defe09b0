import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { protoPath } from '../../services/gateway/src/grpc/grpc-server.js';
import { nextFire } from '../../services/scheduling/src/scheduler/cron.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { waitForStatus, type Json } from '../jobs/support.js';

const root = process.cwd();
const cli = join(root, 'bin/runway.mjs');
const dltBin = join(root, '.venv', 'bin', 'dlt');

describe('runway schedule and the unmodified `dlt runtime schedule`', () => {
  let s: TestStack;
  let dir: string;
  let dltDir: string;
  let configDir: string;
  let jwt: string;
  const base = () => `/api/v1/workspaces/${s.workspaceId}`;
  const script = async (name: string) => {
    const r = await s.call('GET', `${base()}/scripts/${name}`);
    assert.equal(r.status, 200, r.text);
    return r.json as Json;
  };
  const runsOf = async (jobId: string) =>
    ((await s.call('GET', `${base()}/runs?script_id=${jobId}`)).json as { items: Json[] }).items;

  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-schedws-'));
    dltDir = mkdtempSync(join(tmpdir(), 'runway-scheddlt-'));
    configDir = mkdtempSync(join(tmpdir(), 'runway-cfg-'));
    for (const d of [dir, dltDir]) cpSync(join(root, 'test/fixtures/dlt-workspace'), d, { recursive: true });
    // The dlt CLI: a JWT from the device flow (approved by the admin) and the workspace in .dlt/config.toml,
    // as `dlt runtime login` would leave them (without touching the global /var/dlt of other tests).
    const code = await s.call('POST', '/auth/v1/github/device-flow/code', {}, null);
    const c = code.json as { device_code: string; user_code: string };
    assert.equal((await s.call('POST', '/api/v1/device/approve', { user_code: c.user_code })).status, 201);
    const token = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(token.status, 201, token.text);
    jwt = (token.json as { jwt: string }).jwt;
    const cfg = join(dltDir, '.dlt/config.toml');
    writeFileSync(
      cfg,
      readFileSync(cfg, 'utf8').replace('[runtime]\n', `[runtime]\nworkspace_id = "${s.workspaceId}"\n`),
    );
  });
  after(async () => {
    for (const d of [dir, dltDir, configDir]) rmSync(d, { recursive: true, force: true });
    await s.stop();
  });

  const runway = (...args: string[]) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUNWAY_CONFIG_DIR: configDir,
      RUNWAY_TOKEN: s.adminToken,
    };
    delete env.RUNTIME__API_BASE_URL;
    delete env.RUNTIME__AUTH_TOKEN;
    delete env.DLT_PROJECT_DIR;
    return run(process.execPath, [cli, '--api-url', s.api, ...args], { cwd: dir, env });
  };
  /** The unmodified dlt CLI, killed (code null) after `timeoutMs`. */
  const dltWithin = async (timeoutMs: number, ...args: string[]) => {
    const r = await run(dltBin, ['--non-interactive', 'runtime', ...args], {
      cwd: dltDir,
      env: {
        ...process.env,
        RUNTIME__API_BASE_URL: s.api,
        RUNTIME__AUTH_BASE_URL: s.auth,
        RUNTIME__AUTH_TOKEN: jwt,
        RUNTIME__DLTHUB_TELEMETRY: 'false',
        DLT_DATA_DIR: join(dltDir, '_storage'),
      },
      timeoutMs,
    });
    return { code: r.code, out: `${r.out}\n${r.err}` };
  };
  const dlt = (...args: string[]) => dltWithin(120_000, ...args);

  it('runway schedule: rejects a bad cron, zone or policy with exit 2 before deploying anything', async () => {
    const a = await runway('schedule', 'pipeline.py', '61 * * * *');
    assert.equal(a.code, 2, a.out + a.err);
    assert.match(a.err, /invalid schedule "61 \* \* \* \*"/);
    // A step larger than the field's range: refused here, naming the field, as the server does.
    const step = await runway('schedule', 'pipeline.py', '*/61 * * * *');
    assert.equal(step.code, 2, step.out + step.err);
    assert.equal(
      step.err,
      `runway: invalid schedule "*/61 * * * *": minute step 61 out of range 1-59 (the field's values are 0-59)\n`,
    );
    const jsonStep = await runway('--json', 'schedule', 'pipeline.py', '0 */24 * * *');
    assert.equal(jsonStep.code, 2);
    assert.deepEqual(JSON.parse(jsonStep.err), {
      error: {
        code: 'usage',
        message: `invalid schedule "0 */24 * * *": hour step 24 out of range 1-23 (the field's values are 0-23)`,
        exit_code: 2,
      },
    });
    const b = await runway('schedule', 'pipeline.py', '0 * * * *', '--tz', 'Mars/Olympus');
    assert.equal(b.code, 2, b.err);
    assert.match(b.err, /invalid time zone "Mars\/Olympus"/);
    const c = await runway('schedule', 'pipeline.py', '* * *');
    assert.equal(c.code, 2, c.err);
    assert.match(c.err, /expected 5 fields .* got 3/);
    const d = await runway('schedule', 'pipeline.py', '0 * * * *', '--overlap', 'sometimes');
    assert.equal(d.code, 2, d.err);
    assert.match(d.err, /invalid --overlap policy "sometimes": expected one of skip, queue, allow/);
    const e = await runway('schedule', 'missing.py', '0 * * * *');
    assert.equal(e.code, 2, e.err);
    assert.match(e.err, /entry point missing\.py not found/);
    const f = await runway('schedule', 'pipeline.py');
    assert.equal(f.code, 2, 'usage error');
    const deployments = await s.call('GET', `${base()}/deployments`);
    assert.equal((deployments.json as { items: unknown[] }).items.length, 0, 'nothing deployed');
  });

  it('runway schedule <script> "<cron>" --tz --missed --overlap deploys, sets the schedule and runs nothing', async () => {
    const r = await runway(
      'schedule',
      'pipeline.py',
      '0 3 * * *',
      '--tz',
      'Europe/Berlin',
      '--missed',
      'run_all',
      '--overlap',
      'queue',
    );
    assert.equal(r.code, 0, r.out + r.err);
    const job = await script('pipeline.py');
    assert.equal(job.schedule, '0 3 * * *');
    assert.equal(job.timezone, 'Europe/Berlin');
    assert.equal(job.missed_policy, 'run_all');
    assert.equal(job.overlap_policy, 'queue');
    const next = nextFire('0 3 * * *', 'Europe/Berlin', new Date(Date.now() - 60_000))!.toISOString();
    assert.equal(job.next_scheduled_run, next);
    assert.ok(
      r.out.includes(`Scheduled pipeline.py with cron "0 3 * * *" (Europe/Berlin), next run at ${next}`),
      r.out,
    );
    assert.match(r.err, /Deployment version 1 created/);
    assert.equal((await runsOf(job.id as string)).length, 0, 'no run created');
    // Again, unchanged: no new version, no run; the redeploy finds nothing new.
    const again = await runway('schedule', 'pipeline.py', '0 3 * * *', '--tz', 'Europe/Berlin');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /Job version #1\b/);
    assert.match(again.err, /Deployment version 1 is current/);
    assert.doesNotMatch(again.err, /Time zone: UTC/);
    assert.equal((await script('pipeline.py')).timezone, 'Europe/Berlin');
    // Without --tz: UTC, always (not the zone the job had), and the CLI says which zone it used.
    const utc = await runway('schedule', 'pipeline.py', '0 3 * * *');
    assert.equal(utc.code, 0, utc.err);
    assert.match(utc.err, /Time zone: UTC \(the default without --tz\)/);
    assert.match(utc.out, /Scheduled pipeline\.py with cron "0 3 \* \* \*" \(UTC\), next run at /);
    assert.match(utc.out, /Job version #2\b/);
    assert.equal((await script('pipeline.py')).timezone, 'UTC');
    const info = await runway('job', 'info', 'pipeline.py');
    assert.match(info.out, /0 3 \* \* \*\s+UTC/);
    assert.equal((await runsOf(job.id as string)).length, 0, 'still no run');
  });

  it('runway schedule <script> cancel [--current] clears the schedule, keeps the job and cancels the latest run', async () => {
    const job = await script('pipeline.py');
    const created = await s.call('POST', `${base()}/runs`, {
      script_id_or_name: 'pipeline.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    await waitForStatus(s, (created.json as Json).id as string, ['completed', 'failed'], 90_000);
    const r = await runway('schedule', 'pipeline.py', 'cancel', '--current');
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /Schedule "0 3 \* \* \*" of pipeline\.py cancelled/);
    assert.match(r.out, /Run #1 of pipeline\.py already ended/);
    const after = await script('pipeline.py');
    assert.equal(after.schedule, null);
    assert.equal(after.next_scheduled_run, null);
    assert.equal(after.id, job.id);
    const again = await runway('schedule', 'pipeline.py', 'cancel');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /pipeline\.py is not a scheduled job/);
    const missing = await runway('schedule', 'nope.py', 'cancel');
    assert.equal(missing.code, 1, missing.err);
    assert.match(missing.err, /not found/);
    const bad = await runway('schedule', 'pipeline.py', 'cancel', '--tz', 'UTC');
    assert.equal(bad.code, 2, bad.err);
  });

  it('runway schedule <script> cancel --current cancels a running run', async () => {
    writeFileSync(join(dir, 'sleepy.py'), 'import time\nprint("zz", flush=True)\ntime.sleep(120)\n');
    const set = await runway('schedule', 'sleepy.py', '0 0 1 1 *');
    assert.equal(set.code, 0, set.out + set.err);
    const created = await s.call('POST', `${base()}/runs`, { script_id_or_name: 'sleepy.py', profile: null });
    assert.equal(created.status, 201, created.text);
    const id = (created.json as Json).id as string;
    await waitForStatus(s, id, ['running'], 90_000);
    const r = await runway('schedule', 'sleepy.py', 'cancel', '--current');
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /Schedule "0 0 1 1 \*" of sleepy\.py cancelled/);
    assert.match(r.out, /Requested cancellation of run #1 of sleepy\.py/);
    await waitForStatus(s, id, ['cancelled'], 60_000);
    // Not scheduled any more: cancel --current does nothing (as dlt).
    const again = await runway('schedule', 'sleepy.py', 'cancel', '--current');
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /sleepy\.py is not a scheduled job/);
  });

  it('dlt runtime schedule <script> "<cron>" and schedule cancel [--current] work against Runway', async () => {
    writeFileSync(join(dltDir, 'nightly.py'), 'print("nightly")\n');
    const r = await dlt('schedule', 'nightly.py', '*/5 * * * *');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Scheduled nightly\.py with cron/);
    const job = await script('nightly.py');
    assert.equal(job.schedule, '*/5 * * * *');
    assert.equal(job.timezone, 'UTC');
    assert.equal(job.description, 'The nightly.py scheduled job');
    assert.equal(
      job.next_scheduled_run,
      nextFire('*/5 * * * *', 'UTC', new Date(Date.parse(job.date_updated as string)))!.toISOString(),
    );
    assert.equal((await runsOf(job.id as string)).length, 0, 'no run created');

    const c = await dlt('schedule', 'nightly.py', 'cancel');
    assert.equal(c.code, 0, c.out);
    const cancelled = await script('nightly.py');
    assert.equal(cancelled.schedule, null);
    assert.equal(cancelled.next_scheduled_run, null);
    const again = await dlt('schedule', 'nightly.py', 'cancel');
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /not a scheduled job/);

    // --current on a finished run: the "terminal state" answer is ignored.
    assert.equal((await dlt('schedule', 'nightly.py', '*/5 * * * *')).code, 0);
    const created = await s.call('POST', `${base()}/runs`, {
      script_id_or_name: 'nightly.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    await waitForStatus(s, (created.json as Json).id as string, ['completed', 'failed'], 90_000);
    const cur = await dlt('schedule', 'nightly.py', 'cancel', '--current');
    assert.equal(cur.code, 0, cur.out);
    assert.equal((await script('nightly.py')).schedule, null);
  });

  it('dlt runtime logs <script> -f ends when the latest run was skipped (reported as cancelled; runway_status skipped)', async () => {
    // A scheduled fire that cannot run (its profile exists nowhere) is recorded as a skipped run.
    const up = await s.call('POST', `${base()}/scripts`, {
      name: 'ghost.py',
      description: '',
      entry_point: 'ghost.py',
      script_type: 'batch',
      profile: 'ghost',
      schedule: '* * * * * *',
    });
    assert.equal(up.status, 201, up.text);
    const jobId = (up.json as Json).id as string;
    let runs: Json[] = [];
    for (const until = Date.now() + 30_000; runs.length === 0;) {
      if (Date.now() > until) throw new Error('no skipped run within 30 s');
      await new Promise((r) => setTimeout(r, 300));
      runs = await runsOf(jobId);
    }
    const off = await s.call('POST', `${base()}/scripts`, {
      name: 'ghost.py',
      description: '',
      entry_point: 'ghost.py',
      script_type: 'batch',
      active: false,
    });
    assert.equal(off.status, 201, off.text);
    const latest = (await runsOf(jobId))[0]!;
    assert.equal(latest.runway_status, 'skipped');
    assert.equal(latest.status, 'cancelled');
    assert.match(
      String(latest.message),
      /profile ghost does not exist|deploy/,
      'the reason it could not run',
    );
    const t0 = Date.now();
    const r = await dltWithin(60_000, 'logs', 'ghost.py', '-f');
    assert.ok(Date.now() - t0 < 55_000, 'dlt logs -f ended on its own');
    assert.notEqual(r.code, null, `killed after 60 s: ${r.out}`);
    assert.match(r.out, /cancelled/i);
  });

  it('gRPC: UpsertJob sets schedule, zone and policies; "" clears the schedule; GetJob shows them', async () => {
    type Unary = (
      req: object,
      md: grpc.Metadata,
      cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
    ) => void;
    const def = protoLoader.loadSync(protoPath(), { keepCase: true, longs: Number, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runway: { v1: { Runway: new (addr: string, creds: grpc.ChannelCredentials) => grpc.Client } };
    };
    const client = new pkg.runway.v1.Runway(
      `127.0.0.1:${s.runway.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as grpc.Client & Record<string, Unary>;
    const call = (method: string, req: object) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> }>((resolve) => {
        const md = new grpc.Metadata();
        md.set('authorization', `Bearer ${s.adminToken}`);
        client[method]!(req, md, (err, res) => resolve({ err, res }));
      });
    try {
      const job = { workspace_id: s.workspaceId, name: 'grpc-sched.py', entry_point: 'pipeline.py' };
      const up = await call('UpsertJob', {
        ...job,
        schedule: '30 2 * * *',
        timezone: 'America/New_York',
        missed_policy: 'skip',
        overlap_policy: 'allow',
      });
      assert.equal(up.err, null, up.err?.details);
      assert.equal(up.res.schedule, '30 2 * * *');
      assert.equal(up.res.timezone, 'America/New_York');
      assert.equal(up.res.missed_policy, 'skip');
      assert.equal(up.res.overlap_policy, 'allow');
      assert.ok(up.res.next_scheduled_run);
      const bad = await call('UpsertJob', { ...job, schedule: '0 25 * * *' });
      assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(bad.err?.details ?? '', /hour 25 out of range 0-23/);
      const badTz = await call('UpsertJob', { ...job, timezone: 'Nowhere' });
      assert.equal(badTz.err?.code, grpc.status.INVALID_ARGUMENT);
      const cleared = await call('UpsertJob', { ...job, schedule: '' });
      assert.equal(cleared.err, null, cleared.err?.details);
      assert.equal(cleared.res.schedule, '');
      assert.equal(cleared.res.next_scheduled_run, '');
      const got = await call('GetJob', { workspace_id: s.workspaceId, id_or_name: 'grpc-sched.py' });
      assert.equal(got.res.timezone, 'America/New_York', 'the zone stays when the schedule is cleared');
      assert.equal(got.res.overlap_policy, 'allow');
    } finally {
      client.close();
    }
  });
});
