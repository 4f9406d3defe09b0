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

export const runPrivateEvents = [RunFinalizing, RunCancelRequested, RunSetUp, RunResultReported] as const;

/** Every event of the run aggregate: what its decider folds and decides. */
export type RunEvent = RunIntegrationEvent | EventOf<typeof runPrivateEvents>;

/** The registry of a store that writes or reads run aggregates: the integration events and the run's own. */
export function executionRegistry(): EventRegistry {
  return integrationRegistry(...runPrivateEvents);
}
