import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { connectNats, drainNats, natsClientOptions } from '#libs/nats';
import { freePort } from '#libs/testing';

const root = process.cwd();
const main = join(root, 'dist/deploy/local/src/main.js');
const cli = join(root, 'bin/runway.mjs');

async function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A first port with the next two free as well (the cluster's client ports). */
async function threeFreePorts(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p + 2 < 65536 && (await canListen(p + 1)) && (await canListen(p + 2))) return p;
  }
}

function env(
  dir: string,
  ports: Record<string, number>,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, RUNWAY_DATA_DIR: dir, RUNWAY_SANDBOX: 'off', ...extra };
  for (const [k, v] of Object.entries(ports)) e[k] = String(v);
  delete e.NATS_URL; // the embedded default
  delete e.DATABASE_URL;
  delete e.RUNWAY_NATS_CLUSTER;
  delete e.RUNWAY_NATS_REPLICAS;
  return { ...e, ...extra };
}

async function start(
  args: string[],
  e: NodeJS.ProcessEnv,
): Promise<{ proc: ChildProcess; output: () => string }> {
  const proc = spawn(process.execPath, [main, ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const until = Date.now() + 90_000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`runway exited early:\n${output}`);
    if (output.includes('Runway is running at')) return { proc, output: () => output };
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill('SIGKILL');
  throw new Error(`runway did not start:\n${output}`);
}

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  proc.kill('SIGTERM');
  return exited;
}

describe('npm start -- --cluster 3 (three nats-servers clustered on loopback)', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'runway-cluster-start-'));
  let running: ChildProcess | undefined;
  after(async () => {
    if (running) await stop(running);
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs R3 streams, KV and object stores, the CLI finds the cluster, and a restart keeps it', async () => {
    const natsPort = await threeFreePorts();
    const ports = {
      RUNWAY_HTTP_PORT: await freePort(),
      RUNWAY_NATS_PORT: natsPort,
      RUNWAY_PG_PORT: await freePort(),
      RUNWAY_GRPC_PORT: await freePort(),
    };
    const first = await start(['--cluster', '3'], env(dir, ports));
    running = first.proc;
    assert.match(first.output(), /3 nats-servers with JetStream clustered/);
    const ping = await fetch(`http://127.0.0.1:${ports.RUNWAY_HTTP_PORT}/api/v1/ping`);
    assert.equal(ping.status, 200);

    const nodes = [natsPort, natsPort + 1, natsPort + 2];
    for (const p of nodes)
      await assert.rejects(
        connect({ ...natsClientOptions(`nats://127.0.0.1:${p}`), reconnect: false, timeout: 3_000 }),
        /Authorization Violation/,
      );
    const password = readFileSync(join(dir, 'nats', 'credentials', 'runway'), 'utf8').trim();
    // Through the last node only: the cluster answers for every stream from any node.
    const nc = await connectNats({
      url: `nats://runway:${password}@127.0.0.1:${nodes[2]}`,
      name: 'cluster-start-test',
      reconnectForever: false,
    });
    try {
      const jsm = await jetstreamManager(nc);
      const replicas: Record<string, number> = {};
      for await (const s of jsm.streams.list()) replicas[s.config.name] = s.config.num_replicas;
      for (const name of [
        'EVENTS',
        'EVENTS_LOGS',
        'KV_RUN_LEASES',
        'KV_RUN_SLOTS',
        'OBJ_runway_blobs',
        'OBJ_runway_configurations',
      ])
        assert.equal(replicas[name], 3, `${name}: ${JSON.stringify(replicas)}`);
    } finally {
      await drainNats(nc);
    }

    // The CLI finds the cluster on the same data dir, without being told it is one.
    const tail = spawnSync(process.execPath, [cli, 'admin', 'events', 'tail'], {
      env: env(dir, ports),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(tail.status, 0, tail.stderr);
    // The first start's events, but Runway's `dashboard` job (JobCreated, made by a reactor whenever).
    const firstStart = (out: string) =>
      out
        .trim()
        .split('\n')
        .filter((l) => !l.includes('"type":"JobCreated"')).length;
    const events = firstStart(tail.stdout);
    assert.equal(events, 6, tail.stdout); // …TokenIssued, UserPasswordChanged (the first admin's password)

    assert.equal(await stop(first.proc), 0, first.output());
    running = undefined;

    // Started without the cluster, the data dir is refused (its streams live on three nodes).
    const single = spawnSync(process.execPath, [main], {
      env: env(dir, ports),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(single.status, 1);
    assert.match(single.stderr, /3-node cluster \(--cluster 3\)/);

    // The env var alternative, and everything is still there. The cluster's and PostgreSQL's ports
    // are the data dir's; the HTTP and gRPC ports are new ones: test files run in parallel, and
    // another one may have been handed a port the first start freed.
    const restartPorts = { ...ports, RUNWAY_HTTP_PORT: await freePort(), RUNWAY_GRPC_PORT: await freePort() };
    const second = await start([], env(dir, restartPorts, { RUNWAY_NATS_CLUSTER: '3' }));
    running = second.proc;
    const again = spawnSync(process.execPath, [cli, 'admin', 'events', 'tail'], {
      env: env(dir, restartPorts),
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(again.status, 0, again.stderr);
    assert.equal(firstStart(again.stdout), events);
    assert.equal(await stop(second.proc), 0, second.output());
    running = undefined;
  });
});
