import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { GatewayDatabase } from '../gateway.database.js';
import type { GatewayTables } from '../migrations/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The only SQL over users, tokens and memberships. */
@Injectable()
export class IdentityRepository {
  private readonly db: Kysely<GatewayTables>;
  constructor(@Inject(GatewayDatabase) db: GatewayDatabase) {
    this.db = db.own;
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
      .where('email', '=', email.trim().toLowerCase())
      .orderBy('created_at', 'asc')
      .executeTakeFirst();
  }

  /** By id (a UUID) or else by email. */
  userByIdOrEmail(idOrEmail: string) {
    return UUID.test(idOrEmail) ? this.userById(idOrEmail) : this.userByEmail(idOrEmail);
  }

  /** Every token of the instance (or of one user), newest first, with its user's email. */
  allTokens(filter: { userId?: string } = {}) {
    let q = this.db
      .selectFrom('api_tokens')
      .innerJoin('users', 'users.id', 'api_tokens.user_id')
      .selectAll('api_tokens')
      .select(['users.email'])
      .orderBy('api_tokens.created_at', 'desc');
    if (filter.userId) q = q.where('api_tokens.user_id', '=', filter.userId);
    return q.execute();
  }

  /** Whether the user owns at least one workspace. */
  async ownsAWorkspace(userId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('members')
      .select('workspace_id')
      .where('user_id', '=', userId)
      .where('role', '=', 'owner')
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
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
