import type { Kysely } from 'kysely';
import type { ExecutionTables } from '../../migrations/index.js';

/** The pipelines read models as other services (the gateway) read them. */
export type PipelinesReadModel = Pick<
  ExecutionTables,
  'pipelines' | 'pipeline_tables' | 'pipeline_loads' | 'run_pipelines' | 'runs'
>;
type Db = Kysely<PipelinesReadModel>;

/** The workspace's pipelines by name. */
export function listPipelines(db: Db, ws: string) {
  return db.selectFrom('pipelines').selectAll().where('workspace_id', '=', ws).orderBy('name').execute();
}

export function pipelineByName(db: Db, ws: string, name: string) {
  return db
    .selectFrom('pipelines')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('name', '=', name)
    .executeTakeFirst();
}

/** A pipeline's tables by schema and name. */
export function pipelineTables(db: Db, ws: string, name: string) {
  return db
    .selectFrom('pipeline_tables')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('pipeline_name', '=', name)
    .orderBy('schema_name')
    .orderBy('table_name')
    .execute();
}

/** A pipeline's newest loads. */
export function pipelineLoads(db: Db, ws: string, name: string, limit: number) {
  return db
    .selectFrom('pipeline_loads')
    .selectAll()
    .where('workspace_id', '=', ws)
    .where('pipeline_name', '=', name)
    .orderBy('at', 'desc')
    .orderBy('load_id', 'desc')
    .limit(limit)
    .execute();
}

/** The newest `limit` runs that reported the pipeline, with their status and duration, newest first. */
export function pipelineRuns(db: Db, ws: string, name: string, limit: number) {
  return db
    .selectFrom('run_pipelines as rp')
    .innerJoin('runs as r', 'r.id', 'rp.run_id')
    .select([
      'r.id as run_id',
      'r.number',
      'r.status',
      'r.started_at',
      'r.duration_ms',
      'r.created_at',
      'rp.duration_ms as pipeline_duration_ms',
    ])
    .where('rp.workspace_id', '=', ws)
    .where('rp.pipeline_name', '=', name)
    .orderBy('r.created_at', 'desc')
    .orderBy('r.id', 'desc')
    .limit(limit)
    .execute();
}
