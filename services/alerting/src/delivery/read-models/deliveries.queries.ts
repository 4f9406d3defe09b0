import type { Kysely, Selectable } from 'kysely';
import type { AlertDeliveryRow, AlertingTables } from '../../migrations/index.js';

export type AlertDeliveriesReadModel = Pick<AlertingTables, 'alert_deliveries'>;
export type AlertDeliveryRecord = Selectable<AlertDeliveryRow>;

/** A workspace's deliveries, newest first; `status: 'dead'` lists the dead letters. */
export function listAlertDeliveries(
  db: Kysely<AlertDeliveriesReadModel>,
  workspaceId: string,
  filter: { status?: string; ruleId?: string; limit?: number } = {},
): Promise<AlertDeliveryRecord[]> {
  let q = db.selectFrom('alert_deliveries').selectAll().where('workspace_id', '=', workspaceId);
  if (filter.status) q = q.where('status', '=', filter.status);
  if (filter.ruleId) q = q.where('rule_id', '=', filter.ruleId);
  return q
    .orderBy('raised_at', 'desc')
    .orderBy('alert_id')
    .limit(Math.min(filter.limit ?? 100, 1000))
    .execute();
}
