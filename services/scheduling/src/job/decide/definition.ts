/** The job's definition: create / update (a new version), the built-in jobs Runway ensures, deletion. */

import type { JobKind } from '#libs/contracts';
import { DomainError, NotFoundError } from '#libs/eventstore';
import { SPEC_FIELDS, specOf, type SpecChange } from '../job-spec.js';
import type { JobEvent } from '../job.events.js';
import type { JobState } from '../job.state.js';

/**
 * Upsert of a job by name: the spec fields as `SpecChange` says (`undefined` keeps, `null` clears),
 * creating the job or a new version of it.
 */
export interface UpsertJob extends SpecChange {
  type: 'UpsertJob';
  jobId: string;
  /** Id the new version gets, if the upsert changes anything. */
  versionId: string;
  actor: string;
}

/**
 * Creates a job Runway gives every workspace (the interactive `dashboard`) unless a job of that
 * name exists or ever existed: a user's own job of the name, or their deletion of it, stands.
 */
export interface EnsureJob {
  type: 'EnsureJob';
  jobId: string;
  versionId: string;
  name: string;
  description: string;
  entryPoint: string;
  kind: JobKind;
  actor: string;
}

/** Deletes the job: no more fires or runs; history stays; the name can be created again. */
export interface DeleteJob {
  type: 'DeleteJob';
  actor: string;
}

/** Creates the job, or a new version of it when the upsert changes anything. */
export function decideUpsertJob(command: UpsertJob, state: JobState): JobEvent[] {
  const spec = specOf(command, state.spec);
  if (!state.exists) {
    return [
      {
        type: 'JobCreated',
        data: {
          jobId: command.jobId,
          versionId: command.versionId,
          version: state.version + 1,
          spec,
          createdBy: command.actor,
        },
      },
    ];
  }
  if (state.spec && spec.name !== state.spec.name)
    throw new DomainError(`job ${state.jobId} is named ${state.spec.name}, not ${spec.name}`);
  const changed = SPEC_FIELDS.filter((f) => spec[f] !== state.spec?.[f]);
  if (changed.length === 0) return [];
  return [
    {
      type: 'JobUpdated',
      data: {
        versionId: command.versionId,
        version: state.version + 1,
        spec,
        changed: [...changed],
        updatedBy: command.actor,
      },
    },
  ];
}

export function decideEnsureJob(command: EnsureJob, state: JobState): JobEvent[] {
  if (state.version > 0) return [];
  const { type: _t, actor, ...spec } = command;
  return decideUpsertJob({ ...spec, type: 'UpsertJob', actor }, state);
}

export function decideDeleteJob(command: DeleteJob, state: JobState): JobEvent[] {
  if (!state.exists) throw new NotFoundError('job not found');
  return [{ type: 'JobDeleted', data: { deletedBy: command.actor } }];
}
