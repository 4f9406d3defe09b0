import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { AggregateTypes, integrationRegistry } from '#libs/contracts';
import type { EventStore } from '#libs/eventstore';
import { projectionMigrations, ProjectionRunner } from '#libs/projections';
import { ensureLogsStream, JetStreamLogSink, RunLogReader } from '#libs/run-logs';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { logsMigrations, type LogsTables } from '../migrations/index.js';
import { runLogsProjection } from '../runlog/read-models/run-logs.projection.js';
import { SealKeeper } from './seal-keeper.js';

const WS = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const run = (n: number) => `00000000-0000-4000-8000-0000000000${String(n).padStart(2, '0')}`;

describe('logs service: every ended run gets a sealed log (real JetStream + Postgres)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<LogsTables>;
  let runner: ProjectionRunner;
  let keeper: SealKeeper;
  let reader: RunLogReader;
  const loc = () => ({ eventsStream: env.stream, subjectPrefix: env.subjectPrefix });

  const endRun = async (runId: string) => {
    const r = await store.append(
      { workspaceId: WS, type: AggregateTypes.run, id: runId },
      0,
      [
        {
          type: 'RunCancelled',
          data: { by: null, message: 'test', exitCode: null, signal: null, durationMs: null, endedAt: null },
        },
      ],
      { commandId: `end-${runId}`, actor: 'test' },
    );
    await runner.waitFor(r.seq);
  };
  const row = (runId: string) =>
    db.selectFrom('run_logs').selectAll().where('run_id', '=', runId).executeTakeFirst();
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, logsMigrations]);
    store = env.newStore(integrationRegistry());
    await store.ensureStream();
    db = env.newDb<LogsTables>();
    runner = new ProjectionRunner(store, untypedDb(db), runLogsProjection);
    await runner.start();
    await ensureLogsStream(env.nats, loc());
    reader = new RunLogReader(env.nats, loc());
    keeper = new SealKeeper(env.nats, store, db, loc(), reader, { graceMs: 300, sweepEveryMs: 100 });
    keeper.start();
  });
  after(async () => {
    await keeper.stop();
    await runner.stop();
    await env.close();
  });

  it("records the worker's seal as RunLogsSealed, once", async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: run(1) };
    await sink.begin(ref);
    sink.append(ref, [
      { stream: 'stdout', text: 'a', at: Date.now() },
      { stream: 'stderr', text: 'bcd', at: Date.now() },
    ]);
    await sink.end(ref);
    await endRun(ref.runId);
    const r = await until('the seal', async () =>
      (await row(ref.runId))?.sealed_at ? row(ref.runId) : undefined,
    );
    assert.equal(r?.line_count, 2);
    assert.equal(Number(r?.bytes), 4);
    assert.equal(r?.sealed_by, 'worker');
    const { commits } = await store.read({ workspaceId: WS, type: AggregateTypes.runlog, id: ref.runId });
    assert.deepEqual(
      commits.flatMap((c) => c.events.map((e) => e.type)),
      ['RunLogsSealed'],
    );
  });

  it('seals a run that ended without a seal (its worker was lost) with the lines that are there', async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: run(2) };
    await sink.begin(ref);
    for (let i = 1; i <= 7; i++) sink.append(ref, [{ stream: 'stdout', text: `l${i}`, at: Date.now() }]);
    while (sink.queued > 0) await new Promise((r) => setTimeout(r, 10));
    // No sink.end(): the worker died. The run's end comes from elsewhere (the reaper).
    await endRun(ref.runId);
    const r = await until('the logs service seal', async () =>
      (await row(ref.runId))?.sealed_at ? row(ref.runId) : undefined,
    );
    assert.equal(r?.line_count, 7);
    assert.equal(r?.sealed_by, 'logs');
    const text = await reader.text(WS, ref.runId);
    assert.equal(text?.sealed, true);
    assert.equal(text?.lineCount, 7);
  });

  it('seals a run that never produced output (cancelled while pending) with 0 lines', async () => {
    await endRun(run(3));
    const r = await until('the seal', async () => ((await row(run(3)))?.sealed_at ? row(run(3)) : undefined));
    assert.equal(r?.line_count, 0);
    assert.equal(r?.sealed_by, 'logs');
    const events = [];
    for await (const e of reader.follow(WS, run(3))) events.push(e);
    assert.deepEqual(events, [{ type: 'end', lineCount: 0, bytes: 0, by: 'logs' }]);
  });

  it('catches up on seals published while it was down', async () => {
    await keeper.stop();
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: run(4) };
    await sink.begin(ref);
    sink.append(ref, [{ stream: 'stdout', text: 'while down', at: Date.now() }]);
    await sink.end(ref);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await row(ref.runId))?.sealed_at ?? null, null);
    keeper = new SealKeeper(env.nats, store, db, loc(), reader, { graceMs: 300, sweepEveryMs: 100 });
    keeper.start();
    const r = await until('the seal', async () =>
      (await row(ref.runId))?.sealed_at ? row(ref.runId) : undefined,
    );
    assert.equal(r?.line_count, 1);
    assert.equal(r?.sealed_by, 'worker');
  });
});
