import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { withTables } from '#libs/database';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { SchedulingTables } from './migrations/index.js';

/** The scheduling service's one typed database: its own tables, narrowed once here. */
@Injectable()
export class SchedulingDb {
  readonly kysely: Kysely<SchedulingTables>;

  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    this.kysely = withTables<SchedulingTables>(ctx.db);
  }
}
