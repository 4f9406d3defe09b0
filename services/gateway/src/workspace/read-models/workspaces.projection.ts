import { defineProjection } from '#libs/projections';
import type { WorkspaceEvent } from '#libs/contracts';
import type { GatewayTables } from '../../migrations/index.js';

/** Folds workspace events into `workspaces` and `members`. */
export const workspacesProjection = defineProjection<GatewayTables>({
  name: 'workspaces',
  tables: ['workspaces', 'members'],
  canHandle: ['WorkspaceCreated', 'WorkspaceRenamed', 'MemberAdded', 'MemberRoleChanged', 'MemberRemoved'],
  async apply(db, events) {
    for (const stored of events) {
      const e = { type: stored.type, data: stored.data } as WorkspaceEvent;
      const ws = stored.aggregate.id;
      const at = new Date(stored.time);
      switch (e.type) {
        case 'WorkspaceCreated':
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
        case 'WorkspaceRenamed':
          await db
            .updateTable('workspaces')
            .set({ name: e.data.name, updated_at: at })
            .where('id', '=', ws)
            .execute();
          break;
        case 'MemberAdded':
        case 'MemberRoleChanged':
          await db
            .insertInto('members')
            .values({ workspace_id: ws, user_id: e.data.userId, role: e.data.role, added_at: at })
            .onConflict((oc) => oc.columns(['workspace_id', 'user_id']).doUpdateSet({ role: e.data.role }))
            .execute();
          break;
        case 'MemberRemoved':
          await db
            .deleteFrom('members')
            .where('workspace_id', '=', ws)
            .where('user_id', '=', e.data.userId)
            .execute();
          break;
      }
    }
  },
});
