/** Interactive jobs: the public link and waking the app on a visit. */

import type { VersionRef } from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import type { JobEvent } from '../job.events.js';
import type { JobState } from '../job.state.js';
import { requireJob } from './guards.js';
import { checkRunnable, runRequested, type RequestRun } from './run-request.js';

/** Enable, rotate or revoke the job's public link; the gateway made the token, only its hash comes here. */
export interface ChangePublicLink {
  type: 'ChangePublicLink';
  action: 'enable' | 'rotate' | 'revoke';
  /** SHA-256 of the new token (enable, rotate). */
  tokenHash?: string;
  actor: string;
}

/**
 * A visit to an interactive job whose app is not running: a run with trigger `wake`, unless a run
 * of the job is still active (then nothing: one wake at a time, however many visitors).
 */
export interface WakeJob {
  type: 'WakeJob';
  runId: string;
  deployment: VersionRef | null;
  configuration: (VersionRef & { profiles: readonly string[] }) | null;
}

/**
 * Public links exist for interactive jobs only. Enable on an enabled link and revoke without one
 * decide nothing (idempotent); rotate needs a link. The token's hash is all the event holds.
 */
export function decideChangePublicLink(command: ChangePublicLink, state: JobState): JobEvent[] {
  const spec = requireJob(state);
  const current = state.publicLinkHash;
  if (command.action === 'revoke')
    return current === null
      ? []
      : [{ type: 'PublicLinkRevoked', data: { previousHash: current, by: command.actor } }];
  if (spec.kind !== 'interactive')
    throw new DomainError(`job ${spec.name} is a batch job: only interactive jobs have public links`);
  if (!command.tokenHash) throw new DomainError('a public link needs the hash of its token');
  if (command.action === 'enable')
    return current !== null
      ? []
      : [{ type: 'PublicLinkEnabled', data: { tokenHash: command.tokenHash, by: command.actor } }];
  if (current === null)
    throw new DomainError(`job ${spec.name} has no public link to rotate: enable one first`);
  return [
    {
      type: 'PublicLinkRotated',
      data: { tokenHash: command.tokenHash, previousHash: current, by: command.actor },
    },
  ];
}

/** A wake run of an interactive job, unless one of its runs is active (then nothing). */
export function decideWakeJob(command: WakeJob, state: JobState): JobEvent[] {
  const spec = requireJob(state);
  if (spec.kind !== 'interactive')
    throw new DomainError(`job ${spec.name} is a batch job: only interactive jobs are woken`);
  if (state.activeRuns.length > 0) return [];
  const request: RequestRun = {
    type: 'RequestRun',
    runId: command.runId,
    trigger: 'wake',
    profile: null,
    deployment: command.deployment,
    configuration: command.configuration,
    requestedBy: 'wake',
  };
  const checked = checkRunnable(request, spec);
  if (typeof checked === 'string') throw new DomainError(checked);
  return [runRequested(request, state, spec, checked)];
}
