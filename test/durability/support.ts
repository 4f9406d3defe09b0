import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { buildPackage, type BuildFile } from '#libs/archive';
import { loadConfig, type RunwayConfig } from '#libs/config';
import { freePort } from '#libs/testing';
import { startRunway, type RunningRunway } from '../../deploy/local/src/runway.js';

export type Json = Record<string, unknown>;

export const SECRET = `durable-secret-${Date.now().toString(36)}`;
export const secretDigest = createHash('sha256').update(SECRET).digest('hex');

/** A real dlt pipeline (duckdb) that proves its secret reached the run dir without printing it. */
export const WORKSPACE_FILES: BuildFile[] = [
  {
    path: 'shop.py',
    content: [
      'import hashlib',
      'import dlt',
      '',
      '@dlt.resource(name="customers", write_disposition="merge", primary_key="id")',
      'def customers():',
      '    yield [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]',
      '',
      '@dlt.source(name="shop", section="shop")',
      'def shop(api_key: str = dlt.secrets.value):',
      '    print("secret digest", hashlib.sha256(api_key.encode()).hexdigest())',
      '    return customers',
      '',
      'if __name__ == "__main__":',
      '    pipeline = dlt.pipeline(pipeline_name="shop", destination="duckdb", dataset_name="shop_data")',
      '    print(pipeline.run(shop()))',
      '',
    ].join('\n'),
  },
];

export const PROD_SECRETS = `[sources.shop]\napi_key = "${SECRET}"\n\n[destination.duckdb]\ncredentials = "shop.duckdb"\n`;

export const CONFIG_FILES: BuildFile[] = [
  { path: 'config.toml', content: 'log_level = "WARNING"\n' },
  { path: 'prod.secrets.toml', content: PROD_SECRETS },
];

export interface DurableStack {
  config: RunwayConfig;
  runway: RunningRunway;
  url: string;
  dataDir: string;
  token: () => string;
  workspaceId: string;
  call: (
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ) => Promise<{ status: number; json: unknown; text: string }>;
  stop: () => Promise<void>;
}

/** Env of a Runway on given NATS + database + data dir (a fresh data dir when none is given). */
export async function durableConfig(
  natsUrl: string,
  databaseUrl: string,
  names: { stream: string; subjectPrefix: string },
  dataDir = mkdtempSync(join(tmpdir(), 'runway-durable-')),
): Promise<RunwayConfig> {
  return loadConfig({
    RUNWAY_DATA_DIR: dataDir,
    RUNWAY_HTTP_PORT: String(await freePort()),
    RUNWAY_GRPC_PORT: String(await freePort()),
    NATS_URL: natsUrl,
    DATABASE_URL: databaseUrl,
    RUNWAY_EVENTS_STREAM: names.stream,
    RUNWAY_SUBJECT_PREFIX: names.subjectPrefix,
    RUNWAY_LOG_LEVEL: 'error',
    ...(process.env.RUNWAY_PYTHON ? { RUNWAY_PYTHON: process.env.RUNWAY_PYTHON } : {}),
  });
}

