/**
 * `npm run bench -- scale`: the ceiling of one EVENTS stream, on servers this bench starts itself
 * (under RUNWAY_BENCH_WORK, the same way every time) and the PostgreSQL of scripts/bench.mjs.
 *
 * Part 1, once on ONE nats-server and once on an R3 CLUSTER (3 nats-server processes clustered on
 * loopback, `startNatsCluster`), each on a fresh stream shaped like EVENTS (EventStore.ensureStream):
 * - appends/s through EventStore.append (one ~270-byte event per commit, expect.lastSubjectSequence,
 *   Nats-Msg-Id): one after the other (latency) and 64 in flight (throughput);
 * - run requests/s through the job command handler (JobCommands.requestRun: load → decide →
 *   append of RunRequested on the job's subject), 64 in flight spread over BENCH_SCALE_JOBS jobs;
 * - projection lag under that load: the real `runs` projection (execution) follows the stream into
 *   PostgreSQL while run requests come at full speed, then at a fixed BENCH_SCALE_LIVE_RATE/s; lag =
 *   from the request to the projection checkpoint that covers its RunRequested.
 * Rounds alternate between the two targets (median of BENCH_ROUNDS), so noise hits both alike.
 *
 * Part 2, on one fresh nats-server: BENCH_SCALE_SUBJECTS (1,000,000) run subjects of one commit
 * each (`evt.<ws>.run.<uuid>`, the shape of a run aggregate's first commit) in an EVENTS-shaped
 * stream: time to write them, the server's RSS (VmRSS of /proc/<pid>/status) before and after, so
 * RSS per subject; an append and a last-by-subject direct get at that size vs on an empty stream;
 * the time until the stream answers again after a clean restart and after SIGKILL, and the RSS
 * then. Then BENCH_SCALE_ARCHIVE (250,000) of them are archived (EventArchive: copied to the
 * archive stream, purged from the stream) and the server restarted: time, subjects left, RSS. Also
 * the memory the duplicate window holds per Nats-Msg-Id (BENCH_SCALE_MSGIDS commits with and
 * without ids on 100 subjects), which grows with append rate × window.
 *
 * Prints ONE table per part. BENCH_SCALE_PARTS=throughput,subjects selects parts;
 * BENCH_SCALE_CLUSTER=0 measures the single node only.
 */
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { JetStreamApiError } from '@nats-io/jetstream';
import { type Kysely } from 'kysely';
import { integrationRegistry } from '#libs/contracts';
import { createKysely, dropDatabase, dropRole, ensureAppDatabase, migrateToLatest } from '#libs/database';
import { ConcurrencyError, defineEvent, EventArchive, EventStore } from '#libs/eventstore';
import { z } from 'zod';
import {
  connectNats,
  drainNats,
  natsServerBinary,
  startNatsCluster,
  startNatsServer,
  type NatsConnection,
  type NatsServerHandle,
} from '#libs/nats';
import { ProjectionRunner, projectionMigrations } from '#libs/projections';
import { executionMigrations } from '../services/execution/src/migrations/index.js';
import { runsProjection } from '../services/execution/src/run/read-models/runs.projection.js';
import { JobCommands } from '../services/scheduling/src/job/job.handler.js';
import { deployedVersions, testUser } from '../services/scheduling/src/job/job-test-fixtures.js';
import { jobIdFor } from '../services/scheduling/src/job/job-id.js';

