import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { sealedBySchema } from './enums.js';

/**
 * Aggregate `runlog` (id = the run id), owned by the logs service: the completeness record of a
 * run's log in the LOGS stream. Its one event says the log is whole.
 */
export const RunLogsSealed = defineEvent(
  'RunLogsSealed',
  z.object({
    runId: z.string().uuid(),
    /** Lines 1..lineCount are in the stream (pieces of lines over 64 KiB count as lines). */
    lineCount: z.number().int().min(0),
    /** Bytes of text (UTF-8), without line ends. */
    bytes: z.number().int().min(0),
    /** The worker sealed it at the end of the run, or the logs service for a run whose worker could not. */
    sealedBy: sealedBySchema,
    sealedAt: z.string().datetime({ offset: true }),
  }),
);

export const runLogEvents = [RunLogsSealed] as const;
export type RunLogEvent = EventOf<typeof runLogEvents>;
