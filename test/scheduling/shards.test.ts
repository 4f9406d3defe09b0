import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Kvm, type KV } from '@nats-io/kv';
import type { Kysely } from 'kysely';
import { schedulingRegistry } from '../../services/scheduling/src/job/job.events.js';
import { JobCommands, jobRef } from '../../services/scheduling/src/job/job.handler.js';
import { LatestVersions } from '../../services/scheduling/src/job/workspace-versions.js';
import type { SchedulingTables } from '../../services/scheduling/src/migrations/index.js';
import { dueFires } from '../../services/scheduling/src/scheduler/cron.js';
import { Scheduler } from '../../services/scheduling/src/scheduler/scheduler.js';
import {
  SCHEDULER_SHARDS,
  ShardLeases,
  shardBucketName,
  shardOf,
} from '../../services/scheduling/src/scheduler/shard-leases.js';
import { startStackProcess } from '../support/process.js';
import { startTestStack, type TestStack } from '../support/stack.js';
import { uploadPackage, type Json } from '../jobs/support.js';

// Only the schedulers of this test fire: the stack's own is off (this file runs in its own process).
process.env.RUNWAY_SCHEDULER = 'off';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CRON = '*/2 * * * * *';

async function until<T>(what: string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

describe('scheduler replicas share the jobs by shard leases', () => {
  let s: TestStack;
  let ws: string;
  let kv: KV;
  const children: ChildProcess[] = [];
  const upsert = async (name: string, body: Json): Promise<Json> => {
    const r = await s.call('POST', `/api/v1/workspaces/${ws}/scripts`, {
      name,
      description: '',
      entry_point: 'tick.py',
      script_type: 'batch',
      profile: null,
      ...body,
    });
    assert.equal(r.status, 201, r.text);
    return r.json as Json;
  };
  /** Owner of each shard (null: free), as the bucket holds it now. */
  const owners = async (): Promise<(string | null)[]> =>
    Promise.all(
      Array.from({ length: SCHEDULER_SHARDS }, async (_, i) => {
        const e = await kv.get(`shard.${i}`);
        if (!e || e.operation !== 'PUT') return null;
        return (e.json<{ owner: string | null }>().owner ?? null) as string | null;
      }),
    );
  /** Creates jobs firing every 2 s (run_all, overlap allow); returns id → creation time. */
  const createJobs = async (prefix: string, n: number) => {
    const made = new Map<string, number>();
    await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const j = await upsert(`${prefix}-${i}.py`, {
          schedule: CRON,
          overlap_policy: 'allow',
          missed_policy: 'run_all',
        });
        made.set(j.id as string, Date.parse(j.date_updated as string));
      }),
    );
    return made;
  };
  /** Deactivates the jobs; returns the time they stopped (fire times before it must all be there). */
  const stopJobs = async (prefix: string, n: number) => {
    // Each job stops somewhere between the first request and the last answer (slow on a loaded machine).
    const from = Date.now();
    await Promise.all(Array.from({ length: n }, (_, i) => upsert(`${prefix}-${i}.py`, { active: false })));
    return { from, to: Date.now() };
  };
  /** Per job: its scheduled fire times (ms), from the job's own stream. */
  const storedFires = async (ids: Iterable<string>) => {
    const store = s.env.newStore(schedulingRegistry());
    const out = new Map<string, { fireAt: number; stored: number }[]>();
    for (const id of ids) {
      const { events } = await store.read(jobRef(ws, id));
      out.set(
        id,
        events
          .filter((e) => e.type === 'RunRequested')
          .map((e) => ({
            fireAt: Date.parse((e.data as { fireAt?: string | null }).fireAt ?? ''),
            stored: Date.parse(e.time),
          }))
          .filter((f) => Number.isFinite(f.fireAt)),
      );
    }
    return out;
  };
  /** Every fire time in (creation, stop began - 600 ms] stored once; none after the stop ended + 1 s. */
  const assertAllOnce = (
    made: Map<string, number>,
    fires: Map<string, { fireAt: number }[]>,
    stoppedAt: { from: number; to: number },
  ) => {
    let expected = 0;
    for (const [id, createdAt] of made) {
      const got = fires.get(id)!.map((f) => f.fireAt);
      assert.equal(new Set(got).size, got.length, `job ${id}: a fire time doubled: ${got.join(',')}`);
      const due = dueFires(CRON, 'UTC', new Date(createdAt), new Date(stoppedAt.from - 600), 1000).fires;
      expected += due.length;
      for (const f of due) assert.ok(got.includes(f.getTime()), `job ${id}: fire ${f.toISOString()} missing`);
      for (const f of got)
        assert.ok(f <= stoppedAt.to + 1000, `job ${id}: fired ${new Date(f).toISOString()} after its stop`);
    }
    assert.ok(expected > 0);
    return expected;
  };

  before(async () => {
    s = await startTestStack({ RUNWAY_EMBEDDED_WORKERS: '0' });
    ws = s.workspaceId;
    await uploadPackage(s, 'deployments', [{ path: 'tick.py', content: 'print("tick")\n' }]);
    kv = await new Kvm(s.env.nats).create(shardBucketName(s.env.subjectPrefix), { history: 1, ttl: 60_000 });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await s.stop();
  });

  it('two replicas each fire the jobs of their own shards: every fire once, no fire attempted by both', async () => {
    const replicas: {
      leases: ShardLeases;
      scheduler: Scheduler;
      attempts: string[];
      db: Kysely<SchedulingTables>;
    }[] = [];
    for (let i = 0; i < 2; i++) {
      const db = s.env.newDb<SchedulingTables>();
      const commands = new JobCommands(s.env.newStore(schedulingRegistry()), new LatestVersions(db));
      const attempts: string[] = [];
      const leases = await ShardLeases.open(s.env.nats, s.env.subjectPrefix, { log: () => {} });
      const scheduler = new Scheduler(
        db,
        {
          fire: (w, j, at) => {
            attempts.push(`${j} ${at.toISOString()}`);
            return commands.fire(w, j, at);
          },
        },
        { owns: (id) => leases.ownsJob(id), intervalMs: 100, log: () => {} },
      );
      replicas.push({ leases, scheduler, attempts, db });
    }
    for (const r of replicas) await r.leases.start();
    // The first took every shard; it gives half up once it sees the second.
    await until('shards split 16/16', 5_000, async () =>
      replicas.every((r) => r.leases.ownedShards.length === SCHEDULER_SHARDS / 2) ? true : undefined,
    );
    const [a, b] = replicas as [(typeof replicas)[0], (typeof replicas)[0]];
    assert.deepEqual(
      [...a.leases.ownedShards, ...b.leases.ownedShards].sort((x, y) => x - y),
      Array.from({ length: SCHEDULER_SHARDS }, (_, i) => i),
    );
    const o = await owners();
    for (const sh of a.leases.ownedShards) assert.equal(o[sh], a.leases.replicaId);

    for (const r of replicas) r.scheduler.start();
    const made = await createJobs('split', 24);
    await sleep(7_000);
    const stoppedAt = await stopJobs('split', 24);
    await sleep(500);
    for (const r of replicas) await r.scheduler.stop();
    const fires = await storedFires(made.keys());
    const expected = assertAllOnce(made, fires, stoppedAt);

    // Each attempted only its own jobs, and a part of them: no fire time attempted twice.
    for (const r of replicas) {
      assert.ok(r.attempts.length > 0, 'each replica fired some');
      for (const x of r.attempts) assert.ok(r.leases.ownsJob(x.split(' ')[0]!), `${x} is not of its shards`);
    }
    const all = [...a.attempts, ...b.attempts];
    assert.equal(new Set(all).size, all.length, 'a fire attempted by both replicas');
    assert.ok(all.length >= expected, `${all.length} attempts for ${expected} fires`);
    const jobsOf = (r: typeof a) => new Set(r.attempts.map((x) => x.split(' ')[0]));
    assert.ok(jobsOf(a).size > 0 && jobsOf(b).size > 0 && jobsOf(a).size + jobsOf(b).size === made.size);

    // A clean stop releases the shards: the other one has them all at its next renewal.
    await a.leases.stop();
    const releasedAt = Date.now();
    await until('the other replica took every shard', 3_000, async () =>
      b.leases.ownedShards.length === SCHEDULER_SHARDS ? true : undefined,
    );
    console.log(`scheduler clean stop → the other owns every shard after ${Date.now() - releasedAt} ms`);
    await b.leases.stop();
    for (const r of replicas) await r.db.destroy();
  });

  it('a SIGKILLed scheduling process: the other takes its shards within the lease, and the fires due meanwhile happen (run_all)', async () => {
    const start = () =>
      startStackProcess(s, 'dist/services/scheduling/src/main.js', /runway \S+ ready/, {
        RUNWAY_SCHEDULER: 'on',
        RUNWAY_LOG_LEVEL: 'error',
      });
    const p1 = (await start()).child;
    children.push(p1);
    const p2 = (await start()).child;
    children.push(p2);
    const ownerPid = (owner: string | null) => Number(/-(\d+)-[0-9a-f]+$/.exec(owner ?? '')?.[1] ?? NaN);
    const split = await until('two processes own 16 shards each', 10_000, async () => {
      const o = await owners();
      const n1 = o.filter((x) => ownerPid(x) === p1.pid).length;
      return n1 === 16 && o.filter((x) => ownerPid(x) === p2.pid).length === 16 ? o : undefined;
    });
    const made = await createJobs('kill', 16);
    const victimJobs = [...made.keys()].filter((id) => ownerPid(split[shardOf(id)]!) === p1.pid);
    assert.ok(victimJobs.length > 0, 'some jobs are in the first process shards');
    await sleep(3_000);

    const killedAt = Date.now();
    p1.kill('SIGKILL');
    const tookOverMs = await until('the survivor owns every shard', 8_000, async () => {
      const o = await owners();
      return o.every((x) => ownerPid(x) === p2.pid) ? Date.now() - killedAt : undefined;
    });
    // Lease 3 s (not renewed, as seen by the survivor) + at most one renewal period (1 s).
    console.log(`scheduler SIGKILL → the survivor owns every shard after ${tookOverMs} ms`);
    assert.ok(tookOverMs <= 5_000, `took over after ${tookOverMs} ms`);
    await sleep(3_000);
    const stoppedAt = await stopJobs('kill', 16);
    await sleep(500);

    const fires = await storedFires(made.keys());
    assertAllOnce(made, fires, stoppedAt);
    // The victim's jobs' fire times in the gap were fired late, by the survivor (run_all).
    const late = victimJobs.flatMap((id) =>
      fires.get(id)!.filter((f) => f.fireAt > killedAt && f.stored - f.fireAt > 500),
    );
    assert.ok(late.length > 0, 'fire times due while nobody owned the shard were caught up');
    p2.kill('SIGTERM');
  });
});
