import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobSpec } from '#libs/contracts';
import type { JobEvent } from './job.events.js';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import {
  jobDecider,
  type EnsureJob,
  type NoteRunEnded,
  type RequestRun,
  type UpsertJob,
} from './job.decider.js';
import { jobIdFor, uuidv5 } from './job-id.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = jobIdFor(ws, 'pipelines/load.py');
const v1 = '11111111-1111-4111-8111-111111111111';
const v2 = '22222222-2222-4222-8222-222222222222';
const run1 = '33333333-3333-4333-8333-333333333333';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 3 };
const conf = {
  id: '55555555-5555-4555-8555-555555555555',
  version: 2,
  profiles: ['default', 'prod', 'staging'],
};

const spec: JobSpec = {
  name: 'pipelines/load.py',
  description: 'The pipelines/load.py script',
  entryPoint: 'pipelines/load.py',
  kind: 'batch',
  profile: null,
  schedule: null,
  active: true,
  timeoutSeconds: null,
  timezone: 'UTC',
  missedPolicy: 'run_once',
  overlapPolicy: 'skip',
};
const upsert = (over: Partial<UpsertJob> = {}): UpsertJob => ({
  type: 'UpsertJob',
  jobId,
  versionId: v2,
  name: spec.name,
  description: spec.description,
  entryPoint: spec.entryPoint,
  kind: 'batch',
  active: true,
  profile: null,
  schedule: null,
  actor: user,
  ...over,
});
const request = (over: Partial<RequestRun> = {}): RequestRun => ({
  type: 'RequestRun',
  runId: run1,
  trigger: 'manual',
  profile: null,
  deployment: dep,
  configuration: conf,
  requestedBy: user,
  ...over,
});
const created: JobEvent = {
  type: 'JobCreated',
  data: { jobId, versionId: v1, version: 1, spec, createdBy: user },
};
const requested = (
  n: number,
  over: Partial<Extract<JobEvent, { type: 'RunRequested' }>['data']> = {},
): JobEvent => ({
  type: 'RunRequested',
  data: {
    runId: run1,
    number: n,
    trigger: 'manual',
    profile: 'prod',
    jobVersion: 1,
    jobVersionId: v1,
    entryPoint: spec.entryPoint,
    kind: 'batch',
    timeoutSeconds: null,
    deployment: dep,
    configuration: { id: conf.id, version: conf.version },
    requestedBy: user,
    ...over,
  },
});
const s = deciderSpec(jobDecider);

