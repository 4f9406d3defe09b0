import { Controller, Get, Inject, Param } from '@nestjs/common';
import { ApiDoc } from '#libs/http';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { joinSegments } from '../page.js';
import { RunsService } from './runs.service.js';

/** The dlt pipelines the workspace's runs produced (from PipelineReported): tables, child tables, loads. */
@Controller('api/v1/workspaces/:ws/pipelines')
export class PipelinesController {
  constructor(@Inject(RunsService) private readonly runs: RunsService) {}

  @ApiDoc({ summary: 'The pipelines of the workspace, by name' })
  @Authenticated({ workspace: 'read' })
  @Get()
  async list(@Param('ws') ws: string) {
    const rows = await this.runs.pipelines(ws);
    return {
      items: rows.map((p) => ({
        name: p.name,
        destination: p.destination,
        dataset_name: p.dataset_name,
        last_run_id: p.last_run_id,
        date_updated: p.updated_at.toISOString(),
      })),
    };
  }

  @ApiDoc({
    summary:
      'A pipeline: its tables (with columns and parent tables) and its last 100 loads with rows per table',
  })
  @Authenticated({ workspace: 'read' })
  @Get('*name')
  async get(@Param('ws') ws: string, @Param('name') name: string | string[]) {
    const { pipeline: p, tables, loads } = await this.runs.pipeline(ws, joinSegments(name).join('/'));
    return {
      name: p.name,
      destination: p.destination,
      dataset_name: p.dataset_name,
      last_run_id: p.last_run_id,
      date_updated: p.updated_at.toISOString(),
      tables: tables.map((t) => ({
        schema: t.schema_name,
        name: t.table_name,
        parent: t.parent,
        children: tables
          .filter((c) => c.parent === t.table_name && c.schema_name === t.schema_name)
          .map((c) => c.table_name),
        write_disposition: t.write_disposition,
        columns: t.columns.map((c) => ({ name: c.name, data_type: c.dataType, nullable: c.nullable })),
      })),
      loads: loads.map((l) => ({
        load_id: l.load_id,
        run_id: l.run_id,
        completed: l.completed,
        row_counts: l.row_counts,
        date_added: l.at.toISOString(),
      })),
    };
  }
}
