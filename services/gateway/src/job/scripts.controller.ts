import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Query,
  Req,
} from '@nestjs/common';
import { z } from 'zod';
import { jobKindSchema, missedPolicySchema, overlapPolicySchema } from '#libs/contracts';
import { ApiDoc, notFound, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { RunRecord } from '../../../execution/src/run/read-models/runs.queries.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { joinSegments, listQuery } from '../page.js';
import { InteractiveService } from '../interactive/interactive.service.js';
import { JobsService, type JobRow } from './jobs.service.js';
import { clientFlavour, storedPublicUrl, type ClientFlavour } from '../compat.js';
import {
  asScriptError,
  detailedScriptResponse,
  listOf,
  scriptResponse,
  scriptVersionResponse,
  toRun,
  toScript,
  toScriptVersion,
} from './responses.js';

/** CreateScriptRequest of the compatible API, plus Runway's `timeout_seconds`. Unknown keys are ignored. */
const createScriptBody = z.object({
  name: z.string().min(1).max(500),
  description: z.string().max(10_000).default(''),
  entry_point: z.string().min(1).max(1024),
  script_type: jobKindSchema,
  active: z.boolean().optional(),
  profile: z.string().max(64).nullable().optional(),
  schedule: z.string().max(200).nullable().optional(),
  timeout_seconds: z.number().int().nullable().optional(),
  /** Runway: IANA time zone of the schedule (default UTC). */
  timezone: z.string().min(1).max(100).optional(),
  /** Runway: fire times missed while the scheduler was down (default run_once). */
  missed_policy: missedPolicySchema.optional(),
  /** Runway: a scheduled fire while a run of the job is still active (default skip). */
  overlap_policy: overlapPolicySchema.optional(),
});

const scriptsQuery = listQuery.extend({
  /** dlt-runtime 0.26.1: archived jobs are deleted jobs, never listed (`true`: none). */
  archived: z.enum(['all', 'false', 'true']).optional(),
});

const deletedScriptResponse = z.object({ id: z.string().uuid(), name: z.string(), deleted: z.literal(true) });

/**
 * Jobs ("scripts" in the compatible API): routes #13-#18 of the dlt runtime API. Names may hold
 * slashes (`pipelines/load.py`), so `scripts/*` is matched greedily: the whole rest names a job if
 * one has that name or id; otherwise a trailing `/versions[/…]` addresses that job's versions.
 */
@Controller('api/v1/workspaces/:ws/scripts')
export class ScriptsController {
  private readonly publicUrl: string;

  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(InteractiveService) private readonly interactive: InteractiveService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @ApiDoc({
    summary: 'List jobs (scripts), by name, each with its last run',
    response: listOf(detailedScriptResponse),
  })
  @Authenticated({ workspace: 'read' })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(scriptsQuery, query, 'query');
    if (q.archived === 'true') return { items: [], limit: q.limit, offset: q.offset, total: 0 };
    const page = await this.jobs.list(ws, q.limit, q.offset);
    return {
      items: page.rows.map((j) => this.detailed(j.job, j.lastRun, clientFlavour(req))),
      limit: q.limit,
      offset: q.offset,
      total: page.total,
    };
  }

  @ApiDoc({
    summary: 'Create or update a job by name; every change makes a new version',
    body: createScriptBody,
    response: scriptResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post()
  @HttpCode(201)
  async upsert(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const b = parseInput(createScriptBody, body, 'body');
    const job = await this.jobs.upsert(
      principalOf(req),
      ws,
      {
        name: b.name,
        description: b.description,
        entryPoint: b.entry_point,
        kind: b.script_type,
        active: b.active,
        profile: b.profile,
        schedule: b.schedule,
        timeoutSeconds: b.timeout_seconds,
        timezone: b.timezone,
        missedPolicy: b.missed_policy,
        overlapPolicy: b.overlap_policy,
      },
      key,
    );
    return toScript(job, this.publicUrl);
  }

  @ApiDoc({
    summary:
      'A job by id or name (names may contain "/"), or its versions: …/versions, …/versions/latest, …/versions/{id or number}',
    response: detailedScriptResponse,
  })
  @Authenticated({ workspace: 'read' })
  @Get('*path')
  async get(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('path') path: string | string[],
    @Query() query: unknown,
  ) {
    const segs = joinSegments(path);
    const full = segs.join('/');
    const job = await this.jobs.find(ws, full);
    if (job) return this.detailed(job, await this.jobs.lastRun(job.id), clientFlavour(req));
    const n = segs.length;
    if (n >= 2 && segs[n - 1] === 'versions') {
      const owner = await this.jobs.find(ws, segs.slice(0, -1).join('/'));
      if (owner) {
        const q = parseInput(listQuery, query, 'query');
        const { rows, total } = await this.jobs.versions(owner.id, q.limit, q.offset);
        return { items: rows.map(toScriptVersion), limit: q.limit, offset: q.offset, total };
      }
    }
    if (n >= 3 && segs[n - 2] === 'versions') {
      const owner = await this.jobs.find(ws, segs.slice(0, -2).join('/'));
      if (owner) {
        const v = await this.jobs.version(owner.id, segs[n - 1]!);
        if (!v) throw notFound(`version ${segs[n - 1]} of script ${owner.name} not found`);
        return toScriptVersion(v);
      }
    }
    throw notFound(`script ${full} not found`);
  }

  @ApiDoc({
    summary:
      "dlt runtime 0.26.1 `publish`: …/{script_id_or_ref}/public-url makes the job's public link (a new one if it had one: the URL is shown only once)",
    response: scriptResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Post('*path')
  @HttpCode(201)
  async publish(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('path') path: string | string[]) {
    const segs = joinSegments(path);
    if (segs.length < 2 || segs[segs.length - 1] !== 'public-url')
      throw notFound(`no such route: POST scripts/${segs.join('/')}`);
    const ref = segs.slice(0, -1).join('/');
    const r = await this.interactive.publish(principalOf(req), ws, ref).catch(asScriptError);
    return { ...toScript(r.job, this.publicUrl), public_url: r.url };
  }

  @ApiDoc({
    summary:
      'Delete a job by id or name: it stops firing and cannot be run; its versions and runs stay, and the name can be used again. …/{script_id_or_ref}/public-url (dlt runtime 0.26.1 `unpublish`) revokes the public link instead.',
    response: deletedScriptResponse,
  })
  @Authenticated({ workspace: 'write' })
  @Delete('*path')
  async delete(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('path') path: string | string[],
    @Headers('idempotency-key') key?: string,
  ) {
    const segs = joinSegments(path);
    const full = segs.join('/');
    if (segs.length >= 2 && segs[segs.length - 1] === 'public-url' && !(await this.jobs.find(ws, full))) {
      const ref = segs.slice(0, -1).join('/');
      const r = await this.interactive
        .changePublicLink(principalOf(req), ws, ref, 'revoke')
        .catch(asScriptError);
      return toScript(r.job, this.publicUrl);
    }
    const job = await this.jobs.delete(principalOf(req), ws, full, key).catch(asScriptError);
    return { id: job.id, name: job.name, deleted: true };
  }

  private detailed(job: JobRow, lastRun: RunRecord | undefined, flavour: ClientFlavour) {
    return {
      ...toScript(job, this.publicUrl),
      public_url: storedPublicUrl(flavour, job.public_link_hash !== null),
      last_run: lastRun ? toRun(lastRun, this.publicUrl, flavour) : null,
    };
  }
}

export { scriptVersionResponse };
