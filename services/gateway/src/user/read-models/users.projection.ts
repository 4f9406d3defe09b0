import { defineProjection } from '#libs/projections';
import type { UserEvent } from '#libs/contracts';
import type { GatewayTables } from '../../migrations/index.js';

/** Folds user events into `users` and `api_tokens` (hashes only). */
export const usersProjection = defineProjection<GatewayTables>({
  name: 'users',
  tables: ['users', 'api_tokens'],
  canHandle: ['UserRegistered', 'TokenIssued', 'TokenRevoked'],
  async apply(db, events) {
    for (const stored of events) {
      const e = { type: stored.type, data: stored.data } as UserEvent;
      const userId = stored.aggregate.id;
      const at = new Date(stored.time);
      switch (e.type) {
        case 'UserRegistered':
          await db
            .insertInto('users')
            .values({
              id: userId,
              email: e.data.email,
              name: e.data.name,
              is_admin: e.data.admin,
              created_at: at,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          break;
        case 'TokenIssued':
          await db
            .insertInto('api_tokens')
            .values({
              id: e.data.tokenId,
              user_id: userId,
              name: e.data.name,
              hash: e.data.hash,
              created_at: at,
              expires_at: e.data.expiresAt ? new Date(e.data.expiresAt) : null,
              revoked_at: null,
            })
            .onConflict((oc) => oc.column('id').doNothing())
            .execute();
          break;
        case 'TokenRevoked':
          await db
            .updateTable('api_tokens')
            .set({ revoked_at: at })
            .where('id', '=', e.data.tokenId)
            .execute();
          break;
      }
    }
  },
});
