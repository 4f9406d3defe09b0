import { Controller, Get, Inject, Param, Req } from '@nestjs/common';
import { ApiDoc, notFound } from '#libs/http';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { JobsRepository } from './jobs.repository.js';
import { joinSegments } from './scripts.controller.js';

/** The dlt pipelines the workspace's runs produced (from PipelineReported): tables, child tables, loads. */
@Controller('api/v1/workspaces/:ws/pipelines')
export class PipelinesController {
  constructor(
    @Inject(JobsRepository) private readonly repo: JobsRepository,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
  ) {}

  @ApiDoc({ summary: 'The pipelines of the workspace, by name' })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    await this.access.require(req, ws, 'read');
    const rows = await this.repo.pipelines(ws);
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
  @Get('*name')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('name') name: string | string[]) {
    await this.access.require(req, ws, 'read');
    const n = joinSegments(name).join('/');
    const p = await this.repo.pipeline(ws, n);
    if (!p) throw notFound(`pipeline ${n} not found`);
    const [tables, loads] = await Promise.all([
      this.repo.pipelineTables(ws, n),
      this.repo.pipelineLoads(ws, n, 100),
    ]);
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
