import { Controller, Get, Inject, Param } from '@nestjs/common';
import { z } from 'zod';
import { ApiDoc, notFound } from '#libs/http';
import type { RunStateSummary, RunTraceSummary } from '../../../execution/src/run/run.events.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { RunsService } from './runs.service.js';

/**
 * What a run's pipelines reported to its beacon (docs/runs-telemetry.md) as the APIs show it, and
 * the dlthub client's telemetry routes for a run's job result.
 */

export function traceResponse(t: RunTraceSummary) {
  return {
    transaction_id: t.transactionId,
    pipeline_name: t.pipelineName,
    started_at: t.startedAt,
    finished_at: t.finishedAt,
    duration_ms: t.durationMs,
    dlt_version: t.dltVersion,
    destination: t.destination,
    dataset_name: t.datasetName,
    failed: t.failed,
    steps: t.steps.map((s) => ({
      step: s.step,
      started_at: s.startedAt,
      finished_at: s.finishedAt,
      duration_ms: s.durationMs,
      failed: s.failed,
    })),
    load_ids: t.loadIds,
    row_counts: t.rowCounts,
    exceptions: t.exceptions,
    truncated: t.truncated,
  };
}

export function stateResponse(s: RunStateSummary) {
  return {
    pipeline_name: s.pipelineName,
    destination: s.destination,
    dataset_name: s.datasetName,
    schemas: s.schemas.map((x) => ({
      name: x.name,
      version: x.version,
      version_hash: x.versionHash,
      tables: x.tables,
    })),
    truncated: s.truncated,
  };
}

/** gRPC PipelineTrace: absent values as the proto's defaults. */
export function traceMessage(t: RunTraceSummary) {
  return {
    transaction_id: t.transactionId,
    pipeline_name: t.pipelineName,
    started_at: t.startedAt ?? '',
    finished_at: t.finishedAt ?? '',
    duration_ms: t.durationMs ?? 0,
    dlt_version: t.dltVersion ?? '',
    destination: t.destination ?? '',
    dataset_name: t.datasetName ?? '',
    failed: t.failed,
    steps: t.steps.map((s) => ({
      step: s.step,
      started_at: s.startedAt ?? '',
      finished_at: s.finishedAt ?? '',
      duration_ms: s.durationMs ?? 0,
      failed: s.failed,
    })),
    load_ids: t.loadIds,
    row_counts: t.rowCounts,
    exceptions: t.exceptions.map((e) => ({ step: e.step, type: e.type ?? '', message: e.message })),
    truncated: t.truncated,
  };
}

const resultTraceResponse = z.object({
  job_ref: z.string(),
  type: z.string().describe('the Python type of what the job returned'),
});
const jobResultResponse = z.object({
  id: z.string().uuid(),
  job_run_id: z.string().uuid(),
  job_ref: z.string(),
  result_type: z.string(),
  result: z.unknown().describe('the value (JSON); the JSON text when it was truncated'),
  engine_version: z.number().int(),
  created_at: z.string(),
  updated_at: z.string(),
});

/** dlthub client: `dlthub job runs result` reads result-trace (404: "declared no job result"). */
@Controller('telemetry/v1/workspaces/:ws/job-runs/:run')
export class TelemetryController {
  constructor(@Inject(RunsService) private readonly runs: RunsService) {}

  private async resultOf(ws: string, runId: string) {
    const run = await this.runs.require(ws, runId);
    if (!run.result) throw notFound(`job run ${runId} declared no job result`);
    return { run, result: run.result };
  }

  @ApiDoc({ summary: "What a run's job returned: its job ref and type", response: resultTraceResponse })
  @Authenticated({ workspace: 'read' })
  @Get('result-trace')
  async resultTrace(@Param('ws') ws: string, @Param('run') runId: string) {
    const { result } = await this.resultOf(ws, runId);
    return { job_ref: result.jobRef, type: result.type };
  }

  @ApiDoc({ summary: "What a run's job returned (JobResultResponse)", response: jobResultResponse })
  @Authenticated({ workspace: 'read' })
  @Get('result')
  async result(@Param('ws') ws: string, @Param('run') runId: string) {
    const { run, result } = await this.resultOf(ws, runId);
    let value: unknown = result.value;
    if (!result.truncated) {
      try {
        value = JSON.parse(result.value);
      } catch {
        value = result.value;
      }
    }
    const at = (run.ended_at ?? run.updated_at).toISOString();
    return {
      id: run.id,
      job_run_id: run.id,
      job_ref: result.jobRef,
      result_type: result.type,
      result: value,
      engine_version: 1,
      created_at: at,
      updated_at: run.updated_at.toISOString(),
    };
  }
}
