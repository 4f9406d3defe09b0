import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { appTypeSchema, runEndReasonSchema, runFailureReasonSchema } from './enums.js';

const uuid = z.string().uuid();
const isoTime = z.string().datetime({ offset: true });

const stderrTail = z.array(z.string().max(2000)).max(100);

/**
 * Aggregate `run`, id = the run id. Its first event is the claim of a worker (RunStarting, written
 * with expected sequence 0, so exactly one worker wins) or a cancel/skip of a run nobody claimed.
 */
export const RunStarting = defineEvent(
  'RunStarting',
  z.object({
    runId: uuid,
    jobId: uuid,
    number: z.number().int().min(1),
    workerId: z.string().min(1).max(200),
    /** Host name of the worker, for operators. */
    host: z.string().max(300),
  }),
);
/** The user process was spawned (at `startedAt`); reported once `starting` was visible long enough. */
export const RunStarted = defineEvent(
  'RunStarted',
  z.object({ pid: z.number().int(), command: z.string().max(4000), startedAt: isoTime }),
);
export const RunCompleted = defineEvent(
  'RunCompleted',
  z.object({
    exitCode: z.number().int(),
    durationMs: z.number().int().min(0).nullable(),
    /** `idle`: an interactive app stopped for having no open connection (absent on older events: `exited`). */
    reason: runEndReasonSchema.optional(),
  }),
);
/**
 * An interactive run's app answered HTTP on its port: the run is `running` (appended with RunStarted).
 * `address` is the worker's endpoint for this one app (HTTP and WebSocket; each request carries the
 * header `x-runway-app-key`, see docs/interactive.md); it is dead once the run ended.
 */
export const RunAppReady = defineEvent(
  'RunAppReady',
  z.object({
    runId: uuid,
    jobId: uuid,
    appType: appTypeSchema,
    address: z.object({ host: z.string().min(1).max(300), port: z.number().int().min(1).max(65535) }),
    /** The path prefix the app is served under at that address (`/i/<jobId>`): the gateway maps its own prefix to it. */
    basePath: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*[^/]$/)
      .max(300),
    readyAt: isoTime,
    /** The idle stop in force for this app (seconds without an open connection). */
    idleTimeoutSeconds: z.number().int().min(1),
  }),
);
export const RunFailed = defineEvent(
  'RunFailed',
  z.object({
    reason: runFailureReasonSchema,
    message: z.string().max(4000),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    durationMs: z.number().int().min(0).nullable(),
    /** Last lines of stderr (known secret values masked). */
    stderrTail,
    /** When the process ended, if it ran and that is known. */
    endedAt: isoTime.nullable(),
  }),
);
export const RunCancelled = defineEvent(
  'RunCancelled',
  z.object({
    by: z.string().min(1).nullable(),
    /** How it ended: never started, or the process group is gone. */
    message: z.string().max(4000),
    exitCode: z.number().int().nullable(),
    signal: z.string().nullable(),
    durationMs: z.number().int().min(0).nullable(),
    endedAt: isoTime.nullable(),
  }),
);
export const RunSkipped = defineEvent('RunSkipped', z.object({ reason: z.string().min(1).max(2000) }));

const name = z.string().min(1).max(1000);
export const pipelineColumnSchema = z.object({
  name,
  dataType: z.string().max(100).nullable(),
  nullable: z.boolean(),
});
export const pipelineTableSchema = z.object({
  schema: name,
  name,
  /** The parent table of a child table (nested records), else null. */
  parent: name.nullable(),
  /** The dlt resource that fills the table (top-level tables; child tables inherit it). */
  resource: name.nullable().optional(),
  writeDisposition: z.string().max(100).nullable(),
  columns: z.array(pipelineColumnSchema).max(2000),
});
export const pipelineReportSchema = z.object({
  name,
  destination: z.string().max(200).nullable(),
  datasetName: z.string().max(1000).nullable(),
  schemaNames: z.array(name).max(100),
  /** When the pipeline's last trace (the one this run made) started. */
  traceStartedAt: z.string().max(100).nullable(),
  /** Rows per table normalized by this run. */
  rowCounts: z.record(z.string(), z.number().int().min(0)),
  loads: z.array(z.object({ loadId: z.string().min(1).max(100), completed: z.boolean() })).max(1000),
  /** How long the pipeline's last trace (this run's extract, normalize and load) took, ms. */
  durationMs: z.number().int().min(0).nullable().optional(),
  /** How long its load step took, ms. */
  loadDurationMs: z.number().int().min(0).nullable().optional(),
  tables: z.array(pipelineTableSchema).max(2000),
});
export type PipelineReport = z.infer<typeof pipelineReportSchema>;

/** What dlt left after the run: per pipeline the run touched, its tables (with parents), loads and row counts. */
export const PipelineReported = defineEvent(
  'PipelineReported',
  z.object({
    pipelines: z.array(pipelineReportSchema).max(50),
    warnings: z.array(z.string().max(2000)).max(20),
  }),
);

/**
 * The run events other services and outside subscribers consume. The run's private events
 * (RunFinalizing, RunCancelRequested) live with its aggregate: services/execution/src/run/run.events.ts.
 */
export const runEvents = [
  RunStarting,
  RunStarted,
  RunAppReady,
  RunCompleted,
  RunFailed,
  RunCancelled,
  RunSkipped,
  PipelineReported,
] as const;
export type RunEvent = EventOf<typeof runEvents>;
