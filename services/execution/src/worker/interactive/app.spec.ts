import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { APP_KEY_HEADER, type VersionRef } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { projectionMigrations, ProjectionRunner } from '#libs/projections';
import { createTestEnvironment, livePidsWithArg, untypedDb, type TestEnvironment } from '#libs/testing';
import { ensureLogsStream, JetStreamLogSink } from '#libs/run-logs';
import { JobCommands } from '../../../../scheduling/src/job/job.handler.js';
import { jobIdFor } from '../../../../scheduling/src/job/job-id.js';
import type { WorkspaceVersions } from '../../../../scheduling/src/job/workspace-versions.js';
import { ProcessExecutor } from '../../executor/index.js';
import { executionMigrations, type ExecutionTables } from '../../migrations/index.js';
import { runsProjection } from '../../run/read-models/runs.projection.js';
import { appOf, endReasonOf } from '../../run/read-models/runs.queries.js';
import { executionRegistry } from '../../run/run.events.js';
import { RunLeases } from '../leases.js';
import { writeFileInside, type RunMaterializer } from '../materializer.js';
import { Worker } from '../worker.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a12';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const deployment: VersionRef = { id: '44444444-4444-4444-8444-444444444444', version: 1 };
const python = process.env.RUNWAY_PYTHON ?? 'python3';

/**
 * A plain app that answers GETs with its path and, on `Upgrade`, switches protocols and echoes
 * every byte back (what a WebSocket looks like to a byte pipe).
 */
const APP = String.raw`
import os, socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk: return
            head += chunk
        line = head.split(b"\r\n")[0].decode()
        path = line.split(" ")[1]
        if b"upgrade: echo" in head.lower():
            self.request.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n")
            while True:
                data = self.request.recv(4096)
                if not data: return
                self.request.sendall(data)
        body = ("path=" + path).encode()
        self.request.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((os.environ["HOST"], int(os.environ["PORT"])), H).serve_forever()
`;

class MemoryMaterializer implements RunMaterializer {
  async writeDeployment(dir: string) {
    writeFileInside(dir, 'echo_app.py', APP);
  }
  async writeConfiguration(_dotDlt: string, _ws: string, _c: VersionRef, profile: string) {
    return { profile, secretValues: [], warnings: [] };
  }
}

const versions: WorkspaceVersions = {
  latestDeployment: async () => deployment,
  deploymentHasFile: async () => undefined,
  latestConfiguration: async () => null,
};

describe('interactive apps without the sandbox (RUNWAY_SANDBOX=off): endpoint, upgrade, idle stop', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<ExecutionTables>;
  let runner: ProjectionRunner;
  let dataDir: string;
  let worker: Worker;

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, executionMigrations]);
    store = env.newStore(executionRegistry());
    await store.ensureStream();
    db = env.newDb<ExecutionTables>();
    runner = new ProjectionRunner(store, untypedDb(db), runsProjection);
    await runner.start();
    await ensureLogsStream(env.nats, { eventsStream: store.stream, subjectPrefix: env.subjectPrefix });
    dataDir = mkdtempSync(join(tmpdir(), 'runway-apps-'));
    worker = new Worker(
      {
        nats: env.nats,
        store,
        leases: await RunLeases.open(env.nats, env.subjectPrefix, 3_000),
        materializer: new MemoryMaterializer(),
        output: new JetStreamLogSink(env.nats, env.subjectPrefix),
        executor: new ProcessExecutor(),
        appKey: (runId) => `key-${runId}`,
      },
      {
        slots: 1,
        dataDir,
        python,
        runTimeoutSeconds: 600,
        killGraceMs: 1_000,
        leaseRefreshMs: 500,
        startingHoldMs: 0,
        interactive: { idleSeconds: 2 },
      },
    );
    await worker.start();
  });
  after(async () => {
    await worker?.stop();
    await runner?.stop();
    await env?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves on a loopback port, passes an upgraded connection both ways, and completes idle once it closed', async () => {
    const jobs = new JobCommands(store, versions);
    await jobs.upsert({
      workspaceId: ws,
      actor: user,
      commandId: crypto.randomUUID(),
      name: 'echo_app.py',
      description: '',
      entryPoint: 'echo_app.py',
      kind: 'interactive',
    });
    const { runId } = await jobs.requestRun({
      workspaceId: ws,
      actor: user,
      commandId: crypto.randomUUID(),
      jobId: jobIdFor(ws, 'echo_app.py'),
      trigger: 'manual',
      profile: null,
    });
    const row = async () => db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst();
    let app: ReturnType<typeof appOf> = null;
    for (const until = Date.now() + 30_000; !app;) {
      const r = await row();
      app = r ? appOf(r) : null;
      if (!app && Date.now() > until) assert.fail(`no app address: ${JSON.stringify(r)}`);
      if (!app) await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(app.type, 'http');
    const key = `key-${runId}`;
    const got = await new Promise<string>((resolve, reject) => {
      const req = httpRequest(
        {
          host: app.host,
          port: app.port,
          path: `${app.basePath}/x/y?z=1`,
          headers: { [APP_KEY_HEADER]: key },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${body}`));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(got, '200 path=/x/y?z=1');

    // An upgraded connection: bytes both ways, and it keeps the app busy past its idle time.
    const sock = connect(app.port, app.host);
    let received = '';
    sock.on('data', (c: Buffer) => (received += c.toString()));
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.write(
      `GET ${app.basePath}/ws HTTP/1.1\r\nhost: x\r\nupgrade: echo\r\nconnection: upgrade\r\n${APP_KEY_HEADER}: ${key}\r\n\r\n`,
    );
    for (const until = Date.now() + 10_000; !received.includes('101');) {
      if (Date.now() > until) assert.fail(`no switch: ${received}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    sock.write('ping-1');
    for (const until = Date.now() + 10_000; !received.includes('ping-1');) {
      if (Date.now() > until) assert.fail(`no echo: ${received}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal((await row())?.status, 'running', 'an open upgraded connection is activity');
    sock.end();
    await closed;

    for (const until = Date.now() + 30_000; ;) {
      const r = await row();
      if (r?.status === 'completed') {
        assert.equal(endReasonOf(r), 'idle');
        assert.equal(appOf(r), null);
        break;
      }
      if (Date.now() > until) assert.fail(`not stopped for idleness: ${r?.status}`);
      await new Promise((res) => setTimeout(res, 50));
    }
    for (const until = Date.now() + 10_000; livePidsWithArg(runId).length > 0;) {
      if (Date.now() > until) assert.fail('the app outlived its run');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
