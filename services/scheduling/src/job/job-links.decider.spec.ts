import { describe, it } from 'node:test';
import type { JobSpec } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { JobEvent } from './job.events.js';
import { jobDecider, type ChangePublicLink, type WakeJob } from './job.decider.js';
import { jobIdFor } from './job-id.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = jobIdFor(ws, 'notebook.py');
const v1 = '11111111-1111-4111-8111-111111111111';
const run1 = '33333333-3333-4333-8333-333333333333';
const run2 = '66666666-6666-4666-8666-666666666666';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 3 };
const h1 = 'a'.repeat(64);
const h2 = 'b'.repeat(64);

const spec: JobSpec = {
  name: 'notebook.py',
  description: '',
  entryPoint: 'notebook.py',
  kind: 'interactive',
  profile: null,
  schedule: null,
  active: true,
  timeoutSeconds: null,
  timezone: 'UTC',
  missedPolicy: 'run_once',
  overlapPolicy: 'skip',
};
const created = (over: Partial<JobSpec> = {}): JobEvent => ({
  type: 'JobCreated',
  data: { jobId, versionId: v1, version: 1, spec: { ...spec, ...over }, createdBy: user },
});
const link = (action: ChangePublicLink['action'], tokenHash?: string): ChangePublicLink => ({
  type: 'ChangePublicLink',
  action,
  ...(tokenHash ? { tokenHash } : {}),
  actor: user,
});
const enabled: JobEvent = { type: 'PublicLinkEnabled', data: { tokenHash: h1, by: user } };
const wake = (over: Partial<WakeJob> = {}): WakeJob => ({
  type: 'WakeJob',
  runId: run2,
  deployment: dep,
  configuration: null,
  ...over,
});
const requested = (runId: string, n: number, trigger: 'manual' | 'wake'): JobEvent => ({
  type: 'RunRequested',
  data: {
    runId,
    number: n,
    trigger,
    profile: 'access',
    jobVersion: 1,
    jobVersionId: v1,
    entryPoint: 'notebook.py',
    kind: 'interactive',
    timeoutSeconds: null,
    deployment: dep,
    configuration: null,
    requestedBy: trigger === 'wake' ? 'wake' : user,
  },
});
const s = deciderSpec(jobDecider);

describe('job decider: public links', () => {
  it('enables a link with the hash of its token', () => {
    s.given([created()]).when(link('enable', h1)).then([enabled]);
  });

  it('enabling an enabled link decides nothing (the caller says so)', () => {
    s.given([created(), enabled]).when(link('enable', h2)).thenNothing();
  });

  it('rotates to a new hash, naming the old one (whose sockets the gateways close)', () => {
    s.given([created(), enabled])
      .when(link('rotate', h2))
      .then([{ type: 'PublicLinkRotated', data: { tokenHash: h2, previousHash: h1, by: user } }]);
  });

  it('refuses to rotate a link that does not exist', () => {
    s.given([created()])
      .when(link('rotate', h2))
      .thenThrows(DomainError, /no public link to rotate/);
  });

  it('revokes the current link; revoking none decides nothing', () => {
    s.given([created(), enabled])
      .when(link('revoke'))
      .then([{ type: 'PublicLinkRevoked', data: { previousHash: h1, by: user } }]);
    s.given([created(), enabled, { type: 'PublicLinkRevoked', data: { previousHash: h1, by: user } }])
      .when(link('revoke'))
      .thenNothing();
  });

  it('gives batch jobs no link, and needs a hash to make one', () => {
    s.given([created({ kind: 'batch' })])
      .when(link('enable', h1))
      .thenThrows(DomainError, /only interactive jobs/);
    s.given([created()]).when(link('enable')).thenThrows(DomainError, /hash/);
  });

  it('a deleted job loses its link and cannot get one', () => {
    s.given([created(), enabled, { type: 'JobDeleted', data: { deletedBy: user } }])
      .when(link('enable', h2))
      .thenThrows(NotFoundError);
  });
});

describe('job decider: wake', () => {
  it('requests a wake run of a stopped app', () => {
    s.given([created()])
      .when(wake())
      .then([requested(run2, 1, 'wake')]);
  });

  it('requests nothing while a run of the job is active (one wake at a time)', () => {
    s.given([created(), requested(run1, 1, 'wake')])
      .when(wake())
      .thenNothing();
  });

  it('wakes again once the active run ended', () => {
    s.given([
      created(),
      requested(run1, 1, 'manual'),
      { type: 'RunEnded', data: { runId: run1, status: 'completed' } },
    ])
      .when(wake())
      .then([requested(run2, 2, 'wake')]);
  });

  it('refuses batch jobs and jobs that cannot run', () => {
    s.given([created({ kind: 'batch' })])
      .when(wake())
      .thenThrows(DomainError, /only interactive jobs/);
    s.given([created()])
      .when(wake({ deployment: null }))
      .thenThrows(DomainError, /nothing is deployed/);
  });
});
