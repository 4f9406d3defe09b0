import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const cli = join(root, 'bin/runway.mjs');

describe('the runway CLI', () => {
  let s: TestStack;
  let dir: string;
  let configDir: string;
  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-cliws-'));
    configDir = mkdtempSync(join(tmpdir(), 'runway-cfg-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace'), dir, { recursive: true });
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(configDir, { recursive: true, force: true });
    await s.stop();
  });

  const env = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, RUNWAY_CONFIG_DIR: configDir };
    delete e.RUNWAY_TOKEN;
    delete e.RUNTIME__API_BASE_URL;
    return e;
  };
  const runway = (...args: string[]) =>
    run(process.execPath, [cli, '--api-url', s.api, ...args], { cwd: dir, env: env() });

  it('refuses commands before login with a one-line reason', async () => {
    const r = await runway('deploy');
    assert.equal(r.code, 1);
    assert.match(r.err, /not logged in/);
    assert.equal(r.err.trim().split('\n').length, 1);
  });

  it('logs in with the device flow and binds the workspace', async () => {
    const child = spawn(process.execPath, [cli, '--api-url', s.api, 'login'], { cwd: dir, env: env() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    let code: string | undefined;
    for (let i = 0; i < 300 && !code; i++) {
      code = /\b([B-Z]{4}-[B-Z]{4})\b/.exec(out)?.[1];
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(code, out);
    assert.equal((await s.call('POST', '/api/v1/device/approve', { user_code: code })).status, 201);
    assert.equal(await exited, 0, out);
    assert.match(out, /Logged in as admin@runway\.local/);
    const cfg = readFileSync(join(dir, '.dlt/config.toml'), 'utf8');
    assert.match(cfg, new RegExp(`workspace_id = "${s.workspaceId}"`));
    assert.match(cfg, /api_base_url = "http:\/\/127\.0\.0\.1:\d+\/api"/);
    assert.match(cfg, /destination_type = "duckdb"/, 'the rest of config.toml is kept');
    assert.equal(statSync(join(configDir, 'credentials.json')).mode & 0o777, 0o600);
  });

  it('deploys incrementally: unchanged uploads nothing, one changed file uploads one file', async () => {
    const first = await runway('--json', 'deploy');
    assert.equal(first.code, 0, first.err);
    const a = JSON.parse(first.out) as {
      deployment: { version: number; created: boolean; uploaded_files: number };
      configuration: { version: number; profiles: string };
    };
    assert.equal(a.deployment.version, 1);
    assert.equal(a.deployment.created, true);
    assert.ok(a.deployment.uploaded_files >= 2);
    assert.match(a.configuration.profiles, /prod/);
    const again = JSON.parse((await runway('--json', 'deploy')).out) as {
      deployment: { version: number; created: boolean; uploaded_bytes: number };
      configuration: { created: boolean };
    };
    assert.equal(again.deployment.created, false);
    assert.equal(again.deployment.version, 1);
    assert.equal(again.deployment.uploaded_bytes, 0);
    assert.equal(again.configuration.created, false);
    writeFileSync(join(dir, 'pipeline.py'), readFileSync(join(dir, 'pipeline.py'), 'utf8') + '\n# changed\n');
    const third = JSON.parse((await runway('--json', 'deployment', 'sync')).out) as {
      version: number;
      uploaded_bytes: number;
    };
    assert.equal(third.version, 2);
    assert.equal(third.uploaded_bytes, statSync(join(dir, 'pipeline.py')).size);
  });

  it('lists and shows versions as tables or JSON, never secret values', async () => {
    const list = await runway('deployment', 'list');
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /Version #/);
    const info = await runway('--json', 'deployment', 'info', '1');
    assert.equal((JSON.parse(info.out) as { version: number }).version, 1);
    const alt = await runway('deployment', '2', 'info');
    assert.equal(alt.code, 0, alt.err);
    const cfg = await runway('configuration', 'info');
    assert.equal(cfg.code, 0, cfg.err);
    assert.match(cfg.out, /sources\.shop\.api_key/);
    assert.ok(!cfg.out.includes('prod-api-key-5f1c9e2a7b'));
    const whoami = await runway('info');
    assert.equal(whoami.code, 0, whoami.err);
    assert.match(whoami.out, /Deployment version 2/);
    const bad = await runway('deployment', 'frobnicate');
    assert.equal(bad.code, 2);
    assert.match(bad.err, /unknown operation frobnicate/);
    const missing = await runway('deployment', 'info', '99');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /HTTP 404/);
  });

  it('login rebinds a directory bound to a workspace of another user or server', async () => {
    const cfgPath = join(dir, '.dlt/config.toml');
    const before = readFileSync(cfgPath, 'utf8');
    const stranger = '00000000-0000-4000-8000-00000000beef';
    writeFileSync(cfgPath, before.replace(s.workspaceId, stranger));
    const r = await runway('login', '--token', s.adminToken);
    assert.equal(r.code, 0, r.err);
    assert.match(r.err, new RegExp(`workspace ${stranger} from \\.dlt/config\\.toml is not one of yours`));
    assert.match(r.out, new RegExp(`Authorized to workspace ${s.workspaceId}`));
    assert.match(readFileSync(cfgPath, 'utf8'), new RegExp(`workspace_id = "${s.workspaceId}"`));
  });

  it('logs out', async () => {
    assert.equal((await runway('logout')).code, 0);
    assert.equal((await runway('info')).code, 1);
  });
});
