import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { APP_KEY_HEADER } from '#libs/contracts';
import { interactiveAppKey, loadMasterKey } from '#libs/secrets';
import { livePidsWithArg } from '#libs/testing';
import { GatewayDatabase } from '../../services/gateway/src/gateway.database.js';
import {
  interactiveAppOfJob,
  type InteractiveApp,
} from '../../services/execution/src/run/read-models/runs.queries.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { createBatchJob, newUser, uploadPackage, waitForStatus, type Json } from '../jobs/support.js';

/** Idle stop of the stack's apps: every test reads its app at once; the idle test waits for it. */
const IDLE_SECONDS = 8;

const NOTEBOOK = `import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    mo.md("hello from a runway notebook")
    return


if __name__ == "__main__":
    app.run()
`;

/**
 * A plain HTTP app on PORT. At start it tries Runway's NATS, PostgreSQL and gateway ports (it must
 * reach none of them: it lives in its own network namespace) and prints what happened.
 * /hold answers with a first chunk and then keeps the response open (a long request).
 */
function plainApp(targets: { name: string; host: string; port: number }[]): string {
  return String.raw`
import json, os, socket, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
for name, host, port in ${JSON.stringify(targets.map((t) => [t.name, t.host, t.port]))}:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("REACHED", name, flush=True)
    except OSError as e:
        print("UNREACHABLE", name, type(e).__name__, flush=True)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/hold":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"holding\n")
            self.wfile.flush()
            while True:
                time.sleep(0.5)
                self.wfile.write(b".")
                self.wfile.flush()
        body = json.dumps({"path": self.path, "base": os.environ.get("RUNWAY_BASE_PATH"), "key": self.headers.get("${APP_KEY_HEADER}")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
print("serving on", os.environ["PORT"], flush=True)
ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
`;
}

const PIPELINE = `import dlt
p = dlt.pipeline("iexec_demo", destination="duckdb", dataset_name="demo")
print(p.run([{"id": 1}, {"id": 2}], table_name="items"))
`;

interface Got {
  status: number;
  body: string;
  firstByteMs: number;
}

