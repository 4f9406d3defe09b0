/**
 * `npm run bench -- scheduler`: the scheduler under load, on a whole Runway (in this process, on the
 * nats-server + PostgreSQL that scripts/bench.mjs started) whose scheduling service runs as its own
 * process (the in-process scheduler is off), restarted once in the middle.
 *
 * 1. Process start (a sample): BENCH_SCHED_SAMPLE_JOBS (20) jobs of a `pass` script every 5 s
 *    (`*\/5 * * * * *`) for BENCH_SCHED_SAMPLE_SECONDS (30), run by one worker process of 8 slots:
 *    fire time → process spawned. 2,000 processes every 5 s would be far beyond 2 cores (measured
 *    ~17 runs/s, docs/runs.md), so this part is a sample.
 * 2. Fires: BENCH_SCHED_JOBS (2000) jobs every 5 s for BENCH_SCHED_SECONDS (60), no worker (the
 *    runs stay pending; overlap `allow`, missed `run_all` so that no fire time is dropped on
 *    purpose), with a stop/start of a scheduling process in the middle AT THE WORST MOMENT: SIGTERM
 *    BENCH_SCHED_RESTART_BEFORE_MS (100) before a fire time. Measured: fire time → RunRequested
 *    stored (the stream's own timestamp of the message), p50/p99 overall and outside the restart,
 *    fire times missed and doubled, and the CPU time of the scheduling processes per burst (over
 *    the steady bursts before the restart, from /proc). Once per replica configuration in
 *    BENCH_SCHED_REPLICAS ("1,2"): that many scheduling processes side by side (sharing the jobs
 *    by shard leases), one of them restarted. With 1 the restart is an outage; with 2 the other
 *    one takes the stopped one's shards.
 * Prints ONE table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { DeliverPolicy } from '@nats-io/jetstream';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createKysely } from '#libs/database';
import { sql } from 'kysely';
import { schedulingRegistry } from '../services/scheduling/src/job/job.events.js';
import { dueFires, nextFire } from '../services/scheduling/src/scheduler/cron.js';
import { startTestStack, type TestStack } from '../test/support/stack.js';
import { uploadPackage } from '../test/jobs/support.js';

// The scheduler runs in the separate scheduling process only.
process.env.RUNWAY_SCHEDULER = 'off';

const JOBS = Number(process.env.BENCH_SCHED_JOBS ?? 2000);
const SECONDS = Number(process.env.BENCH_SCHED_SECONDS ?? 60);
const SAMPLE_JOBS = Number(process.env.BENCH_SCHED_SAMPLE_JOBS ?? 20);
const SAMPLE_SECONDS = Number(process.env.BENCH_SCHED_SAMPLE_SECONDS ?? 30);
/** Replica configurations measured one after the other (BENCH_SCHED_REPLICAS, e.g. "1,2"). */
const REPLICAS = (process.env.BENCH_SCHED_REPLICAS ?? '1,2').split(',').map((x) => Math.max(1, Number(x)));
/** The restart: the process gets SIGTERM this long before a fire time (BENCH_SCHED_RESTART_BEFORE_MS, 100). */
const RESTART_BEFORE_MS = Number(process.env.BENCH_SCHED_RESTART_BEFORE_MS ?? 100);
/** The 2,000 jobs' schedule (BENCH_SCHED_CRON): every 5 s by default; `* * * * *` with BENCH_SCHED_SECONDS=300 is the issue's other form. */
const CRON = process.env.BENCH_SCHED_CRON ?? '*/5 * * * * *';
const SAMPLE_CRON = '*/5 * * * * *';
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
type Json = Record<string, unknown>;

