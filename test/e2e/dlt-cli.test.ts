import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { dltGlobalSecrets, withDltLoginLock } from '../support/dlt-secrets.js';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const dltBin = join(root, '.venv', 'bin', 'dlt');
// As root, dlt keeps its global secrets (the login token) in /var/dlt: save and restore them.
const globalSecrets = dltGlobalSecrets;

describe('the unmodified dlt runtime CLI (dlt 1.20.0 + dlt-runtime 0.20.0)', () => {
  let s: TestStack;
  let dir: string;
  let saved: string | undefined;
  let jwt: string | undefined;
  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-dltws-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace'), dir, { recursive: true });
    saved = existsSync(globalSecrets) ? readFileSync(globalSecrets, 'utf8') : undefined;
  });
  after(async () => {
    if (saved !== undefined) writeFileSync(globalSecrets, saved);
    else rmSync(globalSecrets, { force: true });
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  const env = () => ({
    ...process.env,
    RUNTIME__API_BASE_URL: s.api,
    RUNTIME__AUTH_BASE_URL: s.auth,
    RUNTIME__DLTHUB_TELEMETRY: 'false',
    DLT_DATA_DIR: join(dir, '_storage'),
    // After login, the token is handed over explicitly: /var/dlt is shared by every root process.
    ...(jwt ? { RUNTIME__AUTH_TOKEN: jwt } : {}),
  });
  const dlt = async (...args: string[]) => {
    const r = await run(dltBin, ['--non-interactive', 'runtime', ...args], { cwd: dir, env: env() });
    return { code: r.code, out: `${r.out}\n${r.err}` };
  };

  it('logs in with the device flow approved by an owner signed in to the dashboard', async () => {
    // The token file is shared by every root process: no other test logs in meanwhile.
    await withDltLoginLock(async () => {
      rmSync(globalSecrets, { force: true });
      const child = spawn(dltBin, ['--non-interactive', 'runtime', 'login'], { cwd: dir, env: env() });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      const until = Date.now() + 60_000;
      let code: string | undefined;
      while (!code && Date.now() < until) {
        code = /\b([B-Z]{4}-[B-Z]{4})\b/.exec(out)?.[1];
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(code, `the CLI shows a user code:\n${out}`);
      assert.ok(out.includes(`${s.url}/device?code=${code}`), `the CLI shows the approval page:\n${out}`);
      // The owner approves in the dashboard: a password session, the page's reads, the CSRF header.
      const pw = await s.call('POST', '/api/v1/admin/users/admin@runway.local/password', {
        password: 'admin dashboard password',
      });
      assert.equal(pw.status, 200, pw.text);
      const signIn = await fetch(`${s.url}/auth/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'admin@runway.local', password: 'admin dashboard password' }),
      });
      assert.equal(signIn.status, 200);
      const cookies = signIn.headers.getSetCookie().map((c) => c.split(';')[0]!);
      const csrf = decodeURIComponent(cookies.find((c) => c.startsWith('runway_csrf='))!.slice(12));
      const page = { cookie: cookies.join('; ') };
      const shown = await fetch(`${s.url}/api/v1/device/${code}`, { headers: page });
      const login = (await shown.json()) as { status: string; client: { user_agent: string } };
      assert.equal(login.status, 'pending');
      assert.ok(login.client.user_agent.length > 0);
      const approved = await fetch(`${s.url}/api/v1/device/approve`, {
        method: 'POST',
        headers: { ...page, 'content-type': 'application/json', 'x-csrf-token': csrf },
        body: JSON.stringify({ user_code: code }),
      });
      assert.equal(approved.status, 201, await approved.text());
      assert.equal(await exited, 0, out);
      assert.match(out, /Logged in as admin@runway\.local/);
      assert.match(out, new RegExp(`Authorized to workspace ${s.workspaceId}`));
      assert.match(
        readFileSync(join(dir, '.dlt/config.toml'), 'utf8'),
        new RegExp(`workspace_id = "${s.workspaceId}"`),
      );
      jwt = /auth_token\s*=\s*"([^"]+)"/.exec(readFileSync(globalSecrets, 'utf8'))?.[1];
      assert.ok(jwt, 'the CLI stored its JWT');
    });
  });

  it('deploys, and a second deploy detects no changes', async () => {
    const first = await dlt('deploy');
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /synchronized successfully/i);
    const second = await dlt('deploy');
    assert.equal(second.code, 0, second.out);
    // `deploy` logs minimally; the server shows nothing new was created, and `sync` says why.
    const deployments = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/deployments`);
    assert.deepEqual(
      (deployments.json as { items: { version: number }[] }).items.map((d) => d.version),
      [1],
    );
    const configurations = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/configurations`);
    assert.deepEqual(
      (configurations.json as { items: { version: number }[] }).items.map((d) => d.version),
      [1],
    );
    const sync = await dlt('deployment', 'sync');
    assert.match(sync.out, /No changes detected in the deployment/);
    const csync = await dlt('configuration', 'sync');
    assert.match(csync.out, /No changes detected in the configuration/);
  });

  it('lists and shows deployments and configurations', async () => {
    const dl = await dlt('deployment', 'list');
    assert.equal(dl.code, 0, dl.out);
    assert.match(dl.out, /\b1\b/);
    const di = await dlt('deployment', 'info');
    assert.equal(di.code, 0, di.out);
    const d1 = await dlt('deployment', '1', 'info');
    assert.equal(d1.code, 0, d1.out);
    const cl = await dlt('configuration', 'list');
    assert.equal(cl.code, 0, cl.out);
    const ci = await dlt('configuration', 'info');
    assert.equal(ci.code, 0, ci.out);
    assert.ok(!ci.out.includes('prod-api-key-5f1c9e2a7b'), 'no secret value in the CLI output');
  });

  it('changes to a file make a new deployment version', async () => {
    writeFileSync(join(dir, 'extra.py'), 'print("new")\n');
    const r = await dlt('deployment', 'sync');
    assert.equal(r.code, 0, r.out);
    const list = await dlt('deployment', 'list');
    assert.match(list.out, /\b2\b/);
  });

  it('shows the workspace with info once a job has run', async () => {
    const job = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
      name: 'pipeline.py',
      description: 'The pipeline.py script',
      entry_point: 'pipeline.py',
      script_type: 'batch',
      profile: null,
      schedule: null,
    });
    assert.equal(job.status, 201, job.text);
    const run = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs`, {
      script_id_or_name: 'pipeline.py',
      profile: null,
    });
    assert.equal(run.status, 201, run.text);
    const info = await dlt('info');
    assert.equal(info.code, 0, info.out);
    assert.match(info.out, /pipeline\.py/);
  });
  it('follows a live run to its end with dlt runtime logs -f, printing every line once, in order', async () => {
    const N = 12;
    writeFileSync(
      join(dir, 'live_logs.py'),
      [
        'import sys, time',
        `for i in range(1, ${N + 1}):`,
        '    print(f"live line {i}", file=sys.stderr if i % 4 == 0 else sys.stdout, flush=True)',
        '    time.sleep(0.5)',
        '',
      ].join('\n'),
    );
    const sync = await dlt('deployment', 'sync');
    assert.equal(sync.code, 0, sync.out);
    const job = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
      name: 'live_logs.py',
      description: 'The live_logs.py script',
      entry_point: 'live_logs.py',
      script_type: 'batch',
      profile: null,
      schedule: null,
    });
    assert.equal(job.status, 201, job.text);
    const created = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/runs`, {
      script_id_or_name: 'live_logs.py',
      profile: null,
    });
    assert.equal(created.status, 201, created.text);
    const runId = (created.json as { id: string }).id;
    const r = await dlt('logs', 'live_logs.py', '-f');
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(
      [...r.out.matchAll(/live line (\d+)/g)].map((m) => Number(m[1])),
      Array.from({ length: N }, (_, i) => i + 1),
      r.out,
    );
    const final = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs/${runId}`);
    assert.equal((final.json as { status: string }).status, 'completed', final.text);
  });
});
