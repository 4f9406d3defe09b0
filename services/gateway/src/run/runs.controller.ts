import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import { z } from 'zod';
import { runStatusSchema } from '#libs/contracts';
import { ApiDoc, badRequest, notFound, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { parseApiToken } from '../auth/tokens.js';
import { principalOf } from '../auth/workspace-access.js';
import {
  asScriptError,
  compatibleStatus,
  detailedRunResponse,
  listOf,
  logsResponse,
  toRun,
  toScript,
  type DetailedRunResponse,
} from '../job/responses.js';
import { listQuery } from '../page.js';
import { clientFlavour, type ClientFlavour } from '../compat.js';
import { LogsService } from '../log/logs.service.js';
import { RunsService, type RunOfJob } from './runs.service.js';
import { stateResponse, traceResponse } from './telemetry.js';

const runsQuery = listQuery
  .extend({
    script_id: z.string().uuid().optional(),
    /** Runway's: the runs of a job by id or name, a deleted job's included (404 if none has it). */
    script: z.string().min(1).max(1000).optional(),
    status: runStatusSchema.optional(),
    /** dlt-runtime 0.26.1's coarse filter: succeeded, failed, cancelled (other: no filter). */
    status_filter: z.enum(['succeeded', 'failed', 'cancelled', 'other']).optional(),
  })
  .refine((q) => q.script_id === undefined || q.script === undefined, {
    message: 'give script_id or script, not both',
  });
const latestQuery = z.object({ script_id: z.string().uuid().optional() });
/** BulkCancelRequest of dlt-runtime 0.26.1. */
const bulkCancelBody = z.object({
  job_refs: z.array(z.string().min(1).max(1000)).min(1).max(1000),
  dry_run: z.boolean().optional(),
});
const bulkCancelResponse = z.object({
  cancelled: z.array(
    z.object({
      job_ref: z.string(),
      previous_status: runStatusSchema,
      run_id: z.string().uuid(),
      run_number: z.number().int(),
    }),
  ),
  not_running: z.array(z.string()),
});
const coarseStatus = { succeeded: 'completed', failed: 'failed', cancelled: 'cancelled' } as const;

/**
 * The compatible body of RequestRun: dlt-runtime 0.20.0 sends `script_id_or_name_or_secret`, the
 * reference `script_id_or_name`; both are accepted. `trigger` is Runway's (default: manual for a
 * CLI login, api for an API token).
 */
const requestRunBody = z
  .object({
    script_id_or_name_or_secret: z.string().min(1).max(1000).optional(),
    script_id_or_name: z.string().min(1).max(1000).optional(),
    profile: z.string().max(64).nullable().optional(),
    trigger: z.enum(['manual', 'api']).optional(),
  })
  .refine((b) => b.script_id_or_name_or_secret !== undefined || b.script_id_or_name !== undefined, {
    message: 'script_id_or_name_or_secret (or script_id_or_name) is required',
  });

/**
 * The cumulative output as the dlt CLI wants it: it splits on "\n" and prints the lines from the
 * count it printed before, so the text must not end with "\n" (the empty last piece would count
 * as a printed line and hide the next one), and no output yet is null, not "".
 */
export function logsText(text: string | undefined): string | null {
  if (text === undefined) return null;
  const t = text.endsWith('\n') ? text.slice(0, -1) : text;
  return t.length === 0 ? null : t;
}

/** Runs: routes #19-#24 of the dlt runtime API. */
@Controller('api/v1/workspaces/:ws/runs')
export class RunsController {
  private readonly publicUrl: string;

  constructor(
    @Inject(RunsService) private readonly runs: RunsService,
    @Inject(LogsService) private readonly logService: LogsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @ApiDoc({
    summary:
      'List runs, newest first; filter by script_id (or script: a job id or name, a deleted job included) and status',
    response: listOf(detailedRunResponse),
  })
  @Authenticated({ workspace: 'read' })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(runsQuery, query, 'query');
    const status =
      q.status ??
      (q.status_filter && q.status_filter !== 'other' ? coarseStatus[q.status_filter] : undefined);
    const page =
      q.script === undefined
        ? await this.runs.list(ws, { jobId: q.script_id?.toLowerCase(), status }, q.limit, q.offset)
        : await this.runs.listOfJob(ws, q.script, { status }, q.limit, q.offset).catch(asScriptError);
    return {
      items: page.rows.map((r) => this.detailed(r, clientFlavour(req))),
      limit: q.limit,
      offset: q.offset,
      total: page.total,
    };
  }

  @ApiDoc({
    summary: 'Request a run of a job (by id or name)',
    body: requestRunBody,
    response: detailedRunResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post()
  @HttpCode(201)
  async requestRun(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(requestRunBody, body ?? {}, 'body');
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const run = await this.runs
      .requestRun(
        principalOf(req),
        ws,
        {
          jobIdOrName: (b.script_id_or_name_or_secret ?? b.script_id_or_name)!,
          profile: b.profile ?? null,
          trigger: b.trigger ?? (parseApiToken(bearer) ? 'api' : 'manual'),
        },
        key,
      )
      .catch(asScriptError);
    return this.detailed(run, clientFlavour(req));
  }

  @ApiDoc({
    summary:
      'Cancel the active runs of jobs by job_ref or name (dlt-runtime 0.26.1 bulk cancel); dry_run only lists them',
    body: bulkCancelBody,
    response: bulkCancelResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post('cancel')
  @HttpCode(201)
  async bulkCancel(@Req() req: AuthedRequest, @Param('ws') ws: string, @Body() body: unknown) {
    const b = parseInput(bulkCancelBody, body ?? {}, 'body');
    const r = await this.runs
      .cancelActiveRuns(principalOf(req), ws, b.job_refs, b.dry_run ?? false)
      .catch(asScriptError);
    return {
      cancelled: r.cancelled.map((c) => ({
        job_ref: c.jobRef,
        previous_status: compatibleStatus(c.previousStatus, clientFlavour(req)),
        run_id: c.runId,
        run_number: c.runNumber,
      })),
      not_running: r.notRunning,
    };
  }

  @ApiDoc({
    summary: 'The newest run (of a job with script_id); 404 when there is none',
    response: detailedRunResponse,
  })
  @Authenticated({ workspace: 'read' })
  @Get('latest')
  async latest(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(latestQuery, query, 'query');
    const { rows } = await this.runs.list(ws, { jobId: q.script_id?.toLowerCase() }, 1, 0);
    if (!rows[0])
      throw notFound(q.script_id ? `script ${q.script_id} has no runs` : `no runs in workspace ${ws}`);
    return this.detailed(rows[0], clientFlavour(req));
  }

  @ApiDoc({ summary: 'A run, with its status timeline', response: detailedRunResponse })
  @Authenticated({ workspace: 'read' })
  @Get(':id')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    const flavour = clientFlavour(req);
    const { timeline, pipelines, telemetry, ...of } = await this.runs.details(ws, id);
    return {
      ...this.detailed(of, flavour),
      pipelines: pipelines.map((p) => ({
        name: p.pipeline_name,
        destination: p.destination,
        dataset_name: p.dataset_name,
        row_counts: p.row_counts,
        loads: p.loads.map((l) => ({ load_id: l.loadId, completed: l.completed })),
        tables: p.tables.map((t) => ({
          schema: t.schema,
          name: t.name,
          parent: t.parent,
          write_disposition: t.writeDisposition,
          rows: p.row_counts[t.name] ?? 0,
          columns: t.columns.map((c) => ({ name: c.name, data_type: c.dataType, nullable: c.nullable })),
        })),
      })),
      // What the run's pipelines sent its beacon (docs/runs-telemetry.md).
      traces: telemetry.traces.map(traceResponse),
      pipeline_states: telemetry.states.map(stateResponse),
      // Runway's own statuses (skipped, finalizing) except for dlt-runtime 0.26.1, whose models
      // know no `finalizing`.
      status_timeline: timeline.map((t) => ({
        status: flavour === 'runtime-026' ? compatibleStatus(t.status, flavour) : t.status,
        at: t.at.toISOString(),
        reason: t.reason,
      })),
    };
  }

  @ApiDoc({
    summary: 'A run and its output so far (null before its process started)',
    response: logsResponse,
  })
  @Authenticated({ workspace: 'read' })
  @Get(':id/logs')
  async logs(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    const of = await this.runs.get(ws, id);
    const log = await this.logService.text(ws, of.run);
    return { run: this.detailed(of, clientFlavour(req)), logs: logsText(log?.text) };
  }

  @ApiDoc({
    summary: 'Cancel a run: pending → cancelled, active → cancelling → cancelled once its processes are gone',
    response: detailedRunResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post(':id/cancel')
  @HttpCode(201)
  async cancel(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    return this.detailed(await this.runs.cancel(principalOf(req), ws, id), clientFlavour(req));
  }

  private detailed({ run, job }: RunOfJob, flavour: ClientFlavour): DetailedRunResponse {
    if (!job) throw badRequest(`the script of run ${run.id} is missing`);
    return { ...toRun(run, this.publicUrl, flavour), script: toScript(job, this.publicUrl) };
  }
}
