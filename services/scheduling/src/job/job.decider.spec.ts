import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobEvent, JobSpec } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import { jobDecider, type RequestRun, type UpsertJob } from './job.decider.js';
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
});
