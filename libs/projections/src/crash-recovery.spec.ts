import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { EventStore } from '#libs/eventstore';
import { createTestEnvironment, untypedDb, type TestEnvironment } from '#libs/testing';
import { projectionMigrations } from './migrations.js';
import { ProjectionRunner, readCheckpoint } from './runner.js';
import { countingMigrations, countingProjection, countingRegistry } from './testing/counting.js';
import { appendMany, assertExactlyOnce, cp, until, type TestDb } from './testing/helpers.js';

const childScript = fileURLToPath(new URL('./testing/projection-child.js', import.meta.url));

interface Child {
  proc: ChildProcess;
  /** Every `applying <first> <last>` line so far. */
  batches: { first: number; last: number }[];
  ready: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: string[];
}

describe('a projection process killed with SIGKILL mid-batch', () => {
  let env: TestEnvironment;
  let store: EventStore;
  let db: TestDb;
  const children: Child[] = [];

  const startChild = (extra: Record<string, string>): Child => {
    const proc = spawn(process.execPath, [childScript], {
      env: { ...process.env, ...env.childEnv(), ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const batches: Child['batches'] = [];
    const stderr: string[] = [];
    let ready!: () => void;
    const readyP = new Promise<void>((r) => (ready = r));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line === 'ready') ready();
      const m = /^applying (\d+) (\d+)$/.exec(line);
      if (m) batches.push({ first: Number(m[1]), last: Number(m[2]) });
    });
    createInterface({ input: proc.stderr! }).on('line', (line) => stderr.push(line));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const child = {
      proc,
      batches,
      ready: Promise.race([
        readyP,
        exited.then(() => Promise.reject(new Error(`child exited early: ${stderr.join('\n')}`))),
      ]),
      exited,
      stderr,
    };
    children.push(child);
    return child;
  };

  before(async () => {
    env = await createTestEnvironment();
    store = env.newStore(countingRegistry());
    await store.ensureStream();
    await env.migrate([projectionMigrations, countingMigrations()]);
    db = env.newDb();
  });
  after(async () => {
    for (const c of children)
      if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await env.close();
  });

  it('ends with every event applied exactly once after kills and restarts', async () => {
    await appendMany(store, 1500, { tag: 'k', aggregates: 40 });
    // A producer keeps appending while the projection process dies and comes back.
    let producing = true;
    let produced = 0;
    const producer = (async () => {
      while (producing) {
        await appendMany(store, 25, { tag: 'p', aggregates: 5, inFlight: 5, from: produced });
        produced += 25;
        await new Promise((r) => setTimeout(r, 30));
      }
    })();

    // Two rounds: start, let a few batches commit, SIGKILL while a batch has written its rows but
    // not committed (each batch sleeps 500 ms inside its transaction after its writes).
    for (let round = 0; round < 2; round++) {
      const child = startChild({ CHILD_BATCH: '50', CHILD_SLEEP_MS: '500' });
      await child.ready;
      await until('three batches started', () => child.batches.length >= 3, 30_000, 5);
      const before = await readCheckpoint(cp(db), 'counts');
      const inFlight = child.batches[child.batches.length - 1]!;
      await new Promise((r) => setTimeout(r, 50)); // well inside the 500 ms sleep
      child.proc.kill('SIGKILL');
      const { signal } = await child.exited;
      assert.equal(signal, 'SIGKILL');
      const after = await readCheckpoint(cp(db), 'counts');
      assert.ok(
        after < inFlight.last,
        `round ${round}: the killed batch (${inFlight.first}-${inFlight.last}) did not commit (checkpoint ${after})`,
      );
      assert.ok(after >= before);
      // Whatever was committed is consistent: the rows are exactly the log up to the checkpoint.
      await assertExactlyOnce(db, store, 'counts');
    }

    producing = false;
    await producer;
    const last = await store.lastSequence();
    const final = startChild({ CHILD_BATCH: '200' });
    await final.ready;
    await until(
      'the checkpoint reaches the end of the stream',
      async () => (await readCheckpoint(cp(db), 'counts')) === last,
      60_000,
      50,
    );
    final.proc.kill('SIGTERM');
    const { code } = await final.exited;
    assert.equal(code, 0, `clean stop: ${final.stderr.join('\n')}`);

    assert.equal(await assertExactlyOnce(db, store, 'counts'), last);
    const { n } = await db
      .selectFrom('applied')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    assert.ok(Number(n) > 1500, 'the whole log was applied');
  });
});

describe('a projection across a nats-server restart', () => {
  it('resumes and applies every event once', async () => {
    const env = await createTestEnvironment({ ownNats: true });
    const runners: ProjectionRunner[] = [];
    try {
      const store = env.newStore(countingRegistry());
      await store.ensureStream();
      await env.migrate([projectionMigrations, countingMigrations()]);
      const db: TestDb = env.newDb();
      const errors: unknown[] = [];
      const r = new ProjectionRunner(store, untypedDb(db), countingProjection({ sleepMs: 5 }), {
        batchSize: 50,
        onError: (e) => errors.push(e),
      });
      runners.push(r);
      await r.start();
      const first = await appendMany(store, 300, { tag: 'a' });
      await r.waitFor(first, 30_000);
      await env.natsServer!.restart();
      // Appends retry until the client has reconnected.
      let last = 0;
      for (let attempt = 0; last === 0; attempt++) {
        try {
          last = await appendMany(store, 300, { tag: 'b' });
        } catch (err) {
          if (attempt > 100) throw err;
          await new Promise((res) => setTimeout(res, 100));
        }
      }
      await r.waitFor(last, 60_000);
      await assertExactlyOnce(db, store, 'counts');
    } finally {
      for (const r of runners) await r.stop().catch(() => undefined);
      await env.close();
    }
  });
});
