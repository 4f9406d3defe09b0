import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import type { Response } from 'express';
import { z } from 'zod';
import { TERMINAL_RUN_STATUSES, type RunStatus } from '#libs/contracts';
import { ApiDoc, notFound, parseInput } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import {
  ensureLogsStream,
  logsStreamName,
  logsSubject,
  parseLogMessage,
} from '../../../logs/src/stream/log-stream.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { isUuid, JobsRepository } from './jobs.repository.js';

const streamQuery = z.object({
  from: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** How often an unsealed follow checks whether its run ended without a seal (e.g. failed before any output). */
const STATUS_CHECK_MS = 2_000;
/** A terminal run with no new line for this long and no seal ends the stream anyway. */
const UNSEALED_GRACE_MS = 5_000;
const HEARTBEAT_MS = 15_000;

/**
 * Live logs of a run as Server-Sent Events: replays the run's subject in the LOGS stream with an
 * ordered consumer from line `from` (default 1; or the `Last-Event-ID` + 1), then follows it.
 * `event: line` / `id: <seq>` / `data: {seq, stream, ts, text}`; after the seal, `event: end` with
 * `data: {lineCount}` and the response ends.
 */
@Controller('api/v1/workspaces/:ws/runs')
export class RunLogsStreamController {
  private streamReady: Promise<string> | undefined;

  constructor(
    @Inject(JobsRepository) private readonly repo: JobsRepository,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
  ) {}

  private ensureStream(): Promise<string> {
    this.streamReady ??= ensureLogsStream(this.ctx.nats, {
      eventsStream: this.ctx.config.events.stream,
      subjectPrefix: this.ctx.config.events.subjectPrefix,
    }).catch((err: unknown) => {
      this.streamReady = undefined;
      throw err;
    });
    return this.streamReady;
  }

  @ApiDoc({
    summary: "Follow a run's logs (text/event-stream): replay from `from`, then live, ending after the seal",
  })
  @Get(':id/logs/stream')
  async stream(
    @Req() req: AuthedRequest,
    @Res() res: Response,
    @Param('ws') ws: string,
    @Param('id') id: string,
    @Query() query: unknown,
    @Headers('last-event-id') lastEventId: string | undefined,
  ): Promise<void> {
    await this.access.require(req, ws, 'read');
    const q = parseInput(streamQuery, query, 'query');
    if (!isUuid(id)) throw notFound(`run ${id} not found`);
    const run = await this.repo.run(ws, id);
    if (!run) throw notFound(`run ${id} not found`);
    let from = q.from ?? 1;
    const last = lastEventId !== undefined ? Number.parseInt(lastEventId, 10) : Number.NaN;
    if (q.from === undefined && Number.isSafeInteger(last) && last >= 0) from = last + 1;

    await this.ensureStream();
    const js = jetstream(this.ctx.nats);
    const consumer = await js.consumers.get(logsStreamName({ eventsStream: this.ctx.config.events.stream }), {
      // a string: one filter subject works on nats-server 2.9
      filter_subjects: logsSubject(this.ctx.config.events.subjectPrefix, ws, run.id),
      deliver_policy: DeliverPolicy.All,
    });
    const messages = await consumer.consume();

    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, no-transform');
    res.setHeader('connection', 'keep-alive');
    res.setHeader('x-accel-buffering', 'no');
    res.flushHeaders();
    res.write(': runway logs\n\n');

    let lastSeq = 0;
    let lastActivity = Date.now();
    let done = false;
    const finish = (lineCount: number, sealed: boolean) => {
      if (done) return;
      done = true;
      res.write(`event: end\ndata: ${JSON.stringify({ lineCount, sealed })}\n\n`);
      void messages.close().catch(() => undefined);
    };
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const statusCheck = setInterval(() => {
      void this.repo
        .run(ws, run.id)
        .then((r) => {
          if (
            r &&
            TERMINAL_RUN_STATUSES.includes(r.status as RunStatus) &&
            Date.now() - lastActivity > UNSEALED_GRACE_MS
          )
            finish(lastSeq, false);
        })
        .catch(() => undefined);
    }, STATUS_CHECK_MS);
    res.on('close', () => {
      done = true;
      void messages.close().catch(() => undefined);
    });

    try {
      for await (const m of messages) {
        if (done) break;
        lastActivity = Date.now();
        const msg = parseLogMessage(m.data);
        if (!msg) continue;
        if (msg.type === 'end') {
          finish(msg.lineCount, true);
          break;
        }
        lastSeq = msg.seq;
        if (msg.seq < from) continue;
        res.write(
          `event: line\nid: ${msg.seq}\ndata: ${JSON.stringify({ seq: msg.seq, stream: msg.stream, ts: msg.ts, text: msg.text })}\n\n`,
        );
      }
    } finally {
      clearInterval(heartbeat);
      clearInterval(statusCheck);
      done = true;
      res.end();
    }
  }
}
