import type { Kysely } from 'kysely';
import { withTables } from '#libs/database';
import type { ServiceContext } from '#libs/service-host';
import type { DeploymentsTables } from './migrations/index.js';

/** The deployments service's own tables, typed: the one database handle of the service. */
export type DeploymentsDb = Kysely<DeploymentsTables>;

/** Nest token of the DeploymentsDb. */
export const DEPLOYMENTS_DB = Symbol('RUNWAY_DEPLOYMENTS_DB');

export function deploymentsDb(ctx: ServiceContext): DeploymentsDb {
  return withTables<DeploymentsTables>(ctx.db);
}
