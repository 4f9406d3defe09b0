import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { GatewayTables } from '../migrations/index.js';

/** The only SQL over users, tokens and memberships. */
@Injectable()
export class IdentityRepository {
  private readonly db: Kysely<GatewayTables>;
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    this.db = ctx.db as Kysely<GatewayTables>;
  }

  tokenById(id: string) {
    return this.db.selectFrom('api_tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  userById(id: string) {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  userByEmail(email: string) {
    return this.db
      .selectFrom('users')
      .selectAll()
      .where('email', '=', email.toLowerCase())
      .executeTakeFirst();
  }

  firstAdmin() {
    return this.db
      .selectFrom('users')
      .selectAll()
      .where('is_admin', '=', true)
      .orderBy('created_at', 'asc')
      .executeTakeFirst();
  }

  listUsers() {
    return this.db.selectFrom('users').selectAll().orderBy('created_at', 'asc').execute();
  }

  countUsers() {
    return this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
  }

  tokensOf(userId: string) {
    return this.db
      .selectFrom('api_tokens')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .execute();
  }

  membership(workspaceId: string, userId: string) {
    return this.db
      .selectFrom('members')
      .select(['role'])
      .where('workspace_id', '=', workspaceId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
  }
}
