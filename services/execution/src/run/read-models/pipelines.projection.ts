import { defineProjection, eventsOf } from '#libs/projections';
import { PipelineReported } from '#libs/contracts';
import type { ExecutionTables } from '../../migrations/index.js';

const reported = eventsOf(PipelineReported);

/**
 * Folds PipelineReported into the pipeline dashboard's read models: `pipelines` (last state per
 * pipeline name in a workspace), `pipeline_tables` (tables with columns and parent/child
 * relations), `pipeline_loads` (loads with rows per table) and `run_pipelines` (what each run did).
 */
export const pipelinesProjection = defineProjection<ExecutionTables>({
  name: 'pipelines',
  tables: ['pipelines', 'pipeline_tables', 'pipeline_loads', 'run_pipelines'],
  canHandle: reported.types,
  async apply(db, events) {
    for (const e of reported.select(events)) {
      const ws = e.aggregate.workspaceId;
      const runId = e.aggregate.id;
      const at = new Date(e.time);
      for (const p of e.data.pipelines) {
        await db
          .insertInto('pipelines')
          .values({
            workspace_id: ws,
            name: p.name,
            destination: p.destination,
            dataset_name: p.datasetName,
            last_run_id: runId,
            last_job_id: null,
            updated_at: at,
          })
          .onConflict((oc) =>
            oc.columns(['workspace_id', 'name']).doUpdateSet({
              destination: p.destination,
              dataset_name: p.datasetName,
              last_run_id: runId,
              updated_at: at,
            }),
          )
          .execute();
        for (const t of p.tables) {
          const columns = JSON.stringify(t.columns);
          await db
            .insertInto('pipeline_tables')
            .values({
              workspace_id: ws,
              pipeline_name: p.name,
              schema_name: t.schema,
              table_name: t.name,
              parent: t.parent,
              write_disposition: t.writeDisposition,
              resource: t.resource ?? null,
              columns,
              last_run_id: runId,
              updated_at: at,
            })
            .onConflict((oc) =>
              oc.columns(['workspace_id', 'pipeline_name', 'schema_name', 'table_name']).doUpdateSet({
                parent: t.parent,
                write_disposition: t.writeDisposition,
                resource: t.resource ?? null,
                columns,
                last_run_id: runId,
                updated_at: at,
              }),
            )
            .execute();
        }
        for (const l of p.loads) {
          // Row counts are per run (dlt's last normalize); they belong to a load when the run made one.
          const rowCounts = p.loads.length === 1 ? JSON.stringify(p.rowCounts) : null;
          await db
            .insertInto('pipeline_loads')
            .values({
              workspace_id: ws,
              pipeline_name: p.name,
              load_id: l.loadId,
              run_id: runId,
              completed: l.completed,
              row_counts: rowCounts,
              at,
              duration_ms: p.loads.length === 1 ? (p.loadDurationMs ?? null) : null,
            })
            .onConflict((oc) => oc.columns(['workspace_id', 'pipeline_name', 'load_id']).doNothing())
            .execute();
        }
        await db
          .insertInto('run_pipelines')
          .values({
            run_id: runId,
            workspace_id: ws,
            pipeline_name: p.name,
            destination: p.destination,
            dataset_name: p.datasetName,
            row_counts: JSON.stringify(p.rowCounts),
            loads: JSON.stringify(p.loads),
            tables: JSON.stringify(p.tables),
            duration_ms: p.durationMs ?? null,
          })
          .onConflict((oc) => oc.columns(['run_id', 'pipeline_name']).doNothing())
          .execute();
      }
    }
  },
});
