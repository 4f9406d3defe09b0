import { Body, Controller, HttpCode, Inject, Put, Param, Req } from '@nestjs/common';
import { z } from 'zod';
import { ApiDoc, badRequest, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { JobsService, type JobInput } from './jobs.service.js';
import { toScript } from './responses.js';

/** TJobDefinition of dlt-runtime 0.26.1 (manifest engine 1): the keys Runway maps; others are kept out. */
const jobDefinition = z.object({
  job_ref: z
    .string()
    .min(1)
    .max(500)
    .regex(/^jobs\.[A-Za-z0-9_.]+$/, 'a job_ref is jobs.<module>[.<name>]'),
  entry_point: z.object({
    module: z.string().min(1).max(500),
    function: z.string().max(200).nullable().optional(),
    job_type: z.enum(['batch', 'interactive', 'stream']),
    launcher: z.string().max(500).optional(),
  }),
  triggers: z.array(z.string().max(500)).max(100),
  execute: z
    .object({ timeout: z.object({ timeout: z.number().positive().optional() }).nullable().optional() })
    .optional(),
  description: z.string().max(10_000).optional(),
  require: z.object({ timezone: z.string().min(1).max(100).optional() }).optional(),
});
const deployManifestBody = z.object({
  job_definition_engine_version: z.literal(1),
  job_definition_hash: z.string().min(1).max(200),
  jobs: z.array(jobDefinition).max(1000),
  deployment_module: z.string().max(500).nullable().optional(),
  description: z.string().max(10_000).nullable().optional(),
  dry_run: z.boolean().optional(),
});
type JobDefinition = z.infer<typeof jobDefinition>;

/**
 * A job definition as a Runway job named by its job_ref: the entry point is the module's file
 * (`jobs/ingest.py` for module `jobs.ingest`), run as a script; `schedule:<cron>` becomes the
 * job's schedule (in `require.timezone`). The other triggers, intervals and freshness are the
 * manifest work (docs/dlt-runtime-026.md).
 */
function toJobInput(j: JobDefinition): JobInput {
  const cron = j.triggers.find((t) => t.startsWith('schedule:'))?.slice('schedule:'.length) ?? null;
  const timeout = j.execute?.timeout?.timeout;
  return {
    name: j.job_ref,
    description: j.description ?? '',
    entryPoint: `${j.entry_point.module.split('.').join('/')}.py`,
    kind: j.entry_point.job_type === 'interactive' ? 'interactive' : 'batch',
    schedule: cron,
    timeoutSeconds: timeout ? Math.ceil(timeout) : null,
    ...(j.require?.timezone ? { timezone: j.require.timezone } : {}),
  };
}

/** `PUT …/deployment_manifest`: the per-deploy job reconciliation of dlt-runtime 0.26.1. */
@Controller('api/v1/workspaces/:ws')
export class DeploymentManifestController {
  private readonly publicUrl: string;

  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
  ) {
    this.publicUrl = ctx.config.publicUrl;
  }

  @ApiDoc({
    summary:
      'Reconcile the jobs of a deployment manifest (dlt-runtime 0.26.1): added, updated, unchanged, and archived (the module’s jobs it no longer lists)',
    body: deployManifestBody,
  })
  @Authenticated({ workspace: 'write' })
  @Put('deployment_manifest')
  @HttpCode(200)
  async deploy(@Req() req: AuthedRequest, @Param('ws') ws: string, @Body() body: unknown) {
    const b = parseInput(deployManifestBody, body ?? {}, 'body');
    const refs = new Set<string>();
    for (const j of b.jobs) {
      if (refs.has(j.job_ref)) throw badRequest(`jobs: ${j.job_ref} is listed twice`);
      refs.add(j.job_ref);
    }
    const r = await this.jobs.applyDefinitions(principalOf(req), ws, b.jobs.map(toJobInput), {
      archiveOthers: Boolean(b.deployment_module),
      dryRun: b.dry_run ?? false,
    });
    const script = (j: Parameters<typeof toScript>[0]) => toScript(j, this.publicUrl);
    return {
      added: r.added.map(script),
      updated: r.updated.map((u) => ({ script: script(u.job), previous_version: null })),
      unchanged: r.unchanged.map(script),
      archived: r.archived.map((j) => ({ ...script(j), archived: true })),
      warnings: [],
      deployment_module: b.deployment_module ?? null,
    };
  }
}