/** A GET to an app's worker endpoint (as a gateway does), with the app key unless told otherwise. */
function get(app: NonNullable<InteractiveApp['app']>, path: string, key: string | undefined): Promise<Got> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: app.host, port: app.port, path, headers: key ? { [APP_KEY_HEADER]: key } : {} },
      (res) => {
        const firstByteMs = performance.now() - t0;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, firstByteMs }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('interactive runs: apps in the sandbox, reached through the worker endpoint', () => {
  let s: TestStack;
  let db: GatewayDatabase;
  let master: ReturnType<typeof loadMasterKey>;
  const jobIds = new Map<string, string>();

  const keyOf = (runId: string) => interactiveAppKey(master, runId);
  const appOf = async (name: string, ws = s.workspaceId) =>
    interactiveAppOfJob(db.readModels.runs, ws, jobIds.get(`${ws}/${name}`) ?? '');
  const createApp = async (name: string, entry = name, ws = s.workspaceId, token?: string) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${ws}/scripts`,
      {
        name,
        description: '',
        entry_point: entry,
        script_type: 'interactive',
        active: true,
        profile: null,
        schedule: null,
      },
      token,
    );
    assert.ok(r.status === 200 || r.status === 201, r.text);
    jobIds.set(`${ws}/${name}`, (r.json as Json).id as string);
  };
  const run = async (name: string, ws = s.workspaceId, token?: string) => {
    const r = await s.call(
      'POST',
      `/api/v1/workspaces/${ws}/runs`,
      { script_id_or_name_or_secret: name, profile: null },
      token,
    );
    assert.equal(r.status, 201, r.text);
    return (r.json as Json).id as string;
  };
  const logs = async (id: string, ws = s.workspaceId, token?: string) =>
    (
      (await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}/logs`, undefined, token)).json as {
        logs: string | null;
      }
    ).logs ?? '';
  /** The run's log once it shows `re` (lines reach the log stream a little after they are written). */
  const logsUntil = async (id: string, re: RegExp, ws = s.workspaceId) => {
    let text = '';
    for (const until = Date.now() + 15_000; Date.now() < until;) {
      text = await logs(id, ws);
      if (re.test(text)) return text;
      await new Promise((r) => setTimeout(r, 200));
    }
    return text;
  };
  /** Waits until the run is running and its address is in the read model. */
  const running = async (name: string, runId: string, ws = s.workspaceId) => {
    await waitForStatus(s, runId, ['running', 'failed', 'completed'], 90_000, ws);
    for (const until = Date.now() + 15_000; ;) {
      const a = await appOf(name, ws);
      if (a?.runId === runId && a.app) return a.app;
      if (a?.runId === runId && a.status !== 'running')
        assert.fail(`run ${runId} ended ${a.status}: ${a.message}\n${await logs(runId, ws)}`);
      if (Date.now() > until) assert.fail(`no address for run ${runId}: ${JSON.stringify(a)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const noProcessLeft = async (runId: string) => {
    for (const until = Date.now() + 10_000; Date.now() < until;) {
      if (livePidsWithArg(runId).length === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(livePidsWithArg(runId), [], 'a process of the app outlived its run');
  };

  before(async () => {
    s = await startTestStack({
      RUNWAY_INTERACTIVE_IDLE: `${IDLE_SECONDS}s`,
      RUNWAY_INTERACTIVE_STARTUP_SECONDS: '60',
      RUNWAY_INTERACTIVE_PER_WORKSPACE: '3',
      RUNWAY_KILL_GRACE_SECONDS: '2',
    });
    db = s.runway.gateway.get(GatewayDatabase);
    master = loadMasterKey({ dataDir: s.dataDir });
    const nats = new URL(s.env.natsUrl.split(',')[0]!.replace(/^nats:/, 'http:'));
    const pg = new URL(s.runway.databaseUrl.replace(/^postgres(ql)?:/, 'http:'));
    const gw = new URL(s.url);
    await uploadPackage(s, 'deployments', [
      { path: 'nb.py', content: NOTEBOOK },
      {
        path: 'app.py',
        content: plainApp([
          { name: 'nats', host: nats.hostname, port: Number(nats.port) },
          { name: 'postgres', host: pg.hostname, port: Number(pg.port) },
          { name: 'gateway', host: gw.hostname, port: Number(gw.port) },
        ]),
      },
      { path: 'broken.py', content: 'import no_such_module_for_runway\n' },
      { path: 'bad_nb.py', content: NOTEBOOK.replace('mo.md(', 'mo.md((') },
      { path: 'pipeline.py', content: PIPELINE },
    ]);
    // Only `prod` is configured: interactive runs (profile access) fall back to it, with a warning.
    await uploadPackage(s, 'configurations', [
      { path: 'prod.config.toml', content: '[runtime]\nlog_level = "WARNING"\n' },
    ]);
  });
  after(() => s?.stop());

  it('a marimo notebook is running only once it answers: its page comes from the advertised address (key required)', async () => {
    await createApp('nb.py');
    const id = await run('nb.py');
    // While it starts, the read model has no address.
    const early = await appOf('nb.py');
    assert.equal(early?.app ?? null, null);
    const app = await running('nb.py', id);
    assert.equal(app.type, 'marimo');
    assert.equal(app.basePath, `/i/${jobIds.get(`${s.workspaceId}/nb.py`)}`);
    const page = await get(app, `${app.basePath}/`, keyOf(id));
    assert.equal(page.status, 200, page.body.slice(0, 500));
    assert.match(page.body, /marimo/);
    // Assets are relative: the page works under any public prefix the gateway maps to the base path.
    assert.match(page.body, /src="\.\/assets\//);
    console.log(`marimo page through the worker endpoint: first byte ${page.firstByteMs.toFixed(1)} ms`);
    assert.equal((await get(app, `${app.basePath}/`, undefined)).status, 403);
    assert.equal((await get(app, `${app.basePath}/`, 'f'.repeat(64))).status, 403);
    assert.equal((await get(app, '/other/', keyOf(id))).status, 404);
    const log = await logsUntil(id, /the app answers/);
    assert.match(log, /profile "access" is not defined: using profile "prod"/, log);
    assert.match(log, /marimo notebook nb\.py/, log);
    const ready = /the app answers \((\d+) ms after the spawn\)/.exec(log);
    assert.ok(ready, log);
    console.log(`marimo notebook: spawn → answers in ${ready[1]} ms`);
  });

  it('a plain app on PORT is reached at its root, reaches nothing of Runway, and stops when idle (completed, reason idle)', async () => {
    await createApp('app.py');
    const id = await run('app.py');
    const app = await running('app.py', id);
    assert.equal(app.type, 'http');
    const t0 = Date.now();
    const r = await get(app, `${app.basePath}/hello?x=1`, keyOf(id));
    assert.equal(r.status, 200, r.body);
    const seen = JSON.parse(r.body) as { path: string; base: string; key: string | null };
    assert.deepEqual(
      seen,
      { path: '/hello?x=1', base: app.basePath, key: null },
      'the app never sees the key',
    );
    const log = await logsUntil(id, /REACHED gateway|UNREACHABLE gateway/);
    for (const target of ['nats', 'postgres', 'gateway']) {
      assert.match(log, new RegExp(`UNREACHABLE ${target}`), log);
      assert.doesNotMatch(log, new RegExp(`REACHED ${target}`), log);
    }
    const done = await waitForStatus(s, id, ['completed', 'failed', 'cancelled'], 60_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok(
      Date.now() - t0 >= IDLE_SECONDS * 1000 - 500,
      'not before its idle time after the last request',
    );
    const a = await appOf('app.py');
    assert.equal(a?.endReason, 'idle');
    assert.equal(a?.app, null, 'no address once it ended');
    await noProcessLeft(id);
    await assert.rejects(get(app, `${app.basePath}/`, keyOf(id)), 'its endpoint is closed');
  });

  it('a startup failure ends the run failed (app_startup) with the app’s own error in the log', async () => {
    await createApp('broken.py');
    await createApp('bad_nb.py');
    const [broken, badNb] = [await run('broken.py'), await run('bad_nb.py')];
    const b = await waitForStatus(s, broken, ['failed', 'completed', 'running'], 60_000);
    assert.equal(b.status, 'failed', JSON.stringify(b));
    assert.equal((await appOf('broken.py'))?.failureReason, 'app_startup');
    assert.match(await logs(broken), /ModuleNotFoundError: No module named 'no_such_module_for_runway'/);
    const n = await waitForStatus(s, badNb, ['failed', 'completed', 'running'], 60_000);
    assert.equal(n.status, 'failed', JSON.stringify(n));
    assert.equal((await appOf('bad_nb.py'))?.failureReason, 'app_startup');
    assert.match(await logs(badNb), /unparsable code/);
    await noProcessLeft(broken);
    await noProcessLeft(badNb);
  });

  it('cancel stops the app: open requests end, nothing is left running; a workspace over its limit gets a clear failure', async () => {
    await createApp('hold-a', 'app.py');
    await createApp('hold-b', 'app.py');
    await createApp('hold-c', 'app.py');
    await createApp('hold-d', 'app.py');
    const ids = [await run('hold-a'), await run('hold-b'), await run('hold-c')];
    // A long request keeps each busy (no idle stop meanwhile): opened as soon as its app answers.
    const hold = (app: NonNullable<InteractiveApp['app']>, runId: string) =>
      new Promise<{ got: string; closed: Promise<string> }>((resolve) => {
        let got = '';
        let opened = false;
        const sock = connect(app.port, app.host, () =>
          sock.write(
            `GET ${app.basePath}/hold HTTP/1.1\r\nhost: x\r\n${APP_KEY_HEADER}: ${keyOf(runId)}\r\n\r\n`,
          ),
        );
        const closed = new Promise<string>((r) => sock.on('close', () => r(got)));
        sock.on('data', (c: Buffer) => {
          got += c.toString();
          if (!opened && got.includes('holding')) {
            opened = true;
            resolve({ got, closed });
          }
        });
        sock.on('error', () => undefined);
      });
    const held = await Promise.all(
      ids.map(async (id, i) => hold(await running(['hold-a', 'hold-b', 'hold-c'][i]!, id), id)),
    );
    const holds = held.map((h) => h.closed);
    const fourth = await run('hold-d');
    const refused = await waitForStatus(s, fourth, ['failed', 'running', 'completed'], 60_000);
    assert.equal(refused.status, 'failed', JSON.stringify(refused));
    const d = await appOf('hold-d');
    assert.equal(d?.failureReason, 'limit');
    assert.match(d?.message ?? '', /already runs 3 interactive apps \(RUNWAY_INTERACTIVE_PER_WORKSPACE=3\)/);

    await new Promise((r) => setTimeout(r, (IDLE_SECONDS + 1) * 1000));
    for (const [i, id] of ids.entries())
      assert.equal(
        (await appOf(['hold-a', 'hold-b', 'hold-c'][i]!))?.status,
        'running',
        `${id} busy, not idle`,
      );
    for (const id of ids) {
      const c = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs/${id}/cancel`);
      assert.ok(c.status < 300, c.text);
    }
    for (const id of ids)
      assert.equal(
        (await waitForStatus(s, id, ['cancelled', 'failed', 'completed'], 30_000)).status,
        'cancelled',
      );
    const bodies = await Promise.all(holds);
    for (const b of bodies) assert.match(b, /holding/);
    for (const id of ids) await noProcessLeft(id);
  });

  it('every workspace has the dashboard job; its app serves dlt’s pipeline dashboard over the pipelines batch runs wrote', async () => {
    const other = await newUser(s, 'dash@example.com');
    for (const ws of [s.workspaceId, other.workspaceId]) {
      const token = ws === s.workspaceId ? undefined : other.token;
      let job: Json | undefined;
      for (const until = Date.now() + 20_000; !job && Date.now() < until;) {
        const r = await s.call('GET', `/api/v1/workspaces/${ws}/scripts/dashboard`, undefined, token);
        if (r.status === 200) job = r.json as Json;
        else await new Promise((res) => setTimeout(res, 200));
      }
      assert.ok(job, `workspace ${ws} has no dashboard job`);
      assert.equal(job.script_type, 'interactive');
      assert.equal(job.entry_point, 'runway:dashboard');
      jobIds.set(`${ws}/dashboard`, job.id as string);
    }
    await createBatchJob(s, 'pipeline.py');
    const p = await run('pipeline.py');
    assert.equal(
      (await waitForStatus(s, p, ['completed', 'failed'], 90_000)).status,
      'completed',
      await logs(p),
    );

    const id = await run('dashboard');
    const app = await running('dashboard', id);
    assert.equal(app.type, 'marimo');
    const page = await get(app, `${app.basePath}/`, keyOf(id));
    assert.equal(page.status, 200);
    assert.match(page.body, /marimo/);
    const log = await logsUntil(id, /the app answers/);
    assert.match(log, /dlt pipeline dashboard over 1 pipeline\(s\) of this workspace: iexec_demo/, log);
    console.log(`dlt dashboard: spawn → answers in ${/the app answers \((\d+) ms/.exec(log)?.[1]} ms`);
    await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs/${id}/cancel`);
    await waitForStatus(s, id, ['cancelled', 'completed', 'failed'], 30_000);
    await noProcessLeft(id);
  });
});