const num = (name: string, dflt: number) => {
  const v = Number(process.env[name] ?? dflt);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a non-negative number`);
  return v;
};
const ROUNDS = num('BENCH_ROUNDS', 3);
const SEQUENTIAL = num('BENCH_SCALE_SEQUENTIAL', 2_000);
const CONCURRENT = num('BENCH_SCALE_APPENDS', 20_000);
const RUN_REQUESTS = num('BENCH_SCALE_RUN_REQUESTS', 10_000);
const JOBS = num('BENCH_SCALE_JOBS', 256);
const IN_FLIGHT = 64;
const LIVE_RATE = num('BENCH_SCALE_LIVE_RATE', 500);
const LIVE_SECONDS = num('BENCH_SCALE_LIVE_SECONDS', 8);
const SUBJECTS = num('BENCH_SCALE_SUBJECTS', 1_000_000);
const MSGIDS = num('BENCH_SCALE_MSGIDS', 200_000);
/** Of the SUBJECTS, this many are archived (EventArchive) at the end. */
const ARCHIVED = num('BENCH_SCALE_ARCHIVE', 250_000);
const PARTS = new Set((process.env.BENCH_SCALE_PARTS ?? 'throughput,subjects').split(','));
/** Wait before reading an RSS: the server's write cache of recent blocks expires. */
const SETTLE_MS = num('BENCH_SCALE_SETTLE_MS', 12_000);
const CLUSTER = process.env.BENCH_SCALE_CLUSTER !== '0';
const WORK = process.env.RUNWAY_BENCH_WORK;
const ADMIN_DB = process.env.DATABASE_URL;
if (!WORK || !ADMIN_DB) throw new Error('run me through `npm run bench -- scale` (scripts/bench.mjs)');

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
const fmtRate = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
const fmtMs = (x: number) =>
  x >= 100 ? `${Math.round(x).toLocaleString('en-US')} ms` : `${x.toFixed(2)} ms`;
const fmtMiB = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const WS = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const BenchEvent = defineEvent(
  'BenchEvent',
  z.object({ key: z.string().min(1), n: z.number().int().nonnegative(), note: z.string() }),
);
/** Every integration event (the job handler's RunRequested, the runs projection) plus BenchEvent. */
const registry = () => integrationRegistry().register(BenchEvent);

// ---------------------------------------------------------------------------------------------
// processes

/** The pid of the nats-server whose command line names a file under `storeDir` (its config). */
function natsPidOf(storeDir: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmd.some((a) => a.startsWith(`${storeDir}/`)) && cmd[0]!.includes('nats-server'))
        return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no nats-server process for ${storeDir}`);
}

/** Resident memory of a process in bytes (VmRSS). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

function duBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += duBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Part 1: throughput on one node and on R3

interface Target {
  name: string;
  replicas: number;
  url: string;
  stop: () => Promise<void>;
}

interface Bench {
  target: Target;
  nc: NatsConnection;
  store: EventStore;
  db: Kysely<unknown>;
  jobs: JobCommands;
  jobIds: string[];
  close: () => Promise<void>;
}

let dbCounter = 0;
async function openBench(target: Target): Promise<Bench> {
  const id = `scale${Date.now().toString(36)}${dbCounter++}`;
  const dbUrl = await ensureAppDatabase(ADMIN_DB!, { database: id, role: id, password: randomUUID() });
  const migrator = createKysely<unknown>({ url: dbUrl, max: 1 });
  await migrateToLatest(migrator, [projectionMigrations, executionMigrations]).finally(() =>
    migrator.destroy(),
  );
  const db = createKysely<unknown>({ url: dbUrl, max: 5 });
  const nc = await connectNats({ url: target.url, name: `bench-${target.name}` });
  const store = new EventStore(nc, registry(), {
    stream: `EVENTS_${id}`,
    subjectPrefix: id,
    replicas: target.replicas,
  });
  await store.ensureStream();
  const jobs = new JobCommands(store, deployedVersions);
  const jobIds: string[] = [];
  for (let j = 0; j < JOBS; j++) {
    const name = `job${j}.py`;
    await jobs.upsert({
      workspaceId: WS,
      actor: testUser,
      commandId: `create-${name}`,
      name,
      description: '',
      entryPoint: name,
      kind: 'batch',
    });
    jobIds.push(jobIdFor(WS, name));
  }
  return {
    target,
    nc,
    store,
    db,
    jobs,
    jobIds,
    close: async () => {
      await db.destroy();
      await drainNats(nc);
      await dropDatabase(ADMIN_DB!, id).catch(() => undefined);
      await dropRole(ADMIN_DB!, id).catch(() => undefined);
    },
  };
}

let commandCounter = 0;
const nextCommandId = () => `c${(++commandCounter).toString(36)}`;

async function appendSequential(b: Bench, tag: string, count: number) {
  const last = new Map<string, number>();
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const id = `${tag}${i % 100}`;
    const s = performance.now();
    const r = await b.store.append(
      { workspaceId: WS, type: 'bench', id },
      last.get(id) ?? 0,
      [{ type: 'BenchEvent', data: { key: id, n: i, note: 'n' } }],
      { commandId: nextCommandId(), actor: 'bench' },
    );
    lat.push(performance.now() - s);
    last.set(id, r.seq);
  }
  return { rate: count / ((performance.now() - t0) / 1000), lat };
}

async function inFlight(count: number, one: (writer: number, i: number) => Promise<void>) {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async (_, w) => {
      while (next < count) await one(w, next++);
    }),
  );
  return count / ((performance.now() - t0) / 1000);
}

/** Conflicts an append met although its writer alone writes its aggregate (R3: 10164), retried. */
const conflicts = new Map<string, number>();

