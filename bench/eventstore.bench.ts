/**
 * `npm run bench -- eventstore`: libs/eventstore and libs/projections against the raw JetStream
 * client, on the nats-server + PostgreSQL that scripts/bench.mjs started. Prints ONE table; every
 * ratio in it was measured in this run. Each lib/raw pair runs in alternating rounds (median
 * round reported) so background noise hits both sides alike.
 *
 * "raw" is the bare @nats-io/jetstream client doing the same job with the same bytes: publish of
 * the same JSON envelope with Nats-Msg-Id and expect.lastSubjectSequence (but none of the Runway-*
 * headers, schema validation or envelope building); replay through an ordered consumer that only
 * receives. "libs" is EventStore.append / EventStore.replay (decode + validation included).
 */
import { performance } from 'node:perf_hooks';
import { DeliverPolicy } from '@nats-io/jetstream';
import { sql } from 'kysely';
import { z } from 'zod';
import { defineEvent, EventRegistry, EventStore, type CommitEnvelope } from '#libs/eventstore';
import {
  defineProjection,
  ProjectionRunner,
  projectionMigrations,
  type CheckpointTable,
} from '#libs/projections';
import { createTestEnvironment, untypedDb } from '#libs/testing';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
// A round of these takes about a second a side and they are the noisiest: more rounds.
const SHORT_ROUNDS = ROUNDS + 2;
const SEQUENTIAL = 5_000;
const CONCURRENT = 20_000;
const IN_FLIGHT = 64;
const REPLAY = 100_000;
const LIVE_RATE = 1_000; // events per second
const LIVE_SECONDS = 8;
const READS = 2_000; // reads of whole aggregates (SEQUENTIAL / 100 commits each) per round

const BenchEvent = defineEvent(
  'BenchEvent',
  z.object({ key: z.string().min(1), n: z.number().int().nonnegative(), note: z.string() }),
);
const registry = new EventRegistry().register(BenchEvent);
const NOTE = 'n'; // with 10-character command ids a commit of one event is about 270 bytes

// ---------------------------------------------------------------------------------------------
// helpers

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

