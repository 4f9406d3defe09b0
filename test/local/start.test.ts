import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { connectNats, drainNats, natsClientOptions } from '#libs/nats';
import { freePort } from '#libs/testing';

const root = process.cwd();
const main = join(root, 'dist/deploy/local/src/main.js');
const cli = join(root, 'bin/runway.mjs');

interface Instance {
  dir: string;
  env: Record<string, string>;
  http: number;
  proc?: ChildProcess;
  output: string;
}

async function newInstance(): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'runway-start-'));
  const http = await freePort();
  const env: Record<string, string> = {
    RUNWAY_DATA_DIR: dir,
    RUNWAY_HTTP_PORT: String(http),
    RUNWAY_NATS_PORT: String(await freePort()),
    RUNWAY_PG_PORT: String(await freePort()),
    RUNWAY_GRPC_PORT: String(await freePort()),
  };
  return { dir, env, http, output: '' };
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NATS_URL; // the embedded default: its own nats-server and PostgreSQL
  delete env.DATABASE_URL;
  return env;
}

async function start(inst: Instance): Promise<void> {
  const proc = spawn(process.execPath, [main], {
    env: childEnv(inst.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  inst.proc = proc;
  proc.stdout!.on('data', (d: Buffer) => (inst.output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (inst.output += d.toString()));
  const until = Date.now() + 90_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`runway exited early:\n${inst.output}`);
    if (inst.output.includes('Runway is running at')) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`runway did not start:\n${inst.output}`);
}

async function stop(inst: Instance): Promise<{ code: number | null; ms: number }> {
  const proc = inst.proc!;
  const t0 = Date.now();
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  proc.kill('SIGTERM');
  const code = await exited;
  return { code, ms: Date.now() - t0 };
}

/**
 * The locked core of a running instance: NATS refuses anonymous clients and guessed passwords, the
 * worker user cannot forge a workspace event, PostgreSQL refuses the old default password and
 * Runway's role is not superuser; every credential is in a 0600 file under the data dir.
 */
async function assertLocked(inst: Instance): Promise<void> {
  const natsPort = inst.env.RUNWAY_NATS_PORT!;
  const pgPort = inst.env.RUNWAY_PG_PORT!;
  const secret = (...path: string[]) => {
    const file = join(inst.dir, ...path);
    assert.equal(statSync(file).mode & 0o777, 0o600, file);
    return readFileSync(file, 'utf8').trim();
  };
  for (const userinfo of ['', 'runway:runway@', 'admin:admin@', 'worker:worker@']) {
    const url = `nats://${userinfo}127.0.0.1:${natsPort}`;
    await assert.rejects(
      connect({ ...natsClientOptions(url), reconnect: false, timeout: 3_000 }),
      /Authorization Violation/,
      `NATS refuses ${userinfo || 'anonymous'}`,
    );
  }
  const worker = await connectNats({
    url: `nats://worker:${secret('nats', 'credentials', 'worker')}@127.0.0.1:${natsPort}`,
    name: 'start-test-worker',
    reconnectForever: false,
  });
  try {
    const js = jetstream(worker, { timeout: 2_000 });
    await assert.rejects(js.publish('evt.w1.workspace.w1', '{}'), /Permissions Violation/);
    await assert.rejects(js.publish('evt.w1.user.u1', '{}'), /Permissions Violation/);
  } finally {
    await drainNats(worker);
  }
  secret('nats', 'credentials', 'runway');
  secret('nats', 'credentials', 'admin');
  secret('pg', 'credentials', 'postgres');
  const pgAs = async (user: string, password: string, db: string) => {
    const c = new pg.Client({ host: '127.0.0.1', port: Number(pgPort), user, password, database: db });
    await c.connect();
    return c;
  };
  for (const [user, password, db] of [
    ['runway', 'runway', 'runway'],
    ['runway', 'runway', 'postgres'],
    ['postgres', 'postgres', 'postgres'],
  ] as const)
    await assert.rejects(pgAs(user, password, db), /password authentication failed/, `${user}/${password}`);
  const app = await pgAs('runway', secret('pg', 'credentials', 'runway'), 'runway');
  try {
    const r = await app.query<{ rolsuper: boolean }>(
      'SELECT rolsuper FROM pg_roles WHERE rolname = current_user',
    );
    assert.deepEqual(r.rows, [{ rolsuper: false }]);
  } finally {
    await app.end();
  }
}

const api = (inst: Instance, path: string, token?: string) =>
  fetch(`http://127.0.0.1:${inst.http}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

function runCli(inst: Instance, args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], {
    env: childEnv(inst.env),
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('npm start (embedded default)', () => {
  const instances: Instance[] = [];
  after(async () => {
    for (const i of instances) {
      if (i.proc && i.proc.exitCode === null) await stop(i);
      rmSync(i.dir, { recursive: true, force: true });
    }
  });

  it('starts everything, writes the admin token, stops cleanly and finds everything again', async () => {
    const a = await newInstance();
    instances.push(a);
    await start(a);
    const ping = await api(a, '/api/v1/ping');
    assert.equal(ping.status, 200);
    assert.deepEqual(await ping.json(), { message: 'pong', service: 'api' });
    const tokenFile = join(a.dir, 'admin-token');
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    // The first admin signs in to the dashboard with the password Runway made (banner: "Sign in:").
    const passwordFile = join(a.dir, 'admin-password');
    assert.equal(statSync(passwordFile).mode & 0o777, 0o600);
    assert.match(a.output, /Sign in: +admin@runway\.local, password in .*admin-password/);
    const signIn = await fetch(`http://127.0.0.1:${a.http}/auth/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: `http://127.0.0.1:${a.http}` },
      body: JSON.stringify({
        email: 'admin@runway.local',
        password: readFileSync(passwordFile, 'utf8').trim(),
      }),
    });
    assert.equal(signIn.status, 200, await signIn.text());
    await assertLocked(a);
    const health = (await (await api(a, '/api/v1/health')).json()) as {
      status: string;
      services: { name: string; status: string }[];
    };
    assert.equal(health.status, 'ok', JSON.stringify(health));
    assert.equal(health.services.length, 7);
    const ws = (await (await api(a, '/api/v1/workspaces', token)).json()) as {
      id: string;
      name: string;
      role: string;
    }[];
    assert.equal(ws.length, 1);
    assert.equal(ws[0]!.name, 'default');
    assert.equal(ws[0]!.role, 'owner');
    assert.equal((await api(a, '/api/v1/workspaces')).status, 401);
    assert.equal(
      (await api(a, '/api/v1/workspaces', 'rwy_0000000000000000_xxxxxxxxxxxxxxxxxxxxxxxx')).status,
      401,
    );

    // Operator commands against the running instance.
    const tail = runCli(a, ['admin', 'events', 'tail']);
    assert.equal(tail.status, 0, tail.stderr);
    const lines = tail.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; seq: number; actor: string });
    assert.deepEqual(
      // Runway's `dashboard` job (JobCreated) is made by a reactor, at no fixed place in this order.
      lines.map((l) => l.type).filter((t) => t !== 'JobCreated'),
      // The first start is decided on the event store, the admin's email claimed before the user exists.
      [
        'InstanceBootstrapped',
        'EmailClaimed',
        'UserRegistered',
        'WorkspaceCreated',
        'TokenIssued',
        'UserPasswordChanged',
      ],
    );
    // The secret is everything after `rwy_<id>_` (it may itself contain `_`).
    const secret = /^rwy_[a-f0-9]{16}_(.+)$/.exec(token)?.[1];
    assert.ok(secret && secret.length >= 20);
    assert.ok(!tail.stdout.includes(secret), 'the token secret is not in the event log');
    const filtered = runCli(a, ['admin', 'events', 'tail', '--aggregate', 'workspace']);
    assert.equal(filtered.stdout.trim().split('\n').length, 1);
    const status = runCli(a, ['admin', 'projections', 'status', '--json']);
    assert.equal(status.status, 0, status.stderr);
    const rows = JSON.parse(status.stdout) as { name: string; lag: number }[];
    // Every service registers its own projections; check the gateway's and one other service's.
    for (const name of ['users', 'workspaces', 'deployments'])
      assert.ok(
        rows.some((r) => r.name === name),
        `projection ${name} listed`,
      );
    assert.ok(rows.every((r) => r.lag === 0));
    const rebuild = runCli(a, ['admin', 'projections', 'rebuild', 'workspaces']);
    assert.equal(rebuild.status, 0, rebuild.stderr);
    assert.match(rebuild.stdout, /rebuilt workspaces/);
    const bad = runCli(a, ['admin', 'events', 'tail', '--from', 'soon']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--from soon/);

    const stopped = await stop(a);
    assert.equal(stopped.code, 0, a.output);
    assert.ok(stopped.ms < 30_000, `stopped in ${stopped.ms} ms`);

    a.output = '';
    await start(a);
    assert.equal(readFileSync(tokenFile, 'utf8').trim(), token, 'the token is kept');
    await assertLocked(a);
    const again = (await (await api(a, '/api/v1/workspaces', token)).json()) as { id: string }[];
    assert.deepEqual(
      again.map((w) => w.id),
      ws.map((w) => w.id),
    );
    const tail2 = runCli(a, ['admin', 'events', 'tail']);
    assert.equal(tail2.stdout.trim().split('\n').length, lines.length, 'a restart appends no new event');
  });

  it('runs two instances side by side with different data dirs and ports', async () => {
    const b = await newInstance();
    const c = await newInstance();
    instances.push(b, c);
    await Promise.all([start(b), start(c)]);
    const tb = readFileSync(join(b.dir, 'admin-token'), 'utf8').trim();
    const tc = readFileSync(join(c.dir, 'admin-token'), 'utf8').trim();
    assert.notEqual(tb, tc);
    assert.equal((await api(b, '/api/v1/workspaces', tb)).status, 200);
    assert.equal((await api(c, '/api/v1/workspaces', tc)).status, 200);
    assert.equal(
      (await api(b, '/api/v1/workspaces', tc)).status,
      401,
      "one instance's token is unknown to the other",
    );
  });

  it('refuses a wrong configuration value with a message naming the variable', () => {
    const r = spawnSync(process.execPath, [main], {
      env: childEnv({ RUNWAY_HTTP_PORT: 'eighty' }),
      encoding: 'utf8',
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /RUNWAY_HTTP_PORT/);
  });
});