export async function startDurable(config: RunwayConfig): Promise<DurableStack> {
  const runway = await startRunway(config);
  const url = `http://127.0.0.1:${config.http.port}`;
  const token = () => readFileSync(join(config.dataDir, 'admin-token'), 'utf8').trim();
  const call: DurableStack['call'] = async (method, path, body, t) => {
    const headers: Record<string, string> = { authorization: `Bearer ${t ?? token()}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, json, text };
  };
  return {
    config,
    runway,
    url,
    dataDir: config.dataDir,
    token,
    workspaceId: runway.admin.defaultWorkspaceId,
    call,
    stop: () => runway.stop(),
  };
}

export async function upload(
  s: DurableStack,
  kind: 'deployments' | 'configurations',
  files: BuildFile[],
): Promise<Json> {
  const form = new FormData();
  const name = kind === 'deployments' ? 'workspace.tar.gz' : 'configurations.tar.gz';
  form.append('file', new Blob([new Uint8Array(buildPackage(files))], { type: 'application/x-tar' }), name);
  const res = await fetch(`${s.url}/api/v1/workspaces/${s.workspaceId}/${kind}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.token()}` },
    body: form,
  });
  const text = await res.text();
  assert.equal(res.status, 201, `upload of ${kind}: ${text}`);
  return JSON.parse(text) as Json;
}

/** Runs the shop job to its end; returns the run and its log text. */
export async function runShop(s: DurableStack): Promise<{ run: Json; logs: string }> {
  const ws = s.workspaceId;
  const r = await s.call('POST', `/api/v1/workspaces/${ws}/runs`, {
    script_id_or_name_or_secret: 'shop.py',
    profile: null,
  });
  assert.equal(r.status, 201, r.text);
  const id = (r.json as Json).id as string;
  let run: Json;
  for (const until = Date.now() + 120_000; ;) {
    const g = await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}`);
    run = g.json as Json;
    if (['completed', 'failed', 'cancelled'].includes(run.status as string)) break;
    assert.ok(Date.now() < until, `run ${id} did not end: ${g.text}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.equal(run.status, 'completed', JSON.stringify(run));
  // Logs are complete once sealed: wait for the digest line.
  let logs = '';
  for (const until = Date.now() + 30_000; Date.now() < until;) {
    const l = await s.call('GET', `/api/v1/workspaces/${ws}/runs/${id}/logs`);
    logs = ((l.json as Json).logs as string | null) ?? '';
    if (logs.includes('secret digest')) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  return { run, logs };
}

/** Deployment, two configuration versions, a job, a completed run, a second user with a token. */
export async function seed(s: DurableStack): Promise<void> {
  await upload(s, 'deployments', WORKSPACE_FILES);
  await upload(s, 'configurations', [{ path: 'config.toml', content: 'log_level = "INFO"\n' }]);
  await upload(s, 'configurations', CONFIG_FILES);
  const job = await s.call('POST', `/api/v1/workspaces/${s.workspaceId}/scripts`, {
    name: 'shop.py',
    description: 'the shop pipeline',
    entry_point: 'shop.py',
    script_type: 'batch',
    active: true,
    profile: null,
    schedule: null,
  });
  assert.ok(job.status === 200 || job.status === 201, job.text);
  const { logs } = await runShop(s);
  assert.match(logs, new RegExp(`secret digest ${secretDigest}`));
  const u = await s.call('POST', '/api/v1/admin/users', {
    email: 'second@example.com',
    workspace_id: s.workspaceId,
    role: 'member',
  });
  assert.equal(u.status, 201, u.text);
  const t = await s.call('POST', `/api/v1/admin/users/${(u.json as Json).id as string}/tokens`, {
    name: 'second',
  });
  assert.equal(t.status, 201, t.text);
}

/** What the API answers about everything the read models hold (volatile fields left out). */
export async function answers(s: DurableStack): Promise<Record<string, unknown>> {
  const ws = `/api/v1/workspaces/${s.workspaceId}`;
  const paths = [
    '/api/v1/me',
    '/api/v1/tokens',
    '/api/v1/admin/users',
    '/api/v1/workspaces',
    `${ws}`,
    `${ws}/members`,
    `${ws}/deployments`,
    `${ws}/deployments/latest/files`,
    `${ws}/configurations?limit=100`,
    `${ws}/scripts`,
    `${ws}/runs?limit=100`,
    `${ws}/pipelines`,
    `${ws}/pipelines/shop`,
  ];
  const out: Record<string, unknown> = {};
  // Links name the gateway's address, which a restored install may not share.
  const hostless = (v: unknown): unknown =>
    v === undefined ? v : JSON.parse(JSON.stringify(v).replaceAll(s.url, '<gateway>'));
  for (const p of paths) {
    const r = await s.call('GET', p);
    out[p] = { status: r.status, body: hostless(r.json ?? r.text) };
  }
  const runs = (out[`${ws}/runs?limit=100`] as { body: { items?: Json[] } }).body.items ?? [];
  for (const run of runs) {
    const r = await s.call('GET', `${ws}/runs/${run.id as string}`);
    out[`${ws}/runs/${run.id as string}`] = { status: r.status, body: hostless(r.json) };
  }
  return out;
}

/** Polls until the API gives `expected` again (projections rebuilding from the log). */
export async function waitForAnswers(s: DurableStack, expected: Record<string, unknown>, timeoutMs = 60_000) {
  let last: Record<string, unknown> = {};
  for (const until = Date.now() + timeoutMs; Date.now() < until;) {
    last = await answers(s).catch(() => ({}));
    try {
      assert.deepEqual(last, expected);
      return;
    } catch {
      await new Promise((res) => setTimeout(res, 250));
    }
  }
  assert.deepEqual(last, expected);
}

/** Drops every table, view and schema of the database: PostgreSQL as after a loss. */
export async function wipeDatabase(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const schemas = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'`,
    );
    for (const { nspname } of schemas.rows) await client.query(`DROP SCHEMA "${nspname}" CASCADE`);
    await client.query('CREATE SCHEMA public');
    const left = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`,
    );
    assert.equal(left.rows[0]!.n, 0);
  } finally {
    await client.end();
  }
}