async function appendConcurrent(b: Bench, tag: string, count: number) {
  const expected = new Map<number, number>();
  return inFlight(count, async (w, i) => {
    const id = `${tag}${w}`;
    const ref = { workspaceId: WS, type: 'bench', id };
    const commandId = nextCommandId();
    for (;;) {
      try {
        const r = await b.store.append(
          ref,
          expected.get(w) ?? 0,
          [{ type: 'BenchEvent', data: { key: id, n: i, note: 'n' } }],
          { commandId, actor: 'bench' },
        );
        expected.set(w, r.seq);
        return;
      } catch (err) {
        if (!(err instanceof ConcurrencyError)) throw err;
        conflicts.set(b.target.name, (conflicts.get(b.target.name) ?? 0) + 1);
        expected.set(w, await b.store.lastSequenceOf(ref));
      }
    }
  });
}

function requestRun(b: Bench, i: number) {
  return b.jobs.requestRun({
    workspaceId: WS,
    actor: testUser,
    commandId: nextCommandId(),
    jobId: b.jobIds[i % b.jobIds.length]!,
    trigger: 'manual',
    profile: null,
  });
}

/** Run requests, IN_FLIGHT at a time; with a runner, each request's lag to the projection. */
async function runRequests(b: Bench, count: number, runner?: ProjectionRunner) {
  const lags: number[] = [];
  const waits: Promise<void>[] = [];
  const rate = await inFlight(count, async (_w, i) => {
    const s = performance.now();
    const r = await requestRun(b, i);
    if (runner) waits.push(runner.waitFor(r.seq, 120_000).then(() => void lags.push(performance.now() - s)));
  });
  const sent = performance.now();
  await Promise.all(waits);
  return { rate, lags, drainMs: performance.now() - sent };
}

/** Run requests at a fixed rate for a while; each one's lag to the projection. */
async function runRequestsAt(b: Bench, perSecond: number, seconds: number, runner: ProjectionRunner) {
  const total = Math.round(perSecond * seconds);
  const lags: number[] = [];
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * perSecond));
    while (sent < due) {
      const i = sent++;
      const s = performance.now();
      pending.push(
        requestRun(b, i).then(async (r) => {
          await runner.waitFor(r.seq, 120_000);
          lags.push(performance.now() - s);
        }),
      );
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return lags;
}

interface TargetResult {
  seq: { rate: number; lat: number[] }[];
  con: number[];
  runs: number[];
  loaded: { rate: number; lags: number[]; drainMs: number } | undefined;
  live: number[];
}

