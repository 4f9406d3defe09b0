import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type {
  BackfillReply,
  BackfillRequest,
  ChangeBackfillReply,
  ChangeBackfillRequest,
  DeployManifestReply,
  DeployManifestRequest,
  JobManifest,
  ManifestOutcomeJob,
  TriggerJobsReply,
  TriggerJobsRequest,
} from '#libs/contracts';
import { DomainError } from '#libs/eventstore';
import type { JobCommand, JobState } from './job.decider.js';
import type { JobEvent } from './job.events.js';
import type { JobCommands } from './job.handler.js';
import { jobIdFor, uuidv5 } from './job-id.js';
import {
  jobDefinitionSchema,
  manifestJobSpec,
  matchSelectors,
  pickTrigger,
  syntheticTriggers,
  fnmatch,
  type JobDefinition,
} from './manifest.js';
import {
  jobByIdOrName,
  jobsTriggeredBy,
  manifestJobs,
  manifestOf,
  type JobsReadModel,
} from './read-models/jobs.queries.js';
import { refreshCascadeTargets } from './refresh-cascade.js';
import type { RunVersions } from './workspace-versions.js';

type TriggeredJob = TriggerJobsReply['triggered'][number];

/**
 * The manifest use cases of the job aggregate (docs/manifest.md): a deploy (every job definition
 * checked before anything is appended; dry run = decided, not appended), triggers by ref and
 * selector, backfill, and the reactions to a run's end (refresh cascade, job.success / job.fail
 * chains). Reads only scheduling's own `jobs` read model and job aggregates.
 */
export class ManifestJobs {
  constructor(
    private readonly jobs: JobCommands,
    private readonly db: Kysely<JobsReadModel>,
    private readonly runVersions: RunVersions,
    private readonly opts: { minScheduleIntervalSeconds?: number; log?: (msg: string) => void } = {},
  ) {}

  async deploy(req: DeployManifestRequest): Promise<DeployManifestReply> {
    const defs: JobDefinition[] = req.jobs.map((raw, i) => {
      const r = jobDefinitionSchema.safeParse(raw);
      if (!r.success) {
        const issue = r.error.issues[0];
        const ref = typeof raw.job_ref === 'string' ? raw.job_ref : `#${i}`;
        throw new DomainError(
          `job ${ref}: ${issue ? `${issue.path.join('.') || 'definition'}: ${issue.message}` : 'invalid'}`,
        );
      }
      return r.data;
    });
    const refs = new Set<string>();
    for (const d of defs) {
      if (refs.has(d.job_ref)) throw new DomainError(`job ${d.job_ref} is listed twice`);
      refs.add(d.job_ref);
    }
    const now = new Date().toISOString();
    const ws = req.workspaceId;
    // Every definition decided first: one that fails stores nothing of the manifest.
    const planned: {
      def: JobDefinition;
      jobId: string;
      command: JobCommand;
      events: JobEvent[];
      before: JobState;
    }[] = [];
    for (const def of defs) {
      const jobId = jobIdFor(ws, def.job_ref);
      const command: JobCommand = {
        type: 'DeployManifestJob',
        jobId,
        versionId: randomUUID(),
        definition: def,
        engineVersion: req.engineVersion,
        definitionHash: req.definitionHash,
        deploymentModule: req.deploymentModule,
        now,
        actor: req.actor,
        ...(this.opts.minScheduleIntervalSeconds !== undefined
          ? { minScheduleIntervalSeconds: this.opts.minScheduleIntervalSeconds }
          : {}),
      };
      const before = await this.jobs.stateOf(ws, jobId);
      planned.push({ def, jobId, command, events: await this.jobs.decideOnly(ws, jobId, command), before });
    }
    // Jobs of the same deployment module the manifest no longer lists (an ad-hoc deploy archives nothing).
    const existing = await manifestJobs(this.db, ws, { archived: false });
    const gone =
      req.deploymentModule === null
        ? []
        : existing.filter((j) => j.deployment_module === req.deploymentModule && !refs.has(j.job_ref ?? ''));
    const known = new Set([...refs, ...existing.map((j) => j.job_ref ?? '')]);
    const warnings: string[] = [];
    for (const d of defs) {
      const m = manifestJobSpec(d, {
        engineVersion: req.engineVersion,
        definitionHash: req.definitionHash,
        deploymentModule: req.deploymentModule,
        now: new Date(now),
        currentSchedule: null,
      }).manifest;
      for (const t of m.triggers) {
        const up = /^job\.(success|fail):(.+)$/.exec(t)?.[2];
        if (up && !known.has(up))
          warnings.push(`job ${d.job_ref}: trigger ${t} names no job of this workspace`);
      }
      for (const up of m.freshness)
        if (!known.has(up))
          warnings.push(`job ${d.job_ref}: freshness job.is_fresh:${up} names no job of this workspace`);
    }
    const out: DeployManifestReply = {
      added: [],
      updated: [],
      unchanged: [],
      archived: [],
      warnings,
      seq: 0,
    };
    const item = (
      jobId: string,
      jobRef: string,
      version: number,
      previous: number | null,
    ): ManifestOutcomeJob => ({
      jobId,
      jobRef,
      version,
      previousVersion: previous,
    });
    for (const p of planned) {
      const prev = p.before.exists ? p.before.version : null;
      let events = p.events;
      if (!req.dryRun && events.length > 0) {
        const r = await this.jobs.command(
          ws,
          p.jobId,
          p.command,
          `${req.commandId}:${p.def.job_ref}`,
          req.actor,
        );
        events = r.events;
        out.seq = Math.max(out.seq, r.seq);
      }
      const e = events[0];
      if (e?.type === 'JobCreated') out.added.push(item(p.jobId, p.def.job_ref, e.data.version, prev));
      else if (e?.type === 'JobUpdated') out.updated.push(item(p.jobId, p.def.job_ref, e.data.version, prev));
      else out.unchanged.push(item(p.jobId, p.def.job_ref, p.before.version, prev));
    }
    for (const j of gone) {
      const command: JobCommand = { type: 'ArchiveJob', versionId: randomUUID(), actor: req.actor };
      const ref = j.job_ref ?? j.name;
      if (req.dryRun) {
        const events = await this.jobs.decideOnly(ws, j.id, command);
        if (events.length > 0) out.archived.push(item(j.id, ref, j.version + 1, j.version));
        continue;
      }
      const r = await this.jobs.command(ws, j.id, command, `${req.commandId}:archive:${ref}`, req.actor);
      out.seq = Math.max(out.seq, r.seq);
      if (r.events.length > 0) out.archived.push(item(j.id, ref, r.state.version, j.version));
    }
    return out;
  }

