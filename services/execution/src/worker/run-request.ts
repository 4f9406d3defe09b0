import type { JobEvent } from '#libs/contracts';

export type RunRequestedData = Extract<JobEvent, { type: 'RunRequested' }>['data'];

/** A run request as a worker receives it. */
export interface RunRequest {
  workspaceId: string;
  jobId: string;
  /** When RunRequested was stored. */
  requestedAt: Date;
  data: RunRequestedData;
}