async function throughput(): Promise<string> {
  const targets: Target[] = [];
  const single = await startNatsServer({ storeDir: join(WORK!, 'scale-single') });
  targets.push({ name: '1 node', replicas: 1, url: single.url, stop: () => single.stop() });
  if (CLUSTER) {
    const cluster = await startNatsCluster({ nodes: 3, storeDir: join(WORK!, 'scale-cluster') });
    targets.push({ name: 'R3, 3 nodes', replicas: 3, url: cluster.url, stop: () => cluster.stop() });
  }
  const benches: Bench[] = [];
  const results = new Map<Target, TargetResult>();
  try {
    for (const t of targets) {
      log(`${t.name}: stream, ${JOBS} jobs`);
      benches.push(await openBench(t));
      results.set(t, { seq: [], con: [], runs: [], loaded: undefined, live: [] });
    }
    log('warm-up');
    for (const b of benches) {
      await appendSequential(b, 'warm', 300);
      await appendConcurrent(b, 'warmc', 2_000);
      await runRequests(b, 1_000);
    }
    for (let r = 0; r < ROUNDS; r++) {
      for (const b of benches) {
        const res = results.get(b.target)!;
        log(`round ${r + 1}/${ROUNDS} ${b.target.name}`);
        res.seq.push(await appendSequential(b, `s${r}_`, SEQUENTIAL));
        res.con.push(await appendConcurrent(b, `c${r}_`, CONCURRENT));
        res.runs.push((await runRequests(b, RUN_REQUESTS)).rate);
      }
    }
    // Projection lag: the real `runs` projection, caught up first, then under load.
    for (const b of benches) {
      const res = results.get(b.target)!;
      const runner = new ProjectionRunner(b.store, b.db, runsProjection, {
        onError: (err) => log(`runs projection: ${String(err)}`),
      });
      await runner.start();
      log(`${b.target.name}: runs projection catching up`);
      await runner.waitFor(await b.store.lastSequence(), 300_000);
      log(`${b.target.name}: projection lag, run requests at full speed, then at ${LIVE_RATE}/s`);
      res.loaded = await runRequests(b, RUN_REQUESTS, runner);
      res.live = await runRequestsAt(b, LIVE_RATE, LIVE_SECONDS, runner);
      await runner.stop();
    }
  } finally {
    for (const b of benches) await b.close().catch(() => undefined);
    for (const t of targets) await t.stop().catch(() => undefined);
  }

  const rows: string[][] = [];
  const add = (name: string, f: (r: TargetResult) => string) =>
    rows.push([name, ...targets.map((t) => f(results.get(t)!))]);
  const medSeq = (r: TargetResult) =>
    [...r.seq].sort((a, b) => a.rate - b.rate)[Math.floor((r.seq.length - 1) / 2)]!;
  add(`append one after the other (${SEQUENTIAL.toLocaleString('en-US')})`, (r) => fmtRate(medSeq(r).rate));
  add('  latency p50', (r) => fmtMs(pct(medSeq(r).lat, 50)));
  add('  latency p99', (r) => fmtMs(pct(medSeq(r).lat, 99)));
  add(`append ${IN_FLIGHT} in flight (${CONCURRENT.toLocaleString('en-US')})`, (r) => fmtRate(median(r.con)));
  rows.push([
    '  conflicts retried (own aggregate)',
    ...targets.map((t) => String(conflicts.get(t.name) ?? 0)),
  ]);
  add(`run requests ${IN_FLIGHT} in flight (${RUN_REQUESTS.toLocaleString('en-US')}, ${JOBS} jobs)`, (r) =>
    fmtRate(median(r.runs)),
  );
  add('run requests with the runs projection following', (r) => fmtRate(r.loaded!.rate));
  add('  projection lag p50 (full speed)', (r) => fmtMs(pct(r.loaded!.lags, 50)));
  add('  projection lag p99 (full speed)', (r) => fmtMs(pct(r.loaded!.lags, 99)));
  add('  projection catch-up after the last request', (r) => fmtMs(r.loaded!.drainMs));
  add(`projection lag p50 @ ${LIVE_RATE} run requests/s`, (r) => fmtMs(pct(r.live, 50)));
  add(`projection lag p99 @ ${LIVE_RATE} run requests/s`, (r) => fmtMs(pct(r.live, 99)));
  if (targets.length === 2) {
    for (const row of rows) {
      const [a, c] = [row[1]!, row[2]!].map((x) => Number(x.replace(/[^\d.]/g, '')));
      row.push(a && c && row[1]!.endsWith('/s') ? `${(c / a).toFixed(2)}x` : '');
    }
  }
  const headers = [
    'throughput, one EVENTS-shaped stream',
    ...targets.map((t) => t.name),
    ...(targets.length === 2 ? ['R3 / 1'] : []),
  ];
  return table(headers, rows);
}

