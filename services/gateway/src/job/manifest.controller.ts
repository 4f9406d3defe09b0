import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Put, Req } from '@nestjs/common';
import { z } from 'zod';
import { jobManifestSchema, type ManifestOutcomeJob } from '#libs/contracts';
import { ApiDoc, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import type { JobRow } from './jobs.service.js';
import type { JobVersionRow } from '../../../scheduling/src/job/read-models/jobs.queries.js';
import { clientFlavour } from '../compat.js';
import { RunsService } from '../run/runs.service.js';
import { ManifestService, type BackfillResult } from './manifest.service.js';
import { NIL_UUID, scriptResponse, toRun, toScript } from './responses.js';

/** DeployManifestRequest of dlt-runtime 0.26.1 (engine 1); engine 2 definitions are taken too. */
export const deployManifestBody = z.object({
  job_definition_engine_version: z.union([z.literal(1), z.literal(2)]),
  job_definition_hash: z.string().max(200),
  jobs: z.array(z.record(z.string(), z.unknown())).max(500),
  deployment_module: z.string().min(1).max(500).nullable().optional(),
  description: z.string().max(10_000).nullable().optional(),
  dry_run: z.boolean().optional(),
});

/** TriggerJobsRequest of dlt-runtime 0.26.1. */
const triggerBody = z
  .object({
    job_refs: z.array(z.string().min(1).max(500)).max(500).nullable().optional(),
    selectors: z.array(z.string().min(1).max(600)).max(50).nullable().optional(),
    profile: z.string().max(64).nullable().optional(),
    refresh: z.boolean().optional(),
    dry_run: z.boolean().optional(),
  })
  .refine((b) => (b.job_refs?.length ?? 0) + (b.selectors?.length ?? 0) > 0, {
    message: 'give job_refs or selectors',
  });

export const backfillBody = z
  .object({
    from: z.string().datetime({ offset: true }),
    to: z.string().datetime({ offset: true }),
    /** Also the intervals already done (and those another backfill holds). */
    reprocess: z.boolean().optional(),
  })
  .strict();

/** A backfill as the API shows it: its slices, runs and progress (docs/manifest.md "Backfills"). */
export function backfillResponse({ backfill: b, jobRef }: BackfillResult) {
  const count = (st: string) => b.slices.filter((x) => x.status === st).length;
  return {
    backfill_id: b.id,
    job_id: b.job_id,
    job_ref: jobRef,
    from: b.from_at.toISOString(),
    to: b.to_at.toISOString(),
    mode: b.mode,
    concurrency: b.concurrency,
    status: b.status,
    reason: b.reason,
    skipped_done: b.skipped_done,
    progress: {
      total: b.slices.length,
      pending: count('pending'),
      requested: count('requested'),
      completed: count('completed'),
      failed: count('failed'),
      cancelled: count('cancelled'),
    },
    slices: b.slices.map((x, i) => ({
      index: i,
      interval_start: x.start,
      interval_end: x.end,
      status: x.status,
      run_id: x.run_id,
      attempts: x.attempts,
    })),
    runs: b.slices.flatMap((x) =>
      x.run_id ? [{ run_id: x.run_id, interval_start: x.start, interval_end: x.end, status: x.status }] : [],
    ),
    requested_by: b.requested_by,
    created_at: b.created_at.toISOString(),
    ended_at: b.ended_at ? b.ended_at.toISOString() : null,
  };
}

/** ScriptResponse of 0.26.1: Runway's script plus the manifest fields. */
export const manifestScriptResponse = scriptResponse.extend({
  job_ref: z.string(),
  job_definition: z.record(z.string(), z.unknown()),
  job_definition_engine_version: z.number().int(),
  job_definition_hash: z.string(),
  triggers: z.array(z.string()),
  default_trigger: z.string().nullable(),
  deployment_module: z.string().nullable(),
  freshness: z.array(z.string()),
  pipeline_name: z.string().nullable(),
  archived: z.boolean(),
});

/** The 0.26.1 ScriptResponse of a job (a job without a manifest: its name as job_ref, no definition). */
export function toManifestScript(j: JobRow, publicUrl: string): z.infer<typeof manifestScriptResponse> {
  const parsed = jobManifestSchema.safeParse(j.manifest);
  const m = parsed.success ? parsed.data : null;
  // A job without a manifest gets the definition derived from it (jobDefinitionOf): 0.26.1 parses it.
  const base = toScript(j, publicUrl);
  return {
    ...base,
    job_ref: m?.jobRef ?? base.job_ref,
    job_definition: m?.definition ?? base.job_definition,
    job_definition_engine_version: m?.engineVersion ?? 1,
    job_definition_hash: m?.definitionHash ?? base.job_definition_hash,
    triggers: m?.triggers ?? base.triggers,
    default_trigger: m ? m.defaultTrigger : base.default_trigger,
    deployment_module: m?.deploymentModule ?? null,
    freshness: (m?.freshness ?? []).map((r) => `job.is_fresh:${r}`),
    pipeline_name: m?.pipelineName ?? null,
    archived: m?.archived ?? false,
  };
}

/** The dlthub client's JobResponse (engine 2 `-deploy`) of a job as the read model shows it. */
export function toJobResponse(j: JobRow, publicUrl: string) {
  const s = toManifestScript(j, publicUrl);
  const m = jobManifestSchema.safeParse(j.manifest);
  return {
    id: s.id,
    workspace_id: s.workspace_id,
    created_at: s.date_added,
    updated_at: s.date_updated,
    created_by: s.created_by,
    job_ref: s.job_ref,
    name: s.job_ref,
    description: s.description,
    job_definition: s.job_definition,
    job_definition_engine_version: s.job_definition_engine_version,
    job_definition_hash: s.job_definition_hash,
    job_type: m.success ? m.data.jobType : j.kind,
    job_url: j.kind === 'interactive' ? s.script_url : null,
    public_url: null,
    public_secret: null,
    profile: s.profile ?? '',
    version: s.version,
    default_trigger: s.default_trigger,
    deployment_module: s.deployment_module,
    freshness: s.freshness,
    triggers: s.triggers,
    pipeline_name: s.pipeline_name,
    interval_start: null,
    interval_end: null,
    is_archived: s.archived,
    is_paused: !s.active,
    next_scheduled_run_at: s.next_scheduled_run,
  };
}

/** The dlthub client's JobVersionResponse of a stored job version. */
export function toJobVersionResponse(v: JobVersionRow) {
  const m = jobManifestSchema.safeParse(v.manifest);
  const d = m.success ? m.data : null;
  return {
    id: v.id,
    job_id: v.job_id,
    version: v.version,
    created_at: v.created_at.toISOString(),
    updated_at: v.created_at.toISOString(),
    created_by: /^[0-9a-f-]{36}$/i.test(v.created_by) ? v.created_by : NIL_UUID,
    job_ref: d?.jobRef ?? v.name,
    name: d?.jobRef ?? v.name,
    description: v.description,
    job_definition: d?.definition ?? {},
    job_definition_engine_version: d?.engineVersion ?? 1,
    job_definition_hash: d?.definitionHash ?? '',
    job_type: d?.jobType ?? v.kind,
    triggers: d?.triggers ?? (v.schedule ? [`schedule:${v.schedule}`] : []),
    default_trigger: d ? d.defaultTrigger : null,
    deployment_module: d?.deploymentModule ?? null,
    freshness: (d?.freshness ?? []).map((r) => `job.is_fresh:${r}`),
    pipeline_name: d?.pipelineName ?? null,
    max_run_time_seconds: v.timeout_seconds ?? 0,
    profile: v.profile ?? '',
    provider: 'local',
  };
}

/**
 * Manifest deployments (dlt-runtime 0.26.1 `PUT …/deployment_manifest`), triggers by job ref or
 * selector (`POST …/scripts/trigger`) and backfills of interval jobs (docs/manifest.md).
 */
@Controller('api/v1/workspaces/:ws')
export class ManifestController {
  private readonly publicUrl: string;

  constructor(
    @Inject(ManifestService) private readonly manifest: ManifestService,
    @Inject(RunsService) private readonly runs: RunsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @ApiDoc({
    summary: 'Deploy a manifest: create, update and archive its jobs (dry_run: decide without storing)',
    body: deployManifestBody,
  })
  @Authenticated({ workspace: 'write' })
  @Put('deployment_manifest')
  async deploy(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(deployManifestBody, body, 'body');
    const { reply, jobs } = await this.manifest.deploy(
      principalOf(req),
      ws,
      {
        engineVersion: b.job_definition_engine_version,
        definitionHash: b.job_definition_hash,
        deploymentModule: b.deployment_module ?? null,
        jobs: b.jobs,
        dryRun: b.dry_run ?? false,
      },
      key,
    );
    const script = (o: ManifestOutcomeJob) => {
      const row = jobs.get(o.jobId);
      return row
        ? toManifestScript(row, this.publicUrl)
        : { id: o.jobId, job_ref: o.jobRef, version: o.version };
    };
    return {
      added: reply.added.map(script),
      updated: reply.updated.map((o) => ({ script: script(o), previous_version: o.previousVersion })),
      unchanged: reply.unchanged.map(script),
      archived: reply.archived.map(script),
      warnings: reply.warnings,
      deployment_module: b.deployment_module ?? null,
    };
  }

  @ApiDoc({
    summary:
      'Deploy a manifest (dlthub client, engine 2): a job receipt with created / updated / unchanged / archived jobs',
    body: deployManifestBody,
  })
  @Authenticated({ workspace: 'write' })
  @Post('-deploy')
  @HttpCode(200)
  async deployWorkspace(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(deployManifestBody, body, 'body');
    const p = principalOf(req);
    const { reply, jobs, previousVersions } = await this.manifest.deploy(
      p,
      ws,
      {
        engineVersion: b.job_definition_engine_version,
        definitionHash: b.job_definition_hash,
        deploymentModule: b.deployment_module ?? null,
        jobs: b.jobs,
        dryRun: b.dry_run ?? false,
      },
      key,
    );
    const deployed = (o: ManifestOutcomeJob, outcome: 'created' | 'updated' | 'unchanged' | 'archived') => {
      const row = jobs.get(o.jobId);
      const previous = previousVersions.get(o.jobId);
      // A dry run stores nothing: a job it would create has no row, its answer comes from its definition.
      const definition = b.jobs.find((d) => d.job_ref === o.jobRef) ?? {};
      const now = new Date().toISOString();
      const job = row
        ? toJobResponse(row, this.publicUrl)
        : {
            id: o.jobId,
            workspace_id: ws,
            created_at: now,
            updated_at: now,
            created_by: /^[0-9a-f-]{36}$/i.test(p.userId) ? p.userId : NIL_UUID,
            job_ref: o.jobRef,
            name: o.jobRef,
            job_definition: definition,
            job_definition_engine_version: b.job_definition_engine_version,
            job_definition_hash: b.job_definition_hash,
            job_type: 'batch',
            job_url: null,
            public_url: null,
            profile: '',
            version: o.version,
          };
      return {
        job,
        outcome,
        ...(previous ? { previous_version: toJobVersionResponse(previous) } : {}),
      };
    };
    return {
      job_receipt: {
        succeeded: [
          ...reply.added.map((o) => deployed(o, 'created')),
          ...reply.updated.map((o) => deployed(o, 'updated')),
          ...reply.archived.map((o) => deployed(o, 'archived')),
        ],
        failed: [],
        skipped: reply.unchanged.map((o) => deployed(o, 'unchanged')),
      },
      warnings: reply.warnings,
      deployment_module: b.deployment_module ?? null,
    };
  }

  @ApiDoc({
    summary: 'Trigger jobs by job ref or selector (tag:, schedule:*, pipeline_name:, …)',
    body: triggerBody,
  })
  @Authenticated({ workspace: 'write' })
  @Post('scripts/trigger')
  @HttpCode(201)
  async trigger(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(triggerBody, body, 'body');
    const reply = await this.manifest.trigger(
      principalOf(req),
      ws,
      {
        jobRefs: b.job_refs ?? [],
        selectors: b.selectors ?? [],
        profile: b.profile ?? null,
        refresh: b.refresh ?? false,
        dryRun: b.dry_run ?? false,
      },
      key,
    );
    // The runs are in the runs read model (the service waited for it): dlt-runtime 0.26.1's
    // `launch`/`serve` print the new run's number and status from `run`.
    const flavour = clientFlavour(req);
    const runs = await this.runs.byIds(
      ws,
      reply.triggered.flatMap((t) => (t.runId ? [t.runId] : [])),
    );
    const triggered = reply.triggered.map((t) => {
      const run = t.runId ? runs.get(t.runId) : undefined;
      return {
        job_ref: t.jobRef,
        script_id: t.jobId,
        matched_triggers: t.matchedTriggers,
        trigger: t.trigger,
        status: t.status,
        run_id: t.runId,
        run: run ? toRun(run, this.publicUrl, flavour) : null,
        ...(t.reason ? { reason: t.reason } : {}),
      };
    });
    return { triggered };
  }

  @ApiDoc({
    summary:
      'Backfill an interval job: one slice per interval of its time trigger in [from, to) not done yet, paced by interval.mode',
    body: backfillBody,
  })
  @Authenticated({ workspace: 'write' })
  @Post('scripts/:ref/backfill')
  @HttpCode(201)
  async backfill(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('ref') ref: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(backfillBody, body, 'body');
    return backfillResponse(await this.manifest.backfill(principalOf(req), ws, ref, b, key));
  }

  @ApiDoc({ summary: 'A backfill: its slices, their runs and its progress' })
  @Authenticated({ workspace: 'read' })
  @Get('backfills/:id')
  async getBackfill(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    return backfillResponse(await this.manifest.getBackfill(principalOf(req), ws, id));
  }

  @ApiDoc({ summary: 'Cancel a backfill: pending slices are never requested, runs in flight are cancelled' })
  @Authenticated({ workspace: 'write' })
  @Post('backfills/:id/cancel')
  @HttpCode(200)
  async cancelBackfill(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    return backfillResponse(await this.manifest.changeBackfill(principalOf(req), ws, id, 'cancel'));
  }

  @ApiDoc({ summary: 'Resume a failed backfill: failed slices retried, the rest paced as before' })
  @Authenticated({ workspace: 'write' })
  @Post('backfills/:id/resume')
  @HttpCode(200)
  async resumeBackfill(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    return backfillResponse(await this.manifest.changeBackfill(principalOf(req), ws, id, 'resume'));
  }
}
