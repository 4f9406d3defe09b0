import { Body, Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  cancelRunReply,
  JobRpc,
  requestRunReply,
  RunRpc,
  runStatusSchema,
  type CancelRunRequest,
  type RequestRunRequest,
} from '#libs/contracts';
import { ApiDoc, ApiError, badRequest, notFound, parseInput } from '#libs/http';
import { rpc, SERVICE_CONTEXT, SERVICES_CLIENT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { parseApiToken } from '../auth/tokens.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { isUuid, JobsRepository, type RunRecord } from './jobs.repository.js';
import type { RunLogReader } from '#libs/run-logs';
import { RUN_LOG_READER } from './run-log.reader.js';
import {
  detailedRunResponse,
  listOf,
  logsResponse,
  toRun,
  toScript,
  type DetailedRunResponse,
} from './responses.js';
import { listQuery } from './scripts.controller.js';

const runsQuery = listQuery.extend({
  script_id: z.string().uuid().optional(),
  status: runStatusSchema.optional(),
});
const latestQuery = z.object({ script_id: z.string().uuid().optional() });

/**
 * CreateRunRequest: dlt-runtime 0.20.0 sends `script_id_or_name_or_secret`, the reference
 * `script_id_or_name`; both are accepted. `trigger` is Runway's (default: manual for a CLI login,
 * api for an API token).
 */
const createRunBody = z
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
    @Inject(JobsRepository) private readonly repo: JobsRepository,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(RUN_LOG_READER) private readonly logReader: RunLogReader,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @ApiDoc({
    summary: 'List runs, newest first; filter by script_id and status',
    response: listOf(detailedRunResponse),
  })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    await this.access.require(req, ws, 'read');
    const q = parseInput(runsQuery, query, 'query');
    const { rows, total } = await this.repo.runs(
      ws,
      { jobId: q.script_id?.toLowerCase(), status: q.status },
      q.limit,
      q.offset,
    );
    return { items: await this.detailedMany(rows), limit: q.limit, offset: q.offset, total };
  }

  @ApiDoc({
    summary: 'Request a run of a job (by id or name)',
    body: createRunBody,
    response: detailedRunResponse,
  })
  @Post()
  @HttpCode(201)
  async create(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const { principal } = await this.access.require(req, ws, 'write');
    const b = parseInput(createRunBody, body ?? {}, 'body');
    const ref = (b.script_id_or_name_or_secret ?? b.script_id_or_name)!;
    const job = await this.repo.job(ws, ref);
    if (!job) throw notFound(`script ${ref} not found`);
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const trigger = b.trigger ?? (parseApiToken(bearer) ? 'api' : 'manual');
    const reply = await rpc(
      this.client,
      JobRpc.requestRun,
      {
        workspaceId: ws,
        actor: principal.userId,
        commandId: key ? `run:${key}` : randomUUID(),
        jobId: job.id,
        trigger,
        profile: b.profile ?? null,
        entryPoint: job.entry_point,
      } satisfies RequestRunRequest,
      requestRunReply,
    );
    await this.repo.waitForProjection('runs', reply.seq);
    const run = await this.repo.run(ws, reply.runId);
    if (!run) throw new ApiError(503, `run ${reply.runId} was requested but is not readable yet, retry`);
    return (await this.detailedMany([run]))[0]!;
  }

  @ApiDoc({
    summary: 'The newest run (of a job with script_id); 404 when there is none',
    response: detailedRunResponse,
  })
  @Get('latest')
  async latest(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    await this.access.require(req, ws, 'read');
    const q = parseInput(latestQuery, query, 'query');
    const { rows } = await this.repo.runs(ws, { jobId: q.script_id?.toLowerCase() }, 1, 0);
    if (!rows[0])
      throw notFound(q.script_id ? `script ${q.script_id} has no runs` : `no runs in workspace ${ws}`);
    return (await this.detailedMany(rows))[0]!;
  }

  @ApiDoc({ summary: 'A run, with its status timeline', response: detailedRunResponse })
  @Get(':id')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    await this.access.require(req, ws, 'read');
    const run = await this.requireRun(ws, id);
    const [detailed] = await this.detailedMany([run]);
    const [timeline, pipelines] = await Promise.all([
      this.repo.timeline(run.id),
      this.repo.runPipelines(run.id),
    ]);
    return {
      ...detailed!,
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
      status_timeline: timeline.map((t) => ({
        status: t.status as DetailedRunResponse['status'],
        at: t.at.toISOString(),
        reason: t.reason,
      })),
    };
  }

  @ApiDoc({
    summary: 'A run and its output so far (null before its process started)',
    response: logsResponse,
  })
  @Get(':id/logs')
  async logs(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    await this.access.require(req, ws, 'read');
    const run = await this.requireRun(ws, id);
    const [log, [detailed]] = await Promise.all([this.logReader.text(ws, run.id), this.detailedMany([run])]);
    return { run: detailed!, logs: logsText(log?.text) };
  }

  @ApiDoc({
    summary: 'Cancel a run: pending → cancelled, active → cancelling → cancelled once its processes are gone',
    response: detailedRunResponse,
  })
  @Post(':id/cancel')
  @HttpCode(201)
  async cancel(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('id') id: string) {
    const { principal } = await this.access.require(req, ws, 'write');
    const run = await this.requireRun(ws, id);
    const reply = await rpc(
      this.client,
      RunRpc.cancel,
      { workspaceId: ws, actor: principal.userId, runId: run.id } satisfies CancelRunRequest,
      cancelRunReply,
    );
    await this.repo.waitForProjection('runs', reply.seq);
    const now = (await this.repo.run(ws, run.id)) ?? run;
    return (await this.detailedMany([now]))[0]!;
  }

  private async requireRun(ws: string, id: string): Promise<RunRecord> {
    if (!isUuid(id)) throw notFound(`run ${id} not found`);
    const run = await this.repo.run(ws, id);
    if (!run) throw notFound(`run ${id} not found`);
    return run;
  }

  private async detailedMany(rows: readonly RunRecord[]): Promise<DetailedRunResponse[]> {
    const jobs = new Map((await this.repo.jobsById(rows.map((r) => r.job_id))).map((j) => [j.id, j]));
    return rows.map((r) => {
      const job = jobs.get(r.job_id);
      if (!job) throw badRequest(`the script of run ${r.id} is missing`);
      return { ...toRun(r, this.publicUrl), script: toScript(job, this.publicUrl) };
    });
  }
}
