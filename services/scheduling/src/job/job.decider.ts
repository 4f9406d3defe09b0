/**
 * The job aggregate's decider: the command union and the dispatch. Each `decide<Command>` lives
 * with its capability in `decide/` (definition, runs, manifest, backfills, links, webhooks; shared
 * guards in `decide/guards.ts`); the state and `evolve` live in `job.state.ts`, below them, since
 * the capabilities fold their own events while deciding.
 */

import type { Decider } from '#libs/eventstore';
import {
  decideCancelBackfill,
  decideResumeBackfill,
  decideStartBackfill,
  type CancelBackfill,
  type ResumeBackfill,
  type StartBackfill,
} from './decide/backfills.js';
import {
  decideDeleteJob,
  decideEnsureJob,
  decideUpsertJob,
  type DeleteJob,
  type EnsureJob,
  type UpsertJob,
} from './decide/definition.js';
import {
  decideChangePublicLink,
  decideWakeJob,
  type ChangePublicLink,
  type WakeJob,
} from './decide/links.js';
import {
  decideArchiveJob,
  decideDeployManifestJob,
  decideMarkRefreshPending,
  type ArchiveJob,
  type DeployManifestJob,
  type MarkRefreshPending,
} from './decide/manifest.js';
import type { RequestRun } from './decide/run-request.js';
import { decideNoteRunEnded, decideRequestRun, type NoteRunEnded } from './decide/runs.js';
import { decideChangeWebhook, type ChangeWebhook } from './decide/webhooks.js';
import type { JobEvent } from './job.events.js';
import { evolve, initialState, type JobState } from './job.state.js';

export type {
  ArchiveJob,
  CancelBackfill,
  ChangePublicLink,
  ChangeWebhook,
  DeleteJob,
  DeployManifestJob,
  EnsureJob,
  JobState,
  MarkRefreshPending,
  NoteRunEnded,
  RequestRun,
  ResumeBackfill,
  StartBackfill,
  UpsertJob,
  WakeJob,
};
export { staleUpstreams, type UpstreamState } from './decide/freshness.js';

export type JobCommand =
  | UpsertJob
  | RequestRun
  | NoteRunEnded
  | DeleteJob
  | DeployManifestJob
  | ArchiveJob
  | MarkRefreshPending
  | StartBackfill
  | CancelBackfill
  | ResumeBackfill
  | EnsureJob
  | ChangePublicLink
  | ChangeWebhook
  | WakeJob;

function decide(command: JobCommand, state: JobState): JobEvent[] {
  switch (command.type) {
    case 'UpsertJob':
      return decideUpsertJob(command, state);
    case 'RequestRun':
      return decideRequestRun(command, state);
    case 'NoteRunEnded':
      return decideNoteRunEnded(command, state);
    case 'DeleteJob':
      return decideDeleteJob(command, state);
    case 'ChangePublicLink':
      return decideChangePublicLink(command, state);
    case 'ChangeWebhook':
      return decideChangeWebhook(command, state);
    case 'WakeJob':
      return decideWakeJob(command, state);
    case 'EnsureJob':
      return decideEnsureJob(command, state);
    case 'DeployManifestJob':
      return decideDeployManifestJob(command, state);
    case 'ArchiveJob':
      return decideArchiveJob(command, state);
    case 'MarkRefreshPending':
      return decideMarkRefreshPending(command, state);
    case 'StartBackfill':
      return decideStartBackfill(command, state);
    case 'CancelBackfill':
      return decideCancelBackfill(command, state);
    case 'ResumeBackfill':
      return decideResumeBackfill(command, state);
    default: {
      const never: never = command;
      throw new Error(`unknown job command ${JSON.stringify(never)}`);
    }
  }
}

export const jobDecider: Decider<JobState, JobCommand, JobEvent> = { initialState, evolve, decide };
