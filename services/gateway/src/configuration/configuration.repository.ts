import { Inject, Injectable } from '@nestjs/common';
import type { Kysely, Selectable } from 'kysely';
import type { CheckpointTable } from '#libs/projections';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { ConfigurationTables } from '../../../configurations/src/migrations/index.js';

type Db = Kysely<ConfigurationTables & CheckpointTable>;
export type ConfigurationRow = Selectable<ConfigurationTables['configurations']>;
export type ProfileRow = ConfigurationTables['configuration_profiles'];

/** Queries over the configurations read models (owned by the configurations service). */
@Injectable()
export class ConfigurationRepository {
  private readonly db: Db;
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {
    this.db = ctx.db as Db;
  }

  async list(
    workspaceId: string,
    limit: number,
    offset: number,
  ): Promise<{ rows: ConfigurationRow[]; total: number }> {
    const rows = await this.db
      .selectFrom('configurations')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('version', 'desc')
      .limit(limit)
      .offset(offset)
      .execute();
    const { n } = await this.db
      .selectFrom('configurations')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('workspace_id', '=', workspaceId)
      .executeTakeFirstOrThrow();
    return { rows: rows, total: Number(n) };
  }

  async latest(workspaceId: string): Promise<ConfigurationRow | undefined> {
    return await this.db
      .selectFrom('configurations')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
  }

  async byId(workspaceId: string, id: string): Promise<ConfigurationRow | undefined> {
    return await this.db
      .selectFrom('configurations')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  async byVersion(workspaceId: string, version: number): Promise<ConfigurationRow | undefined> {
    return await this.db
      .selectFrom('configurations')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('version', '=', version)
      .executeTakeFirst();
  }

  /** Per configuration, its profiles with their key names. */
  async profiles(configurationIds: readonly string[]): Promise<Map<string, ProfileRow[]>> {
    const out = new Map<string, ProfileRow[]>();
    if (configurationIds.length === 0) return out;
    const rows = await this.db
      .selectFrom('configuration_profiles')
      .selectAll()
      .where('configuration_id', 'in', configurationIds)
      .orderBy('profile')
      .execute();
    for (const r of rows) out.set(r.configuration_id, [...(out.get(r.configuration_id) ?? []), r]);
    return out;
  }

  /** Read-your-writes: waits until the projection `name` (maybe in another process) applied `seq`. */
  waitForProjection(name: string, seq: number, timeoutMs = 10_000): Promise<void> {
    return this.ctx.waitForProjection(name, seq, timeoutMs);
  }
}
