import { Inject, Injectable } from '@nestjs/common';
import type { Kysely, Selectable } from 'kysely';
import { GatewayDatabase } from '../gateway.database.js';
import type { GatewayTables } from '../migrations/index.js';

export type SessionRow = Selectable<GatewayTables['sessions']>;

/** The only SQL over dashboard sessions (gateway-owned; only hashes of the cookie and CSRF values). */
@Injectable()
export class SessionsRepository {
  private readonly db: Kysely<GatewayTables>;
  constructor(@Inject(GatewayDatabase) db: GatewayDatabase) {
    this.db = db.own;
  }

  async insert(row: SessionRow): Promise<void> {
    await this.db.insertInto('sessions').values(row).execute();
  }

  byTokenHash(tokenHash: string): Promise<SessionRow | undefined> {
    return this.db.selectFrom('sessions').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  }

  byId(id: string): Promise<SessionRow | undefined> {
    return this.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** Moves `last_seen_at` forward, at most once per `minGapMs` per session (so reads stay cheap). */
  async touch(id: string, at: Date, minGapMs: number): Promise<void> {
    await this.db
      .updateTable('sessions')
      .set({ last_seen_at: at })
      .where('id', '=', id)
      .where('last_seen_at', '<', new Date(at.getTime() - minGapMs))
      .execute();
  }

  /** The user's sessions not revoked and not past their absolute expiry, newest first. */
  open(userId: string, now: Date): Promise<SessionRow[]> {
    return this.db
      .selectFrom('sessions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('created_at', 'desc')
      .execute();
  }

  /** Revokes one session of the user; false when there was no such open session. */
  async revoke(userId: string, id: string, at: Date): Promise<boolean> {
    const r = await this.db
      .updateTable('sessions')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  }

  /** Revokes every open session of the user but `exceptId`. */
  async revokeAllOf(userId: string, at: Date, exceptId?: string): Promise<void> {
    let q = this.db
      .updateTable('sessions')
      .set({ revoked_at: at })
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null);
    if (exceptId) q = q.where('id', '!=', exceptId);
    await q.execute();
  }

  /** Deletes sessions that ended more than a day ago (housekeeping at sign-in). */
  async prune(now: Date): Promise<void> {
    const dayAgo = new Date(now.getTime() - 86_400_000);
    await this.db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('expires_at', '<', dayAgo), eb('revoked_at', '<', dayAgo)]))
      .execute();
  }
}
