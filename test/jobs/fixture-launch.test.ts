import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run } from '../support/exec.js';
import { startTestStack, type TestStack } from '../support/stack.js';

const root = process.cwd();
const python = join(root, '.venv', 'bin', 'python');
type Json = Record<string, unknown>;

/**
 * test/fixtures/dlt-workspace: nested records (a child table), a duckdb destination named in config
 * (`[destination.warehouse] destination_type = "duckdb"`), dataset and database per profile, and a
 * secret from prod.secrets.toml; launched with `runway launch` and with `dlt runtime launch`.
 */
describe('the fixture workspace, launched for real', () => {
  let s: TestStack;
  let dir: string;
  before(async () => {
    s = await startTestStack();
    dir = mkdtempSync(join(tmpdir(), 'runway-fixture-'));
    cpSync(join(root, 'test/fixtures/dlt-workspace'), dir, { recursive: true });
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await s.stop();
  });

  const count = async (db: string, table: string) => {
    const r = await run(python, [
      '-c',
      `import duckdb; print(duckdb.connect(${JSON.stringify(db)}, read_only=True).sql("select count(*) from ${table}").fetchall()[0][0])`,
    ]);
    assert.equal(r.code, 0, r.err);
    return Number(r.out.trim());
  };

  it('runs under prod with `runway launch`: rows in the prod duckdb, tables and counts in the run', async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUNWAY_TOKEN: s.adminToken,
      RUNWAY_CONFIG_DIR: join(dir, '_cfg'),
    };
    const r = await run(
      process.execPath,
      [join(root, 'bin/runway.mjs'), '--api-url', s.api, 'launch', 'pipeline.py'],
      { cwd: dir, env },
    );
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out + r.err, /dataset: shop_prod/);
    assert.ok(!(r.out + r.err).includes('prod-api-key-5f1c9e2a7b'), 'the secret is not in the logs');
    const runs = await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs?limit=1&offset=0`);
    const id = (runs.json as { items: Json[] }).items[0]!.id as string;
    const details = (await s.call('GET', `/api/v1/workspaces/${s.workspaceId}/runs/${id}`)).json as Json;
    assert.equal(details.status, 'completed');
    assert.equal(details.profile, 'prod');
    const [p] = details.pipelines as Json[];
    assert.equal(p!.dataset_name, 'shop_prod');
    const counts = p!.row_counts as Record<string, number>;
    assert.equal(counts.customers, 2);
    assert.equal(counts.customers__orders, 3);
    assert.equal((p!.tables as Json[]).find((t) => t.name === 'customers__orders')!.parent, 'customers');
    const db = join(s.dataDir, 'workspaces', s.workspaceId, 'local', 'prod', 'warehouse_prod.duckdb');
    assert.ok(existsSync(db), `${db} exists`);
    assert.equal(await count(db, 'shop_prod.customers'), 2);
    assert.equal(await count(db, 'shop_prod.customers__orders'), 3);
    assert.ok(
      !existsSync(join(s.dataDir, 'workspaces', s.workspaceId, 'local', 'prod', 'warehouse_dev.duckdb')),
      'the dev database is untouched',
    );
  });

  it('runs again with the unmodified `dlt runtime launch`, seeing the state of the first run', async () => {
    const login = await s.call('POST', '/api/v1/tokens', { name: 'dlt' });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RUNTIME__API_BASE_URL: s.api,
      RUNTIME__AUTH_BASE_URL: s.auth,
      RUNTIME__DLTHUB_TELEMETRY: 'false',
      RUNTIME__WORKSPACE_ID: s.workspaceId,
      DLT_DATA_DIR: join(dir, '_storage'),
    };
    // The dlt CLI needs a JWT carrying sub and email: log in through the device flow, approved here.
    const code = await s.call('POST', '/auth/v1/github/device-flow/code', undefined, null);
    const c = code.json as { device_code: string; user_code: string };
    await s.call('POST', '/api/v1/device/approve', { user_code: c.user_code });
    const tok = await s.call(
      'POST',
      '/auth/v1/github/device-flow/token',
      { device_code: c.device_code },
      null,
    );
    assert.equal(tok.status, 201, tok.text);
    assert.equal(login.status, 201);
    env.RUNTIME__AUTH_TOKEN = (tok.json as { jwt: string }).jwt;
    const r = await run(
      join(root, '.venv', 'bin', 'dlt'),
      ['--non-interactive', 'runtime', 'launch', 'pipeline.py'],
      { cwd: dir, env },
    );
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /first run: False/);
    assert.match(r.out, /completed/);
  });
});