  /** Jobs by ref (trigger `manual:<ref>`) and by selectors (dlt's matching), each run or skipped with the reason. */
  async trigger(req: TriggerJobsRequest): Promise<TriggerJobsReply> {
    const ws = req.workspaceId;
    const wanted: { jobId: string; jobRef: string; matched: string[]; trigger: string }[] = [];
    for (const ref of req.jobRefs) {
      const row = await jobByIdOrName(this.db, ws, ref);
      const m = row ? manifestOf(row) : null;
      if (!row || !m || m.archived) throw new DomainError(`job ${ref} not found`, 404, 'not_found');
      const t = `manual:${m.jobRef}`;
      if (!wanted.some((w) => w.jobId === row.id))
        wanted.push({ jobId: row.id, jobRef: m.jobRef, matched: [t], trigger: t });
    }
    if (req.selectors.length > 0) {
      for (const row of await manifestJobs(this.db, ws, { archived: false })) {
        const m = manifestOf(row);
        if (!m) continue;
        const all = [...m.triggers, ...syntheticTriggers(m)];
        const matched = matchSelectors(m.jobType, all, req.selectors);
        // A selector may also name the job itself (a pattern over job refs).
        if (matched.length === 0 && req.selectors.some((s) => !s.includes(':') && fnmatch(m.jobRef, s)))
          matched.push(`manual:${m.jobRef}`);
        const trigger = pickTrigger(matched, m.defaultTrigger);
        if (trigger && !wanted.some((w) => w.jobId === row.id))
          wanted.push({ jobId: row.id, jobRef: m.jobRef, matched, trigger });
      }
    }
    const out: TriggeredJob[] = [];
    let seq = 0;
    for (const w of wanted) {
      const r = await this.requestRun(ws, w.jobId, w.trigger, `${req.commandId}:${w.jobRef}`, req.actor, {
        profile: req.profile,
        refresh: req.refresh,
        dryRun: req.dryRun,
      });
      seq = Math.max(seq, r.seq);
      out.push({
        jobId: w.jobId,
        jobRef: w.jobRef,
        matchedTriggers: w.matched,
        trigger: w.trigger,
        status: r.status,
        runId: r.runId,
        reason: r.reason,
      });
    }
    return { triggered: out, seq };
  }

  /**
   * A run of a manifest job for a trigger (selected, chained, deployment): concurrency and
   * freshness checked by the job; a refusal of those two is a skip with its reason.
   */
  async requestRun(
    ws: string,
    jobId: string,
    triggerSource: string,
    commandId: string,
    actor: string,
    opts: { profile?: string | null; refresh?: boolean; dryRun?: boolean } = {},
  ): Promise<{ status: TriggeredJob['status']; runId: string | null; reason: string | null; seq: number }> {
    const state = await this.jobs.stateOf(ws, jobId);
    const m = state.spec?.manifest;
    const upstreams = m && m.freshness.length > 0 ? await this.jobs.upstreamsOf(ws, m.freshness) : [];
    const [deployment, configuration, deployedFiles] = await this.runVersions.forFire(ws);
    const command: JobCommand = {
      type: 'RequestRun',
      runId: randomUUID(),
      trigger: 'api',
      profile: opts.profile ?? null,
      deployment,
      deployedFiles,
      configuration,
      requestedBy: actor,
      triggerSource,
      now: new Date().toISOString(),
      upstreams,
      refresh: opts.refresh ?? false,
    };
    try {
      const r = opts.dryRun
        ? { events: await this.jobs.decideOnly(ws, jobId, command), seq: 0 }
        : await this.jobs.command(ws, jobId, command, commandId, actor);
      const e = r.events.find((x) => x.type === 'RunRequested');
      return {
        status: 'triggered',
        runId: e?.type === 'RunRequested' && !opts.dryRun ? e.data.runId : null,
        reason: null,
        seq: r.seq,
      };
    } catch (err) {
      if (
        err instanceof DomainError &&
        (err.code === 'skipped_upstream_pending' || err.code === 'skipped_concurrency_limit')
      )
        return { status: err.code, runId: null, reason: err.message, seq: 0 };
      throw err;
    }
  }

