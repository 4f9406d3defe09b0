import { describe, it } from 'node:test';
import type { JobManifest, JobSpec } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { deciderSpec } from '#libs/testing';
import type { JobEvent } from './job.events.js';
import { jobDecider, type ChangeWebhook, type RequestRun } from './job.decider.js';
import { jobIdFor } from './job-id.js';

const ws = '6b1f5c1e-1f7e-4a4b-9a55-3c2f1d0e9a11';
const jobId = jobIdFor(ws, 'jobs.hooks.on_hook');
const v1 = '11111111-1111-4111-8111-111111111111';
const run1 = '33333333-3333-4333-8333-333333333333';
const user = '0d5c2a7e-2b4f-4c3a-8e1d-5f6a7b8c9d01';
const dep = { id: '44444444-4444-4444-8444-444444444444', version: 3 };
const h1 = 'a'.repeat(64);
const h2 = 'b'.repeat(64);

const manifest = (over: Partial<JobManifest> = {}): JobManifest => ({
  jobRef: 'jobs.hooks.on_hook',
  engineVersion: 2,
  definition: {},
  definitionHash: 'h',
  deploymentModule: '__deployment__',
  triggers: ['webhook:'],
  defaultTrigger: null,
  launcher: 'dlt._workspace.deployment.launchers.module',
  module: 'hook',
  function: null,
  jobType: 'batch',
  interface: null,
  interval: null,
  freshness: [],
  refreshPropagation: 'auto',
  externalSchedulers: false,
  tags: [],
  pipelineName: null,
  manual: true,
  archived: false,
  ...over,
});
const spec = (m: Partial<JobManifest> = {}): JobSpec => ({
  name: 'jobs.hooks.on_hook',
  description: '',
  entryPoint: 'hook.py',
  kind: 'batch',
  profile: null,
  schedule: null,
  active: true,
  timeoutSeconds: null,
  timezone: 'UTC',
  missedPolicy: 'run_once',
  overlapPolicy: 'skip',
  manifest: manifest(m),
});
const created = (m: Partial<JobManifest> = {}): JobEvent => ({
  type: 'JobCreated',
  data: { jobId, versionId: v1, version: 1, spec: spec(m), createdBy: user },
});
const hook = (action: ChangeWebhook['action'], tokenHash?: string): ChangeWebhook => ({
  type: 'ChangeWebhook',
  action,
  ...(tokenHash ? { tokenHash } : {}),
  actor: user,
});
const enabled: JobEvent = { type: 'WebhookEnabled', data: { tokenHash: h1, by: user } };
const request = (over: Partial<RequestRun> = {}): RequestRun => ({
  type: 'RequestRun',
  runId: run1,
  trigger: 'webhook',
  profile: null,
  deployment: dep,
  configuration: null,
  requestedBy: 'webhook',
  now: '2026-12-04T18:00:00.000Z',
  webhookHash: h1,
  payload: '{"order":42}',
  ...over,
});
const s = deciderSpec(jobDecider);

describe('job decider: webhooks', () => {
  it('enables a webhook with the hash of its token; enabling again decides nothing', () => {
    s.given([created()]).when(hook('enable', h1)).then([enabled]);
    s.given([created(), enabled]).when(hook('enable', h2)).thenNothing();
  });

  it('refuses a webhook for a job whose manifest declares no webhook: trigger, or an archived one', () => {
    s.given([created({ triggers: ['every:5m'] })])
      .when(hook('enable', h1))
      .thenThrows(DomainError, /no webhook: trigger/);
    s.given([created({ archived: true })])
      .when(hook('enable', h1))
      .thenThrows(DomainError, /archived/);
  });

  it('rotates to a new hash (naming the old one); rotate needs a webhook', () => {
    s.given([created(), enabled])
      .when(hook('rotate', h2))
      .then([{ type: 'WebhookRotated', data: { tokenHash: h2, previousHash: h1, by: user } }]);
    s.given([created()])
      .when(hook('rotate', h2))
      .thenThrows(DomainError, /no webhook to rotate/);
  });

  it('revokes the webhook; revoking none decides nothing', () => {
    s.given([created(), enabled])
      .when(hook('revoke'))
      .then([{ type: 'WebhookRevoked', data: { previousHash: h1, by: user } }]);
    s.given([created()]).when(hook('revoke')).thenNothing();
  });

  it('a webhook run carries trigger webhook, the trigger string and the body', () => {
    s.given([created(), enabled])
      .when(request())
      .then([
        {
          type: 'RunRequested',
          data: {
            runId: run1,
            number: 1,
            trigger: 'webhook',
            profile: 'prod',
            jobVersion: 1,
            jobVersionId: v1,
            entryPoint: 'hook.py',
            kind: 'batch',
            timeoutSeconds: null,
            deployment: dep,
            configuration: null,
            requestedBy: 'webhook',
            triggerSource: 'webhook:',
            interval: { start: '2026-12-04T18:00:00.000Z', end: '2026-12-04T18:00:00.000Z' },
            refresh: false,
            payload: '{"order":42}',
            // A manifest job's run carries the launcher contract (docs/manifest.md).
            launch: {
              jobRef: 'jobs.hooks.on_hook',
              launcher: 'dlt._workspace.deployment.launchers.module',
              module: 'hook',
              function: null,
              timezone: 'UTC',
              externalSchedulers: false,
            },
          },
        },
      ]);
  });

  it('a webhook run with a rotated or revoked token is not found', () => {
    const rotated: JobEvent = { type: 'WebhookRotated', data: { tokenHash: h2, previousHash: h1, by: user } };
    s.given([created(), enabled, rotated])
      .when(request())
      .thenThrows(NotFoundError, /no such webhook/);
    s.given([created(), enabled, { type: 'WebhookRevoked', data: { previousHash: h1, by: user } }])
      .when(request())
      .thenThrows(NotFoundError, /no such webhook/);
    s.given([created()])
      .when(request())
      .thenThrows(NotFoundError, /no such webhook/);
  });
});
