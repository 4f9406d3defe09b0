import type { JobSpec } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import type { JobState } from '../job.state.js';

/** The job's spec; a job that does not exist (never created, or deleted) is 404 `job not found`. */
export function requireJob(state: JobState): JobSpec {
  const spec = state.spec;
  if (!state.exists || !spec) throw new NotFoundError('job not found');
  return spec;
}

/** A manifest job its deployment module no longer lists is archived: 409 `archived` (with why, if given). */
export function refuseArchived(spec: JobSpec, why?: string): void {
  if (spec.manifest?.archived)
    throw new DomainError(`job ${spec.name} is archived${why ? ` (${why})` : ''}`, 409, 'archived');
}