describe('job decider', () => {
  it('derives a stable UUID v5 id from workspace and name', () => {
    // RFC 4122 test vector: uuid5(NAMESPACE_DNS, "python.org")
    assert.equal(
      uuidv5('python.org', '6ba7b810-9dad-11d1-80b4-00c04fd430c8'),
      '886313e1-3b8a-5372-9b90-0c9aee199e5d',
    );
    assert.equal(jobIdFor(ws, 'a/b.py'), jobIdFor(ws, 'a/b.py'));
    assert.notEqual(jobIdFor(ws, 'a/b.py'), jobIdFor('7b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11', 'a/b.py'));
  });

  it('creates version 1, active by default', () => {
    s.given([])
      .when(upsert({ versionId: v1, active: undefined }))
      .then([created]);
  });

  it('creates no version when nothing changed', () => {
    s.given([created]).when(upsert()).thenNothing();
  });

  it('bumps the version on every change and names the changed fields', () => {
    s.given([created])
      .when(upsert({ schedule: '*/5 * * * *', description: 'x' }))
      .then([
        {
          type: 'JobUpdated',
          data: {
            versionId: v2,
            version: 2,
            spec: { ...spec, schedule: '*/5 * * * *', description: 'x' },
            changed: ['description', 'schedule'],
            updatedBy: user,
          },
        },
      ]);
  });

  it('keeps omitted fields and clears null ones', () => {
    const scheduled: JobEvent = {
      type: 'JobUpdated',
      data: {
        versionId: v2,
        version: 2,
        spec: { ...spec, schedule: '0 3 * * *', profile: 'staging', timeoutSeconds: 60 },
        changed: ['x'],
        updatedBy: user,
      },
    };
    // `schedule` and `profile` omitted (as `dlt runtime schedule … cancel` omits profile): kept.
    s.given([created, scheduled])
      .when(upsert({ schedule: undefined, profile: undefined, timeoutSeconds: undefined }))
      .thenNothing();
    // null schedule clears it (launch / schedule cancel), the rest stays.
    const events = jobDecider.decide(
      upsert({ schedule: null, profile: undefined }),
      [created, scheduled].reduce(jobDecider.evolve, jobDecider.initialState()),
    );
    assert.equal(events.length, 1);
    const e = events[0]!;
    assert.equal(e.type, 'JobUpdated');
    if (e.type === 'JobUpdated') {
      assert.equal(e.data.spec.schedule, null);
      assert.equal(e.data.spec.profile, 'staging');
      assert.equal(e.data.spec.timeoutSeconds, 60);
      assert.deepEqual(e.data.changed, ['schedule']);
    }
  });

  it('refuses a new or changed schedule firing more often than the server allows (422)', () => {
    const limited = (schedule: string | null | undefined) =>
      upsert({ schedule, minScheduleIntervalSeconds: 60 });
    s.given([created])
      .when(limited('*/10 * * * * *'))
      .thenThrows(DomainError, /fires every 10 s; this server allows at most one fire every 60 s/);
    s.given([created])
      .when(limited('0,59 * * * * *'))
      .thenThrows(DomainError, /fires every 1 s/);
    const err = (() => {
      try {
        jobDecider.decide(
          limited('* * * * * *'),
          [created].reduce(jobDecider.evolve, jobDecider.initialState()),
        );
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof DomainError);
    assert.equal(err.status, 422);
    assert.equal(err.code, 'schedule_too_frequent');
    // Every minute is within the limit; so is a job scheduled before the limit, left as it is.
    assert.equal(
      jobDecider.decide(limited('* * * * *'), [created].reduce(jobDecider.evolve, jobDecider.initialState()))
        .length,
      1,
    );
    const fast: JobEvent = {
      type: 'JobUpdated',
      data: {
        versionId: v2,
        version: 2,
        spec: { ...spec, schedule: '*/5 * * * * *' },
        changed: ['schedule'],
        updatedBy: user,
      },
    };
    s.given([created, fast]).when(limited('*/5 * * * * *')).thenNothing();
    s.given([created, fast]).when(limited(undefined)).thenNothing();
  });

  it('refuses bad input', () => {
    s.given([])
      .when(upsert({ name: '' }))
      .thenThrows(DomainError, /name must not be empty/);
    s.given([])
      .when(upsert({ name: 'a?b' }))
      .thenThrows(DomainError, /must not contain/);
    s.given([])
      .when(upsert({ schedule: '   ' }))
      .thenThrows(DomainError, /schedule must not be empty/);
    s.given([])
      .when(upsert({ entryPoint: '../etc/passwd' }))
      .thenThrows(DomainError, /entry point/);
    s.given([])
      .when(upsert({ entryPoint: '/abs.py' }))
      .thenThrows(DomainError, /entry point/);
    s.given([])
      .when(upsert({ profile: 'a b' }))
      .thenThrows(DomainError, /profile/);
    s.given([])
      .when(upsert({ timeoutSeconds: 0 }))
      .thenThrows(DomainError, /timeout/);
  });

  it('numbers runs 1, 2, 3 with the default profile of the kind', () => {
    s.given([created])
      .when(request())
      .then([requested(1)]);
    s.given([created, requested(1), requested(2)])
      .when(request())
      .then([requested(3)]);
    const interactive: JobEvent = {
      type: 'JobUpdated',
      data: {
        versionId: v2,
        version: 2,
        spec: { ...spec, kind: 'interactive' },
        changed: ['kind'],
        updatedBy: user,
      },
    };
    s.given([created, interactive])
      .when(request({ trigger: 'api' }))
      .then([
        requested(1, {
          profile: 'access',
          kind: 'interactive',
          jobVersion: 2,
          jobVersionId: v2,
          trigger: 'api',
        }),
      ]);
  });

  it('uses the requested profile, else the job profile, and checks it exists', () => {
    s.given([created])
      .when(request({ profile: 'staging' }))
      .then([requested(1, { profile: 'staging' })]);
    s.given([created])
      .when(request({ profile: 'tests' }))
      .then([requested(1, { profile: 'tests' })]);
    s.given([created])
      .when(request({ profile: 'nope' }))
      .thenThrows(DomainError, /profile nope does not exist/);
  });

  it('refuses a run of a missing or inactive job, without a deployment, or with the entry point not deployed', () => {
    s.given([])
      .when(request())
      .thenThrows(NotFoundError, /job not found/);
    const off: JobEvent = {
      type: 'JobUpdated',
      data: {
        versionId: v2,
        version: 2,
        spec: { ...spec, active: false },
        changed: ['active'],
        updatedBy: user,
      },
    };
    s.given([created, off])
      .when(request())
      .thenThrows(DomainError, /inactive/);
    s.given([created])
      .when(request({ deployment: null }))
      .thenThrows(DomainError, /nothing is deployed/);
    s.given([created])
      .when(request({ entryPointChecked: { path: spec.entryPoint, deployed: false } }))
      .thenThrows(DomainError, /is not a file of deployment 3/);
    // A check of another path (the job changed meanwhile) or an unknown answer does not block.
    s.given([created])
      .when(request({ entryPointChecked: { path: 'other.py', deployed: false } }))
      .then([requested(1)]);
    s.given([created])
      .when(request({ entryPointChecked: { path: spec.entryPoint, deployed: undefined } }))
      .then([requested(1)]);
  });

  describe('built-in interactive jobs (runway:dashboard)', () => {
    const dashId = jobIdFor(ws, 'dashboard');
    const ensure: EnsureJob = {
      type: 'EnsureJob',
      jobId: dashId,
      versionId: v1,
      name: 'dashboard',
      description: 'built in',
      entryPoint: 'runway:dashboard',
      kind: 'interactive',
      actor: 'runway',
    };
    const dashSpec: JobSpec = {
      ...spec,
      name: 'dashboard',
      description: 'built in',
      entryPoint: 'runway:dashboard',
      kind: 'interactive',
    };
    const dashCreated: JobEvent = {
      type: 'JobCreated',
      data: { jobId: dashId, versionId: v1, version: 1, spec: dashSpec, createdBy: 'runway' },
    };

    it('creates the job once; a job of that name that exists or was deleted stays as it is', () => {
      s.given([]).when(ensure).then([dashCreated]);
      s.given([dashCreated]).when(ensure).thenNothing();
      s.given([dashCreated, { type: 'JobDeleted', data: { deletedBy: user } }])
        .when(ensure)
        .thenNothing();
      const own: JobEvent = {
        type: 'JobCreated',
        data: {
          jobId: dashId,
          versionId: v1,
          version: 1,
          spec: { ...spec, name: 'dashboard' },
          createdBy: user,
        },
      };
      s.given([own]).when(ensure).thenNothing();
    });

    it('runs without a deployment and without an entry file; a batch job may not use a built-in entry point', () => {
      s.given([dashCreated])
        .when(request({ deployment: null, entryPointChecked: { path: 'runway:dashboard', deployed: false } }))
        .then([
          {
            type: 'RunRequested',
            data: {
              runId: run1,
              number: 1,
              trigger: 'manual',
              profile: 'access',
              jobVersion: 1,
              jobVersionId: v1,
              entryPoint: 'runway:dashboard',
              kind: 'interactive',
              timeoutSeconds: null,
              deployment: null,
              configuration: { id: conf.id, version: conf.version },
              requestedBy: user,
            },
          },
        ]);
      s.given([])
        .when(upsert({ entryPoint: 'runway:dashboard', kind: 'batch' }))
        .thenThrows(DomainError, /built in.*only a job of kind interactive/);
    });
  });

  describe('scheduled fires and overlap', () => {
    const run2 = '66666666-6666-4666-8666-666666666666';
    const run3 = '77777777-7777-4777-8777-777777777777';
    const t1 = '2026-03-29T00:30:00.000Z';
    const t2 = '2026-03-29T00:31:00.000Z';
    const t3 = '2026-03-29T00:32:00.000Z';
    const scheduled = (overlapPolicy: JobSpec['overlapPolicy']): JobEvent => ({
      type: 'JobCreated',
      data: {
        jobId,
        versionId: v1,
        version: 1,
        spec: { ...spec, schedule: '* * * * *', overlapPolicy },
        createdBy: user,
      },
    });
    const fire = (fireAt: string, runId = run2): RequestRun =>
      request({ fireAt, runId, trigger: 'schedule', requestedBy: 'scheduler' });
    const fired = (n: number, fireAt: string, runId = run1): JobEvent =>
      requested(n, { runId, trigger: 'schedule', requestedBy: 'scheduler', fireAt });
    const ended = (runId = run1): JobEvent => ({ type: 'RunEnded', data: { runId, status: 'completed' } });
    const note = (over: Partial<NoteRunEnded> = {}): NoteRunEnded => ({
      type: 'NoteRunEnded',
      runId: run1,
      status: 'completed',
      nextRunId: run3,
      deployment: dep,
      configuration: conf,
      ...over,
    });
    const skippedRun = (n: number, fireAt: string, reason: RegExp) => ({ n, fireAt, reason });
    const assertSkipped = (events: readonly JobEvent[], want: ReturnType<typeof skippedRun>) => {
      assert.equal(events.length, 1);
      const e = events[0]!;
      assert.equal(e.type, 'ScheduledRunSkipped');
      if (e.type !== 'ScheduledRunSkipped') return;
      assert.equal(e.data.number, want.n);
      assert.equal(e.data.fireAt, want.fireAt);
      assert.equal(e.data.trigger, 'schedule');
      assert.match(e.data.reason, want.reason);
    };
    const decide = (given: JobEvent[], cmd: RequestRun | NoteRunEnded) =>
      jobDecider.decide(cmd, given.reduce(jobDecider.evolve, jobDecider.initialState()));

    it('fires once per fire time: a time at or before the last one, or an unscheduled / inactive / missing job, decides nothing', () => {
      s.given([scheduled('skip')])
        .when(fire(t1, run1))
        .then([fired(1, t1)]);
      s.given([scheduled('skip'), fired(1, t1), ended()])
        .when(fire(t1))
        .thenNothing();
      s.given([]).when(fire(t1)).thenNothing();
      s.given([created]).when(fire(t1)).thenNothing();
      // Not a fire time of the current schedule (planned before a change of schedule or zone).
      s.given([scheduled('skip')])
        .when(fire('2026-03-29T00:30:30.000Z'))
        .thenNothing();
      const hourly: JobEvent = {
        type: 'JobUpdated',
        data: {
          versionId: v2,
          version: 2,
          spec: { ...spec, schedule: '30 2 * * *', timezone: 'Europe/Berlin' },
          changed: ['schedule', 'timezone'],
          updatedBy: user,
        },
      };
      s.given([scheduled('skip'), hourly])
        .when(fire('2026-03-29T02:30:00.000Z'))
        .thenNothing();
      // Spring forward: 02:30 Berlin does not exist on 2026-03-29; it fires at 03:30 CEST (01:30Z).
      s.given([scheduled('skip'), hourly])
        .when(fire('2026-03-29T01:30:00.000Z', run1))
        .then([
          requested(1, {
            trigger: 'schedule',
            requestedBy: 'scheduler',
            fireAt: '2026-03-29T01:30:00.000Z',
            jobVersion: 2,
            jobVersionId: v2,
          }),
        ]);
    });

    it('skip (default): a fire while a run is active is a skipped run, numbered, with the reason', () => {
      assertSkipped(
        decide([scheduled('skip'), fired(1, t1)], fire(t2)),
        skippedRun(2, t2, /still active \(overlap policy skip\)/),
      );
      // Once the run ended, the next fire runs; run numbers continue after the skipped one.
      const skip = decide([scheduled('skip'), fired(1, t1)], fire(t2));
      s.given([scheduled('skip'), fired(1, t1), ...skip, ended()])
        .when(fire(t3, run3))
        .then([fired(3, t3, run3)]);
    });

    it('a manual run is never skipped, but counts as active for scheduled fires', () => {
      s.given([scheduled('skip'), fired(1, t1)])
        .when(request({ runId: run2 }))
        .then([requested(2, { runId: run2 })]);
      assertSkipped(decide([scheduled('skip'), requested(1)], fire(t1)), skippedRun(2, t1, /still active/));
    });

    it('queue: one fire waits and is requested when the active run ends; a second is skipped', () => {
      s.given([scheduled('queue'), fired(1, t1)])
        .when(fire(t2))
        .then([{ type: 'FireQueued', data: { fireAt: t2, activeRunId: run1 } }]);
      const queued: JobEvent = { type: 'FireQueued', data: { fireAt: t2, activeRunId: run1 } };
      assertSkipped(
        decide([scheduled('queue'), fired(1, t1), queued], fire(t3)),
        skippedRun(2, t3, /already queued/),
      );
      s.given([scheduled('queue'), fired(1, t1), queued])
        .when(note())
        .then([ended(), fired(2, t2, run3)]);
      // After that, the queue is empty and the requested run is the active one.
      s.given([scheduled('queue'), fired(1, t1), queued, ended(), fired(2, t2, run3)])
        .when(fire(t3))
        .then([{ type: 'FireQueued', data: { fireAt: t3, activeRunId: run3 } }]);
      // A queued fire that cannot run any more is recorded as skipped.
      const [end, skip] = decide([scheduled('queue'), fired(1, t1), queued], note({ deployment: null }));
      assert.deepEqual(end, ended());
      assertSkipped([skip!], skippedRun(2, t2, /nothing is deployed/));
    });

    it('a fire whose entry point is not a file of the deployment is a skipped run; one that is, fires', () => {
      const files = (...paths: string[]) => new Set(paths);
      assertSkipped(
        decide([scheduled('allow')], { ...fire(t1), deployedFiles: files('other.py') }),
        skippedRun(1, t1, /entry point pipelines\/load\.py of job .* is not a file of deployment 3/),
      );
      s.given([scheduled('allow')])
        .when({ ...fire(t1, run1), deployedFiles: files('pipelines/load.py', 'other.py') })
        .then([fired(1, t1)]);
      // The queued fire requested when the active run ends is checked the same way.
      const queued: JobEvent = { type: 'FireQueued', data: { fireAt: t2, activeRunId: run1 } };
      const [end, skip] = decide(
        [scheduled('queue'), fired(1, t1), queued],
        note({ deployedFiles: files('other.py') }),
      );
      assert.deepEqual(end, ended());
      assertSkipped([skip!], skippedRun(2, t2, /is not a file of deployment/));
    });

    it('queue: a deactivated or unscheduled job drops its queued fire', () => {
      const queued: JobEvent = { type: 'FireQueued', data: { fireAt: t2, activeRunId: run1 } };
      const off: JobEvent = {
        type: 'JobUpdated',
        data: {
          versionId: v2,
          version: 2,
          spec: { ...spec, schedule: null, overlapPolicy: 'queue' },
          changed: ['schedule'],
          updatedBy: user,
        },
      };
      s.given([scheduled('queue'), fired(1, t1), queued, off])
        .when(note())
        .then([ended()]);
    });

    it('allow: a fire runs even while a run is active', () => {
      s.given([scheduled('allow'), fired(1, t1)])
        .when(fire(t2))
        .then([fired(2, t2, run2)]);
    });

    it('notes a run end once; an unknown run decides nothing', () => {
      s.given([scheduled('skip'), fired(1, t1)])
        .when(note())
        .then([ended()]);
      s.given([scheduled('skip'), fired(1, t1), ended()])
        .when(note())
        .thenNothing();
      s.given([scheduled('skip')])
        .when(note())
        .thenNothing();
    });

    it('records a fire that cannot make a run (nothing deployed, unknown profile) as a skipped run', () => {
      assertSkipped(
        decide([scheduled('skip')], { ...fire(t1), deployment: null }),
        skippedRun(1, t1, /nothing is deployed/),
      );
      // …and the time counts as handled: the same fire again decides nothing.
      const skip = decide([scheduled('skip')], { ...fire(t1), deployment: null });
      s.given([scheduled('skip'), ...skip])
        .when(fire(t1))
        .thenNothing();
    });
  });
});

describe('job decider: deletion', () => {
  const s = deciderSpec(jobDecider);
  const deleted: JobEvent = { type: 'JobDeleted', data: { deletedBy: user } };
  const scheduled: JobSpec = { ...spec, schedule: '* * * * *', overlapPolicy: 'allow' };
  const createdScheduled: JobEvent = {
    type: 'JobCreated',
    data: { jobId, versionId: v1, version: 1, spec: scheduled, createdBy: user },
  };

  it('deletes an existing job; an unknown or already deleted one is not found', () => {
    s.given([created]).when({ type: 'DeleteJob', actor: user }).then([deleted]);
    s.given([])
      .when({ type: 'DeleteJob', actor: user })
      .thenThrows(NotFoundError, /job not found/);
    s.given([created, deleted]).when({ type: 'DeleteJob', actor: user }).thenThrows(NotFoundError);
  });

  it('a deleted job neither runs nor fires (a fire planned just before the delete makes no run)', () => {
    s.given([created, requested(1), deleted])
      .when(request())
      .thenThrows(NotFoundError, /job not found/);
    s.given([createdScheduled, deleted])
      .when(request({ trigger: 'schedule', fireAt: '2026-11-28T12:00:00.000Z' }))
      .thenNothing();
  });

  it('its name can be created again: versions and run numbers continue (none is used twice)', () => {
    const again = jobDecider.decide(
      upsert(),
      [created, requested(1), requested(2), deleted].reduce(jobDecider.evolve, jobDecider.initialState()),
    );
    assert.equal(again[0]?.type, 'JobCreated');
    assert.equal(again[0]?.type === 'JobCreated' && again[0].data.version, 2);
    const state = [created, requested(1), requested(2), deleted, ...again].reduce(
      jobDecider.evolve,
      jobDecider.initialState(),
    );
    const next = jobDecider.decide(request(), state);
    assert.equal(next[0]?.type === 'RunRequested' && next[0].data.number, 3);
  });
});
