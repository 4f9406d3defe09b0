import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { GatewayDatabase } from '../gateway.database.js';
import type { GatewayTables } from '../migrations/index.js';

@Injectable()
export class WorkspaceRepository {
  private readonly db: Kysely<GatewayTables>;
  constructor(@Inject(GatewayDatabase) db: GatewayDatabase) {
    this.db = db.own;
  }

  byId(id: string) {
    return this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Workspaces the user belongs to, with the user's role, oldest first. */
  ofUser(userId: string) {
    return this.db
      .selectFrom('workspaces')
      .innerJoin('members', 'members.workspace_id', 'workspaces.id')
      .select([
        'workspaces.id',
        'workspaces.name',
        'workspaces.owner_id',
        'workspaces.created_at',
        'workspaces.updated_at',
        'members.role',
      ])
      .where('members.user_id', '=', userId)
      .orderBy('workspaces.created_at', 'asc')
      .execute();
  }

  members(workspaceId: string) {
    return this.db
      .selectFrom('members')
      .innerJoin('users', 'users.id', 'members.user_id')
      .select(['members.user_id', 'users.email', 'members.role', 'members.added_at'])
      .where('members.workspace_id', '=', workspaceId)
      .orderBy('members.added_at', 'asc')
      .execute();
  }
}