function startProcess(stack: TestStack, script: string, env: Record<string, string>): ChildProcess {
  const prof =
    process.env.BENCH_PROFILE_DIR && script.includes('scheduling')
      ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE_DIR}`]
      : [];
  return spawn(process.execPath, [...prof, join(process.cwd(), script)], {
    env: {
      ...process.env,
      ...stack.env.childEnv(),
      RUNWAY_DATA_DIR: stack.dataDir,
      RUNWAY_LOG_LEVEL: 'error',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Milliseconds from `since` to the process's `runway … ready` line. */
function readyOf(c: ChildProcess, since: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      if (/runway \S+ ready/.test(out)) {
        c.stdout!.off('data', onData);
        c.stdout!.resume(); // keep draining
        resolve(Date.now() - since);
      }
    };
    c.stdout!.on('data', onData);
    c.once('exit', () => reject(new Error('the scheduling process exited before it was ready')));
  });
}
/** CPU seconds (user + system) a process used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(c: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${c.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}
const startScheduling = (stack: TestStack) =>
  startProcess(stack, 'dist/services/scheduling/src/main.js', { RUNWAY_SCHEDULER: 'on' });
async function stopProcess(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await exited;
}

const stack = await startTestStack({ RUNWAY_EMBEDDED_WORKERS: '0' });
const db = createKysely<unknown>({ url: stack.env.databaseUrl, max: 4 });
const children: ChildProcess[] = [];
try {
  const ws = stack.workspaceId;
  await uploadPackage(stack, 'deployments', [{ path: 'pass.py', content: 'pass\n' }]);
  let upsertRetries = 0;
  const upsert = async (name: string, body: Json): Promise<Json> => {
    for (let attempt = 1; ; attempt++) {
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
        name,
        description: '',
        entry_point: 'pass.py',
        script_type: 'batch',
        ...body,
      });
      if (r.status === 201) return r.json as Json;
      // 5xx: stored, but the read model lagged behind (the same upsert again changes nothing).
      if (r.status < 500 || attempt === 5) throw new Error(`upsert ${name}: ${r.status} ${r.text}`);
      upsertRetries++;
    }
  };
  const inParallel = async (n: number, width: number, f: (i: number) => Promise<void>) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < n) await f(next++);
      }),
    );
  };
  const store = stack.env.newStore(schedulingRegistry());
  /** Scheduled RunRequested events from `fromSeq` on, with the time the server STORED each (its stream timestamp). */
  async function* storedFires(
    fromSeq: number,
  ): AsyncGenerator<{ jobId: string; fireAt: number; stored: number }> {
    const last = await store.lastSequence();
    if (last < fromSeq) return;
    const consumer = await store.js.consumers.get(store.stream, {
      filter_subjects: store.filterSubject({ aggregateType: 'job' }),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: fromSeq,
    });
    const messages = await consumer.consume({ max_messages: 1024 });
    try {
      for await (const m of messages) {
        const commit = store.decode(m);
        for (const e of commit.events) {
          const d = e.data as { fireAt?: string | null };
          if (e.type === 'RunRequested' && d.fireAt)
            yield {
              jobId: commit.aggregate.id,
              fireAt: Date.parse(d.fireAt),
              stored: Math.round(m.info.timestampNanos / 1e6),
            };
        }
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      messages.stop();
      await consumer.delete().catch(() => undefined);
    }
  }

  const sampler = startScheduling(stack);
  children.push(sampler);

  // 1. Process start, a sample with a worker process.
  log(`sample: ${SAMPLE_JOBS} jobs ${SAMPLE_CRON} for ${SAMPLE_SECONDS} s with one worker process (8 slots)`);
  const worker = startProcess(stack, 'dist/services/execution/src/worker-main.js', {
    RUNWAY_WORKER_SLOTS: '8',
  });
  children.push(worker);
  const sampleIds: string[] = [];
  await inParallel(SAMPLE_JOBS, 8, async (i) => {
    const j = await upsert(`sample-${i}.py`, { schedule: SAMPLE_CRON, overlap_policy: 'allow' });
    sampleIds.push(j.id as string);
  });
  const sampleFrom = Date.now() + 5000;
  await sleep(SAMPLE_SECONDS * 1000);
  await inParallel(SAMPLE_JOBS, 8, async (i) => {
    await upsert(`sample-${i}.py`, { active: false });
  });
  await sleep(6000); // the last runs start
  const sample = (
    await sql<{ started_at: Date | null; id: string }>`
      SELECT id, started_at FROM runs WHERE job_id = ANY(${sampleIds}::uuid[]) AND trigger = 'schedule'`.execute(
      db,
    )
  ).rows;
  const started = new Map(sample.map((r) => [r.id, r.started_at]));
  const spawnDelay: number[] = [];
  let notStarted = 0;
  for (const id of sampleIds) {
    const { events } = await store.read({ workspaceId: ws, type: 'job', id });
    for (const e of events) {
      if (e.type !== 'RunRequested') continue;
      const d = e.data as { runId: string; fireAt?: string | null };
      if (!d.fireAt || Date.parse(d.fireAt) < sampleFrom) continue;
      const st = started.get(d.runId);
      if (st) spawnDelay.push(st.getTime() - Date.parse(d.fireAt));
      else notStarted++;
    }
  }
  await stopProcess(worker);
  await stopProcess(sampler);

  // 2. Fires of 2,000 jobs, per replica configuration, each with a restart at the worst moment.
  interface FireResult {
    replicas: number;
    all: number[];
    steady: number[];
    expected: number;
    missed: number;
    doubled: number;
    stopMs: number;
    readyMs: number;
    outageMs: number;
    cpuPerBurst: number;
    bursts: number;
  }
  const measureFires = async (replicas: number): Promise<FireResult> => {
    const prefix = `r${replicas}`;
    let scheduling = startScheduling(stack);
    children.push(scheduling);
    const others = Array.from({ length: replicas - 1 }, () => startScheduling(stack));
    children.push(...others);
    log(`${replicas} scheduling process(es): creating ${JOBS} jobs ${CRON}`);
    const fromSeq = await store.lastSequence();
    const created = new Map<string, number>();
    const t0 = Date.now();
    await inParallel(JOBS, 16, async (i) => {
      const j = await upsert(`${prefix}-job-${i}.py`, {
        schedule: CRON,
        overlap_policy: 'allow',
        missed_policy: 'run_all',
      });
      created.set(j.id as string, Date.parse(j.date_updated as string));
    });
    log(`  created in ${((Date.now() - t0) / 1000).toFixed(1)} s; firing for ${SECONDS} s`);
    const measureFrom = Date.now() + 5000;
    // The restart at the worst moment: the process stops RESTART_BEFORE_MS before a fire time in
    // the middle of the run, so that the fires of that instant are due while it is down.
    const mid = Date.now() + (SECONDS * 1000) / 2;
    const target = nextFire(CRON, 'UTC', new Date(mid))!.getTime();
    // CPU of the scheduling processes over the steady bursts before the restart.
    await sleep(Math.max(0, measureFrom - Date.now()));
    const procs = [scheduling, ...others];
    const cpuFrom = procs.reduce((n, c) => n + cpuSeconds(c), 0);
    const cpuT0 = Date.now();
    await sleep(Math.max(0, target - RESTART_BEFORE_MS - Date.now()));
    const cpuS = procs.reduce((n, c) => n + cpuSeconds(c), 0) - cpuFrom;
    const bursts = dueFires(CRON, 'UTC', new Date(cpuT0), new Date(), 1_000).fires.length;
    log(
      `restarting a scheduling process of ${replicas} (SIGTERM ${RESTART_BEFORE_MS} ms before a fire time, then a new one)`,
    );
    const restartFrom = Date.now();
    await stopProcess(scheduling);
    const stopMs = Date.now() - restartFrom;
    scheduling = startScheduling(stack);
    children.push(scheduling);
    const readyMs = await readyOf(scheduling, restartFrom);
    await sleep(Math.max(0, measureFrom - 5000 + SECONDS * 1000 - Date.now()));
    const until = Date.now() - 2000; // fire times up to here must all be in
    // Let the scheduler finish what is due (every job's last fire ≤ until reached the read model), at most 60 s.
    const lastDue = dueFires(CRON, 'UTC', new Date(until - 120_000), new Date(until), 1_000).fires.at(-1)!;
    const ids = [...created.keys()];
    for (const drainUntil = Date.now() + 60_000; Date.now() < drainUntil;) {
      const behind = (
        await sql<{ n: number }>`
          SELECT count(*)::int AS n FROM jobs
          WHERE id = ANY(${ids}::uuid[]) AND (last_fire_at IS NULL OR last_fire_at < ${lastDue})`.execute(db)
      ).rows[0]!.n;
      if (behind === 0) break;
      await sleep(500);
    }
    await stopProcess(scheduling);
    for (const o of others) await stopProcess(o);
    // The next configuration must not fire these jobs.
    await inParallel(JOBS, 16, async (i) => {
      await upsert(`${prefix}-job-${i}.py`, { active: false });
    });

    log('reading the fires');
    const seen = new Map<string, Set<number>>();
    let doubled = 0;
    let firstAfterRestart = Infinity;
    const fires: { jobId: string; fireAt: number; stored: number }[] = [];
    for await (const f of storedFires(fromSeq + 1)) {
      const set = seen.get(f.jobId) ?? new Set<number>();
      if (set.has(f.fireAt)) doubled++;
      set.add(f.fireAt);
      seen.set(f.jobId, set);
      if (f.fireAt > restartFrom && f.stored > restartFrom)
        firstAfterRestart = Math.min(firstAfterRestart, f.stored);
      fires.push(f);
    }
    // The restart window: from the stop to the first fire stored after it.
    const restartTo = Math.max(restartFrom, firstAfterRestart === Infinity ? restartFrom : firstAfterRestart);
    const all: number[] = [];
    const steady: number[] = [];
    for (const f of fires) {
      if (!created.has(f.jobId) || f.fireAt < measureFrom || f.fireAt > until) continue;
      all.push(f.stored - f.fireAt);
      if (f.fireAt < restartFrom - 1000 || f.fireAt > restartTo + 1000) steady.push(f.stored - f.fireAt);
    }
    if (process.env.BENCH_SCHED_VERBOSE) {
      const byTime = new Map<number, number[]>();
      for (const f of fires) byTime.set(f.fireAt, [...(byTime.get(f.fireAt) ?? []), f.stored - f.fireAt]);
      for (const [at, ds] of [...byTime].sort((a, b) => a[0] - b[0]))
        log(
          `  ${new Date(at).toISOString()}: ${ds.length} fires, p50 ${pct(ds, 50)} p99 ${pct(ds, 99)} max ${Math.max(...ds)} ms`,
        );
    }
    let expected = 0;
    let missed = 0;
    for (const [id, createdAt] of created) {
      const due = dueFires(CRON, 'UTC', new Date(createdAt), new Date(until), 1_000_000).fires;
      const got = seen.get(id) ?? new Set<number>();
      expected += due.length;
      for (const f of due) if (!got.has(f.getTime())) missed++;
    }
    return {
      replicas,
      all,
      steady,
      expected,
      missed,
      doubled,
      stopMs,
      readyMs,
      outageMs: restartTo - restartFrom,
      cpuPerBurst: cpuS / Math.max(1, bursts),
      bursts,
    };
  };
  const results: FireResult[] = [];
  for (const r of REPLICAS) results.push(await measureFires(r));

  const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : x.toFixed(0));
  console.log('\n| measure | p50 (ms) | p99 (ms) | count |\n|---|---|---|---|');
  for (const r of results) {
    const what = `${r.replicas} scheduling process${r.replicas > 1 ? 'es' : ''}`;
    console.log(
      `| fire time → RunRequested stored, ${JOBS} jobs \`${CRON}\`, ${what}, one restarted ${RESTART_BEFORE_MS} ms before a fire time; all fires | ${fmt(pct(r.all, 50))} | ${fmt(pct(r.all, 99))} | ${r.all.length} |`,
    );
    console.log(
      `| … outside the restart (stop ${r.stopMs} ms, new process ready after ${r.readyMs} ms, first fire stored ${(r.outageMs / 1000).toFixed(1)} s after the stop; ±1 s) | ${fmt(pct(r.steady, 50))} | ${fmt(pct(r.steady, 99))} | ${r.steady.length} |`,
    );
    console.log(
      `| … fire times expected (job creation → end, ${SECONDS} s) / missed / doubled | | | ${r.expected} / ${r.missed} / ${r.doubled} |`,
    );
    console.log(
      `| … CPU of the scheduling process${r.replicas > 1 ? 'es (sum)' : ''} per burst of ${JOBS} fires, ${r.bursts} bursts before the restart | | | ${(r.cpuPerBurst * 1000).toFixed(0)} ms |`,
    );
  }
  console.log(
    `| fire time → process spawned, sample of ${SAMPLE_JOBS} jobs, 1 worker × 8 slots (${notStarted} not started) | ${fmt(pct(spawnDelay, 50))} | ${fmt(pct(spawnDelay, 99))} | ${spawnDelay.length} |`,
  );
  if (results.some((r) => r.missed > 0 || r.doubled > 0)) process.exitCode = 1;
  if (upsertRetries > 0)
    console.log(
      `\n(${upsertRetries} job upserts answered 5xx while the jobs read model lagged, and were retried)`,
    );
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await db.destroy();
  await stack.stop();
}
