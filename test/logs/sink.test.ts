import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  JetStreamLogSink,
  logsStreamName,
  logsSubject,
  parseLogMessage,
  type LogLineMessage,
  type LogMessage,
} from '../../services/logs/src/stream/log-stream.js';

/** Every message on a run's subject, up to and including the seal. */
async function readRun(env: TestEnvironment, ws: string, runId: string): Promise<LogMessage[]> {
  const c = await jetstream(env.nats).consumers.get(logsStreamName({ eventsStream: env.stream }), {
    filter_subjects: logsSubject(env.subjectPrefix, ws, runId),
    deliver_policy: DeliverPolicy.All,
  });
  const out: LogMessage[] = [];
  const msgs = await c.consume();
  for await (const m of msgs) {
    const msg = parseLogMessage(m.data)!;
    out.push(msg);
    if (msg.type === 'end') break;
  }
  await msgs.close();
  return out;
}

describe('JetStreamLogSink', () => {
  let env: TestEnvironment;
  before(async () => {
    env = await createTestEnvironment();
  });
  after(() => env.close());

  const cfg = () => ({ eventsStream: env.stream, subjectPrefix: env.subjectPrefix });

  it('publishes each line in order across stdout/stderr, numbered from 1, then the seal', async () => {
    const sink = await JetStreamLogSink.open(env.nats, cfg());
    const ref = { workspaceId: 'ws1', runId: 'run-a' };
    await sink.begin(ref);
    const t0 = Date.now();
    for (let i = 1; i <= 1000; i++)
      sink.append(ref, [{ stream: i % 2 ? 'stdout' : 'stderr', text: `l${i}`, at: t0 }]);
    assert.ok(Date.now() - t0 < 500, 'append does not wait for the publishes');
    await sink.end(ref);
    const msgs = await readRun(env, 'ws1', 'run-a');
    const lines = msgs.filter((m): m is LogLineMessage => m.type === 'line');
    assert.equal(lines.length, 1000);
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    assert.deepEqual(
      lines.map((l) => l.text),
      lines.map((_, i) => `l${i + 1}`),
    );
    assert.equal(lines[1]!.stream, 'stderr');
    assert.deepEqual(msgs.at(-1), { ...msgs.at(-1), type: 'end', lineCount: 1000 });
  });

  it('drops past its bounded queue and reports it with a marker line, never silently', async () => {
    const sink = await JetStreamLogSink.open(env.nats, cfg(), { maxQueued: 100 });
    const ref = { workspaceId: 'ws1', runId: 'run-b' };
    await sink.begin(ref);
    const lines = Array.from({ length: 5000 }, (_, i) => ({
      stream: 'stdout' as const,
      text: `x${i}`,
      at: Date.now(),
    }));
    sink.append(ref, lines);
    assert.ok(sink.queued <= 101);
    // Once the queue has room again, the marker goes out before the next line.
    while (sink.queued > 0) await new Promise((r) => setTimeout(r, 5));
    sink.append(ref, [{ stream: 'stdout', text: 'after', at: Date.now() }]);
    await sink.end(ref);
    const msgs = await readRun(env, 'ws1', 'run-b');
    const got = msgs.filter((m): m is LogLineMessage => m.type === 'line');
    const marker = got.find((l) => /^\[runway\] \d+ lines dropped$/.test(l.text));
    assert.ok(marker, 'a dropped-lines marker');
    const dropped = Number(/(\d+)/.exec(marker.text)![1]);
    // Every line is either published or counted as dropped.
    assert.equal(got.filter((l) => l.text.startsWith('x')).length + dropped, 5000);
    assert.equal(got.at(-1)!.text, 'after');
    assert.deepEqual(
      got.map((l) => l.seq),
      got.map((_, i) => i + 1),
    );
    assert.equal((msgs.at(-1) as { lineCount: number }).lineCount, got.length);
  });
});
