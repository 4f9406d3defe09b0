import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { JobEvent } from './job.events.js';
import {
  jobDecider,
  type DeployManifestJob,
  type JobState,
  type NoteRunEnded,
  type StartBackfill,
} from './job.decider.js';
import { backfillRunId, coalesce } from './backfill-state.js';
import { jobIdFor } from './job-id.js';
import type { JobDefinition } from './manifest.js';

/** Given/when/then specs of the backfill commands of the job decider (docs/manifest.md "Backfills"). */

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const ref = 'jobs.m.hourly';
const jobId = jobIdFor(ws, ref);
const v1 = '11111111-1111-4111-8111-111111111111';
const bf = '77777777-7777-4777-8777-777777777777';
const bf2 = '88888888-8888-4888-8888-888888888888';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 3 };
const next = '99999999-9999-4999-8999-999999999999';

const def = (over: Partial<JobDefinition> = {}): JobDefinition => ({
  job_ref: ref,
  entry_point: {
    module: 'hourly',
    function: null,
    job_type: 'batch',
    launcher: 'dlt._workspace.deployment.launchers.module',
  },
  triggers: ['schedule:0 * * * *'],
  execute: { concurrency: 1 },
  interval: { start: '2026-01-01T00:00:00+00:00' },
  ...over,
});
const deploy = (d: JobDefinition): DeployManifestJob => ({
  type: 'DeployManifestJob',
  jobId,
  versionId: v1,
  definition: d,
  engineVersion: 1,
  definitionHash: 'h1',
  deploymentModule: '__deployment__',
  now: '2026-12-04T10:00:00.000Z',
  actor: user,
});
const s = deciderSpec(jobDecider);
const fold = (events: JobEvent[]): JobState => events.reduce(jobDecider.evolve, jobDecider.initialState());
const decideOn = (events: JobEvent[], c: Parameters<typeof jobDecider.decide>[0]) =>
  jobDecider.decide(c, fold(events));
const sequential = decideOn([], deploy(def()));
const parallel2 = decideOn(
  [],
  deploy(def({ interval: { start: '2026-01-01T00:00:00Z', mode: 'parallel' }, execute: { concurrency: 2 } })),
);
const start = (over: Partial<StartBackfill> = {}): StartBackfill => ({
  type: 'StartBackfill',
  backfillId: bf,
  from: '2026-03-01T00:00:00.000Z',
  to: '2026-03-01T03:00:00.000Z',
  reprocess: false,
  deployment: dep,
  configuration: null,
  requestedBy: user,
  ...over,
});
const end = (runId: string, status = 'completed'): NoteRunEnded => ({
  type: 'NoteRunEnded',
  runId,
  status,
  nextRunId: next,
  deployment: dep,
  configuration: null,
});
const h = (n: number) => `2026-03-01T0${n}:00:00.000Z`;
const run = (slice: number, attempt = 1) => backfillRunId(bf, slice, attempt);
/** The RunRequested events' intervals and the slices noted with them. */
const requested = (events: JobEvent[]) =>
  events.flatMap((e) =>
    e.type === 'RunRequested' ? [[e.data.runId, e.data.interval?.start, e.data.triggerSource] as const] : [],
  );
const types = (events: JobEvent[]) => events.map((e) => e.type);