function percentile(xs: number[], p: number): number {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

interface Round {
  rate: number;
  latencies?: number[];
}

/** The round whose rate is the median (so its latencies come from the same round). */
function medianRound(rounds: Round[]): Round {
  const sorted = [...rounds].sort((a, b) => a.rate - b.rate);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/** What EventStore.append stores: used as the raw side's payload so both write the same bytes. */
function envelopeBytes(workspaceId: string, type: string, id: string, n: number): Uint8Array {
  const cid = `r${String(n).padStart(9, '0')}`;
  const env: CommitEnvelope = {
    v: 1,
    aggregate: { workspaceId, type, id },
    events: [{ type: 'BenchEvent', version: 1, data: { key: id, n, note: NOTE } }],
    meta: { commandId: cid, actor: 'bench', correlationId: cid, time: new Date().toISOString() },
  };
  return new TextEncoder().encode(JSON.stringify(env));
}

// ---------------------------------------------------------------------------------------------

const payloadBytes = envelopeBytes('w1', 'bench', 's0_12', 12345).byteLength;
const env = await createTestEnvironment();
const serverVersion = env.nats.info?.version ?? 'unknown';
const results: { name: string; lib: string; raw: string; ratio: string; target: string; ok: string }[] = [];
try {
  const store = env.newStore(registry);
  await store.ensureStream();
  const js = store.js;
  const ws = 'w1';
  let cmd = 0;
  const nextCommandId = () => `c${String(++cmd).padStart(9, '0')}`;

  log(`payload ${payloadBytes} bytes per commit (one event)`);

  // -- append, sequential: each append waits for the previous one. 100 aggregates round-robin,
  //    each append conditional on the aggregate's last sequence.
  const libSequential = async (tag: string, count: number): Promise<Round> => {
    const last = new Map<string, number>();
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const id = `${tag}${i % 100}`;
      const s = performance.now();
      const r = await store.append(
        { workspaceId: ws, type: 'bench', id },
        last.get(id) ?? 0,
        [{ type: 'BenchEvent', data: { key: id, n: i, note: NOTE } }],
        { commandId: nextCommandId(), actor: 'bench' },
      );
      lat.push(performance.now() - s);
      last.set(id, r.seq);
    }
    return { rate: count / ((performance.now() - t0) / 1000), latencies: lat };
  };
  const rawSequential = async (tag: string, count: number): Promise<Round> => {
    const last = new Map<string, number>();
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const id = `${tag}${i % 100}`;
      const s = performance.now();
      const ack = await js.publish(`${store.prefix}evt.${ws}.raw.${id}`, envelopeBytes(ws, 'raw', id, i), {
        msgID: `${ws}:${nextCommandId()}`,
        expect: { lastSubjectSequence: last.get(id) ?? 0 },
      });
      lat.push(performance.now() - s);
      last.set(id, ack.seq);
    }
    return { rate: count / ((performance.now() - t0) / 1000), latencies: lat };
  };

  // -- append, 64 in flight: 64 writers, each appending to its own aggregates.
  const concurrent = async (
    count: number,
    one: (writer: number, i: number, expected: number) => Promise<number>,
  ) => {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, w) => {
        let expected = 0;
        while (next < count) {
          const i = next++;
          expected = await one(w, i, expected);
        }
      }),
    );
    return { rate: count / ((performance.now() - t0) / 1000) };
  };
  const libConcurrent = (tag: string, count: number) =>
    concurrent(count, async (w, i, expected) => {
      const id = `${tag}${w}`;
      const r = await store.append(
        { workspaceId: ws, type: 'bench', id },
        expected,
        [{ type: 'BenchEvent', data: { key: id, n: i, note: NOTE } }],
        { commandId: nextCommandId(), actor: 'bench' },
      );
      return r.seq;
    });
  const rawConcurrent = (tag: string, count: number) =>
    concurrent(count, async (w, i, expected) => {
      const id = `${tag}${w}`;
      const ack = await js.publish(`${store.prefix}evt.${ws}.raw.${id}`, envelopeBytes(ws, 'raw', id, i), {
        msgID: `${ws}:${nextCommandId()}`,
        expect: { lastSubjectSequence: expected },
      });
      return ack.seq;
    });

  log('warm-up');
  await libSequential('warm', 500);
  await rawSequential('warm', 500);
  await libConcurrent('warmc', 2_000);
  await rawConcurrent('warmc', 2_000);

  log(`append sequential: ${ROUNDS} rounds x ${SEQUENTIAL} each side`);
  const seqLib: Round[] = [];
  const seqRaw: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    seqRaw.push(await rawSequential(`s${r}_`, SEQUENTIAL));
    seqLib.push(await libSequential(`s${r}_`, SEQUENTIAL));
  }
  log(`append ${IN_FLIGHT} in flight: ${SHORT_ROUNDS} rounds x ${CONCURRENT} each side`);
  const conLib: Round[] = [];
  const conRaw: Round[] = [];
  for (let r = 0; r < SHORT_ROUNDS; r++) {
    conRaw.push(await rawConcurrent(`c${r}_`, CONCURRENT));
    conLib.push(await libConcurrent(`c${r}_`, CONCURRENT));
  }

  // -- read one aggregate whole (what a command handler does before deciding): the aggregates of the
  //    warm-up (5 commits each) and of the first sequential round (SEQUENTIAL / 100 commits each).
  //    "raw" reads it the way a plain client would: the last sequence by direct get, then an
  //    ordered consumer on its subject.
  const libRead = async (tag: string, perAggregate: number): Promise<Round> => {
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < READS; i++) {
      const s = performance.now();
      const r = await store.read({ workspaceId: ws, type: 'bench', id: `${tag}${i % 100}` });
      lat.push(performance.now() - s);
      if (r.commits.length !== perAggregate) throw new Error(`lib read ${r.commits.length} commits`);
    }
    return { rate: READS / ((performance.now() - t0) / 1000), latencies: lat };
  };
  const jsm = await store.jsm();
  const rawRead = async (tag: string, perAggregate: number): Promise<Round> => {
    const lat: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < READS; i++) {
      const s = performance.now();
      const subject = `${store.prefix}evt.${ws}.raw.${tag}${i % 100}`;
      const last = (await jsm.direct.getMessage(store.stream, { last_by_subj: subject }))?.seq ?? 0;
      const consumer = await js.consumers.get(store.stream, {
        filter_subjects: subject,
        deliver_policy: DeliverPolicy.All,
      });
      const messages = await consumer.consume({ max_messages: 256 });
      let n = 0;
      for await (const m of messages) {
        n++;
        if (m.seq >= last) break;
      }
      messages.stop();
      void consumer.delete().catch(() => undefined);
      lat.push(performance.now() - s);
      if (n !== perAggregate) throw new Error(`raw read ${n} commits`);
    }
    return { rate: READS / ((performance.now() - t0) / 1000), latencies: lat };
  };
  const reads: { commits: number; lib: Round[]; raw: Round[] }[] = [];
  for (const [tag, commits] of [
    ['warm', 5],
    ['s0_', SEQUENTIAL / 100],
  ] as const) {
    log(`read aggregate (${commits} commits): ${ROUNDS} rounds x ${READS} each side`);
    const lib: Round[] = [];
    const raw: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      raw.push(await rawRead(tag, commits));
      lib.push(await libRead(tag, commits));
    }
    reads.push({ commits, lib, raw });
  }

  // -- replay: a second stream holding exactly REPLAY commits of one event each (1,000 aggregates).
  const big = new EventStore(env.nats, registry, {
    stream: `${env.stream}_R`,
    subjectPrefix: `${env.subjectPrefix}r`,
  });
  await big.ensureStream();
  log(`filling ${REPLAY} commits for replay and projection catch-up`);
  {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 256 }, async () => {
        while (next < REPLAY) {
          const i = next++;
          const id = `k${i % 1000}`;
          await big.js.publish(`${big.prefix}evt.${ws}.bench.${id}`, envelopeBytes(ws, 'bench', id, i), {
            msgID: `fill-${i}`,
          });
        }
      }),
    );
    log(`filled in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const replayEnd = await big.lastSequence();
  if (replayEnd !== REPLAY) throw new Error(`replay stream holds ${replayEnd} commits, expected ${REPLAY}`);

  const libReplay = async (): Promise<Round> => {
    const t0 = performance.now();
    let n = 0;
    let sum = 0;
    for await (const c of big.replay({ fromSeq: 1 })) {
      n += c.events.length;
      sum += (c.events[0]!.data as { n: number }).n;
    }
    const ms = performance.now() - t0;
    if (n !== REPLAY || sum !== (REPLAY * (REPLAY - 1)) / 2) throw new Error(`lib replay saw ${n} events`);
    return { rate: n / (ms / 1000) };
  };
  const rawReplay = async (): Promise<Round> => {
    const t0 = performance.now();
    const consumer = await big.js.consumers.get(big.stream, {
      filter_subjects: big.allSubjects,
      deliver_policy: DeliverPolicy.All,
    });
    const messages = await consumer.consume({ max_messages: 1024 });
    let n = 0;
    let bytes = 0;
    for await (const m of messages) {
      n++;
      bytes += m.data.byteLength;
      if (m.seq >= replayEnd) break;
    }
    messages.stop();
    await consumer.delete().catch(() => undefined);
    const ms = performance.now() - t0;
    if (n !== REPLAY || bytes === 0) throw new Error(`raw replay saw ${n} messages`);
    return { rate: n / (ms / 1000) };
  };
  log(`replay: ${SHORT_ROUNDS} rounds x ${REPLAY} each side`);
  const repLib: Round[] = [];
  const repRaw: Round[] = [];
  for (let r = 0; r < SHORT_ROUNDS; r++) {
    repRaw.push(await rawReplay());
    repLib.push(await libReplay());
  }

  // -- projection catch-up: a fresh projection (own table, own checkpoint) per round over the
  //    REPLAY commits, folding by key into one multi-row upsert per batch.
  interface CountRow {
    key: string;
    n: number;
    total: number;
    last_seq: number;
  }
  const db = env.newDb<CheckpointTable & Record<string, CountRow>>();
  await env.migrate([projectionMigrations]);
  const countsProjection = (name: string) =>
    defineProjection<Record<string, CountRow>>({
      name,
      tables: [name],
      canHandle: ['BenchEvent'],
      async apply(q, events) {
        const folded = new Map<string, CountRow>();
        for (const e of events) {
          const key = e.aggregate.id;
          const d = e.data as { n: number };
          const row = folded.get(key);
          if (row) {
            row.n += 1;
            row.total += d.n;
            row.last_seq = e.seq;
          } else folded.set(key, { key, n: 1, total: d.n, last_seq: e.seq });
        }
        await q
          .insertInto(name)
          .values([...folded.values()])
          .onConflict((oc) =>
            oc.column('key').doUpdateSet({
              n: sql`${sql.ref(`${name}.n`)} + excluded.n`,
              total: sql`${sql.ref(`${name}.total`)} + excluded.total`,
              last_seq: sql`excluded.last_seq`,
            }),
          )
          .execute();
      },
    });
  const createCounts = (name: string) =>
    sql`CREATE TABLE ${sql.id(name)} (key text PRIMARY KEY, n bigint NOT NULL, total bigint NOT NULL, last_seq bigint NOT NULL)`.execute(
      db,
    );

  const runners: ProjectionRunner[] = [];
  const catchUp = async (round: number): Promise<Round> => {
    const name = `bench_counts_${round}`;
    await createCounts(name);
    const runner = new ProjectionRunner(big, untypedDb(db), countsProjection(name), {
      onError: (err) => log(`runner error: ${String(err)}`),
    });
    runners.push(runner);
    const t0 = performance.now();
    await runner.start();
    await runner.waitFor(replayEnd, 120_000);
    const ms = performance.now() - t0;
    const check = await sql<{ n: number }>`SELECT sum(n)::int AS n FROM ${sql.id(name)}`.execute(db);
    if (check.rows[0]?.n !== REPLAY) throw new Error(`projection counted ${check.rows[0]?.n} events`);
    return { rate: REPLAY / (ms / 1000) };
  };
  log(`projection catch-up: ${ROUNDS} rounds x ${REPLAY}`);
  const cu: Round[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r > 0) await runners[r - 1]!.stop();
    cu.push(await catchUp(r));
  }

  // -- live lag: the last catch-up runner keeps running; append LIVE_RATE events/s through the
  //    lib and time each from the append call to the commit of the checkpoint that covers it.
  const live = runners[runners.length - 1]!;
  log(`live lag: ${LIVE_RATE} events/s for ${LIVE_SECONDS} s`);
  const lags: number[] = [];
  {
    const total = LIVE_RATE * LIVE_SECONDS;
    const last = new Map<string, number>();
    const busy = new Set<string>();
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    let sent = 0;
    while (sent < total) {
      const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * LIVE_RATE));
      while (sent < due) {
        const i = sent++;
        let id = `live${i % 200}`;
        if (busy.has(id)) id = `live_x${i}`; // never two appends in flight on one aggregate
        busy.add(id);
        const s = performance.now();
        pending.push(
          big
            .append(
              { workspaceId: ws, type: 'bench', id },
              last.get(id) ?? 0,
              [{ type: 'BenchEvent', data: { key: id, n: i, note: NOTE } }],
              {
                commandId: nextCommandId(),
                actor: 'bench',
              },
            )
            .then(async (r) => {
              last.set(id, r.seq);
              busy.delete(id);
              await live.waitFor(r.seq, 30_000);
              lags.push(performance.now() - s);
            }),
        );
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(pending);
  }
  for (const r of runners) await r.stop();

  // -- the table
  const fmtRate = (x: number) => `${Math.round(x).toLocaleString('en-US')}/s`;
  const fmtMs = (x: number) => `${x.toFixed(3)} ms`;
  const row = (
    name: string,
    lib: number,
    raw: number | undefined,
    target: number | undefined,
    fmt = fmtRate,
  ) => {
    const ratio = raw === undefined ? undefined : lib / raw;
    results.push({
      name,
      lib: fmt(lib),
      raw: raw === undefined ? '' : fmt(raw),
      ratio: ratio === undefined ? '' : `${ratio.toFixed(2)}x`,
      target: target === undefined ? '' : raw === undefined ? `>= ${fmt(target)}` : `>= ${target}x`,
      ok: target === undefined ? '' : (ratio ?? lib) >= target ? 'yes' : 'NO',
    });
  };
  const sl = medianRound(seqLib);
  const sr = medianRound(seqRaw);
  row(`append sequential (${SEQUENTIAL.toLocaleString('en-US')})`, sl.rate, sr.rate, 0.7);
  results.push({
    name: '  latency p50',
    lib: fmtMs(percentile(sl.latencies!, 50)),
    raw: fmtMs(percentile(sr.latencies!, 50)),
    ratio: '',
    target: '',
    ok: '',
  });
  results.push({
    name: '  latency p99',
    lib: fmtMs(percentile(sl.latencies!, 99)),
    raw: fmtMs(percentile(sr.latencies!, 99)),
    ratio: '',
    target: '',
    ok: '',
  });
  row(
    `append ${IN_FLIGHT} in flight (${CONCURRENT.toLocaleString('en-US')})`,
    median(conLib.map((r) => r.rate)),
    median(conRaw.map((r) => r.rate)),
    0.7,
  );
  for (const { commits, lib, raw } of reads) {
    const rl = medianRound(lib);
    const rr = medianRound(raw);
    row(`read aggregate of ${commits} commits (${READS.toLocaleString('en-US')})`, rl.rate, rr.rate, 0.7);
    results.push({
      name: '  latency p50',
      lib: fmtMs(percentile(rl.latencies!, 50)),
      raw: fmtMs(percentile(rr.latencies!, 50)),
      ratio: '',
      target: '',
      ok: '',
    });
  }
  row(
    `replay (${REPLAY.toLocaleString('en-US')})`,
    median(repLib.map((r) => r.rate)),
    median(repRaw.map((r) => r.rate)),
    0.5,
  );
  row(
    `projection catch-up (${REPLAY.toLocaleString('en-US')})`,
    median(cu.map((r) => r.rate)),
    undefined,
    20_000,
  );
  const p99 = percentile(lags, 99);
  results.push({
    name: `live lag @ ${LIVE_RATE}/s, ${lags.length} events`,
    lib: `p50 ${fmtMs(percentile(lags, 50))}`,
    raw: '',
    ratio: '',
    target: '',
    ok: '',
  });
  results.push({
    name: '',
    lib: `p99 ${fmtMs(p99)}`,
    raw: '',
    ratio: '',
    target: '<= 100 ms',
    ok: p99 <= 100 ? 'yes' : 'NO',
  });
  results.push({ name: '', lib: `max ${fmtMs(Math.max(...lags))}`, raw: '', ratio: '', target: '', ok: '' });
} finally {
  await env.close();
}

const headers = {
  name: 'benchmark',
  lib: 'libs',
  raw: 'raw client',
  ratio: 'ratio',
  target: 'target',
  ok: 'met',
};
const cols = Object.keys(headers) as (keyof typeof headers)[];
const widths = cols.map((c) => Math.max(headers[c].length, ...results.map((r) => r[c].length)));
const line = (r: Record<string, string>) =>
  `| ${cols.map((c, i) => (c === 'name' ? r[c]!.padEnd(widths[i]!) : r[c]!.padStart(widths[i]!))).join(' | ')} |`;
const out = [
  `eventstore benchmark: node ${process.version}, nats-server ${serverVersion}, ${(await import('node:os')).cpus().length} cores; ${payloadBytes}-byte commits of one event;` +
    ` median of alternating lib/raw rounds (${ROUNDS}; ${SHORT_ROUNDS} for 64 in flight and replay)`,
  line(headers),
  `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
  ...results.map(line),
];
process.stdout.write(`${out.join('\n')}\n`);
if (results.some((r) => r.ok === 'NO')) process.stdout.write('some targets were missed (column met)\n');
process.exit(0);