  /** Starts a backfill (its id derived from the command id: a retried request is the same backfill). */
  async backfill(req: BackfillRequest): Promise<BackfillReply> {
    const [deployment, configuration] = await this.runVersions.latest(req.workspaceId);
    const backfillId = uuidv5(`backfill:${req.commandId}`, req.jobId);
    const r = await this.jobs.command(
      req.workspaceId,
      req.jobId,
      {
        type: 'StartBackfill',
        backfillId,
        from: new Date(req.from).toISOString(),
        to: new Date(req.to).toISOString(),
        reprocess: req.reprocess ?? false,
        deployment,
        configuration,
        requestedBy: req.actor,
      },
      req.commandId,
      req.actor,
    );
    const started = r.events.find((e) => e.type === 'BackfillStarted');
    if (started?.type !== 'BackfillStarted')
      throw new DomainError(`backfill ${backfillId} was not started`, 409);
    const runs = new Map(
      r.events.flatMap((e) =>
        e.type === 'BackfillSliceRequested' ? [[e.data.slice, e.data.runId] as const] : [],
      ),
    );
    return {
      backfillId,
      jobId: req.jobId,
      mode: started.data.mode,
      concurrency: started.data.concurrency,
      slices: started.data.slices.map((x, i) => ({ start: x.start, end: x.end, runId: runs.get(i) ?? null })),
      skippedDone: started.data.skippedDone,
      seq: r.seq,
    };
  }

  /** Cancels or resumes a backfill of the job. */
  async changeBackfill(req: ChangeBackfillRequest): Promise<ChangeBackfillReply> {
    let command: JobCommand;
    if (req.action === 'cancel')
      command = { type: 'CancelBackfill', backfillId: req.backfillId, actor: req.actor };
    else {
      const [deployment, configuration] = await this.runVersions.latest(req.workspaceId);
      command = {
        type: 'ResumeBackfill',
        backfillId: req.backfillId,
        deployment,
        configuration,
        actor: req.actor,
      };
    }
    const r = await this.jobs.command(req.workspaceId, req.jobId, command, req.commandId, req.actor);
    const ended = r.events.find((e) => e.type === 'BackfillEnded');
    return {
      backfillId: req.backfillId,
      changed: r.events.length > 0,
      inFlight: ended?.type === 'BackfillEnded' ? ended.data.inFlight : [],
      seq: r.seq,
    };
  }

  /**
   * After a run end was noted on its job: a completed run that refreshed (or any completed run of
   * a `refresh: always` job) marks its freshness downstream refresh-pending (dlt's cascade); then
   * the jobs triggered by `job.success:<ref>` / `job.fail:<ref>` get a run (command ids derived
   * from the end event's, so a redelivery requests nothing twice).
   */
  async afterRunEnded(
    ws: string,
    runId: string,
    ended: { status: string; refresh: boolean },
    commandId: string,
    job: JobState,
  ): Promise<void> {
    const m: JobManifest | null | undefined = job.spec?.manifest;
    if (!m) return;
    const status = ended.status;
    if (status === 'completed' && (m.refreshPropagation === 'always' || ended.refresh)) {
      const all = (await manifestJobs(this.db, ws, { archived: false })).flatMap((row) => {
        const jm = manifestOf(row);
        return jm ? [jm] : [];
      });
      for (const target of refreshCascadeTargets(m.jobRef, all))
        await this.jobs.command(
          ws,
          jobIdFor(ws, target),
          { type: 'MarkRefreshPending', cause: m.jobRef },
          `${commandId}:refresh:${target}`,
          'scheduler',
        );
    }
    const kind = status === 'completed' ? 'success' : status === 'failed' ? 'fail' : undefined;
    if (!kind) return;
    const trigger = `job.${kind}:${m.jobRef}`;
    for (const row of await jobsTriggeredBy(this.db, ws, trigger)) {
      // A refusal of the job is logged; anything else (a timeout) fails the reaction, which is
      // redelivered: every command here has an id derived from the end event.
      const r = await this.requestRun(ws, row.id, trigger, `${commandId}:chain:${row.id}`, 'scheduler').catch(
        (err: unknown) => {
          if (!(err instanceof DomainError)) throw err;
          this.opts.log?.(`${trigger} → ${row.name}: no run (${err.message})`);
          return undefined;
        },
      );
      if (r && r.status !== 'triggered')
        this.opts.log?.(`${trigger} → ${row.name}: ${r.status} (${r.reason})`);
    }
  }
}
