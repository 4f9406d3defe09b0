import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  ARCHIVE_BUCKET,
  ArchiveUnavailableError,
  defineEvent,
  EventArchive,
  EventRegistry,
  EventStore,
  type AggregateRef,
  type StoredCommit,
} from './index.js';

const Step = defineEvent('Step', z.object({ n: z.number().int().nonnegative() }));
const Ended = defineEvent('Ended', z.object({ ok: z.boolean() }));
const registry = () => new EventRegistry().register(Step, Ended);

/** What a reader of the log sees of a commit: where it is and what it says. */
const view = (c: StoredCommit) => ({
  seq: c.seq,
  subject: c.subject,
  aggregate: c.aggregate,
  meta: c.meta,
  events: c.events.map((e) => ({ type: e.type, data: e.data, index: e.index })),
});

async function all(it: AsyncIterable<StoredCommit>) {
  const out: ReturnType<typeof view>[] = [];
  for await (const c of it) out.push(view(c));
  return out;
}

describe('event archive (real JetStream)', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let archive: EventArchive;
  const runs: AggregateRef[] = [];
  const job: AggregateRef = { workspaceId: 'w1', type: 'job', id: 'j1' };
  let jobSeq = 0;

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(registry());
    await store.ensureStream();
    archive = new EventArchive(store);
    // Runs of two commits each (a `Step`, then `Ended`), their commits interleaved with each other
    // and with the job's, over more than one archive bucket; a second workspace's runs too.
    const RUNS = 2_100;
    for (let i = 0; i < RUNS; i++) {
      runs.push({ workspaceId: i % 4 === 3 ? 'w2' : 'w1', type: 'run', id: `r${i}` });
    }
    const first = new Map<number, number>();
    const BATCH = 64;
    for (let b = 0; b < RUNS; b += BATCH) {
      const ids = Array.from({ length: Math.min(BATCH, RUNS - b) }, (_, k) => b + k);
      await Promise.all(
        ids.map(async (i) => {
          const r = await store.append(runs[i]!, 0, [{ type: 'Step', data: { n: i } }], {
            commandId: `s${i}`,
            actor: 't',
          });
          first.set(i, r.seq);
        }),
      );
      jobSeq = (
        await store.append(job, jobSeq, [{ type: 'Step', data: { n: b } }], {
          commandId: `j${b}`,
          actor: 't',
        })
      ).seq;
      await Promise.all(
        ids.map((i) =>
          store.append(runs[i]!, first.get(i)!, [{ type: 'Ended', data: { ok: i % 2 === 0 } }], {
            commandId: `e${i}`,
            actor: 't',
          }),
        ),
      );
    }
  });
  after(() => env.close());

  it('creates event streams that may be purged (by subject, for the archive) but never lose a message by delete', async () => {
    const info = await (await store.jsm()).streams.info(store.stream);
    assert.equal(info.config.deny_delete, true);
    assert.equal(info.config.deny_purge, false);
  });

  it('moves finished aggregates out of the event stream and replays the log exactly as before', async () => {
    const jsm = await store.jsm();
    const before = await all(store.replay());
    const beforeInfo = await jsm.streams.info(store.stream);
    assert.ok(beforeInfo.state.last_seq > ARCHIVE_BUCKET, 'the log spans more than one archive bucket');
    const filtered = {
      types: await all(store.replay({ types: ['Ended'] })),
      w2: await all(store.replay({ workspaceId: 'w2' })),
      runsFrom: await all(store.replay({ aggregateType: 'run', fromSeq: 1000 })),
      jobs: await all(store.replay({ aggregateType: 'job' })),
    };

    // Archive every run but the last 100 (those "still running").
    const finished = runs.slice(0, runs.length - 100);
    const t0 = Date.now();
    const res = await archive.archive(finished);
    const ms = Date.now() - t0;
    assert.deepEqual(res, { aggregates: finished.length, commits: 2 * finished.length, empty: 0 });

    const afterInfo = await jsm.streams.info(store.stream);
    assert.equal(afterInfo.state.num_subjects, (beforeInfo.state.num_subjects ?? 0) - finished.length);
    assert.equal(afterInfo.state.messages, beforeInfo.state.messages - 2 * finished.length);
    assert.equal(afterInfo.state.last_seq, beforeInfo.state.last_seq, 'sequences are never reused');
    const archived = await jsm.streams.info(archive.stream, { subjects_filter: archive.allSubjects });
    assert.equal(archived.state.messages, 2 * finished.length);
    assert.equal(archived.config.deny_purge, true);
    assert.equal(archived.config.deny_delete, true);
    assert.ok(
      Object.keys(archived.state.subjects ?? {}).length <=
        Math.ceil(beforeInfo.state.last_seq / ARCHIVE_BUCKET),
      'a few archive subjects, one per bucket (and type)',
    );

    // The stream itself no longer has them; the log as replayed is unchanged, filters included.
    const inStream = await all(store.replayStream());
    assert.equal(inStream.length, before.length - 2 * finished.length);
    assert.deepEqual(await all(store.replay()), before);
    assert.deepEqual(await all(store.replay({ types: ['Ended'] })), filtered.types);
    assert.deepEqual(await all(store.replay({ workspaceId: 'w2' })), filtered.w2);
    assert.deepEqual(await all(store.replay({ aggregateType: 'run', fromSeq: 1000 })), filtered.runsFrom);
    assert.deepEqual(await all(store.replay({ aggregateType: 'job' })), filtered.jobs);
    assert.deepEqual(await archive.buckets('job'), [], 'a replay of jobs reads no archive bucket');
    // The runs not archived still load and take commands.
    const live = runs[runs.length - 1]!;
    const loaded = await store.read(live);
    assert.equal(loaded.events.length, 2);
    await store.append(live, loaded.lastSeq, [{ type: 'Step', data: { n: 9 } }], {
      commandId: 'x',
      actor: 't',
    });
    assert.equal(
      (await store.read(finished[0]!)).events.length,
      0,
      'an archived aggregate is gone from the stream',
    );
    process.stderr.write(`# archived ${finished.length} aggregates (${res.commits} commits) in ${ms} ms\n`);
  });

  it('copies nothing when an archived aggregate is archived again, and replays a commit copied twice once', async () => {
    const before = await all(store.replay());
    const again = await archive.archive(runs.slice(0, 10));
    assert.deepEqual(again, { aggregates: 0, commits: 0, empty: 10 });
    const jsm = await store.jsm();
    assert.equal((await jsm.streams.info(archive.stream)).state.messages, 2 * (runs.length - 100));
    // A crash between copy and purge: the next pass copies the subject again.
    const [first] = await archive.readBucket(0);
    assert.ok(first);
    await store.js.publish(archive.subjectOfSeq(first.seq, 'run'), first.data, { headers: first.headers });
    assert.equal((await jsm.streams.info(archive.stream)).state.messages, 2 * (runs.length - 100) + 1);
    assert.deepEqual(await all(store.replay()), before);
  });

  it('refuses a stream created with deny_purge, whose subjects can never leave, and keeps ensureStream working on it', async () => {
    const name = `${env.stream}_OLD`;
    const prefix = `${env.subjectPrefix}old`;
    const jsm = await store.jsm();
    await jsm.streams.add({ name, subjects: [`${prefix}.evt.>`], deny_delete: true, deny_purge: true });
    const old = new EventStore(env.nats, registry(), { stream: name, subjectPrefix: prefix });
    await old.ensureStream(); // does not try to lift deny_purge (nats-server refuses that)
    assert.equal((await jsm.streams.info(name)).config.deny_purge, true);
    const ref = { workspaceId: 'w1', type: 'run', id: 'r1' };
    await old.append(ref, 0, [{ type: 'Step', data: { n: 1 } }], { commandId: 'o1', actor: 't' });
    await assert.rejects(new EventArchive(old).archive([ref]), ArchiveUnavailableError);
    assert.equal((await old.read(ref)).events.length, 1);
  });
});
