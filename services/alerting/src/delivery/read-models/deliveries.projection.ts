import { defineProjection, eventsOf } from '#libs/projections';
import type { AlertingTables } from '../../migrations/index.js';
import { AlertRaised } from '../../rule/rule.events.js';
import { AlertDeadLettered, AlertDelivered, AlertDeliveryFailed } from '../delivery.events.js';

const handled = eventsOf(AlertRaised, AlertDelivered, AlertDeliveryFailed, AlertDeadLettered);

/** `alert_deliveries`: per alert and channel, whether it was sent, how many tries, the dead letters. */
export const alertDeliveriesProjection = defineProjection<AlertingTables>({
  name: 'alert_deliveries',
  tables: ['alert_deliveries'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const at = new Date(e.time);
      if (e.type === 'AlertRaised') {
        for (const channel of e.data.channels)
          await db
            .insertInto('alert_deliveries')
            .values({
              alert_id: e.data.alertId,
              channel,
              workspace_id: e.aggregate.workspaceId,
              rule_id: e.aggregate.id,
              run_id: e.data.runId,
              job_name: e.data.jobName,
              conditions: e.data.conditions.join(','),
              message: e.data.message,
              suppressed: e.data.suppressed,
              status: 'pending',
              attempts: 0,
              last_error: null,
              raised_at: at,
              updated_at: at,
            })
            .onConflict((oc) => oc.columns(['alert_id', 'channel']).doNothing())
            .execute();
        continue;
      }
      const set =
        e.type === 'AlertDelivered'
          ? { status: 'delivered', attempts: e.data.attempt, updated_at: at }
          : e.type === 'AlertDeliveryFailed'
            ? { attempts: e.data.attempt, last_error: e.data.error, updated_at: at }
            : { status: 'dead', attempts: e.data.attempts, last_error: e.data.error, updated_at: at };
      await db
        .updateTable('alert_deliveries')
        .set(set)
        .where('alert_id', '=', e.aggregate.id)
        .where('channel', '=', e.data.channel)
        .execute();
    }
  },
});
