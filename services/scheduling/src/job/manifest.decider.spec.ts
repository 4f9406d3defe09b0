import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { JobEvent } from './job.events.js';
import {
  jobDecider,
  staleUpstreams,
  type DeployManifestJob,
  type JobState,
  type RequestRun,
  type UpstreamState,
} from './job.decider.js';
import { jobIdFor } from './job-id.js';
import type { JobDefinition } from './manifest.js';

/** Given/when/then specs of the manifest commands of the job decider (docs/manifest.md). */

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const ref = 'jobs.m.daily';
const jobId = jobIdFor(ws, ref);
const v1 = '11111111-1111-4111-8111-111111111111';
const v2 = '22222222-2222-4222-8222-222222222222';
const run1 = '33333333-3333-4333-8333-333333333333';
const run2 = '66666666-6666-4666-8666-666666666666';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 3 };
const now = '2026-12-04T10:00:00.000Z';

const def = (over: Partial<JobDefinition> = {}): JobDefinition => ({
  job_ref: ref,
  entry_point: {
    module: 'daily',
    function: 'daily',
    job_type: 'batch',
    launcher: 'dlt._workspace.deployment.launchers.job',
  },
  triggers: ['schedule:0 * * * *'],
  execute: { concurrency: 1 },
  interval: { start: '2026-12-01T00:00:00+00:00' },
  ...over,
});
const deploy = (over: Partial<DeployManifestJob> = {}): DeployManifestJob => ({
  type: 'DeployManifestJob',
  jobId,
  versionId: v1,
  definition: def(),
  engineVersion: 1,
  definitionHash: 'h1',
  deploymentModule: '__deployment__',
  now,
  actor: user,
  ...over,
});
const s = deciderSpec(jobDecider);
const fold = (events: JobEvent[]): JobState => events.reduce(jobDecider.evolve, jobDecider.initialState());
const decideOn = (events: JobEvent[], c: Parameters<typeof jobDecider.decide>[0]) =>
  jobDecider.decide(c, fold(events));
const created = decideOn([], deploy());
const fire = (fireAt: string, over: Partial<RequestRun> = {}): RequestRun => ({
  type: 'RequestRun',
  runId: run1,
  trigger: 'schedule',
  profile: null,
  deployment: dep,
  configuration: null,
  requestedBy: 'scheduler',
  fireAt,
  ...over,
});
const data = (e: JobEvent | undefined) => {
  assert.equal(e?.type, 'RunRequested');
  return (e as Extract<JobEvent, { type: 'RunRequested' }>).data;
};

