import { Controller, Get, Headers, Inject, Param, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { z } from 'zod';
import { ApiDoc, parseInput } from '#libs/http';
import type { LogLine } from '#libs/run-logs';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { RunsService } from '../run/runs.service.js';
import { LogsService } from './logs.service.js';
import { clientFlavour } from '../compat.js';

const streamQuery = z.object({
  from: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
});

const HEARTBEAT_MS = 15_000;

/**
 * The same lines in dlt-runtime 0.26.1's shape: `event: log`, `data: {channel, line_num,
 * reported_at, content}` (it parses every `data:` line as one and stops at `event: error`).
 */
export function sseLines026(lines: readonly LogLine[]): string {
  let out = '';
  for (const l of lines)
    out += `event: log\nid: ${l.seq}\ndata: ${JSON.stringify({
      channel: 'program',
      line_num: l.seq,
      reported_at: new Date(l.ts).toISOString(),
      content: l.text,
    })}\n\n`;
  return out;
}

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
    @Inject(RunsService) private readonly runs: RunsService,
    @Inject(LogsService) private readonly logs: LogsService,
  ) {}

  @ApiDoc({
    summary:
      "A run's whole log as a text file (Content-Disposition: attachment), streamed from the LOGS stream",
  })
  @Authenticated({ workspace: 'read' })
  @Get(':id/logs/download')
  async download(@Res() res: Response, @Param('ws') ws: string, @Param('id') id: string): Promise<void> {
    const { run, job } = await this.runs.get(ws, id);
    const base = `${job?.name ?? 'run'}-run-${run.number}.log`.replace(/[^A-Za-z0-9._-]+/g, '_');
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.status(200);
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.setHeader('content-disposition', `attachment; filename="${base}"`);
    res.setHeader('cache-control', 'no-store');
    res.setHeader('x-content-type-options', 'nosniff');
    try {
      for await (const chunk of this.logs.download(ws, run, abort.signal)) {
        // Backpressure: a slow client holds the read, not memory.
        if (!res.write(chunk)) await new Promise<void>((r) => res.once('drain', r).once('close', r));
        if (abort.signal.aborted) break;
      }
    } finally {
      res.end();
    }
  }

  @ApiDoc({
    summary: "Follow a run's logs (text/event-stream): replay from `from`, then live, ending after the seal",
  })
  @Authenticated({ workspace: 'read' })
  @Get(':id/logs/stream')
  async stream(
    @Req() req: AuthedRequest,
    @Res() res: Response,
    @Param('ws') ws: string,
    @Param('id') id: string,
    @Query() query: unknown,
    @Headers('last-event-id') lastEventId: string | undefined,
  ): Promise<void> {
    const q = parseInput(streamQuery, query, 'query');
    const run = await this.runs.require(ws, id);
    const rt026 = clientFlavour(req) === 'runtime-026';
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
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    try {
      for await (const e of this.logs.follow(principalOf(req), ws, run, from, abort.signal)) {
        if (e.type === 'lines') res.write(rt026 ? sseLines026(e.lines) : sseLines(e.lines));
        // 0.26.1 ends with the response (a data line it cannot parse would print a warning).
        else if (e.type === 'end' && rt026) res.write(`: end of log (${e.lineCount} lines)\n\n`);
        else if (e.type === 'end')
          res.write(`event: end\ndata: ${JSON.stringify({ lineCount: e.lineCount, sealed: e.sealed })}\n\n`);
        // The caller lost access: an `error` event with the status a new request would get, then the end.
        // Clients do not resume after it (a 4xx would refuse them anyway).
        else if (e.type === 'refused')
          res.write(`event: error\ndata: ${JSON.stringify({ status: e.status, detail: e.detail })}\n\n`);
        else res.write(`event: error\ndata: ${JSON.stringify({ detail: e.detail })}\n\n`);
      }
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  }
}
