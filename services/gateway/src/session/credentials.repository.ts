import { Inject, Injectable } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { GatewayDatabase } from '../gateway.database.js';
import type { GatewayTables } from '../migrations/index.js';

/** The only SQL over password hashes (gateway-owned, never in events or responses). */
@Injectable()
export class CredentialsRepository {
  private readonly db: Kysely<GatewayTables>;
  constructor(@Inject(GatewayDatabase) db: GatewayDatabase) {
    this.db = db.own;
  }

  async passwordHash(userId: string): Promise<string | null> {
    const row = await this.db
      .selectFrom('user_credentials')
      .select('password_hash')
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row?.password_hash ?? null;
  }

  async setPasswordHash(userId: string, passwordHash: string, at: Date): Promise<void> {
    await this.db
      .insertInto('user_credentials')
      .values({ user_id: userId, password_hash: passwordHash, updated_at: at })
      .onConflict((oc) => oc.column('user_id').doUpdateSet({ password_hash: passwordHash, updated_at: at }))
      .execute();
  }
}
