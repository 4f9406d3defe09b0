import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Kysely } from 'kysely';
import { schedulingRegistry } from './job.events.js';
import type { EventStore } from '#libs/eventstore';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import { schedulingMigrations, type SchedulingTables } from '../migrations/index.js';
import { JobCommands } from './job.handler.js';
import { jobIdFor } from './job-id.js';
import { JobSnapshots } from './job-snapshots.js';
import { createScheduledJob, deployedVersions } from './job-test-fixtures.js';

const ws = '7c1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a33';
const versions = deployedVersions;

describe('job snapshots (real JetStream and PostgreSQL)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: Kysely<SchedulingTables>;

  before(async () => {
    env = await createTestEnvironment();
    await env.migrate([schedulingMigrations]);
    db = env.newDb<SchedulingTables>();
    store = env.newStore(schedulingRegistry());
    await store.ensureStream();
  });
  after(() => env.close());

  it('a start reads the snapshots and only the commits after them; other formats and invalid rows are ignored', async () => {
    // prewarmOneByOne = 1: three cold jobs take the bulk path (snapshots + one replay).
    const a = new JobCommands(store, versions, { prewarmOneByOne: 1, snapshots: new JobSnapshots(db) });
    const names = ['snap-0.py', 'snap-1.py', 'snap-2.py', 'snap-3.py'];
    const ids = names.map((n) => jobIdFor(ws, n));
    for (const name of names) await createScheduledJob(a, ws, name);
    const base = Math.ceil(Date.now() / 5000) * 5000;
    const t = (i: number) => new Date(base + i * 5000);
    for (const id of ids) assert.equal((await a.fireOutcome(ws, id, t(1))).number, 1);
    assert.equal(await a.writeSnapshots(), 4);
    assert.equal(await a.writeSnapshots(), 0, 'nothing moved since');
    // After the snapshot: a second fire of job 0 (only in the stream).
    const second = await a.fireOutcome(ws, ids[0]!, t(2));
    assert.equal(second.number, 2);

    // Mark the snapshots so that it shows which were used: job 2's claims 100 runs (a snapshot is
    // trusted as of its sequence); job 1's is of another format; job 3's does not validate.
    await db
      .updateTable('job_snapshots')
      .set({ state: JSON.stringify({ ...(await stateOf(ids[2]!)), lastRunNumber: 100 }) })
      .where('job_id', '=', ids[2]!)
      .execute();
    await db.updateTable('job_snapshots').set({ format: 99 }).where('job_id', '=', ids[1]!).execute();
    await db
      .updateTable('job_snapshots')
      .set({ state: JSON.stringify({ nonsense: true }) })
      .where('job_id', '=', ids[3]!)
      .execute();

    // prewarmOneByOne = 2: the 2 jobs without a usable snapshot are read one by one.
    const b = new JobCommands(env.newStore(schedulingRegistry()), versions, {
      prewarmOneByOne: 2,
      snapshots: new JobSnapshots(db),
    });
    assert.equal(await b.prewarm(ids.map((jobId) => ({ workspaceId: ws, jobId }))), 4);
    // Job 0: snapshot (run 1) + the commit after it (run 2): the retried fire gets run 2 back, the next is 3.
    const again = await b.fireOutcome(ws, ids[0]!, t(2));
    assert.equal(again.runId, second.runId);
    assert.equal((await b.fireOutcome(ws, ids[0]!, t(3))).number, 3);
    // Job 1 (other format) and job 3 (invalid) were read from their streams: run 2 next.
    assert.equal((await b.fireOutcome(ws, ids[1]!, t(3))).number, 2);
    assert.equal((await b.fireOutcome(ws, ids[3]!, t(3))).number, 2);
    // Job 2 came from its (marked) snapshot.
    assert.equal((await b.fireOutcome(ws, ids[2]!, t(3))).number, 101);

    // A snapshot older than the replay window (a job that rarely changes) catches up on its own.
    const c = new JobCommands(env.newStore(schedulingRegistry()), versions, {
      prewarmOneByOne: 0,
      snapshots: new JobSnapshots(db),
      replayWindow: 1,
    });
    assert.equal(await c.prewarm([ids[0]!, ids[2]!].map((jobId) => ({ workspaceId: ws, jobId }))), 2);
    assert.equal((await c.fireOutcome(ws, ids[0]!, t(4))).number, 4, 'job 0: snapshot + 2 later commits');
    assert.equal(
      (await c.fireOutcome(ws, ids[2]!, t(4))).number,
      102,
      'job 2: its snapshot + 1 later commit',
    );

    // Writers keep the latest: an older state does not overwrite a newer one.
    const rowBefore = await db
      .selectFrom('job_snapshots')
      .selectAll()
      .where('job_id', '=', ids[0]!)
      .executeTakeFirstOrThrow();
    await new JobSnapshots(db).write([
      { workspaceId: ws, jobId: ids[0]!, lastSeq: 1, state: (await stateOf(ids[0]!)) as never },
    ]);
    const rowAfter = await db
      .selectFrom('job_snapshots')
      .selectAll()
      .where('job_id', '=', ids[0]!)
      .executeTakeFirstOrThrow();
    assert.equal(Number(rowAfter.last_seq), Number(rowBefore.last_seq));
  });

  async function stateOf(jobId: string): Promise<Record<string, unknown>> {
    const row = await db
      .selectFrom('job_snapshots')
      .select('state')
      .where('job_id', '=', jobId)
      .executeTakeFirstOrThrow();
    return (typeof row.state === 'string' ? JSON.parse(row.state) : row.state) as Record<string, unknown>;
  }
});