// ---------------------------------------------------------------------------------------------
// Part 2: one million run subjects

function envelope(subjectId: string): string {
  const cid = randomUUID();
  return JSON.stringify({
    v: 1,
    aggregate: { workspaceId: WS, type: 'run', id: subjectId },
    events: [
      {
        type: 'RunStarting',
        version: 1,
        data: {
          runId: subjectId,
          jobId: '44444444-4444-4444-8444-444444444444',
          number: 1,
          workerId: 'w1',
          host: 'h',
        },
      },
    ],
    meta: { commandId: cid, actor: 'bench', correlationId: cid, time: new Date().toISOString() },
  });
}

/**
 * A new aggregate's first commit, retried on a timeout (a loaded machine): a retry refused with
 * "wrong last sequence" finds the first attempt stored.
 */
async function publishNew(store: EventStore, subject: string, data: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await store.js.publish(subject, data, { expect: { lastSubjectSequence: 0 }, timeout: 30_000 });
      return;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === 10071) return;
      if (attempt >= 5) throw err;
    }
  }
}

async function ready(url: string, stream: string, messages: number, since: number): Promise<number> {
  // The port opens before JetStream has recovered every stream: poll until the stream answers whole.
  for (;;) {
    try {
      const nc = await connectNats({ url, name: 'bench-probe', reconnectForever: false });
      try {
        const store = new EventStore(nc, registry(), { stream });
        const jsm = await store.jsm();
        const info = await jsm.streams.info(stream);
        if (info.state.messages >= messages) return performance.now() - since;
      } finally {
        await drainNats(nc);
      }
    } catch {
      // not yet
    }
    await sleep(20);
  }
}

