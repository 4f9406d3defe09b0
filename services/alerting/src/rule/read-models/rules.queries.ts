import type { Kysely, Selectable } from 'kysely';
import type { AlertingTables, AlertRuleRow } from '../../migrations/index.js';

/** The tables these queries read (the gateway narrows its connection to them). */
export type AlertRulesReadModel = Pick<AlertingTables, 'alert_rules'>;
export type AlertRuleRecord = Selectable<AlertRuleRow>;
type Db = Kysely<AlertRulesReadModel>;

/** The live rules of a workspace, oldest first. */
export function listAlertRules(db: Db, workspaceId: string): Promise<AlertRuleRecord[]> {
  return db
    .selectFrom('alert_rules')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('deleted_at', 'is', null)
    .orderBy('created_at')
    .orderBy('rule_id')
    .execute();
}

export async function findAlertRule(
  db: Db,
  workspaceId: string,
  ruleId: string,
): Promise<AlertRuleRecord | undefined> {
  return db
    .selectFrom('alert_rules')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('rule_id', '=', ruleId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
}

/** The ids of the enabled rules that watch a job: the workspace's rules for every job and its own. */
export async function rulesWatching(
  db: Kysely<AlertingTables>,
  workspaceId: string,
  jobId: string,
): Promise<string[]> {
  const rows = await db
    .selectFrom('alert_rules')
    .select('rule_id')
    .where('workspace_id', '=', workspaceId)
    .where('deleted_at', 'is', null)
    .where('enabled', '=', true)
    .where((eb) => eb.or([eb('job_id', 'is', null), eb('job_id', '=', jobId)]))
    .execute();
  return rows.map((r) => r.rule_id);
}
