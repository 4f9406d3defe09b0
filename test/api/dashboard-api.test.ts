import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  configurationProfilesSchema,
  DashboardClient,
  DashboardApiError,
  deploymentDiffSchema,
  jobSummarySchema,
  overviewSchema,
  pipelineInsightsSchema,
  runsPageSchema,
  schedulePreviewSchema,
  type DashboardMessage,
  type RunSummary,
} from '../../libs/client/src/dashboard.js';
import { nextFire } from '../../services/scheduling/src/scheduler/cron.js';
import { uploadPackage, waitForStatus, type Json } from '../jobs/support.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const FIXTURE = join(process.cwd(), 'test', 'fixtures', 'dlt-workspace');
const pipelinePy = readFileSync(join(FIXTURE, 'pipeline.py'), 'utf8');
const dotDlt = join(FIXTURE, '.dlt');
const tomls = readdirSync(dotDlt)
  .filter((f) => f.endsWith('.toml'))
  .map((f) => ({ path: f, content: readFileSync(join(dotDlt, f), 'utf8') }));
/** The secret values of the fixture's configuration: never in any answer of these routes. */
const SECRETS = ['prod-api-key-5f1c9e2a7b', 'dev-key-not-secret'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(
  what: string,
  f: () => T | undefined | Promise<T | undefined>,
  ms = 60_000,
): Promise<T> {
  for (const end = Date.now() + ms; ;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * The dashboard's API (docs/dashboard-api.md) on one real stack: keyset pages under inserts,
 * the schedule preview against the scheduler's code, the deployment diff, profile keys without
 * values, pipelines from a real dlt run, live updates over SSE, the log download, job creation.
 */
describe('the dashboard API', () => {
  let s: TestStack;
  let ws: string;
  let api: DashboardClient;
  const messages: DashboardMessage[] = [];
  const live = new AbortController();
  let following: Promise<void>;
  let shopJob: string;
  let quickJob: string;
  let shopRun: Json;

  const get = async (path: string) => {
    const r = await s.call('GET', `/api/v1/workspaces/${ws}${path}`);
    for (const secret of SECRETS) assert.ok(!r.text.includes(secret), `${path} leaks a secret value`);
    return r;
  };
  const requestRun = async (job: string, trigger: 'manual' | 'api') => {
    const r = await s.call('POST', `/api/v1/workspaces/${ws}/runs`, { script_id_or_name: job, trigger });
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };

  before(async () => {
    s = await startTestStack();
    ws = s.workspaceId;
    api = new DashboardClient({ apiBase: s.api, token: s.adminToken });
    following = api.streamEvents(ws, (m) => messages.push(m), { signal: live.signal });
    await until('the live stream', () => messages.find((m) => m.type === 'ready'));
    // Version 1, then version 2: a changed text file, a changed binary, one added, one removed.
    await uploadPackage(s, 'deployments', [
      { path: 'pipeline.py', content: pipelinePy },
      { path: 'quick.py', content: 'print("quick")\n' },
      { path: 'notes.txt', content: 'line one\nline two\nline three\n' },
      { path: 'blob.bin', content: Buffer.from([0, 1, 2, 3, 255]) },
      { path: 'old.py', content: 'print("old")\n' },
    ]);
    await uploadPackage(s, 'deployments', [
      { path: 'pipeline.py', content: pipelinePy },
      { path: 'quick.py', content: 'print("quick")\n' },
      { path: 'notes.txt', content: 'line one\nline 2\nline three\n' },
      { path: 'blob.bin', content: Buffer.from([0, 1, 2, 4, 255]) },
      { path: 'new.py', content: 'print("new")\n' },
    ]);
    await uploadPackage(s, 'configurations', tomls);
  });
  after(async () => {
    live.abort();
    await following.catch(() => undefined);
    await s.stop();
  });

  it('creates jobs from the dashboard, checked against the latest deployment', async () => {
    const shop = await api.createJob(ws, { name: 'shop', entry_point: 'pipeline.py' });
    assert.equal(jobSummarySchema.parse(shop).entry_point, 'pipeline.py');
    shopJob = shop.id;
    quickJob = (await api.createJob(ws, { name: 'quick', entry_point: './quick.py', kind: 'batch' })).id;
    await assert.rejects(
      api.createJob(ws, { name: 'gone', entry_point: 'old.py' }),
      (e: DashboardApiError) => {
        assert.equal(e.status, 400);
        assert.match(e.detail, /the entry point old\.py is not a file of deployment 2/);
        return true;
      },
    );
    await assert.rejects(api.createJob(ws, { name: 'shop', entry_point: 'quick.py' }), { status: 409 });
    const bad = await s.call('POST', `/api/v1/workspaces/${ws}/jobs`, {
      name: 'x',
      entry_point: 'quick.py',
      kind: 'nope',
    });
    assert.equal(bad.status, 400, bad.text);
    const badCron = await s.call('POST', `/api/v1/workspaces/${ws}/jobs`, {
      name: 'x',
      entry_point: 'quick.py',
      schedule: '61 * * * *',
    });
    assert.equal(badCron.status, 400, badCron.text);
    assert.match(badCron.text, /minute 61 out of range/);
    const jobs = await until('job.changed messages', () => {
      const ids = messages
        .filter((m) => m.type === 'job.changed' && m.change === 'created')
        .map((m) => m.type === 'job.changed' && m.job_id);
      return ids.includes(shopJob) && ids.includes(quickJob) ? ids : undefined;
    });
    assert.equal(jobs.length, 2, 'no job was created by the refused requests');
  });

  it('runs a real dlt pipeline: live run.status over SSE, pipeline insights, log download', async () => {
    const runId = await requestRun('shop', 'manual');
    // pending → … → completed arrives live, pushed from the EVENTS stream.
    await until(
      'run.status completed over SSE',
      () =>
        messages.find(
          (m) => m.type === 'run.status' && m.run_id === runId && ['completed', 'failed'].includes(m.status),
        ),
      120_000,
    );
    const statuses = messages.flatMap((m) =>
      m.type === 'run.status' && m.run_id === runId ? [m.status] : [],
    );
    assert.equal(statuses[0], 'pending', JSON.stringify(messages));
    assert.ok(statuses.includes('starting'), JSON.stringify(statuses));
    assert.equal(statuses.at(-1), 'completed', JSON.stringify(messages));
    assert.ok(messages.every((m) => m.type !== 'run.status' || m.run_id !== runId || m.job_id === shopJob));
    shopRun = await waitForStatus(s, runId, ['completed']);

    const insights = pipelineInsightsSchema.parse(
      (
        await until('the pipeline insights', async () => {
          const r = await get(`/pipeline-insights?name=shop`);
          return r.status === 200 && (r.json as { loads: unknown[] }).loads.length > 0 ? r : undefined;
        })
      ).json,
    );
    const tables = insights.schemas.flatMap((x) => x.tables);
    const customers = tables.find((t) => t.name === 'customers');
    const orders = tables.find((t) => t.name === 'customers__orders');
    assert.ok(customers && orders, JSON.stringify(insights.schemas));
    assert.equal(customers.resource, 'customers');
    assert.deepEqual(customers.children, ['customers__orders']);
    assert.equal(orders.parent, 'customers');
    assert.ok(customers.columns.some((c) => c.name === 'name' && c.data_type === 'text'));
    const [load] = insights.loads;
    assert.ok(load);
    assert.equal(load.run_id, runId);
    assert.equal(load.status, 'completed');
    assert.equal(load.row_counts.customers, 2);
    assert.equal(load.row_counts.customers__orders, 3);
    assert.equal(
      load.rows_total,
      Object.values(load.row_counts).reduce((a, b) => a + b, 0),
    );
    assert.ok(load.duration_ms !== null && load.duration_ms >= 0, JSON.stringify(load));
    const edge = (from: string, to: string) =>
      insights.lineage.edges.some((e) => e.from === from && e.to === to);
    const schema = insights.schemas[0]!.name;
    assert.ok(edge('resource:customers', `table:${schema}.customers`), JSON.stringify(insights.lineage));
    assert.ok(edge(`table:${schema}.customers`, `table:${schema}.customers__orders`));
    assert.equal(insights.lineage.nodes.find((n) => n.label === 'customers__orders')?.kind, 'child_table');
    assert.equal(insights.trend.success_rate, 1);
    assert.deepEqual(
      insights.trend.runs.map((r) => [r.run_id, r.status]),
      [[runId, 'completed']],
    );
    assert.ok(insights.trend.runs[0]!.duration_ms! > 0);
    assert.equal((await get('/pipeline-insights?name=nope')).status, 404);
    assert.equal((await get('/pipeline-insights')).status, 400);

    // The whole log as a file, streamed.
    const res = await fetch(api.logDownloadUrl(ws, runId), {
      headers: { authorization: `Bearer ${s.adminToken}` },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition') ?? '', /^attachment; filename="shop-run-1\.log"$/);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /first run: True/);
    assert.match(text, /dataset: shop_prod/);
    assert.ok(text.endsWith('\n'));
    for (const secret of SECRETS) assert.ok(!text.includes(secret));
    const compat = (await get(`/runs/${runId}/logs`)).json as { logs: string };
    assert.equal(text, `${compat.logs}\n`, 'the download is the whole log, as the compatible route has it');
    assert.equal((await get(`/runs/00000000-0000-4000-8000-000000000000/logs/download`)).status, 404);
  });

  it('pages runs by keyset with filters: no duplicate, no gap while new runs arrive', async () => {
    const first: string[] = [];
    for (let i = 0; i < 8; i++) first.push(await requestRun('quick', i % 2 === 0 ? 'manual' : 'api'));
    const page1 = await api.runs(ws, { job: quickJob, limit: 3, total: true });
    assert.deepEqual(runsPageSchema.parse(page1).total, { count: 8, at_least: false });
    const walked: RunSummary[] = [...page1.items];
    let cursor = page1.next_cursor;
    const arrived: string[] = [];
    while (cursor) {
      arrived.push(await requestRun('quick', 'manual')); // a newer run between pages
      const p = await api.runs(ws, { job: quickJob, limit: 3, cursor });
      walked.push(...p.items);
      cursor = p.next_cursor;
    }
    assert.deepEqual(
      walked.map((r) => r.id),
      [...first].reverse(),
      'the walk holds exactly the runs there were, newest first',
    );
    assert.ok(walked.every((r) => r.job_name === 'quick' && r.job_id === quickJob));
    const ordered = walked.map((r) => Date.parse(r.created_at));
    assert.deepEqual(
      ordered,
      [...ordered].sort((a, b) => b - a),
    );

    // Filters: trigger (several), status (several), created range, and the workspace without a job.
    const api1 = await api.runs(ws, { job: quickJob, trigger: ['api'], limit: 200 });
    assert.deepEqual(
      api1.items.map((r) => r.id),
      first.filter((_, i) => i % 2 === 1).reverse(),
    );
    assert.ok(api1.items.every((r) => r.trigger === 'api'));
    const both = await api.runs(ws, { trigger: ['api', 'manual'], limit: 200 });
    assert.equal(both.items.length, 8 + arrived.length + 1);
    const mid = walked[3]!;
    const newer = await api.runs(ws, { job: quickJob, created_from: mid.created_at, limit: 200 });
    assert.deepEqual(
      newer.items.map((r) => r.id),
      [...arrived].reverse().concat(walked.slice(0, 4).map((r) => r.id)),
    );
    const older = await api.runs(ws, { job: quickJob, created_to: mid.created_at, limit: 200 });
    assert.deepEqual(
      older.items.map((r) => r.id),
      walked.slice(4).map((r) => r.id),
    );
    const shopOnly = await api.runs(ws, { status: ['completed', 'failed'], job: shopJob });
    assert.deepEqual(
      shopOnly.items.map((r) => r.id),
      [shopRun.id],
    );
    const startedAt = Date.parse(shopRun.time_started as string);
    const startedIn = await api.runs(ws, {
      started_from: new Date(startedAt - 1).toISOString(),
      started_to: new Date(startedAt + 1).toISOString(),
    });
    assert.deepEqual(
      startedIn.items.map((r) => r.id),
      [shopRun.id],
    );
    const startedBefore = await api.runs(ws, { job: shopJob, started_to: new Date(startedAt).toISOString() });
    assert.deepEqual(startedBefore.items, []);
    const none = await api.runs(ws, { status: ['cancelling'], started_from: '2000-01-01T00:00:00Z' });
    assert.deepEqual(none.items, []);
    assert.equal(none.next_cursor, null);

    for (const q of [
      'limit=201',
      'limit=0',
      'status=bogus',
      'cursor=zzz',
      'job=nope',
      'created_from=yesterday',
    ]) {
      const r = await get(`/runs-page?${q}`);
      assert.equal(r.status, 400, `${q}: ${r.text}`);
    }
  });

  it('answers the overview in one request and sees schedule changes', async () => {
    const o = overviewSchema.parse((await get('/overview?recent=5')).json);
    // Every workspace also has Runway's interactive `dashboard` job (made by a reactor, maybe not yet).
    assert.deepEqual(
      o.jobs.map((j) => j.name).filter((n) => n !== 'dashboard'),
      ['quick', 'shop'],
    );
    assert.equal(o.jobs.find((j) => j.name === 'shop')?.last_run?.status, 'completed');
    assert.equal(o.recent_runs.length, 5);
    assert.ok(o.counts_24h.total >= 9 && o.counts_24h.completed >= 1, JSON.stringify(o.counts_24h));

    const before = Date.now();
    const scheduled = await api.setSchedule(ws, shopJob, {
      schedule: '0 9 * * 1-5',
      timezone: 'Europe/Berlin',
    });
    const expected = nextFire('0 9 * * 1-5', 'Europe/Berlin', new Date(before));
    assert.equal(scheduled.schedule, '0 9 * * 1-5');
    assert.equal(scheduled.next_fire_at, expected?.toISOString());
    assert.equal((await api.setSchedule(ws, shopJob, { active: false })).next_fire_at, null);
    const cleared = await api.setSchedule(ws, shopJob, { schedule: null, active: true });
    assert.equal(cleared.schedule, null);
    await until('job.changed updated', () =>
      messages.filter((m) => m.type === 'job.changed' && m.job_id === shopJob && m.change === 'updated')
        .length >= 3
        ? true
        : undefined,
    );
    assert.equal((await s.call('PUT', `/api/v1/workspaces/${ws}/jobs/${shopJob}/schedule`, {})).status, 400);
    assert.equal(
      (
        await s.call('PUT', `/api/v1/workspaces/${ws}/jobs/00000000-0000-4000-8000-000000000000/schedule`, {
          active: true,
        })
      ).status,
      404,
    );
  });

  it("previews a schedule with the scheduler's own fire times and refuses bad input", async () => {
    const after = '2026-03-27T12:00:00Z'; // across the DST change in Berlin (29 March)
    const p = schedulePreviewSchema.parse(
      (
        await get(
          `/schedule/preview?cron=${encodeURIComponent('30 2 * * *')}&tz=Europe/Berlin&count=4&after=${after}`,
        )
      ).json,
    );
    const expected: string[] = [];
    for (let t = new Date(after), i = 0; i < 4; i++) {
      t = nextFire('30 2 * * *', 'Europe/Berlin', t)!;
      expected.push(t.toISOString());
    }
    assert.deepEqual(
      p.fires.map((f) => f.at),
      expected,
    );
    assert.deepEqual(p.fires[0], {
      at: '2026-03-28T01:30:00.000Z',
      local: '2026-03-28 02:30:00',
      utc_offset: '+01:00',
    });
    assert.equal(p.fires[2]!.utc_offset, '+02:00');
    assert.equal(p.shortest_interval_seconds, 86_400);
    const fast = await api.schedulePreview(ws, { cron: '* * * * * *' });
    assert.equal(fast.too_frequent, false); // the test stack allows one fire a second
    assert.equal(fast.fires.length, 5);

    const badCron = await get(`/schedule/preview?cron=${encodeURIComponent('61 * * * *')}`);
    assert.equal(badCron.status, 400);
    assert.match(
      (badCron.json as { detail: string }).detail,
      /invalid schedule "61 \* \* \* \*": minute 61 out of range 0-59/,
    );
    assert.equal((badCron.json as { extra: { field: string } }).extra.field, 'cron');
    const badZone = await get(`/schedule/preview?cron=${encodeURIComponent('0 * * * *')}&tz=Mars/Base`);
    assert.equal(badZone.status, 400);
    assert.match((badZone.json as { detail: string }).detail, /invalid time zone "Mars\/Base"/);
    assert.equal(
      (await get(`/schedule/preview?cron=${encodeURIComponent('0 * * * *')}&count=51`)).status,
      400,
    );
    assert.equal((await get('/schedule/preview')).status, 400);
  });

  it('diffs two deployment versions: added, removed, changed text with a unified diff, binary without', async () => {
    const d = deploymentDiffSchema.parse((await get('/deployments/diff?from=1&to=2')).json);
    assert.deepEqual([d.from.version, d.to.version], [1, 2]);
    assert.deepEqual(
      d.added.map((f) => f.path),
      ['new.py'],
    );
    assert.deepEqual(
      d.removed.map((f) => f.path),
      ['old.py'],
    );
    assert.equal(d.unchanged, 2);
    const notes = d.changed.find((c) => c.path === 'notes.txt');
    assert.ok(notes && notes.diff);
    assert.equal(notes.binary, false);
    assert.match(
      notes.diff,
      /^--- a\/notes\.txt\n\+\+\+ b\/notes\.txt\n@@ -1,3 \+1,3 @@\n line one\n-line two\n\+line 2\n line three\n/,
    );
    const blob = d.changed.find((c) => c.path === 'blob.bin');
    assert.deepEqual(blob && [blob.binary, blob.diff], [true, null]);
    assert.equal((await get('/deployments/diff?from=1&to=9')).status, 404);
    assert.equal((await get('/deployments/diff?from=1')).status, 400);
    const same = await api.deploymentDiff(ws, 2, 'latest');
    assert.deepEqual([same.added, same.removed, same.changed], [[], [], []]);
  });

  it('lists the keys of each configuration profile, never a value, with the warnings', async () => {
    const r = await get('/configurations/profiles');
    const c = configurationProfilesSchema.parse(r.json);
    assert.equal(c.configuration?.version, 1);
    const prod = c.profiles.find((p) => p.name === 'prod');
    assert.ok(prod, JSON.stringify(c));
    assert.deepEqual(prod.secret_keys, ['destination.warehouse.credentials', 'sources.shop.api_key']);
    assert.ok(prod.config_keys.includes('dataset_name'), JSON.stringify(prod));
    assert.ok(
      c.warnings.some((w) => /profile "access" is not defined/.test(w)),
      JSON.stringify(c.warnings),
    );
    assert.ok(!c.warnings.some((w) => /profile "prod" is not defined/.test(w)));
    assert.equal((await get('/configurations/profiles?version=7')).status, 404);
    // No live message carries a secret either.
    for (const secret of SECRETS) assert.ok(!JSON.stringify(messages).includes(secret));
  });

  it('documents the new routes in the OpenAPI document', async () => {
    const doc = (await s.call('GET', '/api/openapi.json')).json as { paths: Record<string, unknown> };
    for (const p of [
      '/api/v1/workspaces/{ws}/runs-page',
      '/api/v1/workspaces/{ws}/overview',
      '/api/v1/workspaces/{ws}/events/stream',
      '/api/v1/workspaces/{ws}/schedule/preview',
      '/api/v1/workspaces/{ws}/deployments/diff',
      '/api/v1/workspaces/{ws}/configurations/profiles',
      '/api/v1/workspaces/{ws}/pipeline-insights',
      '/api/v1/workspaces/{ws}/runs/{id}/logs/download',
      '/api/v1/workspaces/{ws}/jobs',
      '/api/v1/workspaces/{ws}/jobs/{id}/schedule',
    ])
      assert.ok(p in doc.paths, `${p} is documented`);
  });
});
