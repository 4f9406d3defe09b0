import { defineProjection } from '#libs/projections';
import {
  MemberAdded,
  MemberRemoved,
  MemberRoleChanged,
  WorkspaceCreated,
  WorkspaceRenamed,
} from '#libs/contracts';
import type { GatewayTables } from '../../migrations/index.js';

/** Folds workspace events into `workspaces` and `members` (each read through its schema: typed, no cast). */
export const workspacesProjection = defineProjection<GatewayTables>({
  name: 'workspaces',
  tables: ['workspaces', 'members'],
  canHandle: ['WorkspaceCreated', 'WorkspaceRenamed', 'MemberAdded', 'MemberRoleChanged', 'MemberRemoved'],
  async apply(db, events) {
    for (const stored of events) {
      const ws = stored.aggregate.id;
      const at = new Date(stored.time);
      switch (stored.type) {
        case WorkspaceCreated.type: {
          const e = { data: WorkspaceCreated.schema.parse(stored.data) };
          await db
            .insertInto('workspaces')
            .values({ id: ws, name: e.data.name, owner_id: e.data.ownerId, created_at: at, updated_at: at })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          await db
            .insertInto('members')
            .values({ workspace_id: ws, user_id: e.data.ownerId, role: 'owner', added_at: at })
            .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doUpdateSet({ role: 'owner' }))
            .execute();
          break;
        }
        case WorkspaceRenamed.type: {
          const e = { data: WorkspaceRenamed.schema.parse(stored.data) };
          await db
            .updateTable('workspaces')
            .set({ name: e.data.name, updated_at: at })
            .where('id', '=', ws)
            .execute();
          break;
        }
        case MemberAdded.type:
        case MemberRoleChanged.type: {
          const def = stored.type === MemberAdded.type ? MemberAdded : MemberRoleChanged;
          const e = { data: def.schema.parse(stored.data) };
          await db
            .insertInto('members')
            .values({ workspace_id: ws, user_id: e.data.userId, role: e.data.role, added_at: at })
            .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doUpdateSet({ role: e.data.role }))
            .execute();
          break;
        }
        case MemberRemoved.type: {
          const e = { data: MemberRemoved.schema.parse(stored.data) };
          await db
            .deleteFrom('members')
            .where('workspace_id', '=', ws)
            .where('user_id', '=', e.data.userId)
            .execute();
          break;
        }
      }
    }
  },
});
