import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { BackfillRow, BackfillSliceRow, SchedulingTables } from '../../migrations/index.js';

const slicesSchema = z.array(
  z.object({
    start: z.string(),
    end: z.string(),
    status: z.enum(['pending', 'requested', 'completed', 'failed', 'cancelled']),
    run_id: z.string().nullable(),
    attempts: z.number().int().min(0),
  }),
);

/** The slices column, validated (jsonb comes back parsed; text is parsed first). */
export function slicesOf(raw: unknown): BackfillSliceRow[] {
  return slicesSchema.parse(typeof raw === 'string' ? JSON.parse(raw) : raw);
}

/** The tables the gateway reads backfills from. */
export type BackfillsReadModel = Pick<SchedulingTables, 'backfills'>;

export type BackfillView = Omit<BackfillRow, 'slices'> & { slices: BackfillSliceRow[] };

/** A backfill of the workspace by id (undefined: none). */
export async function backfillById(
  db: Kysely<BackfillsReadModel>,
  workspaceId: string,
  id: string,
): Promise<BackfillView | undefined> {
  const row = await db
    .selectFrom('backfills')
    .selectAll()
    .where('id', '=', id)
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  return row ? { ...row, slices: slicesOf(row.slices) } : undefined;
}