describe('backfills in the job decider', () => {
  it('StartBackfill (sequential): the slices planned, only the first requested, with its interval', () => {
    const events = decideOn(sequential, start());
    assert.deepEqual(types(events), ['BackfillStarted', 'RunRequested', 'BackfillSliceRequested']);
    const started = events[0]!;
    assert.ok(started.type === 'BackfillStarted');
    assert.equal(started.data.mode, 'sequential');
    assert.equal(started.data.concurrency, 1);
    assert.deepEqual(started.data.slices, [
      { start: h(0), end: h(1) },
      { start: h(1), end: h(2) },
      { start: h(2), end: h(3) },
    ]);
    assert.deepEqual(requested(events), [[run(0), h(0), `backfill:${h(0)}/${h(3)}`]]);
    assert.deepEqual(events[2]!.data, { backfillId: bf, slice: 0, runId: run(0) });
  });

  it('NoteRunEnded (sequential): the next slice only once the previous ended; completed after the last', () => {
    let history = [...sequential, ...decideOn(sequential, start())];
    const first = decideOn(history, end(run(0)));
    assert.deepEqual(types(first), [
      'RunEnded',
      'BackfillSliceEnded',
      'RunRequested',
      'BackfillSliceRequested',
    ]);
    assert.deepEqual(
      requested(first).map((r) => r[1]),
      [h(1)],
    );
    history = [...history, ...first];
    history = [...history, ...decideOn(history, end(run(1)))];
    const last = decideOn(history, end(run(2)));
    assert.deepEqual(types(last), ['RunEnded', 'BackfillSliceEnded', 'BackfillEnded']);
    assert.deepEqual(last[2]!.data, {
      backfillId: bf,
      status: 'completed',
      reason: null,
      inFlight: [],
      by: 'scheduler',
    });
    const after = fold([...history, ...last]);
    assert.equal(after.backfills?.[bf], undefined, 'a completed backfill leaves the state');
    assert.deepEqual(after.doneIntervals, [[h(0), h(3)]], 'the done intervals coalesced');
    // The same end noted twice (a redelivery under another id): nothing.
    s.given([...history, ...last])
      .when(end(run(2)))
      .thenNothing();
  });

  it('NoteRunEnded (sequential): a failed slice fails the backfill, the rest is not requested', () => {
    const history = [...sequential, ...decideOn(sequential, start())];
    const failed = decideOn(history, end(run(0), 'failed'));
    assert.deepEqual(types(failed), ['RunEnded', 'BackfillSliceEnded', 'BackfillEnded']);
    const e = failed[2]!;
    assert.ok(e.type === 'BackfillEnded');
    assert.equal(e.data.status, 'failed');
    assert.match(e.data.reason ?? '', /slice 1 .* ended failed/);
    assert.equal(fold([...history, ...failed]).backfills?.[bf]?.status, 'failed', 'kept: resumable');
  });

  it('StartBackfill (parallel, concurrency 2): two in flight, a third when one ends; a failure does not stop it', () => {
    const begun = decideOn(parallel2, start());
    assert.deepEqual(
      requested(begun).map((r) => r[1]),
      [h(0), h(1)],
    );
    const history = [...parallel2, ...begun];
    const failed = decideOn(history, end(run(1), 'failed'));
    assert.deepEqual(
      requested(failed).map((r) => r[1]),
      [h(2)],
      'the next slice takes the freed place',
    );
    let h2 = [...history, ...failed];
    h2 = [...h2, ...decideOn(h2, end(run(0)))];
    const last = decideOn(h2, end(run(2)));
    const ended = last.find((x) => x.type === 'BackfillEnded');
    assert.ok(ended?.type === 'BackfillEnded');
    assert.equal(ended.data.status, 'failed');
    assert.match(ended.data.reason ?? '', /1 of 3 slice\(s\) did not complete/);
  });

  it('parallel with execute.concurrency null: capped by Runway', () => {
    const unlimited = decideOn(
      [],
      deploy(
        def({
          interval: { start: '2026-01-01T00:00:00Z', mode: 'parallel' },
          execute: { concurrency: null },
        }),
      ),
    );
    const events = decideOn(unlimited, start({ to: '2026-03-02T00:00:00.000Z' }));
    const started = events[0]!;
    assert.ok(started.type === 'BackfillStarted');
    assert.equal(started.data.concurrency, 16);
    assert.equal(requested(events).length, 16);
  });

  it('StartBackfill: intervals already done or held by another backfill are left out; reprocess takes them', () => {
    let history = [...sequential, ...decideOn(sequential, start({ to: h(1) }))];
    history = [...history, ...decideOn(history, end(run(0)))];
    const second = decideOn(history, start({ backfillId: bf2 }));
    const st = second[0]!;
    assert.ok(st.type === 'BackfillStarted');
    assert.deepEqual(
      st.data.slices.map((x) => x.start),
      [h(1), h(2)],
    );
    assert.equal(st.data.skippedDone, 1);
    const busy = [...history, ...second];
    s.given(busy)
      .when(start({ backfillId: '12121212-1212-4121-8121-121212121212', from: h(0), to: h(3) }))
      .thenThrows(DomainError, /already done or held by another backfill/);
    const again = decideOn(
      busy,
      start({ backfillId: '12121212-1212-4121-8121-121212121212', reprocess: true }),
    );
    const st2 = again[0]!;
    assert.ok(st2.type === 'BackfillStarted');
    assert.equal(st2.data.slices.length, 3);
  });

  it('StartBackfill refuses: an empty range, too many slices, a job without interval, an archived job, no job', () => {
    s.given(sequential)
      .when(start({ from: h(2), to: h(1) }))
      .thenThrows(DomainError, /empty/);
    s.given(sequential)
      .when(start({ from: '2026-01-01T00:00:00.000Z', to: '2026-03-01T00:00:00.000Z' }))
      .thenThrows(DomainError, /more than 500 intervals/);
    s.given(decideOn([], deploy(def({ triggers: [], interval: undefined }))))
      .when(start())
      .thenThrows(DomainError, /no schedule: or every: trigger/);
    const archived = [
      ...sequential,
      ...decideOn(sequential, { type: 'ArchiveJob', versionId: next, actor: user }),
    ];
    s.given(archived)
      .when(start())
      .thenThrows(DomainError, /archived/);
    s.given([])
      .when(start())
      .thenThrows(NotFoundError, /not found/);
    s.given(sequential)
      .when(start({ from: '2025-12-31T22:00:00.000Z', to: '2026-01-01T00:00:00.000Z' }))
      .thenThrows(
        DomainError,
        /outside the interval of job jobs\.m\.hourly \(from 2026-01-01T00:00:00\.000Z\)/,
      );
    const straddling = decideOn(
      sequential,
      start({ from: '2025-12-31T23:00:00.000Z', to: '2026-01-01T01:00:00.000Z' }),
    );
    const st = straddling[0]!;
    assert.ok(st.type === 'BackfillStarted');
    assert.deepEqual(
      st.data.slices,
      [{ start: '2026-01-01T00:00:00.000Z', end: '2026-01-01T01:00:00.000Z' }],
      'clamped to interval.start',
    );
    s.given(sequential)
      .when(start({ deployment: null }))
      .thenThrows(DomainError, /nothing is deployed/);
  });

  it('CancelBackfill: nothing more requested, the runs in flight named; later ends request nothing', () => {
    const history = [...parallel2, ...decideOn(parallel2, start())];
    s.given(history)
      .when({ type: 'CancelBackfill', backfillId: bf, actor: user })
      .then([
        {
          type: 'BackfillEnded',
          data: {
            backfillId: bf,
            status: 'cancelled',
            reason: `cancelled by ${user}`,
            inFlight: [run(0), run(1)],
            by: user,
          },
        },
      ]);
    const cancelled = [
      ...history,
      ...decideOn(history, { type: 'CancelBackfill', backfillId: bf, actor: user }),
    ];
    assert.deepEqual(types(decideOn(cancelled, end(run(0), 'cancelled'))), ['RunEnded']);
    s.given(cancelled)
      .when({ type: 'CancelBackfill', backfillId: bf, actor: user })
      .thenThrows(NotFoundError, /not running/);
  });

  it('ResumeBackfill: the failed slice retried with a new run, then the rest; a running one: nothing', () => {
    let history = [...sequential, ...decideOn(sequential, start())];
    history = [...history, ...decideOn(history, end(run(0), 'failed'))];
    const resume = {
      type: 'ResumeBackfill' as const,
      backfillId: bf,
      deployment: dep,
      configuration: null,
      actor: user,
    };
    const resumed = decideOn(history, resume);
    assert.deepEqual(types(resumed), ['BackfillResumed', 'RunRequested', 'BackfillSliceRequested']);
    assert.deepEqual(resumed[0]!.data, { backfillId: bf, retried: [0], by: user });
    assert.deepEqual(
      requested(resumed).map((r) => r[0]),
      [run(0, 2)],
      'attempt 2: a new run',
    );
    history = [...history, ...resumed];
    s.given(history).when(resume).thenNothing();
    assert.deepEqual(
      requested(decideOn(history, end(run(0, 2)))).map((r) => r[1]),
      [h(1)],
    );
    s.given(sequential)
      .when(resume)
      .thenThrows(NotFoundError, /not running or failed/);
  });

  it('coalesce: sorted, adjacent and overlapping intervals merged (dlt sort_and_coalesce)', () => {
    assert.deepEqual(
      coalesce([
        [h(2), h(3)],
        [h(0), h(1)],
        [h(1), h(2)],
        [h(5), h(6)],
      ]),
      [
        [h(0), h(3)],
        [h(5), h(6)],
      ],
    );
  });
});
