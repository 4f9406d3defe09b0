import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { withTables } from '#libs/database';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { AlertingTables } from './migrations/index.js';

/** The alerting service's one typed database: its own tables, narrowed once here. */
@Injectable()
export class AlertingDb {
  readonly kysely: Kysely<AlertingTables>;

  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    this.kysely = withTables<AlertingTables>(ctx.db);
  }
}