async function subjects(): Promise<string> {
  const storeDir = join(WORK!, 'scale-subjects');
  const server: NatsServerHandle = await startNatsServer({ storeDir });
  const rows: string[][] = [];
  try {
    const pid0 = natsPidOf(storeDir);
    const nc = await connectNats({ url: server.url, name: 'bench-subjects' });
    const stream = 'EVENTS_SUBJECTS';
    const store = new EventStore(nc, registry(), { stream, subjectPrefix: 'p' });
    await store.ensureStream();
    const probe = async () => {
      const ids = Array.from({ length: 200 }, () => randomUUID());
      const app: number[] = [];
      for (const id of ids) {
        const s = performance.now();
        await store.append(
          { workspaceId: WS, type: 'run', id },
          0,
          [{ type: 'BenchEvent', data: { key: id, n: 1, note: 'n' } }],
          { commandId: randomUUID(), actor: 'bench' },
        );
        app.push(performance.now() - s);
      }
      const get: number[] = [];
      for (const id of ids) {
        const s = performance.now();
        await store.lastSequenceOf({ workspaceId: WS, type: 'run', id });
        get.push(performance.now() - s);
      }
      return { app: pct(app, 50), get: pct(get, 50) };
    };
    const emptyProbe = await probe();
    await sleep(500);
    const rss0 = rssOf(pid0);
    log(`writing ${SUBJECTS.toLocaleString('en-US')} one-commit run subjects`);
    const t0 = performance.now();
    let next = 0;
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < SUBJECTS) {
          const i = ++next;
          const id = randomUUID();
          ids.push(id);
          // No Nats-Msg-Id: the duplicate window's memory is measured on its own below.
          await publishNew(store, `${store.prefix}evt.${WS}.run.${id}`, envelope(id));
          if (i % 200_000 === 0) log(`  ${i.toLocaleString('en-US')}`);
        }
      }),
    );
    const writeMs = performance.now() - t0;
    await sleep(SETTLE_MS);
    const rss1 = rssOf(pid0);
    const fullProbe = await probe();
    const info = await (await store.jsm()).streams.info(stream);
    const total = info.state.messages;
    const disk = duBytes(join(storeDir, 'jetstream'));
    await drainNats(nc);

    rows.push([
      `write ${SUBJECTS.toLocaleString('en-US')} subjects (256 in flight)`,
      `${(writeMs / 1000).toFixed(1)} s`,
      fmtRate(SUBJECTS / (writeMs / 1000)),
    ]);
    rows.push(['RSS, empty stream → full', `${fmtMiB(rss0)} → ${fmtMiB(rss1)}`, '']);
    rows.push(['RSS per subject', `${Math.round((rss1 - rss0) / SUBJECTS)} B`, '']);
    rows.push(['disk (store dir)', fmtMiB(disk), `${Math.round(disk / total)} B/message`]);
    rows.push([
      'append new aggregate p50, empty → full',
      `${fmtMs(emptyProbe.app)} → ${fmtMs(fullProbe.app)}`,
      '',
    ]);
    rows.push([
      'last-by-subject direct get p50, empty → full',
      `${fmtMs(emptyProbe.get)} → ${fmtMs(fullProbe.get)}`,
      '',
    ]);

    log('clean restart (SIGTERM)');
    await server.stop();
    let s = performance.now();
    const restarted = server.restart(); // stop() already ended it: restart() only launches
    const cleanMs = await ready(server.url, stream, total, s);
    await restarted;
    await sleep(SETTLE_MS);
    const rss2 = rssOf(natsPidOf(storeDir));
    rows.push(['ready after a clean restart', fmtMs(cleanMs), `RSS ${fmtMiB(rss2)}`]);
    rows.push(['RSS per subject after the restart', `${Math.round((rss2 - rss0) / SUBJECTS)} B`, '']);

    log('SIGKILL and restart');
    await server.kill();
    s = performance.now();
    const relaunched = server.restart();
    const killMs = await ready(server.url, stream, total, s);
    await relaunched;
    await sleep(SETTLE_MS);
    const rss3 = rssOf(natsPidOf(storeDir));
    rows.push(['ready after SIGKILL', fmtMs(killMs), `RSS ${fmtMiB(rss3)}`]);

    // The archive (EventArchive): the first ARCHIVED subjects leave the stream for EVENTS_ARCHIVE.
    if (ARCHIVED > 0) {
      const n = Math.min(ARCHIVED, ids.length);
      log(`archiving ${n.toLocaleString('en-US')} subjects`);
      const nc3 = await connectNats({ url: server.url, name: 'bench-archive' });
      const s3 = new EventStore(nc3, registry(), { stream, subjectPrefix: 'p' });
      const a0 = performance.now();
      const res = await new EventArchive(s3).archive(
        ids.slice(0, n).map((id) => ({ workspaceId: WS, type: 'run', id })),
      );
      const archiveMs = performance.now() - a0;
      const left = (await (await s3.jsm()).streams.info(stream)).state.num_subjects ?? 0;
      await drainNats(nc3);
      if (res.aggregates !== n) throw new Error(`archived ${res.aggregates} of ${n}`);
      rows.push([
        `archive ${n.toLocaleString('en-US')} subjects (16 at a time)`,
        `${(archiveMs / 1000).toFixed(1)} s`,
        `${fmtRate(n / (archiveMs / 1000))}; ${left.toLocaleString('en-US')} subjects left`,
      ]);
      await server.stop();
      s = performance.now();
      const back = server.restart();
      const archivedMs = await ready(server.url, stream, total - n, s);
      await back;
      await sleep(SETTLE_MS);
      const rss4 = rssOf(natsPidOf(storeDir));
      rows.push([
        `ready after a clean restart, ${n.toLocaleString('en-US')} archived`,
        fmtMs(archivedMs),
        `RSS ${fmtMiB(rss4)}`,
      ]);
    }
  } finally {
    await server.stop().catch(() => undefined);
    rmSync(storeDir, { recursive: true, force: true });
  }
  const dw = await duplicateWindow();
  if (dw) rows.push(dw);
  return table([`${SUBJECTS.toLocaleString('en-US')} run subjects, one nats-server`, 'value', ''], rows);
}

