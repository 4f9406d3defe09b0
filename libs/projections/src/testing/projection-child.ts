/**
 * A projection process for crash tests: runs a ProjectionRunner over the counting projection with
 * the services named by the env of TestEnvironment.childEnv(). Writes `ready` once started and
 * `applying <firstSeq> <lastSeq>` on stdout when a batch has written its rows (before its commit).
 * SIGTERM stops it cleanly (exit 0); the tests SIGKILL it.
 *
 * Env: NATS_URL, DATABASE_URL, RUNWAY_EVENTS_STREAM, RUNWAY_SUBJECT_PREFIX (required);
 * CHILD_PROJECTION (default counts), CHILD_BATCH (default 1000), CHILD_SLEEP_MS (default 0).
 */
import { createKysely } from '#libs/database';
import { EventStore } from '#libs/eventstore';
import { connectNats, drainNats } from '#libs/nats';
import { ProjectionRunner } from '../runner.js';
import { countingProjection, countingRegistry } from './counting.js';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

const nc = await connectNats({ url: need('NATS_URL'), name: 'projection-child' });
const store = new EventStore(nc, countingRegistry(), {
  stream: need('RUNWAY_EVENTS_STREAM'),
  subjectPrefix: need('RUNWAY_SUBJECT_PREFIX'),
});
const db = createKysely<unknown>({ url: need('DATABASE_URL'), max: 2 });
const projection = countingProjection({
  name: process.env.CHILD_PROJECTION ?? 'counts',
  sleepMs: Number(process.env.CHILD_SLEEP_MS ?? 0),
  onApply: (events) => {
    process.stdout.write(`applying ${events[0]!.seq} ${events[events.length - 1]!.seq}\n`);
  },
});
const runner = new ProjectionRunner(store, db, projection, {
  batchSize: Number(process.env.CHILD_BATCH ?? 1000),
  onError: (err) =>
    process.stderr.write(`[projection-child] ${err instanceof Error ? err.message : String(err)}\n`),
});
await runner.start();
process.stdout.write('ready\n');

process.once('SIGTERM', () => {
  void (async () => {
    await runner.stop();
    await db.destroy();
    await drainNats(nc);
    process.exit(0);
  })();
});