describe('manifest jobs in the job decider', () => {
  it('DeployManifestJob creates the job named by its ref, with its schedule, zone and manifest', () => {
    assert.equal(created.length, 1);
    const e = created[0]!;
    assert.equal(e.type, 'JobCreated');
    const spec = e.type === 'JobCreated' ? e.data.spec : undefined;
    assert.equal(spec?.name, ref);
    assert.equal(spec?.entryPoint, 'daily.py');
    assert.equal(spec?.schedule, '0 * * * *');
    assert.equal(spec?.overlapPolicy, 'skip', 'concurrency 1');
    assert.deepEqual(spec?.manifest?.triggers, ['schedule:0 * * * *']);
    assert.equal(spec?.manifest?.defaultTrigger, 'schedule:0 * * * *');
    assert.equal(spec?.manifest?.refreshPropagation, 'auto');
  });

  it('DeployManifestJob: the same definition is unchanged (even under a new manifest hash); a change is a version', () => {
    s.given(created)
      .when(deploy({ definitionHash: 'h2', versionId: v2 }))
      .thenNothing();
    const updated = decideOn(created, deploy({ versionId: v2, definition: def({ triggers: ['every:5m'] }) }));
    assert.equal(updated[0]?.type, 'JobUpdated');
    const u = updated[0]!.type === 'JobUpdated' ? updated[0]!.data : undefined;
    assert.equal(u?.version, 2);
    assert.deepEqual(u?.changed, ['schedule', 'manifest']);
    assert.equal(u?.spec.schedule, `every:300@${now}`, 'every: anchored at the deploy');
  });

  it('DeployManifestJob keeps the anchor of an unchanged every: period across redeploys', () => {
    const every = decideOn([], deploy({ definition: def({ triggers: ['every:5m'], interval: undefined }) }));
    const later = decideOn(
      every,
      deploy({
        now: '2026-12-04T11:00:00.000Z',
        definition: def({ triggers: ['every:5m'], interval: undefined }),
      }),
    );
    assert.deepEqual(later, []);
  });

  it('DeployManifestJob refuses a definition dlt would refuse, naming the job', () => {
    s.given([])
      .when(deploy({ definition: def({ triggers: ['every:30s'] }) }))
      .thenThrows(DomainError, /job jobs\.m\.daily: trigger "every:30s": minimum period is 1 minute/);
    s.given([])
      .when(deploy({ definition: def({ triggers: ['schedule:0 * * * *', 'every:5m'] }) }))
      .thenThrows(DomainError, /at most one schedule: or every:/);
    s.given([])
      .when(deploy({ definition: def({ triggers: [], interval: { start: '2026-01-01T00:00:00Z' } }) }))
      .thenThrows(DomainError, /interval requires/);
    s.given([])
      .when(deploy({ definition: def({ triggers: ['http:'] }) }))
      .thenThrows(DomainError, /http: triggers are for interactive jobs only/);
    s.given([])
      .when(deploy({ definition: def({ triggers: [`job.fail:${ref}`], interval: undefined }) }))
      .thenThrows(DomainError, /its own fail/);
    s.given([])
      .when(deploy({ definition: def({ freshness: ['job.is_matching_interval_fresh:jobs.m.up'] }) }))
      .thenThrows(DomainError, /not enabled/);
    s.given([])
      .when(deploy({ definition: def(), minScheduleIntervalSeconds: 7200 }))
      .thenThrows(DomainError, /fires every 3600 s/);
  });

  it('ArchiveJob deactivates a manifest job and marks it archived; again: nothing; a run request is refused', () => {
    const archived = decideOn(created, { type: 'ArchiveJob', versionId: v2, actor: user });
    assert.equal(archived[0]?.type, 'JobUpdated');
    const spec = archived[0]!.type === 'JobUpdated' ? archived[0]!.data.spec : undefined;
    assert.equal(spec?.active, false);
    assert.equal(spec?.manifest?.archived, true);
    s.given([...created, ...archived])
      .when({ type: 'ArchiveJob', versionId: v2, actor: user })
      .thenNothing();
    s.given([...created, ...archived])
      .when(fire(now, { fireAt: undefined, triggerSource: `manual:${ref}` }))
      .thenThrows(DomainError, /is archived/);
    s.given([...created, ...archived])
      .when(fire('2026-12-04T11:00:00.000Z'))
      .thenNothing();
    // Listed again: un-archived (a new version).
    const back = decideOn([...created, ...archived], deploy({ versionId: v2 }));
    assert.equal(back[0]?.type === 'JobUpdated' && back[0].data.spec.manifest?.archived, false);
    s.given([]).when({ type: 'ArchiveJob', versionId: v2, actor: user }).thenThrows(NotFoundError);
  });

  it('a fire of an interval job: [interval.start, tick) first, then continuous from the last successful end', () => {
    const first = data(decideOn(created, fire('2026-12-04T10:00:00.000Z'))[0]);
    assert.deepEqual(first.interval, { start: '2026-12-01T00:00:00.000Z', end: '2026-12-04T10:00:00.000Z' });
    assert.equal(first.triggerSource, 'schedule:0 * * * *');
    // What the worker's launcher contract needs: the definition's entry point, the job's zone.
    assert.deepEqual(first.launch, {
      jobRef: ref,
      launcher: 'dlt._workspace.deployment.launchers.job',
      module: 'daily',
      function: 'daily',
      timezone: 'UTC',
      externalSchedulers: false,
    });
    const ran: JobEvent[] = [
      ...created,
      { type: 'RunRequested', data: first },
      { type: 'RunEnded', data: { runId: run1, status: 'completed' } },
    ];
    const next = data(decideOn(ran, fire('2026-12-04T11:00:00.000Z', { runId: run2 }))[0]);
    assert.deepEqual(next.interval, { start: '2026-12-04T10:00:00.000Z', end: '2026-12-04T11:00:00.000Z' });
    // A failed run does not move the interval: the next one covers the gap.
    const failed: JobEvent[] = [
      ...created,
      { type: 'RunRequested', data: first },
      { type: 'RunEnded', data: { runId: run1, status: 'failed' } },
    ];
    const retry = data(decideOn(failed, fire('2026-12-04T11:00:00.000Z', { runId: run2 }))[0]);
    assert.equal(retry.interval?.start, '2026-12-01T00:00:00.000Z');
  });

  it('MarkRefreshPending: the next run refreshes and restarts at interval.start; once pending, nothing more', () => {
    const first = data(decideOn(created, fire('2026-12-04T10:00:00.000Z'))[0]);
    const ran: JobEvent[] = [
      ...created,
      { type: 'RunRequested', data: first },
      { type: 'RunEnded', data: { runId: run1, status: 'completed' } },
    ];
    s.given(ran)
      .when({ type: 'MarkRefreshPending', cause: 'jobs.m.up' })
      .then([{ type: 'RefreshPending', data: { cause: 'jobs.m.up' } }]);
    const pending: JobEvent[] = [...ran, { type: 'RefreshPending', data: { cause: 'jobs.m.up' } }];
    s.given(pending).when({ type: 'MarkRefreshPending', cause: 'jobs.m.up' }).thenNothing();
    const next = data(decideOn(pending, fire('2026-12-04T11:00:00.000Z', { runId: run2 }))[0]);
    assert.equal(next.refresh, true);
    assert.equal(next.interval?.start, '2026-12-01T00:00:00.000Z');
  });

  const upstream = (over: Partial<UpstreamState> = {}): UpstreamState => ({
    jobRef: 'jobs.m.up',
    exists: true,
    kind: 'batch',
    schedule: null,
    timezone: 'UTC',
    defaultTrigger: null,
    lastIntervalEnd: '2026-12-04T09:00:00.000Z',
    ...over,
  });

  it('freshness as dlt checks it: never completed, schedule tick missed, every period elapsed, interactive', () => {
    const at = new Date('2026-12-04T10:30:00.000Z');
    assert.deepEqual(staleUpstreams([upstream()], at), [], 'manual upstream: any completion');
    assert.match(
      staleUpstreams([upstream({ lastIntervalEnd: null })], at)[0]!,
      /didn't process any intervals yet/,
    );
    assert.match(
      staleUpstreams([upstream({ schedule: '0 * * * *', defaultTrigger: 'schedule:0 * * * *' })], at)[0]!,
      /missing run for 2026-12-04T10:00:00.000Z/,
    );
    assert.deepEqual(
      staleUpstreams(
        [
          upstream({
            schedule: '0 * * * *',
            defaultTrigger: 'schedule:0 * * * *',
            lastIntervalEnd: '2026-12-04T10:00:00.000Z',
          }),
        ],
        at,
      ),
      [],
    );
    const every = { schedule: 'every:600@2026-12-04T00:00:00.000Z', defaultTrigger: 'every:10m' };
    assert.match(staleUpstreams([upstream(every)], at)[0]!, /has a missing run/);
    assert.deepEqual(
      staleUpstreams([upstream({ ...every, lastIntervalEnd: '2026-12-04T10:25:00.000Z' })], at),
      [],
    );
    assert.match(staleUpstreams([upstream({ kind: 'interactive' })], at)[0]!, /interactive/);
  });

  it('a fire gated by a stale upstream is a skipped run with the reason; a triggered run is refused (409)', () => {
    const gated = decideOn([], deploy({ definition: def({ freshness: ['job.is_fresh:jobs.m.up'] }) }));
    const skipped = decideOn(
      gated,
      fire('2026-12-04T10:00:00.000Z', { upstreams: [upstream({ lastIntervalEnd: null })] }),
    );
    assert.equal(skipped[0]?.type, 'ScheduledRunSkipped');
    assert.match(
      skipped[0]!.type === 'ScheduledRunSkipped' ? skipped[0]!.data.reason : '',
      /freshness: upstream jobs\.m\.up/,
    );
    const fresh = decideOn(gated, fire('2026-12-04T10:00:00.000Z', { upstreams: [upstream()] }));
    assert.equal(fresh[0]?.type, 'RunRequested');
    s.given(gated)
      .when(
        fire(now, {
          fireAt: undefined,
          trigger: 'api',
          triggerSource: 'job.success:jobs.m.up',
          upstreams: [upstream({ lastIntervalEnd: null })],
        }),
      )
      .thenThrows(DomainError, /didn't process any intervals yet/);
  });

  it('a triggered run of a job with concurrency 1 while one is active is refused (skipped_concurrency_limit)', () => {
    const running: JobEvent[] = [...created, ...decideOn(created, fire('2026-12-04T10:00:00.000Z'))];
    assert.throws(
      () =>
        decideOn(
          running,
          fire(now, { fireAt: undefined, trigger: 'api', runId: run2, triggerSource: `manual:${ref}` }),
        ),
      (err: unknown) => err instanceof DomainError && err.code === 'skipped_concurrency_limit',
    );
    const manual = data(
      decideOn(
        created,
        fire(now, { fireAt: undefined, trigger: 'api', triggerSource: `manual:${ref}`, now }),
      )[0],
    );
    assert.deepEqual(manual.interval, { start: now, end: now }, 'a manual run of a schedule job: [now, now)');
  });

  it('an interactive job (mcp) is an interactive run with its interface recorded', () => {
    const mcp = decideOn(
      [],
      deploy({
        definition: def({
          entry_point: {
            module: 'mcp_server',
            function: null,
            job_type: 'interactive',
            launcher: 'dlt._workspace.deployment.launchers.mcp',
          },
          triggers: ['http:'],
          interval: undefined,
          expose: { interface: 'mcp' },
        }),
      }),
    );
    const run = data(
      decideOn(mcp, fire(now, { fireAt: undefined, trigger: 'api', triggerSource: `manual:${ref}`, now }))[0],
    );
    assert.equal(run.kind, 'interactive');
    assert.equal(run.interface, 'mcp');
    assert.equal(run.profile, 'access');
  });

  it("a run's launch carries the definition's entry_point.config and require.dependency_groups as given", () => {
    const withExtras = decideOn(
      [],
      deploy({
        definition: def({
          entry_point: {
            module: 'daily',
            function: 'daily',
            job_type: 'batch',
            launcher: 'dlt._workspace.deployment.launchers.job',
            config: { greeting: 'hi', nested: { n: 1 } },
          },
          require: { dependency_groups: ['ml'], timezone: 'UTC' },
        }),
      }),
    );
    const run = data(decideOn(withExtras, fire('2026-12-04T11:00:00.000Z'))[0]);
    assert.deepEqual(run.launch?.config, { greeting: 'hi', nested: { n: 1 } });
    assert.deepEqual(run.launch?.dependencyGroups, ['ml']);
    // Neither in the definition: neither in the launch (the first test's exact launch has none).
    const plain = data(decideOn(created, fire('2026-12-04T11:00:00.000Z'))[0]);
    assert.equal(plain.launch && 'config' in plain.launch, false);
    assert.equal(plain.launch && 'dependencyGroups' in plain.launch, false);
  });
});