/**
 * The duplicate window: Nats-Msg-Ids kept for 10 minutes (DESIGN §3). MSGIDS commits on 100
 * subjects into a fresh server, without ids, then into another fresh server with ids; the
 * difference of the RSS growths is what the ids hold.
 */
async function duplicateWindow(): Promise<string[] | undefined> {
  if (MSGIDS === 0) return undefined;
  const delta = async (withIds: boolean) => {
    const dir = join(WORK!, `scale-msgids-${withIds ? 'with' : 'without'}`);
    const server = await startNatsServer({ storeDir: dir });
    try {
      const nc = await connectNats({ url: server.url, name: 'bench-msgids' });
      const s2 = new EventStore(nc, registry(), { stream: 'EVENTS_IDS', subjectPrefix: 'ids' });
      await s2.ensureStream();
      await sleep(SETTLE_MS);
      const pid = natsPidOf(dir);
      const before = rssOf(pid);
      let n = 0;
      await Promise.all(
        Array.from({ length: 256 }, async () => {
          while (n < MSGIDS) {
            const i = n++;
            const id = `a${i % 100}`;
            await s2.js.publish(
              `${s2.prefix}evt.${WS}.bench.${id}`,
              envelope(id),
              withIds ? { msgID: `${WS}:bench:${id}:${randomUUID()}` } : {},
            );
          }
        }),
      );
      await sleep(SETTLE_MS);
      const grown = rssOf(pid) - before;
      await drainNats(nc);
      return grown;
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  };
  log(`duplicate window: ${MSGIDS.toLocaleString('en-US')} commits without, then with msg ids`);
  const without = await delta(false);
  const withIds = await delta(true);
  return [
    `duplicate window: ${MSGIDS.toLocaleString('en-US')} msg ids`,
    `${Math.round((withIds - without) / MSGIDS)} B per id`,
    `RSS +${fmtMiB(withIds)} with ids, +${fmtMiB(without)} without`,
  ];
}

// ---------------------------------------------------------------------------------------------

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    `| ${headers.map((_, i) => (i === 0 ? (r[i] ?? '').padEnd(widths[i]!) : (r[i] ?? '').padStart(widths[i]!))).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

const version = spawnSync(natsServerBinary(), ['--version'], { encoding: 'utf8' }).stdout.trim();
const header = () =>
  `scale benchmark: node ${process.version}, ${cpus().length} cores, ${version}; load average ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`;
const out: string[] = [header()];
if (PARTS.has('throughput')) out.push(await throughput(), '');
if (PARTS.has('subjects')) out.push(await subjects());
out.push(
  `(load average at the end: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')})`,
);
process.stdout.write(`${out.join('\n')}\n`);
process.exit(0);
