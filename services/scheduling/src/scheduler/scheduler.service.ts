import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Reactor } from '#libs/eventstore';
import { PeriodicTask, SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { JobHandler } from '../job/job.handler.js';
import { jobRunsProjection } from '../job/read-models/job-runs.projection.js';
import { startRunEndReactor } from '../job/reactors/run-end.reactor.js';
import { startDeploymentTriggerReactor } from '../job/reactors/deployment-trigger.reactor.js';
import { withTables } from '#libs/database';
import type { JobsReadModel } from '../job/read-models/jobs.queries.js';
import { SchedulingDb } from '../scheduling.db.js';
import { Scheduler } from './scheduler.js';
import { ShardLeases } from './shard-leases.js';

/**
 * Runs the scheduler in every scheduling service; RUNWAY_SCHEDULER=off disables it. Replicas share
 * the jobs by shard leases (ShardLeases): each fires only its shards' jobs. Run ends reach the jobs
 * through the run-end reactor (replicas share its events as competing consumers).
 */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('scheduler');
  readonly scheduler: Scheduler;
  /** Tells jobs that their runs ended (overlap policy); started with the scheduler. */
  runEnds: Reactor | undefined;
  /** `deployment:` triggers of manifest jobs; started with the scheduler. */
  deploymentTriggers: Reactor | undefined;

  private readonly stopGraceMs: number;
  /** Writes snapshots of the jobs in memory every 30 s (and at the stop), so a start reads little. */
  private readonly snapshotter: PeriodicTask;
  private started = false;
  /** This replica's shards (once started). */
  leases: ShardLeases | undefined;

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(JobHandler) private readonly jobs: JobHandler,
    @Inject(SchedulingDb) private readonly db: SchedulingDb,
  ) {
    this.stopGraceMs = ctx.config.scheduler.stopGraceMs;
    const owns = (jobId: string) => this.leases?.ownsJob(jobId) ?? false;
    this.scheduler = new Scheduler(db.kysely, jobs, { owns, log: (m) => this.logger.warn(m) });
    let first = true;
    this.snapshotter = new PeriodicTask(
      async () => {
        if (first) return void (first = false); // not at the start: the jobs are being loaded
        await this.jobs.writeSnapshots();
      },
      () => 30_000,
      (err) => this.logger.warn(`writing job snapshots failed: ${(err as Error).message}`),
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    if (process.env.RUNWAY_SCHEDULER === 'off') return;
    this.leases = await ShardLeases.open(this.ctx.nats, this.ctx.config.events.subjectPrefix, {
      maxBytes: this.ctx.config.kvMaxBytes,
      onAcquire: () => this.scheduler.reload(),
      log: (m) => this.logger.log(m),
    });
    await this.leases.start();
    this.started = true;
    this.scheduler.start();
    this.runEnds = await startRunEndReactor({
      store: this.ctx.store,
      db: this.db.kysely,
      jobs: this.jobs,
      waitForJobRuns: (seq) => this.ctx.waitForProjection(jobRunsProjection.name, seq),
      log: (m) => this.logger.warn(m),
    });
    this.deploymentTriggers = await startDeploymentTriggerReactor({
      store: this.ctx.store,
      db: withTables<JobsReadModel>(this.ctx.db),
      jobs: this.jobs.manifest,
      log: (m) => this.logger.warn(m),
    });
    this.snapshotter.start();
  }

  async onModuleDestroy(): Promise<void> {
    await Promise.all([
      this.scheduler.stop(this.stopGraceMs),
      this.runEnds?.stop(),
      this.deploymentTriggers?.stop(),
      this.snapshotter.stop(),
    ]);
    // After the last fires: the other replicas take the shards at once instead of after the lease.
    await this.leases
      ?.stop()
      .catch((err: unknown) =>
        this.logger.warn(`releasing the scheduler shards failed: ${(err as Error).message}`),
      );
    if (this.started)
      await this.jobs
        .writeSnapshots()
        .catch((err: unknown) => this.logger.warn(`writing job snapshots failed: ${(err as Error).message}`));
  }
}
