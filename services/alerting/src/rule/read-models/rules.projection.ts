import { defineProjection, eventsOf } from '#libs/projections';
import type { AlertingTables } from '../../migrations/index.js';
import { AlertRuleCreated, AlertRuleDeleted, AlertRuleUpdated, type AlertRuleSpec } from '../rule.events.js';

const handled = eventsOf(AlertRuleCreated, AlertRuleUpdated, AlertRuleDeleted);

/** The columns a rule's spec fills (never its webhook secret). */
function specColumns(spec: AlertRuleSpec) {
  return {
    name: spec.name,
    job_id: spec.jobId,
    job_name: spec.jobName,
    conditions: spec.conditions.join(','),
    failures_in_row: spec.failuresInRow,
    webhook_url: spec.webhook?.url ?? null,
    email_to: spec.email ? spec.email.to.join(',') : null,
    rate_max: spec.rateLimit.max,
    rate_window_seconds: spec.rateLimit.windowSeconds,
    enabled: spec.enabled,
  };
}

/** `alert_rules`: the rules of each workspace (the raise reactor finds the matching ones here). */
export const alertRulesProjection = defineProjection<AlertingTables>({
  name: 'alert_rules',
  tables: ['alert_rules'],
  canHandle: handled.types,
  async apply(db, events) {
    for (const e of handled.select(events)) {
      const at = new Date(e.time);
      const ruleId = e.aggregate.id;
      switch (e.type) {
        case 'AlertRuleCreated':
          await db
            .insertInto('alert_rules')
            .values({
              rule_id: ruleId,
              workspace_id: e.aggregate.workspaceId,
              ...specColumns(e.data.spec),
              created_by: e.data.createdBy,
              created_at: at,
              updated_at: at,
              deleted_at: null,
            })
            .onConflict((oc) => oc.column('rule_id').doNothing())
            .execute();
          break;
        case 'AlertRuleUpdated':
          await db
            .updateTable('alert_rules')
            .set({ ...specColumns(e.data.spec), updated_at: at })
            .where('rule_id', '=', ruleId)
            .execute();
          break;
        case 'AlertRuleDeleted':
          await db
            .updateTable('alert_rules')
            .set({ deleted_at: at, updated_at: at })
            .where('rule_id', '=', ruleId)
            .execute();
          break;
        default: {
          const never: never = e;
          throw new Error(`unhandled ${JSON.stringify(never)}`);
        }
      }
    }
  },
});
