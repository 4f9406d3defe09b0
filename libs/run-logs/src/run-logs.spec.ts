import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { createTestEnvironment, type TestEnvironment } from '#libs/testing';
import {
  ensureLogsStream,
  JetStreamLogSink,
  linesOf,
  logsStreamName,
  parseLogMessage,
  RunLogReader,
  runLogSubjects,
  type LogLine,
  type LogMessage,
  type OutputLine,
} from './index.js';

const WS = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const runIds = Array.from({ length: 10 }, (_, i) => `00000000-0000-4000-8000-00000000000${i}`);

describe('run logs in the LOGS stream (sink and reader, real JetStream)', () => {
  let env: TestEnvironment;
  let reader: RunLogReader;
  const loc = () => ({ eventsStream: env.stream, subjectPrefix: env.subjectPrefix });

  /** Every message of a run, up to and including the seal. */
  const messages = async (runId: string): Promise<LogMessage[]> => {
    const c = await jetstream(env.nats).consumers.get(logsStreamName(loc()), {
      filter_subjects: runLogSubjects(env.subjectPrefix, WS, runId),
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
  };
  const linesIn = (msgs: LogMessage[]): LogLine[] =>
    msgs.flatMap((m) => (m.type === 'lines' ? linesOf(m) : []));

  before(async () => {
    env = await createTestEnvironment();
    await ensureLogsStream(env.nats, loc(), { maxAgeMs: 3600_000, maxBytes: -1 });
    reader = new RunLogReader(env.nats, loc(), { textMaxBytes: 64 * 1024 });
  });
  after(() => env.close());

  it('keeps order across stdout/stderr, numbers lines from 1, batches them, then seals', async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: runIds[0]! };
    await sink.begin(ref);
    const t0 = Date.now();
    for (let i = 1; i <= 20_000; i++)
      sink.append(ref, [{ stream: i % 2 ? 'stdout' : 'stderr', text: `l${i}`, at: t0 }]);
    assert.ok(Date.now() - t0 < 2_000, 'append does not wait for the publishes');
    await sink.end(ref);
    const msgs = await messages(ref.runId);
    const lines = linesIn(msgs);
    assert.deepEqual(
      lines.map((l) => l.seq),
      lines.map((_, i) => i + 1),
    );
    assert.deepEqual(
      lines.map((l) => l.text),
      lines.map((_, i) => `l${i + 1}`),
    );
    assert.equal(lines[1]!.stream, 'stderr');
    assert.ok(msgs.length < 200, `20,000 lines in ${msgs.length} messages, not one each`);
    const seal = msgs.at(-1)!;
    assert.equal(seal.type, 'end');
    assert.equal(seal.type === 'end' && seal.lineCount, 20_000);
    assert.equal(seal.type === 'end' && seal.by, 'worker');
  });

  it('drops past its bounded queue and reports it with a numbered marker line, never silently', async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix, { maxQueuedBytes: 64 * 1024 });
    const ref = { workspaceId: WS, runId: runIds[1]! };
    await sink.begin(ref);
    const lines: OutputLine[] = Array.from({ length: 20_000 }, (_, i) => ({
      stream: 'stdout',
      text: `x${i}`.padEnd(40, '.'),
      at: Date.now(),
    }));
    sink.append(ref, lines);
    // Once the queue has room again, the marker goes out before the next line.
    while (sink.queued > 0) await new Promise((r) => setTimeout(r, 5));
    sink.append(ref, [{ stream: 'stdout', text: 'after', at: Date.now() }]);
    await sink.end(ref);
    const got = linesIn(await messages(ref.runId));
    const marker = got.find((l) => /^\[runway\] \d+ lines dropped$/.test(l.text));
    assert.ok(marker, 'a dropped-lines marker');
    const dropped = Number(/(\d+)/.exec(marker.text)![1]);
    assert.ok(dropped > 0);
    // Every line is either stored or counted as dropped.
    assert.equal(got.filter((l) => l.text.startsWith('x')).length + dropped, 20_000);
    assert.equal(got.at(-1)!.text, 'after');
    assert.deepEqual(
      got.map((l) => l.seq),
      got.map((_, i) => i + 1),
    );
  });

  it('serves the cumulative text incrementally, append-only, joining split pieces, null for no log', async () => {
    assert.equal(await reader.text(WS, runIds[9]!), null);
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: runIds[2]! };
    await sink.begin(ref);
    const at = Date.now();
    sink.append(ref, [
      { stream: 'stdout', text: 'one', at },
      { stream: 'stderr', text: 'two-a', at, part: true },
    ]);
    while (sink.queued > 0) await new Promise((r) => setTimeout(r, 5));
    const first = await reader.text(WS, ref.runId);
    // A line whose last piece has not arrived is held back: the dlt CLI never reprints a line.
    assert.deepEqual(first, { text: 'one\n', lineCount: 2, sealed: false, truncated: false });
    sink.append(ref, [
      { stream: 'stderr', text: '|two-b', at },
      { stream: 'stdout', text: 'three', at },
    ]);
    await sink.end(ref);
    const second = await reader.text(WS, ref.runId);
    assert.deepEqual(second, {
      text: 'one\ntwo-a|two-b\nthree\n',
      lineCount: 4,
      sealed: true,
      truncated: false,
    });
    assert.ok(second.text.startsWith(first!.text));
    // A fresh reader (no cache) reads the same.
    assert.deepEqual(await new RunLogReader(env.nats, loc()).text(WS, ref.runId), second);
  });

  it('stops the text at its size limit with a marker (still append-only), the stream keeps everything', async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: runIds[3]! };
    await sink.begin(ref);
    const line = 'y'.repeat(1000);
    for (let i = 0; i < 40; i++) sink.append(ref, [{ stream: 'stdout', text: line, at: Date.now() }]);
    while (sink.queued > 0) await new Promise((r) => setTimeout(r, 5));
    const before = (await reader.text(WS, ref.runId))!;
    for (let i = 0; i < 60; i++) sink.append(ref, [{ stream: 'stdout', text: line, at: Date.now() }]);
    await sink.end(ref);
    const t = (await reader.text(WS, ref.runId))!;
    assert.ok(t.text.startsWith(before.text));
    assert.equal(t.truncated, true);
    assert.ok(Buffer.byteLength(t.text) <= 64 * 1024 + 200);
    assert.match(t.text, /\[runway\] log text truncated at \d+ bytes/);
    assert.equal(t.lineCount, 100);
    assert.equal((await reader.stats(WS, ref.runId)).lineCount, 100);
  });

  it('follows live from any line, ending with the seal', async () => {
    const sink = new JetStreamLogSink(env.nats, env.subjectPrefix);
    const ref = { workspaceId: WS, runId: runIds[4]! };
    await sink.begin(ref);
    const got: number[] = [];
    let end: unknown;
    const following = (async () => {
      for await (const e of reader.follow(WS, ref.runId, { from: 3 })) {
        if (e.type === 'lines') got.push(...e.lines.map((l) => l.seq));
        else end = e;
      }
    })();
    for (let i = 1; i <= 10; i++) {
      sink.append(ref, [{ stream: 'stdout', text: `f${i}`, at: Date.now() }]);
      await new Promise((r) => setTimeout(r, 20));
    }
    await sink.end(ref);
    await following;
    assert.deepEqual(got, [3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(end, {
      type: 'end',
      lineCount: 10,
      bytes: 'f1f2f3f4f5f6f7f8f9f10'.length,
      by: 'worker',
    });
  });

  it('retries a failed batch until the stream exists, storing each line once', async () => {
    // A stream that does not exist yet (the logs service creates it at its start).
    const late = { eventsStream: `${env.stream}_LATE`, subjectPrefix: `${env.subjectPrefix}late` };
    const sink = new JetStreamLogSink(env.nats, late.subjectPrefix);
    const ref = { workspaceId: WS, runId: runIds[5]! };
    await sink.begin(ref);
    for (let i = 1; i <= 50; i++) sink.append(ref, [{ stream: 'stdout', text: `r${i}`, at: Date.now() }]);
    await new Promise((r) => setTimeout(r, 300));
    await ensureLogsStream(env.nats, late);
    await sink.end(ref);
    const lateReader = new RunLogReader(env.nats, late);
    const t = await lateReader.text(WS, ref.runId);
    assert.equal(t?.lineCount, 50);
    assert.equal(t?.sealed, true);
    assert.equal(t?.text, Array.from({ length: 50 }, (_, i) => `r${i + 1}\n`).join(''));
    const jsm = await jetstreamManager(env.nats);
    await jsm.streams.delete(logsStreamName(late));
  });

  it('reads the same text whatever its cache evicted (bounded by runs and bytes)', async () => {
    const small = new RunLogReader(env.nats, loc(), { cacheRuns: 1, cacheBytes: 10 });
    const a1 = await small.text(WS, runIds[0]!);
    const b = await small.text(WS, runIds[2]!);
    const a2 = await small.text(WS, runIds[0]!);
    assert.deepEqual(a2, a1);
    assert.equal(a1?.lineCount, 20_000);
    assert.deepEqual(b, await reader.text(WS, runIds[2]!));
  });

  it('applies retention settings to an existing stream', async () => {
    await ensureLogsStream(env.nats, loc(), { maxAgeMs: 2 * 3600_000, maxBytes: 8 * 1024 * 1024 });
    const info = await (await jetstreamManager(env.nats)).streams.info(logsStreamName(loc()));
    assert.equal(info.config.max_age, 2 * 3600_000 * 1_000_000);
    assert.equal(info.config.max_bytes, 8 * 1024 * 1024);
  });
});
