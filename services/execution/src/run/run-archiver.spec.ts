import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql, type Kysely } from 'kysely';
import { DomainError, EventArchive, type EventStore } from '#libs/eventstore';
import { ProjectionRunner, projectionMigrations, rebuildProjection } from '#libs/projections';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { executionMigrations, type ExecutionTables } from '../migrations/index.js';
import { runsProjection } from './read-models/runs.projection.js';
import { RunArchiver } from './run-archiver.js';
import { RunCommands } from './run.handler.js';
import { executionRegistry } from './run.events.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = '44444444-4444-4444-8444-444444444444';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const RUNS = 30;
const UNFINISHED = 5;

describe('run archiver (real JetStream and PostgreSQL)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<ExecutionTables>;
  let runner: ProjectionRunner;
  const runIds: string[] = [];

  const tables = async () => ({
    runs: (await sql`SELECT * FROM runs ORDER BY id`.execute(db)).rows,
    timeline: (await sql`SELECT * FROM run_status_timeline ORDER BY run_id, seq, idx`.execute(db)).rows,
  });

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([projectionMigrations, executionMigrations]);
    db = env.newDb<ExecutionTables>();
    store = env.newStore(executionRegistry());
    await store.ensureStream();
    // RUNS runs of one job, the last UNFINISHED of them still running.
    let jobSeq = 0;
    const meta = () => ({ commandId: randomUUID(), actor: user });
    for (let i = 0; i < RUNS; i++) {
      const runId = randomUUID();
      runIds.push(runId);
      jobSeq = (
        await store.append(
          { workspaceId: ws, type: 'job', id: jobId },
          jobSeq,
          [
            {
              type: 'RunRequested',
              data: {
                runId,
                number: i + 1,
                trigger: 'manual',
                profile: 'prod',
                jobVersion: 1,
                jobVersionId: '11111111-1111-4111-8111-111111111111',
                entryPoint: 'a.py',
                kind: 'batch',
                timeoutSeconds: null,
                deployment: { id: '22222222-2222-4222-8222-222222222222', version: 1 },
                configuration: null,
                requestedBy: user,
              },
            },
          ],
          meta(),
        )
      ).seq;
      const run = { workspaceId: ws, type: 'run', id: runId };
      let seq = (
        await store.append(
          run,
          0,
          [{ type: 'RunStarting', data: { runId, jobId, number: i + 1, workerId: 'w1', host: 'h' } }],
          meta(),
        )
      ).seq;
      const now = new Date().toISOString();
      seq = (
        await store.append(
          run,
          seq,
          [{ type: 'RunStarted', data: { pid: 100 + i, command: 'python a.py', startedAt: now } }],
          meta(),
        )
      ).seq;
      if (i >= RUNS - UNFINISHED) continue;
      await store.append(
        run,
        seq,
        [
          { type: 'RunFinalizing', data: { exitCode: 0, signal: null, endedAt: now } },
          { type: 'RunCompleted', data: { exitCode: 0, durationMs: 5 } },
        ],
        meta(),
      );
      await store.append(
        { workspaceId: ws, type: 'runlog', id: runId },
        0,
        [
          {
            type: 'RunLogsSealed',
            data: { runId, lineCount: 3, bytes: 12, sealedBy: 'worker', sealedAt: now },
          },
        ],
        meta(),
      );
    }
    runner = new ProjectionRunner(store, untypedDb(db), runsProjection);
    await runner.start();
    await runner.waitFor(await store.lastSequence(), 20_000);
  });
  after(async () => {
    await runner.stop();
    await env.close();
  });

  it('moves ended runs out of the event stream, once, and a rebuild of the runs projection still equals the live one', async () => {
    const jsm = await store.jsm();
    const before = await jsm.streams.info(store.stream);
    const archiver = new RunArchiver(store, db, { afterMs: 60_000 });

    // Nothing ended a minute ago yet.
    const early = await archiver.archiveOnce();
    assert.equal(early?.runs, 0);

    const later = new Date(Date.now() + 120_000);
    const pass = await archiver.archiveOnce(later);
    const finished = RUNS - UNFINISHED;
    assert.equal(pass?.runs, finished);
    assert.equal(pass?.subjects, 2 * finished, 'the run and its runlog');
    assert.equal(pass?.commits, 4 * finished);
    const afterInfo = await jsm.streams.info(store.stream);
    assert.equal(afterInfo.state.num_subjects, (before.state.num_subjects ?? 0) - 2 * finished);
    assert.equal((await store.read({ workspaceId: ws, type: 'run', id: runIds[0]! })).events.length, 0);
    const archived = await jsm.streams.info(new EventArchive(store).stream);
    assert.equal(archived.state.messages, 4 * finished);

    // The cursor: a second pass looks at nothing already archived.
    assert.equal((await archiver.archiveOnce(later))?.runs, 0);

    // A command on an archived run is refused before its (now empty) aggregate is read: nothing written.
    const commands = new RunCommands(store, db);
    const end = afterInfo.state.last_seq;
    await assert.rejects(
      commands.cancel({ workspaceId: ws, runId: runIds[0]!, actor: user }),
      (err: unknown) => err instanceof DomainError && /terminal state \(completed\)/.test(err.message),
    );
    assert.equal(await store.lastSequence(), end);
    // A running one is still cancelled as before.
    const live = runIds[RUNS - 1]!;
    const cancelled = await commands.cancel({ workspaceId: ws, runId: live, actor: user });
    assert.equal(cancelled.status, 'cancelling');
    await runner.waitFor(cancelled.seq, 10_000);

    // The live read model, then a rebuild from the log (stream + archive) into fresh tables.
    const liveTables = await tables();
    assert.equal(liveTables.runs.length, RUNS);
    const rebuilt = await rebuildProjection(store, untypedDb(db), runsProjection);
    assert.ok(rebuilt.events > 0);
    assert.deepEqual(await tables(), liveTables);

    // The database dropped: a runner from checkpoint 0 finds the archived runs too (its consumer
    // reads the stream, where they no longer are; it first reads them through the replay).
    await runner.stop();
    await sql`DELETE FROM run_status_timeline`.execute(db);
    await sql`DELETE FROM runs`.execute(db);
    await sql`DELETE FROM projection_checkpoints WHERE name = 'runs'`.execute(db);
    runner = new ProjectionRunner(store, untypedDb(db), runsProjection);
    await runner.start();
    await runner.waitFor(await store.lastSequence(), 20_000);
    assert.deepEqual(await tables(), liveTables);
    // And it follows new commits after the archived part as before.
    const more = await commands.cancel({ workspaceId: ws, runId: runIds[RUNS - 2]!, actor: user });
    await runner.waitFor(more.seq, 10_000);
    const row = await db
      .selectFrom('runs')
      .select('status')
      .where('id', '=', runIds[RUNS - 2]!)
      .executeTakeFirst();
    assert.equal(row?.status, 'cancelling');
  });
});
