import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Kysely } from 'kysely';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { JobHandler } from '../job/job.handler.js';
import type { SchedulingTables } from '../migrations/index.js';
import { RunEndNotifier } from './run-end-notifier.js';
import { Scheduler } from './scheduler.js';
import { SchedulerMembers, type FireShares } from './shares.js';

/** Runs the scheduler in every scheduling service (replicas are safe); RUNWAY_SCHEDULER=off disables it. */
@Injectable()
export class SchedulerService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('scheduler');
  readonly scheduler: Scheduler;
  /** Tells jobs that their runs ended (overlap policy). */
  readonly notifier: RunEndNotifier;

  /** The live scheduling processes, to share the jobs among them (set once joined). */
  private members: SchedulerMembers | undefined;

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(JobHandler) jobs: JobHandler,
  ) {
    const db = ctx.db as Kysely<SchedulingTables>;
    // Until this process has joined, every job is its own (as with a single scheduler).
    const shares: FireShares = { mine: (jobId) => this.members?.mine(jobId) ?? true };
    this.scheduler = new Scheduler(db, jobs, { log: (m) => this.logger.warn(m), shares });
    this.notifier = new RunEndNotifier(db, jobs, { log: (m) => this.logger.warn(m) });
  }

  async onApplicationBootstrap(): Promise<void> {
    if (process.env.RUNWAY_SCHEDULER === 'off') return;
    this.scheduler.start();
    this.notifier.start();
    try {
      const members = await SchedulerMembers.open(this.ctx.nats, this.ctx.config.events.subjectPrefix, {
        log: (m) => this.logger.warn(m),
      });
      members.start();
      this.members = members;
    } catch (err) {
      // Without it every process fires every job: still correct, only more work.
      this.logger.warn(`scheduler membership unavailable, firing every job here: ${String(err)}`);
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.members?.stop();
    await Promise.all([this.scheduler.stop(), this.notifier.stop()]);
  }
}
