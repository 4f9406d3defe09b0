import { Controller, Get, Inject, Param, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiDoc } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { runById } from '../../../execution/src/run/read-models/runs.queries.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf, WorkspaceAccess } from '../auth/workspace-access.js';
import { GatewayDatabase } from '../gateway.database.js';
import { LIVE_EVENT_TYPES, liveMessagesOf } from './live-events.js';

const HEARTBEAT_MS = 15_000;
/** How often an open stream checks that its caller may still read the workspace. */
const ACCESS_CHECK_MS = 5_000;
/** Runs whose job the stream remembers (from RunRequested / RunStarting), for the later run events. */
const JOB_CACHE = 5_000;

/**
 * The dashboard's live updates (text/event-stream): an ordered consumer of the EVENTS stream on the
 * workspace's subjects, decoding only the public event types the pages need, each turned into a
 * small typed message (live-events.ts). Nothing is read from tables but the job of a run whose
 * event does not name it.
 */
@Controller('api/v1/workspaces/:ws/events')
export class EventsStreamController {
  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
  ) {}

  @ApiDoc({
    summary:
      'Live updates of the workspace (text/event-stream): run.status, job.changed, deployment.created; `ready` once subscribed',
  })
  @Authenticated({ workspace: 'read' })
  @Get('stream')
  async stream(@Req() req: AuthedRequest, @Res() res: Response, @Param('ws') ws: string): Promise<void> {
    const principal = principalOf(req);
    const store = this.ctx.store;
    // Every commit after this one reaches the client: `ready` can be sent before the consumer exists.
    const from = (await store.lastSequence()) + 1;
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, no-transform');
    res.setHeader('connection', 'keep-alive');
    res.setHeader('x-accel-buffering', 'no');
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    const send = (event: string, data: unknown) => {
      if (!res.writableEnded) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    send('ready', { type: 'ready', at: new Date().toISOString() });
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const accessCheck = setInterval(() => {
      void this.access
        .recheck(principal, ws)
        .then((denied) => {
          if (!denied) return;
          send('error', denied);
          abort.abort();
        })
        .catch(() => undefined);
    }, ACCESS_CHECK_MS);
    const jobs = new Map<string, string>();
    const remember = (runId: string, jobId: string) => {
      jobs.set(runId, jobId);
      if (jobs.size > JOB_CACHE) jobs.delete(jobs.keys().next().value!);
    };
    try {
      for await (const commit of store.replayStream({
        workspaceId: ws,
        fromSeq: from,
        follow: true,
        types: LIVE_EVENT_TYPES,
        signal: abort.signal,
        onUndecodable: () => undefined,
      })) {
        // The job of a run: from the stream when it named it, else from the run's read model.
        const unknown = commit.aggregate.type === 'run' && !jobs.has(commit.aggregate.id);
        if (unknown) {
          const starting = commit.events.find((e) => e.type === 'RunStarting');
          if (!starting) {
            const row = await runById(this.db.readModels.runs, ws, commit.aggregate.id);
            if (row) remember(row.id, row.job_id);
          }
        }
        for (const m of liveMessagesOf(commit, (runId) => jobs.get(runId) ?? null)) {
          if (m.type === 'run.status' && m.job_id) remember(m.run_id, m.job_id);
          send(m.type, m);
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) send('error', { detail: `the live updates stopped: ${String(err)}` });
    } finally {
      clearInterval(heartbeat);
      clearInterval(accessCheck);
      res.end();
    }
  }
}
