import type { BackfillsReadModel } from '../../scheduling/src/job/read-models/backfills.queries.js';
import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { withTables } from '#libs/database';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AlertDeliveriesReadModel } from '../../alerting/src/delivery/read-models/deliveries.queries.js';
import type { AlertRulesReadModel } from '../../alerting/src/rule/read-models/rules.queries.js';
import type { ConfigurationsReadModel } from '../../configurations/src/configuration/read-models/configurations.queries.js';
import type { DeploymentsReadModel } from '../../deployments/src/deployment/read-models/deployments.queries.js';
import type { PipelinesReadModel } from '../../execution/src/run/read-models/pipelines.queries.js';
import type { RunsReadModel } from '../../execution/src/run/read-models/runs.queries.js';
import type { JobsReadModel } from '../../scheduling/src/job/read-models/jobs.queries.js';
import type { GatewayTables } from './migrations/index.js';

/** The other services' read models the gateway answers queries from (through their `*.queries.ts`). */
export interface ReadModels {
  jobs: Kysely<JobsReadModel>;
  backfills: Kysely<BackfillsReadModel>;
  runs: Kysely<RunsReadModel>;
  pipelines: Kysely<PipelinesReadModel>;
  deployments: Kysely<DeploymentsReadModel>;
  configurations: Kysely<ConfigurationsReadModel>;
  alertRules: Kysely<AlertRulesReadModel>;
  alertDeliveries: Kysely<AlertDeliveriesReadModel>;
}

/**
 * The gateway's typed database, obtained once: its own tables (users, tokens, workspaces,
 * members) and, read-only through their owners' query functions, the read models it serves.
 */
@Injectable()
export class GatewayDatabase {
  readonly own: Kysely<GatewayTables>;
  readonly readModels: ReadModels;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.own = withTables<GatewayTables>(ctx.db);
    this.readModels = {
      jobs: withTables<JobsReadModel>(ctx.db),
      backfills: withTables<BackfillsReadModel>(ctx.db),
      runs: withTables<RunsReadModel>(ctx.db),
      pipelines: withTables<PipelinesReadModel>(ctx.db),
      deployments: withTables<DeploymentsReadModel>(ctx.db),
      configurations: withTables<ConfigurationsReadModel>(ctx.db),
      alertRules: withTables<AlertRulesReadModel>(ctx.db),
      alertDeliveries: withTables<AlertDeliveriesReadModel>(ctx.db),
    };
  }

  /** Read-your-writes across services: waits until projection `name` (maybe in another process) applied `seq`. */
  waitForProjection(name: string, seq: number, timeoutMs = 10_000): Promise<void> {
    return this.ctx.waitForProjection(name, seq, timeoutMs);
  }
}
