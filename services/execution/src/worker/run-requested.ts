import type { JobEvent } from '#libs/contracts';

/** The payload of RunRequested (libs/contracts). */
export type RunRequestedData = Extract<JobEvent, { type: 'RunRequested' }>['data'];

/** A RunRequested event as the worker takes it: its payload, its job, and when it was stored. */
export interface RunRequestedEvent {
  workspaceId: string;
  jobId: string;
  /** When RunRequested was stored. */
  requestedAt: Date;
  data: RunRequestedData;
}
