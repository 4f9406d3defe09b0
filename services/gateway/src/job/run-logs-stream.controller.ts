import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { z } from 'zod';
import { TERMINAL_RUN_STATUSES, type RunStatus } from '#libs/contracts';
import { ApiDoc, notFound, parseInput } from '#libs/http';
import type { LogLine, RunLogReader } from '#libs/run-logs';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { isUuid, JobsRepository } from './jobs.repository.js';
import { RUN_LOG_READER } from './run-log.reader.js';

const streamQuery = z.object({
  from: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

/** How often an unsealed follow checks whether its run ended (the logs service seals such runs within seconds). */
const STATUS_CHECK_MS = 2_000;
/** Fallback when the logs service is down: a terminal run with no seal and no new line for this long ends the stream. */
const UNSEALED_GRACE_MS = 20_000;
const HEARTBEAT_MS = 15_000;
/**
 * How often an open stream checks that its caller may still read it: a revoked or expired token, a
 * disabled user or a removed member loses the stream within this plus the projection's lag (< 5 s).
 */
const ACCESS_CHECK_MS = 2_000;

/** One SSE event per line: `event: line`, `id: <seq>`, `data: {seq, stream, ts, text[, part]}`. */
export function sseLines(lines: readonly LogLine[]): string {
  let out = '';
  for (const l of lines) out += `event: line\nid: ${l.seq}\ndata: ${JSON.stringify(l)}\n\n`;
  return out;
}

/**
 * Live logs of a run as Server-Sent Events: replays the run's lines in the LOGS stream from line
 * `from` (default 1; or the `Last-Event-ID` + 1), then follows them; after the seal, `event: end`
 * with `data: {lineCount, sealed: true}` and the response ends.
 */
@Controller('api/v1/workspaces/:ws/runs')
export class RunLogsStreamController {
  constructor(
    @Inject(JobsRepository) private readonly repo: JobsRepository,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(RUN_LOG_READER) private readonly reader: RunLogReader,
  ) {}

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
    const { principal } = await this.access.require(req, ws, 'read');
    const q = parseInput(streamQuery, query, 'query');
    if (!isUuid(id)) throw notFound(`run ${id} not found`);
    const run = await this.repo.run(ws, id);
    if (!run) throw notFound(`run ${id} not found`);
    let from = q.from ?? 1;
    const last = lastEventId !== undefined ? Number.parseInt(lastEventId, 10) : Number.NaN;
    if (q.from === undefined && Number.isSafeInteger(last) && last >= 0) from = last + 1;

    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.status(200);
    res.setHeader('content-type', 'text/event-stream; charset=utf-8');
    res.setHeader('cache-control', 'no-cache, no-transform');
    res.setHeader('connection', 'keep-alive');
    res.setHeader('x-accel-buffering', 'no');
    res.flushHeaders();
    res.socket?.setNoDelay(true);
    res.write(': runway logs\n\n');

    let lastSeq = 0;
    let lastActivity = Date.now();
    let ended = false;
    const end = (lineCount: number, sealed: boolean) => {
      if (ended) return;
      ended = true;
      res.write(`event: end\ndata: ${JSON.stringify({ lineCount, sealed })}\n\n`);
      abort.abort();
    };
    // The caller lost access: an `error` event with the status a new request would get, then the end.
    // Clients do not resume after it (a 4xx would refuse them anyway).
    const refuse = (status: number, detail: string) => {
      if (ended) return;
      ended = true;
      res.write(`event: error\ndata: ${JSON.stringify({ status, detail })}\n\n`);
      abort.abort();
    };
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    const accessCheck = setInterval(() => {
      void this.access
        .recheck(principal, ws)
        .then((denied) => {
          if (denied) refuse(denied.status, denied.detail);
        })
        .catch(() => undefined);
    }, ACCESS_CHECK_MS);
    const statusCheck = setInterval(() => {
      if (Date.now() - lastActivity < UNSEALED_GRACE_MS) return;
      void this.repo
        .run(ws, run.id)
        .then((r) => {
          if (
            r &&
            TERMINAL_RUN_STATUSES.includes(r.status as RunStatus) &&
            Date.now() - lastActivity > UNSEALED_GRACE_MS
          )
            end(lastSeq, false);
        })
        .catch(() => undefined);
    }, STATUS_CHECK_MS);
    try {
      for await (const e of this.reader.follow(ws, run.id, { from, signal: abort.signal })) {
        lastActivity = Date.now();
        if (e.type === 'end') {
          end(e.lineCount, true);
          break;
        }
        lastSeq = e.lines.at(-1)?.seq ?? lastSeq;
        if (e.lines.length > 0) res.write(sseLines(e.lines));
      }
    } catch (err) {
      if (!abort.signal.aborted)
        res.write(`event: error\ndata: ${JSON.stringify({ detail: String(err) })}\n\n`);
    } finally {
      clearInterval(heartbeat);
      clearInterval(statusCheck);
      clearInterval(accessCheck);
      res.end();
    }
  }
}
