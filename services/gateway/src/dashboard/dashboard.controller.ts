import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { z } from 'zod';
import { ApiDoc, parseInput } from '#libs/http';
import {
  overviewSchema,
  pipelineInsightsSchema,
  runsPageSchema,
  runStatusSchema,
  runTriggerSchema,
  schedulePreviewSchema,
} from '../../../../libs/client/src/dashboard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { DashboardService } from './dashboard.service.js';

/** `a,b` or `?x=a&x=b` → ['a', 'b'] (empty pieces dropped). */
const listOf = <T extends z.ZodType<unknown, string>>(item: T) =>
  z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((s) => s.split(',')).filter((s) => s.length > 0))
    .pipe(z.array(item).max(20));

const time = z.iso.datetime({ offset: true }).transform((s) => new Date(s));

const runsPageQuery = z.object({
  job: z
    .string()
    .uuid()
    .transform((s) => s.toLowerCase())
    .optional(),
  status: listOf(runStatusSchema).optional(),
  trigger: listOf(runTriggerSchema).optional(),
  created_from: time.optional(),
  created_to: time.optional(),
  started_from: time.optional(),
  started_to: time.optional(),
  cursor: z.string().min(1).max(500).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  total: z.enum(['true', 'false', '1', '0']).optional(),
});

const overviewQuery = z.object({ recent: z.coerce.number().int().min(1).max(100).default(20) });

const previewQuery = z.object({
  cron: z.string().min(1).max(200),
  tz: z.string().min(1).max(100).default('UTC'),
  count: z.coerce.number().int().min(1).max(50).default(5),
  after: time.optional(),
});

const insightsQuery = z.object({
  name: z.string().min(1).max(1000),
  runs: z.coerce.number().int().min(1).max(200).default(20),
});

/** The dashboard's reads (docs/dashboard-api.md): runs page, overview, schedule preview, pipeline insights. */
@Controller('api/v1/workspaces/:ws')
export class DashboardController {
  constructor(@Inject(DashboardService) private readonly dashboard: DashboardService) {}

  @ApiDoc({
    summary:
      'Runs, newest first, in keyset pages (cursor = next_cursor): filter by job, status, trigger, created/started time; total=true counts (exact to 10,000)',
    response: runsPageSchema,
  })
  @Authenticated({ workspace: 'read' })
  @Get('runs-page')
  async runsPage(@Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(runsPageQuery, query, 'query');
    return this.dashboard.runsPage(
      ws,
      {
        jobId: q.job,
        statuses: q.status,
        triggers: q.trigger,
        createdFrom: q.created_from,
        createdTo: q.created_to,
        startedFrom: q.started_from,
        startedTo: q.started_to,
      },
      q.cursor,
      q.limit,
      q.total === 'true' || q.total === '1',
    );
  }

  @ApiDoc({
    summary:
      'The overview in one request: live jobs with last run and next fire, recent runs, counts by status over 24 h',
    response: overviewSchema,
  })
  @Authenticated({ workspace: 'read' })
  @Get('overview')
  async overview(@Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(overviewQuery, query, 'query');
    return this.dashboard.overview(ws, q.recent);
  }

  @ApiDoc({
    summary:
      "The next fire times of a cron schedule in a time zone, computed by the scheduler's own code; 400 for a bad cron or zone",
    response: schedulePreviewSchema,
  })
  @Authenticated({ workspace: 'read' })
  @Get('schedule/preview')
  preview(@Query() query: unknown) {
    const q = parseInput(previewQuery, query, 'query');
    return this.dashboard.schedulePreview(q.cron, q.tz, q.count, q.after ?? new Date());
  }

  @ApiDoc({
    summary:
      'A pipeline from what runs reported: schemas (tables, columns, child tables), loads with rows and durations, lineage, success rate and duration trend',
    response: pipelineInsightsSchema,
  })
  @Authenticated({ workspace: 'read' })
  @Get('pipeline-insights')
  async pipelineInsights(@Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(insightsQuery, query, 'query');
    return this.dashboard.pipelineInsights(ws, q.name, q.runs);
  }
}
