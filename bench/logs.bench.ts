/**
 * `npm run bench -- logs`: run logs on a whole Runway: every service in this process, the workers
 * as 2 processes of their own (worker-main, 10 slots each; BENCH_LOG_WORKERS=embedded runs them in
 * this process instead), so the worker's memory is measured on its own.
 *
 * 1. Latency: BENCH_LOG_RUNS (20) concurrent runs, each printing 100 lines/s for BENCH_LOG_SECONDS
 *    (5) s, each followed by an SSE client; per line, from the user process's write (its own
 *    timestamp in the text) to the line's arrival at the SSE client: p50/p99.
 * 2. Throughput: one run printing BENCH_FLOOD_LINES (200,000) lines as fast as it can; lines/s
 *    as seen by the SSE client, how many were kept (seal lineCount minus markers) and dropped,
 *    and the peak RSS of each worker process and of this process (gateway and services).
 * Prints ONE table.
 */
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { startStackProcess } from '../test/support/process.js';
import { startTestStack } from '../test/support/stack.js';
import { createBatchJob, uploadPackage } from '../test/jobs/support.js';
import { readSse } from '../test/logs/sse.js';

const RUNS = Number(process.env.BENCH_LOG_RUNS ?? 20);
const SECONDS = Number(process.env.BENCH_LOG_SECONDS ?? 5);
const FLOOD = Number(process.env.BENCH_FLOOD_LINES ?? 200_000);
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

const EMBEDDED = process.env.BENCH_LOG_WORKERS === 'embedded';
const python = process.env.RUNWAY_PYTHON ?? 'python3';
const stack = await startTestStack({
  RUNWAY_EMBEDDED_WORKERS: EMBEDDED ? '2' : '0',
  RUNWAY_WORKER_SLOTS: '10',
  RUNWAY_PYTHON: python,
});
const workers: ChildProcess[] = [];
if (!EMBEDDED)
  for (let i = 0; i < 2; i++)
    workers.push(
      (
        await startStackProcess(
          stack,
          'dist/services/execution/src/worker-main.js',
          /runway worker \S+ ready/,
          {
            RUNWAY_WORKER_SLOTS: '10',
            RUNWAY_PYTHON: python,
          },
        )
      ).child,
    );
