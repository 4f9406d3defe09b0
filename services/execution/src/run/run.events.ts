import { z } from 'zod';
import { integrationRegistry, type RunEvent as RunIntegrationEvent } from '#libs/contracts';
import { defineEvent, type EventOf, type EventRegistry } from '#libs/events';

const isoTime = z.string().datetime({ offset: true });

/**
 * The run aggregate's private events: nobody outside execution reads them. Its other events
 * (claimed, started, ended, pipelines reported) are integration events in libs/contracts.
 */

/** The user process exited (at `endedAt`); the worker collects what it left. */
export const RunFinalizing = defineEvent(
  'RunFinalizing',
  z.object({ exitCode: z.number().int().nullable(), signal: z.string().nullable(), endedAt: isoTime }),
);

/** A cancel was asked for a run in progress; its worker ends the process and confirms (RunCancelled). */
export const RunCancelRequested = defineEvent('RunCancelRequested', z.object({ by: z.string().min(1) }));

/**
 * The run's `setup` phase ended (docs/dependencies.md): the deployment's declared dependencies are
 * in an environment (built now, or reused: `cacheHit`), or their install failed (`ok` false; a
 * RunFailed with reason setup_error follows). The run stays `starting` meanwhile.
 */
export const RunSetUp = defineEvent(
  'RunSetUp',
  z.object({
    phase: z.literal('setup'),
    source: z.enum(['uv.lock', 'pyproject.toml', 'requirements.txt', 'requirements.json']),
    environment: z.string().regex(/^[0-9a-f]{64}$/),
    ok: z.boolean(),
    cacheHit: z.boolean(),
    durationMs: z.number().int().nonnegative(),
  }),
);

/** At most this many characters of a job result's JSON are stored (the rest is cut, `truncated`). */
export const MAX_RUN_RESULT_CHARS = 65_536;

/**
 * What a manifest job's function returned, as dlt's job launcher got it (docs/manifest.md, "Job
 * results"): the Python type name and the value as JSON text (known secrets masked), at most
 * MAX_RUN_RESULT_CHARS characters (`truncated`: the value was longer; `bytes`: its full size).
 * Once per run, while the worker finalizes it.
 */
export const runResultSchema = z.object({
  jobRef: z.string().min(1).max(500),
  type: z.string().min(1).max(200),
  value: z.string().max(MAX_RUN_RESULT_CHARS),
  truncated: z.boolean(),
  bytes: z.number().int().nonnegative(),
});
export type RunResult = z.infer<typeof runResultSchema>;
export const RunResultReported = defineEvent('RunResultReported', runResultSchema);

/** Traces and pipeline states a run's beacon stores (each a bounded summary), per run at most this many of each. */
export const MAX_RUN_TELEMETRY_REPORTS = 50;
const text = (max: number) => z.string().max(max);

/**
 * A summary of one dlt pipeline trace the run sent to its beacon (`PUT {RUNTIME__DLTHUB_DSN}/trace`,
 * docs/runs-telemetry.md): timings per step, load ids, row counts per table, exceptions; every string
 * with the run's known secrets masked, every list bounded (`truncated`: something was left out).
 */
export const runTraceSummarySchema = z.object({
  transactionId: text(200),
  pipelineName: text(200),
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  durationMs: z.number().int().nonnegative().nullable(),
  dltVersion: text(50).nullable(),
  destination: text(200).nullable(),
  datasetName: text(200).nullable(),
  failed: z.boolean(),
  steps: z
    .array(
      z.object({
        step: text(50),
        startedAt: isoTime.nullable(),
        finishedAt: isoTime.nullable(),
        durationMs: z.number().int().nonnegative().nullable(),
        failed: z.boolean(),
      }),
    )
    .max(20),
  loadIds: z.array(text(100)).max(50),
  rowCounts: z.record(text(200), z.number().int().nonnegative()),
  exceptions: z.array(z.object({ step: text(50), type: text(200).nullable(), message: text(2000) })).max(10),
  truncated: z.boolean(),
});
export type RunTraceSummary = z.infer<typeof runTraceSummarySchema>;
export const RunTraceReported = defineEvent('RunTraceReported', runTraceSummarySchema);

/**
 * A summary of the pipeline state a run sent (`PUT {RUNTIME__DLTHUB_DSN}/state`, after a load):
 * destination, dataset and each schema's name, version and tables (no credentials: the displayable
 * ones dlt sends are left out).
 */
export const runStateSummarySchema = z.object({
  pipelineName: text(200),
  destination: text(200).nullable(),
  datasetName: text(200).nullable(),
  schemas: z
    .array(
      z.object({
        name: text(200),
        version: z.number().int().nullable(),
        versionHash: text(100).nullable(),
        tables: z.array(text(200)).max(200),
      }),
    )
    .max(20),
  truncated: z.boolean(),
});
export type RunStateSummary = z.infer<typeof runStateSummarySchema>;
export const RunStateReported = defineEvent('RunStateReported', runStateSummarySchema);

export const runPrivateEvents = [
  RunFinalizing,
  RunCancelRequested,
  RunSetUp,
  RunResultReported,
  RunTraceReported,
  RunStateReported,
] as const;

/** Every event of the run aggregate: what its decider folds and decides. */
export type RunEvent = RunIntegrationEvent | EventOf<typeof runPrivateEvents>;

/** The registry of a store that writes or reads run aggregates: the integration events and the run's own. */
export function executionRegistry(): EventRegistry {
  return integrationRegistry(...runPrivateEvents);
}
