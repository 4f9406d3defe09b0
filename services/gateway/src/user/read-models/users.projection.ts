import { defineProjection } from '#libs/projections';
import { TokenIssued, TokenRevoked, UserRegistered } from '#libs/contracts';
import type { GatewayTables } from '../../migrations/index.js';

/**
 * Folds user events into `users` and `api_tokens` (hashes only). Every write is an upsert or a
 * conflict-free insert: the write model owns the invariants (one user per email, one token per
 * id), so nothing here can fail on a unique index and stop the projection. Each event's data is
 * read through its schema (typed, no cast; the store validated it already).
 */
export const usersProjection = defineProjection<GatewayTables>({
  name: 'users',
  tables: ['users', 'api_tokens'],
  canHandle: ['UserRegistered', 'TokenIssued', 'TokenRevoked', 'UserDisabled', 'UserEnabled'],
  async apply(db, events) {
    for (const stored of events) {
      const userId = stored.aggregate.id;
      const at = new Date(stored.time);
      switch (stored.type) {
        case UserRegistered.type: {
          const e = { data: UserRegistered.schema.parse(stored.data) };
          await db
            .insertInto('users')
            .values({
              id: userId,
              email: e.data.email,
              name: e.data.name,
              is_admin: e.data.admin,
              created_at: at,
              disabled_at: null,
            })
            .onConflict((oc) => oc.doNothing())
            .execute();
          break;
        }
        case TokenIssued.type: {
          const e = { data: TokenIssued.schema.parse(stored.data) };
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
              parent_id: e.data.parentTokenId ?? null,
            })
            .onConflict((oc) => oc.doNothing())
            .execute();
          break;
        }
        case TokenRevoked.type: {
          const e = { data: TokenRevoked.schema.parse(stored.data) };
          await db
            .updateTable('api_tokens')
            .set({ revoked_at: at })
            .where('id', '=', e.data.tokenId)
            .where('revoked_at', 'is', null)
            .execute();
          break;
        }
        case 'UserDisabled':
          await db.updateTable('users').set({ disabled_at: at }).where('id', '=', userId).execute();
          break;
        case 'UserEnabled':
          await db.updateTable('users').set({ disabled_at: null }).where('id', '=', userId).execute();
          break;
      }
    }
  },
});
