/**
 * gRPC methods of manifest jobs (the job slice's ManifestService): deploying a manifest, triggering
 * by job refs or selectors, webhooks, backfills.
 */

import type { ManifestOutcomeJob } from '#libs/contracts';
import { badRequest, parseInput } from '#libs/http';
import { backfillBody, backfillResponse, deployManifestBody } from '../../job/manifest.controller.js';
import type { BackfillResult } from '../../job/manifest.service.js';
import { toWebhookResponse, webhookBody } from '../../job/webhooks.controller.js';
import { num, read, required, str, strs, who, workspaceOf, write, type Method } from './common.js';

export const manifestMethods: Record<string, Method> = {
  DeployManifest: {
    auth: write,
    handle: async (s, r, c) => {
      let jobs: unknown;
      try {
        jobs = JSON.parse(str(r, 'jobs_json') || '[]');
      } catch {
        throw badRequest('jobs_json: not JSON');
      }
      const b = parseInput(
        deployManifestBody,
        {
          job_definition_engine_version: num(r, 'engine_version'),
          job_definition_hash: str(r, 'definition_hash'),
          jobs,
          deployment_module: str(r, 'deployment_module') || null,
          dry_run: r.dry_run === true,
        },
        'request',
      );
      const { reply } = await s.manifest.deploy(who(c), workspaceOf(r), {
        engineVersion: b.job_definition_engine_version,
        definitionHash: b.job_definition_hash,
        deploymentModule: b.deployment_module ?? null,
        jobs: b.jobs,
        dryRun: b.dry_run ?? false,
      });
      const out = (outcome: string) => (o: ManifestOutcomeJob) => ({
        job_id: o.jobId,
        job_ref: o.jobRef,
        version: o.version,
        previous_version: o.previousVersion ?? 0,
        outcome,
      });
      return {
        jobs: [
          ...reply.added.map(out('added')),
          ...reply.updated.map(out('updated')),
          ...reply.unchanged.map(out('unchanged')),
          ...reply.archived.map(out('archived')),
        ],
        warnings: reply.warnings,
      };
    },
  },
  TriggerJobs: {
    auth: write,
    handle: async (s, r, c) => {
      const jobRefs = strs(r, 'job_refs');
      const selectors = strs(r, 'selectors');
      if (jobRefs.length + selectors.length === 0) throw badRequest('give job_refs or selectors');
      const reply = await s.manifest.trigger(who(c), workspaceOf(r), {
        jobRefs,
        selectors,
        profile: str(r, 'profile') || null,
        refresh: r.refresh === true,
        dryRun: r.dry_run === true,
      });
      return {
        triggered: reply.triggered.map((t) => ({
          job_ref: t.jobRef,
          job_id: t.jobId,
          matched_triggers: t.matchedTriggers,
          trigger: t.trigger,
          status: t.status,
          run_id: t.runId ?? '',
          reason: t.reason ?? '',
        })),
      };
    },
  },
  ChangeWebhook: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(webhookBody, { action: str(r, 'action') || 'enable' }, 'request');
      const out = toWebhookResponse(
        await s.manifest.changeWebhook(who(c), workspaceOf(r), required(r, 'id_or_name'), b.action),
      );
      return { ...out, webhook_url: out.webhook_url ?? '' };
    },
  },
  StartBackfill: {
    auth: write,
    handle: async (s, r, c) => {
      const b = parseInput(
        backfillBody,
        { from: str(r, 'from'), to: str(r, 'to'), reprocess: r.reprocess === true },
        'request',
      );
      return backfillMessage(await s.manifest.backfill(who(c), workspaceOf(r), required(r, 'id_or_name'), b));
    },
  },
  GetBackfill: {
    auth: read,
    handle: async (s, r, c) =>
      backfillMessage(await s.manifest.getBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'))),
  },
  CancelBackfill: {
    auth: write,
    handle: async (s, r, c) =>
      backfillMessage(
        await s.manifest.changeBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'), 'cancel'),
      ),
  },
  ResumeBackfill: {
    auth: write,
    handle: async (s, r, c) =>
      backfillMessage(
        await s.manifest.changeBackfill(who(c), workspaceOf(r), required(r, 'backfill_id'), 'resume'),
      ),
  },
};

/** A backfill as the gRPC `Backfill` message (the REST answer's fields, "" for null). */
function backfillMessage(result: BackfillResult) {
  const b = backfillResponse(result);
  return {
    backfill_id: b.backfill_id,
    job_id: b.job_id,
    job_ref: b.job_ref ?? '',
    from: b.from,
    to: b.to,
    mode: b.mode,
    concurrency: b.concurrency,
    status: b.status,
    reason: b.reason ?? '',
    skipped_done: b.skipped_done,
    slices: b.slices.map((x) => ({ ...x, run_id: x.run_id ?? '' })),
    ...b.progress,
  };
}
