/**
 * `npm run bench -- dashboard`: the dashboard's read path with 1,000,000 runs in the read model.
 *
 * A whole Runway in this process (on the nats-server + PostgreSQL that scripts/bench.mjs started);
 * 20 jobs made through the API, then BENCH_DASHBOARD_RUNS (default 1,000,000) runs seeded into the
 * `runs` read model directly (one INSERT … SELECT generate_series: this measures reads, not the
 * write path), ANALYZE. Then, over loopback HTTP with a bearer token:
 *
 * 1. The runs page (`GET …/runs-page`, limit 50) with each filter, at the first page, a middle
 *    page and the last page (the cursor of the row before them, as a client walking there would
 *    hold): p50/p99 of BENCH_DASHBOARD_SAMPLES requests each. Target: p99 ≤ 100 ms everywhere.
 * 2. The overview's first load: the SPA's document (`GET /`, when web/dist exists) + the overview
 *    data (`GET …/overview`), sequential as a browser does after the document. Target p99 ≤ 1 s.
 * 3. The size of the built JS (web/dist/assets/*.js, raw and gzip) when web/dist exists.
 *
 * Prints one table; exits 1 when a target is missed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { createKysely, withTables } from '#libs/database';
import {
  runsPage,
  type RunPageFilter,
  type RunsReadModel,
} from '../services/execution/src/run/read-models/runs.queries.js';
import { encodeCursor } from '../services/gateway/src/dashboard/dashboard.service.js';
import { uploadPackage } from '../test/jobs/support.js';
import { startTestStack } from '../test/support/stack.js';

const RUNS = Number(process.env.BENCH_DASHBOARD_RUNS ?? 1_000_000);
const SAMPLES = Number(process.env.BENCH_DASHBOARD_SAMPLES ?? 40);
const JOBS = 20;
const LIMIT = 50;
const PAGE_P99_TARGET_MS = 100;
const OVERVIEW_P99_TARGET_MS = 1000;
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

const stack = await startTestStack({ RUNWAY_EMBEDDED_WORKERS: '0', RUNWAY_SCHEDULER: 'off' });
const db = createKysely<unknown>({ url: stack.env.databaseUrl, max: 2 });
let failed = false;
try {
  const ws = stack.workspaceId;
  await uploadPackage(stack, 'deployments', [{ path: 'load.py', content: 'pass\n' }]);
  const jobIds: string[] = [];
  for (let i = 0; i < JOBS; i++) {
    const r = await stack.call('POST', `/api/v1/workspaces/${ws}/jobs`, {
      name: `job-${String(i).padStart(2, '0')}`,
      entry_point: 'load.py',
    });
    if (r.status !== 201) throw new Error(`job: ${r.status} ${r.text}`);
    jobIds.push((r.json as { id: string }).id);
  }

  log(`seeding ${RUNS} runs of ${JOBS} jobs (one every 30 s, newest now)`);
  const t0 = performance.now();
  // i = 0 is the newest. Statuses: 90% completed, 6% failed, 2% cancelled, 1% skipped, the rest
  // pending/running (the newest). Triggers: 70% schedule, 20% manual, 10% api.
  await sql`
    INSERT INTO runs (id, workspace_id, job_id, number, status, trigger, profile, job_version,
      job_version_id, entry_point, kind, timeout_seconds, deployment_id, deployment_version,
      configuration_id, configuration_version, requested_by, created_at, updated_at, started_at,
      ended_at, duration_ms, exit_code, signal, failure_reason, message, stderr_tail, worker_id, host, pid)
    SELECT gen_random_uuid(), ${ws}::uuid, (${jobIds}::uuid[])[1 + (i % ${JOBS})],
      (${RUNS} - 1 - i) / ${JOBS} + 1,
      CASE WHEN i < 20 THEN (ARRAY['pending','running'])[1 + i % 2]
           WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 96 THEN 'failed'
           WHEN i % 100 < 98 THEN 'cancelled' WHEN i % 100 < 99 THEN 'skipped' ELSE 'completed' END,
      CASE WHEN i % 10 < 7 THEN 'schedule' WHEN i % 10 < 9 THEN 'manual' ELSE 'api' END,
      'prod', 1, gen_random_uuid(), 'load.py', 'batch', NULL, NULL, 1, NULL, NULL, 'bench',
      now() - i * interval '30 seconds', now() - i * interval '30 seconds' + interval '20 seconds',
      CASE WHEN i < 20 AND i % 2 = 0 THEN NULL ELSE now() - i * interval '30 seconds' + interval '1 second' END,
      CASE WHEN i < 20 THEN NULL ELSE now() - i * interval '30 seconds' + interval '20 seconds' END,
      CASE WHEN i < 20 THEN NULL ELSE 19000 END, NULL, NULL,
      CASE WHEN i % 100 BETWEEN 90 AND 95 THEN 'exit_code' ELSE NULL END, NULL, NULL, NULL, NULL, NULL
    FROM generate_series(0, ${RUNS - 1}) AS i`.execute(db);
  // Autovacuum's steady state: statistics, and the visibility map for index-only counts.
  await sql`VACUUM ANALYZE runs`.execute(db);
  const seedS = (performance.now() - t0) / 1000;
  log(`seeded in ${seedS.toFixed(1)} s`);

  const get = async (path: string): Promise<number> => {
    const t = performance.now();
    const res = await fetch(`${stack.url}${path}`, {
      headers: { authorization: `Bearer ${stack.adminToken}` },
    });
    await res.arrayBuffer();
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    return ms;
  };

  // Each filter as the API takes it, and the same as SQL to find the deep positions.
  const mid = new Date(Date.now() - (RUNS / 2) * 30_000);
  const weekFrom = new Date(mid.getTime() - 3.5 * 86_400_000).toISOString();
  const weekTo = new Date(mid.getTime() + 3.5 * 86_400_000).toISOString();
  const job = jobIds[7]!;
  const filters: { name: string; query: string; where: ReturnType<typeof sql>; f: RunPageFilter }[] = [
    { name: 'all runs', query: '', where: sql`true`, f: {} },
    { name: 'one job', query: `job=${job}`, where: sql`job_id = ${job}::uuid`, f: { jobId: job } },
    {
      name: 'status=failed',
      query: 'status=failed',
      where: sql`status = 'failed'`,
      f: { statuses: ['failed'] },
    },
    {
      name: 'status=failed,cancelled',
      query: 'status=failed,cancelled',
      where: sql`status IN ('failed', 'cancelled')`,
      f: { statuses: ['failed', 'cancelled'] },
    },
    {
      name: 'status=running (rare)',
      query: 'status=running',
      where: sql`status = 'running'`,
      f: { statuses: ['running'] },
    },
    { name: 'trigger=api', query: 'trigger=api', where: sql`trigger = 'api'`, f: { triggers: ['api'] } },
    {
      name: 'trigger=manual,api',
      query: 'trigger=manual,api',
      where: sql`trigger IN ('manual', 'api')`,
      f: { triggers: ['manual', 'api'] },
    },
    {
      name: 'created in a week',
      query: `created_from=${weekFrom}&created_to=${weekTo}`,
      where: sql`created_at >= ${weekFrom}::timestamptz AND created_at < ${weekTo}::timestamptz`,
      f: { createdFrom: new Date(weekFrom), createdTo: new Date(weekTo) },
    },
    {
      name: 'started in a week',
      query: `started_from=${weekFrom}&started_to=${weekTo}`,
      where: sql`started_at >= ${weekFrom}::timestamptz AND started_at < ${weekTo}::timestamptz`,
      f: { startedFrom: new Date(weekFrom), startedTo: new Date(weekTo) },
    },
    {
      name: 'one job, status=failed',
      query: `job=${job}&status=failed`,
      where: sql`job_id = ${job}::uuid AND status = 'failed'`,
      f: { jobId: job, statuses: ['failed'] },
    },
  ];
  const runsDb = withTables<RunsReadModel>(db);

  const rows: [string, number, number, number | null][] = [];
  const queryRows: [string, number, number][] = [];
  {
    // What any authenticated request costs here (HTTP on loopback, the bearer check): the floor.
    const path = `/api/v1/workspaces/${ws}`;
    await get(path);
    const ms: number[] = [];
    for (let i = 0; i < SAMPLES; i++) ms.push(await get(path));
    rows.push(['baseline: GET the workspace (auth + one row)', pct(ms, 50), pct(ms, 99), null]);
  }
  for (const f of filters) {
    const n = (
      await sql<{
        n: number;
      }>`SELECT count(*)::int AS n FROM runs WHERE workspace_id = ${ws}::uuid AND ${f.where}`.execute(db)
    ).rows[0]!.n;
    // The cursor of the row just before the page: what a client paging there holds.
    const cursorAt = async (offset: number) => {
      if (offset <= 0) return undefined;
      const r = (
        await sql<{ at: string; id: string }>`
          SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, id
          FROM runs WHERE workspace_id = ${ws}::uuid AND ${f.where}
          ORDER BY created_at DESC, id DESC OFFSET ${offset - 1} LIMIT 1`.execute(db)
      ).rows[0];
      return r ? encodeCursor({ createdAt: r.at, id: r.id }) : undefined;
    };
    const lastOffset = Math.max(0, Math.floor((n - 1) / LIMIT) * LIMIT);
    const positions: [string, number][] = [
      ['first', 0],
      ['middle', Math.floor(n / 2 / LIMIT) * LIMIT],
      ['last', lastOffset],
    ];
    for (const [where, offset] of positions) {
      const cursor = await cursorAt(offset);
      const position = cursor
        ? (
            await sql<{ at: string; id: string }>`
            SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at, id
            FROM runs WHERE workspace_id = ${ws}::uuid AND ${f.where}
            ORDER BY created_at DESC, id DESC OFFSET ${offset - 1} LIMIT 1`.execute(db)
          ).rows[0]
        : undefined;
      // The query alone (the database's share, without HTTP and auth).
      const dbMs: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        const t = performance.now();
        await runsPage(runsDb, ws, f.f, position && { createdAt: position.at, id: position.id }, LIMIT);
        dbMs.push(performance.now() - t);
      }
      const path = `/api/v1/workspaces/${ws}/runs-page?limit=${LIMIT}${f.query ? `&${f.query}` : ''}${
        cursor ? `&cursor=${cursor}` : ''
      }`;
      await get(path); // warm
      const ms: number[] = [];
      for (let i = 0; i < SAMPLES; i++) ms.push(await get(path));
      const p99 = pct(ms, 99);
      rows.push([`runs page: ${f.name} (${n} runs), ${where}`, pct(ms, 50), p99, PAGE_P99_TARGET_MS]);
      queryRows.push([`${f.name}, ${where}`, pct(dbMs, 50), pct(dbMs, 99)]);
      if (p99 > PAGE_P99_TARGET_MS) failed = true;
    }
  }
  {
    const path = `/api/v1/workspaces/${ws}/runs-page?limit=${LIMIT}&total=true&status=failed`;
    await get(path);
    const ms: number[] = [];
    for (let i = 0; i < SAMPLES; i++) ms.push(await get(path));
    rows.push([
      'runs page: status=failed with total=true (capped count)',
      pct(ms, 50),
      pct(ms, 99),
      PAGE_P99_TARGET_MS,
    ]);
    if (pct(ms, 99) > PAGE_P99_TARGET_MS) failed = true;
  }

  // 2. The overview's first load.
  const dist = join(process.cwd(), 'web', 'dist');
  const hasSpa = existsSync(join(dist, 'index.html'));
  const overview = `/api/v1/workspaces/${ws}/overview`;
  await get(overview);
  const load: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t = performance.now();
    if (hasSpa) {
      const res = await fetch(`${stack.url}/`);
      await res.text();
    }
    await get(overview);
    load.push(performance.now() - t);
  }
  rows.push([
    hasSpa ? 'overview first load: document + data' : 'overview first load: data only (no web/dist)',
    pct(load, 50),
    pct(load, 99),
    OVERVIEW_P99_TARGET_MS,
  ]);
  if (pct(load, 99) > OVERVIEW_P99_TARGET_MS) failed = true;

  console.log(
    `\ndashboard read path, ${RUNS} runs of ${JOBS} jobs (seeded in ${seedS.toFixed(0)} s), limit ${LIMIT}, ${SAMPLES} requests each, loopback\n`,
  );
  console.log('| measure | p50 ms | p99 ms | target p99 ms |\n|---|---|---|---|');
  for (const [m, a, b, t] of rows)
    console.log(
      `| ${m} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${t === null ? '–' : `${t}${b > t ? ' MISSED' : ''}`} |`,
    );

  console.log(
    '\nthe page query alone (kysely → PostgreSQL, no HTTP)\n| filter, page | p50 ms | p99 ms |\n|---|---|---|',
  );
  for (const [m, a, b] of queryRows) console.log(`| ${m} | ${a.toFixed(1)} | ${b.toFixed(1)} |`);

  // 3. The built JS.
  const assets = join(dist, 'assets');
  if (existsSync(assets)) {
    const js = readdirSync(assets).filter((f) => f.endsWith('.js'));
    const raw = js.reduce((n, f) => n + readFileSync(join(assets, f)).length, 0);
    const gz = js.reduce((n, f) => n + gzipSync(readFileSync(join(assets, f))).length, 0);
    console.log(
      `\nbuilt JS (web/dist/assets, ${js.length} files): ${(raw / 1024).toFixed(1)} KiB, ${(gz / 1024).toFixed(1)} KiB gzip`,
    );
  } else console.log('\nbuilt JS: web/dist does not exist (build the SPA first to measure it)');
} finally {
  await db.destroy();
  await stack.stop();
}
if (failed) {
  console.log('\na target was missed');
  process.exitCode = 1;
}