/** VmRSS of a process in bytes (0 once it is gone). */
const rssOf = (pid: number | undefined) => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
};
let peakRss = 0;
let peakWorkerRss = 0;
const rssTimer = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  for (const w of workers) peakWorkerRss = Math.max(peakWorkerRss, rssOf(w.pid));
}, 50);
try {
  const ws = stack.workspaceId;
  await uploadPackage(stack, 'deployments', [
    {
      path: 'paced.py',
      content: [
        'import sys, time',
        `n = ${100 * SECONDS}`,
        'start = time.time()',
        'for i in range(n):',
        '    target = start + i / 100',
        '    d = target - time.time()',
        '    if d > 0: time.sleep(d)',
        '    print(f"t={time.time() * 1000:.3f} i={i}", flush=True)',
        '',
      ].join('\n'),
    },
    {
      path: 'flood.py',
      content: `import sys\nw = sys.stdout.write\nfor i in range(${FLOOD}):\n    w(f"flood line {i}\\n")\n`,
    },
  ]);
  for (const name of ['paced.py', 'flood.py']) await createBatchJob(stack, name);
  const startRun = async (name: string) => {
    const r = await stack.call('POST', `/api/v1/workspaces/${ws}/runs`, {
      script_id_or_name_or_secret: name,
      profile: null,
    });
    if (r.status !== 201) throw new Error(`run ${name}: ${r.status} ${r.text}`);
    return (r.json as { id: string }).id;
  };
  const follow = (id: string, onLine?: (text: string, at: number) => void, onOpen?: (at: number) => void) =>
    readSse(`${stack.url}/api/v1/workspaces/${ws}/runs/${id}/logs/stream`, stack.adminToken, {
      timeoutMs: 300_000,
      ...(onOpen ? { onOpen } : {}),
      onEvent: (e) => {
        if (e.event === 'line' && onLine) onLine((JSON.parse(e.data) as { text: string }).text, Date.now());
      },
    });

  log(`latency: ${RUNS} runs × 100 lines/s × ${SECONDS} s`);
  const latencies: number[] = [];
  /** Lines after each run's first second (process start and SSE connect excluded). */
  const steady: number[] = [];
  /** Lines written after the client's stream was open (the others were replayed on connect). */
  const live: number[] = [];
  /** From POST runs to the SSE stream being open. */
  const connects: number[] = [];
  let lost = 0;
  // Each run's follower connects right after the run is created (before its process starts), as a
  // user following a run would.
  await Promise.all(
    Array.from({ length: RUNS }, async () => {
      const t0 = Date.now();
      const id = await startRun('paced.py');
      let got = 0;
      let openedAt = Infinity;
      await follow(
        id,
        (text, at) => {
          const m = /^t=([\d.]+) i=(\d+)$/.exec(text);
          if (m) {
            got++;
            const written = Number(m[1]);
            latencies.push(at - written);
            // Written while the client was already following (not replayed from before it connected).
            if (written >= openedAt) live.push(at - written);
            if (Number(m[2]) >= 100) steady.push(at - written);
          }
        },
        (at) => {
          openedAt = at;
          connects.push(at - t0);
        },
      );
      lost += 100 * SECONDS - got;
    }),
  );

  log(`throughput: one run printing ${FLOOD} lines`);
  const floodId = await startRun('flood.py');
  const floodStart = Date.now();
  let first = 0;
  let last = 0;
  let kept = 0;
  let dropped = 0;
  const res = await follow(floodId, (text, at) => {
    if (text.startsWith('flood line ')) {
      kept++;
      first ||= at;
      last = at;
    }
    const d = /^\[runway\] (\d+) lines dropped$/.exec(text);
    if (d) dropped += Number(d[1]);
  });
  const end = res.events.at(-1);
  const rate = kept / Math.max(0.001, (last - first) / 1000);
  const total = kept / Math.max(0.001, (last - floodStart) / 1000);

  console.log('\n| measure | value |\n|---|---|');
  console.log(
    `| write → SSE latency p50 (${RUNS} runs × 100 lines/s) | ${pct(latencies, 50).toFixed(1)} ms |`,
  );
  console.log(`| write → SSE latency p99 | ${pct(latencies, 99).toFixed(1)} ms |`);
  console.log(
    `| … lines written while the client was connected (${live.length}), p50 / p99 / max | ${pct(live, 50).toFixed(1)} / ${pct(live, 99).toFixed(1)} / ${pct(live, 100).toFixed(1)} ms |`,
  );
  console.log(
    `| … after each run's first second, p50 / p99 | ${pct(steady, 50).toFixed(1)} / ${pct(steady, 99).toFixed(1)} ms |`,
  );
  console.log(
    `| client: POST runs → SSE stream open, p50 / p99 | ${pct(connects, 50).toFixed(0)} / ${pct(connects, 99).toFixed(0)} ms |`,
  );
  console.log(`| lines lost in the latency test | ${lost} |`);
  console.log(`| one run flooding: lines kept / dropped (marker) | ${kept} / ${dropped} of ${FLOOD} |`);
  console.log(`| one run flooding: lines/s at the SSE client (first to last line) | ${Math.round(rate)} |`);
  console.log(`| … including process start (run created → last line) | ${Math.round(total)} |`);
  console.log(`| flood ended with | ${end?.event ?? '?'} ${end?.data ?? ''} |`);
  if (EMBEDDED)
    console.log(
      `| peak RSS (gateway + services + 2 embedded workers) | ${Math.round(peakRss / 1024 / 1024)} MiB |`,
    );
  else {
    console.log(
      `| peak RSS of a worker process (10 slots) | ${Math.round(peakWorkerRss / 1024 / 1024)} MiB |`,
    );
    console.log(`| peak RSS of the gateway + services process | ${Math.round(peakRss / 1024 / 1024)} MiB |`);
  }
} finally {
  clearInterval(rssTimer);
  for (const w of workers) w.kill('SIGTERM');
  await Promise.all(
    workers.map((w) => new Promise((r) => (w.exitCode !== null ? r(null) : w.once('exit', r)))),
  );
  await stack.stop();
}
