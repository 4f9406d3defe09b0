/**
 * `npm run bench -- interactive`: interactive apps behind the gateway proxy, on a whole Runway (in
 * this process, on the nats-server + PostgreSQL that scripts/bench.mjs started), real marimo.
 *
 * 1. serve → first byte of the notebook page: cold (no app running: the run is requested, the
 *    worker starts marimo, the page is fetched as soon as the app answers) and warm (app running).
 * 2. Proxy overhead per request: GET of a plain Python app through `/i/<job>/` (bearer token, the
 *    proxy's lookups) against the same GET straight to the app's worker endpoint (with its app
 *    key), one keep-alive connection each; p50 / p99.
 * 3. 20 concurrent WebSocket sessions through the proxy, each sending BENCH_WS_MESSAGES messages
 *    one after the other: round trip p50 / p99.
 * Prints one table. BENCH_COLD_RUNS, BENCH_WARM_REQUESTS, BENCH_PROXY_REQUESTS tune the counts.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { APP_KEY_HEADER } from '#libs/contracts';
import { interactiveAppKey, loadMasterKey } from '#libs/secrets';
import { interactiveAppOfJob } from '../services/execution/src/run/read-models/runs.queries.js';
import { GatewayDatabase } from '../services/gateway/src/gateway.database.js';
import { startTestStack, type TestStack } from '../test/support/stack.js';
import { uploadPackage } from '../test/jobs/support.js';

const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 3);
const WARM_REQUESTS = Number(process.env.BENCH_WARM_REQUESTS ?? 50);
const PROXY_REQUESTS = Number(process.env.BENCH_PROXY_REQUESTS ?? 500);
const WS_SESSIONS = 20;
const WS_MESSAGES = Number(process.env.BENCH_WS_MESSAGES ?? 50);
const FIXTURES = join(process.cwd(), 'test', 'fixtures', 'interactive');
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

/** Time to the first byte of a GET (status, ms), the rest of the body drained. */
function firstByte(
  url: string,
  headers: IncomingHttpHeaders,
  agent?: Agent,
): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    request(url, { headers: headers as Record<string, string>, agent }, (res) => {
      let first: number | undefined;
      res.on('data', () => (first ??= performance.now() - t0));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: first ?? performance.now() - t0 }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

interface AppRun {
  id: string;
  runway_status: string;
}

async function newestRun(stack: TestStack, jobId: string): Promise<AppRun | undefined> {
  const r = await stack.call(
    'GET',
    `/api/v1/workspaces/${stack.workspaceId}/runs?script_id=${jobId}&limit=1`,
  );
  return (r.json as { items: AppRun[] }).items[0];
}

async function waitStatus(stack: TestStack, jobId: string, want: (s: string) => boolean): Promise<AppRun> {
  for (const end = Date.now() + 120_000; Date.now() < end; await sleep(50)) {
    const run = await newestRun(stack, jobId);
    if (run && want(run.runway_status)) return run;
  }
  throw new Error(`job ${jobId}: status not reached`);
}

async function main(): Promise<void> {
  const stack = await startTestStack({
    RUNWAY_PYTHON: process.env.RUNWAY_PYTHON ?? join(process.cwd(), '.venv', 'bin', 'python'),
  });
  const rows: [string, string, string][] = [];
  try {
    const ws = stack.workspaceId;
    const auth = { authorization: `Bearer ${stack.adminToken}` };
    await uploadPackage(stack, 'deployments', [
      { path: 'notebook.py', content: readFileSync(join(FIXTURES, 'notebook.py'), 'utf8') },
      { path: 'echo_app.py', content: readFileSync(join(FIXTURES, 'echo_app.py'), 'utf8') },
    ]);
    const jobs: Record<string, string> = {};
    for (const name of ['notebook.py', 'echo_app.py']) {
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
        name,
        description: '',
        entry_point: name,
        script_type: 'interactive',
      });
      if (r.status !== 201) throw new Error(r.text);
      jobs[name] = (r.json as { id: string }).id;
    }
    const nb = jobs['notebook.py']!;
    const page = `${stack.url}/i/${nb}/`;

    // 1. Cold: request → first byte of the notebook page (the app answering); then warm.
    const cold: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const t0 = performance.now();
      const r = await stack.call('POST', `/api/v1/workspaces/${ws}/runs`, {
        script_id_or_name: nb,
        profile: null,
      });
      if (r.status !== 201) throw new Error(r.text);
      const runId = (r.json as { id: string }).id;
      for (;;) {
        const fb = await firstByte(page, { ...auth, accept: 'text/html' });
        if (fb.status === 200) break;
        await sleep(50);
      }
      cold.push(performance.now() - t0);
      log(`cold ${i + 1}: ${ms(cold[cold.length - 1]!)}`);
      if (i < COLD_RUNS - 1) {
        await stack.call('POST', `/api/v1/workspaces/${ws}/runs/${runId}/cancel`);
        await waitStatus(stack, nb, (s) => s === 'cancelled');
      }
    }
    rows.push(['serve → first byte, cold (p50 / max)', ms(pct(cold, 50)), ms(Math.max(...cold))]);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const warm: number[] = [];
    for (let i = 0; i < WARM_REQUESTS; i++)
      warm.push((await firstByte(page, { ...auth, accept: 'text/html' }, agent)).ms);
    rows.push(['notebook page first byte, warm (p50 / p99)', ms(pct(warm, 50)), ms(pct(warm, 99))]);

    // 2. Proxy overhead: through the gateway vs straight to the worker endpoint.
    const echo = jobs['echo_app.py']!;
    await stack.call('POST', `/api/v1/workspaces/${ws}/runs`, { script_id_or_name: echo, profile: null });
    const running = await waitStatus(stack, echo, (s) => s === 'running' || s === 'failed');
    if (running.runway_status !== 'running') throw new Error('the echo app did not start');
    const db = stack.runway.gateway.get(GatewayDatabase);
    const found = await interactiveAppOfJob(db.readModels.runs, ws, echo);
    const app = found?.app ? { ...found.app, base_path: found.app.basePath } : undefined;
    if (!app) throw new Error(`run ${running.id} has no app address`);
    const key = interactiveAppKey(loadMasterKey({ dataDir: stack.dataDir }), running.id);
    const viaProxy: number[] = [];
    const direct: number[] = [];
    const proxyAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const directAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 20; i++) {
      await firstByte(`${stack.url}/i/${echo}/warmup`, auth, proxyAgent);
      await firstByte(
        `http://${app.host}:${app.port}${app.base_path}/warmup`,
        { [APP_KEY_HEADER]: key },
        directAgent,
      );
    }
    for (let i = 0; i < PROXY_REQUESTS; i++) {
      const t0 = performance.now();
      const a = await firstByte(`${stack.url}/i/${echo}/x`, auth, proxyAgent);
      if (a.status !== 200) throw new Error(`proxy answered ${a.status}`);
      viaProxy.push(performance.now() - t0);
      const t1 = performance.now();
      const b = await firstByte(
        `http://${app.host}:${app.port}${app.base_path}/x`,
        { [APP_KEY_HEADER]: key },
        directAgent,
      );
      if (b.status !== 200) throw new Error(`worker endpoint answered ${b.status}`);
      direct.push(performance.now() - t1);
    }
    rows.push(['GET through the proxy (p50 / p99)', ms(pct(viaProxy, 50)), ms(pct(viaProxy, 99))]);
    rows.push(['GET straight to the app endpoint (p50 / p99)', ms(pct(direct, 50)), ms(pct(direct, 99))]);
    rows.push([
      'proxy overhead per request (p50 / p99)',
      ms(pct(viaProxy, 50) - pct(direct, 50)),
      ms(pct(viaProxy, 99) - pct(direct, 99)),
    ]);

    // 3. 20 concurrent WebSocket sessions through the proxy.
    const rtts: number[] = [];
    const wsUrl = `${stack.url.replace(/^http/, 'ws')}/i/${echo}/ws`;
    await Promise.all(
      Array.from({ length: WS_SESSIONS }, async (_, n) => {
        const sock = new WebSocket(wsUrl, { headers: auth } as unknown as string[]);
        await new Promise<void>((resolve, reject) => {
          sock.onopen = () => resolve();
          sock.onerror = () => reject(new Error('WebSocket failed'));
        });
        for (let i = 0; i < WS_MESSAGES; i++) {
          const t0 = performance.now();
          const answered = new Promise<void>((resolve) => (sock.onmessage = () => resolve()));
          sock.send(`s${n}m${i}`);
          await answered;
          rtts.push(performance.now() - t0);
        }
        sock.close();
      }),
    );
    rows.push([
      `WebSocket round trip, ${WS_SESSIONS} sessions (p50 / p99)`,
      ms(pct(rtts, 50)),
      ms(pct(rtts, 99)),
    ]);
    proxyAgent.destroy();
    directAgent.destroy();
    agent.destroy();
  } finally {
    await stack.stop();
  }
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`\ninteractive (real marimo; ${process.env.RUNWAY_SANDBOX ?? 'sandbox on'})\n`);
  process.stdout.write(`${'measure'.padEnd(w)}  ${'p50'.padStart(10)}  ${'p99/max'.padStart(10)}\n`);
  for (const [a, b, c] of rows)
    process.stdout.write(`${a.padEnd(w)}  ${b.padStart(10)}  ${c.padStart(10)}\n`);
}

await main();
process.exit(0);
