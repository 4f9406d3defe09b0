import { Inject, Injectable } from '@nestjs/common';
import { TERMINAL_RUN_STATUSES, type RunStatus } from '#libs/contracts';
import type { LogLine, RunLogReader, RunLogText } from '#libs/run-logs';
import type { Principal } from '../auth/authenticator.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { RunsService, type RunRecord } from '../run/runs.service.js';
import { RUN_LOG_READER } from './run-log.reader.js';

/** How often an unsealed follow checks whether its run ended (the logs service seals such runs within seconds). */
const STATUS_CHECK_MS = 2_000;
/** Fallback when the logs service is down: a terminal run with no seal and no new line for this long ends the follow. */
const UNSEALED_GRACE_MS = 20_000;
/**
 * How often an open follow checks that its caller may still read it: a revoked or expired token, a
 * disabled user or a removed member loses the follow within this plus the projection's lag (< 5 s).
 */
const ACCESS_CHECK_MS = 2_000;

/** What a follow yields: lines as they come, then exactly one of end / refused / error. */
export type LogFollowEvent =
  | { type: 'lines'; lines: LogLine[] }
  | { type: 'end'; lineCount: number; sealed: boolean }
  /** The caller lost access: the status and detail a new request would get. */
  | { type: 'refused'; status: 401 | 404; detail: string }
  | { type: 'error'; detail: string };

/**
 * Run logs, the one application service behind the REST text route, the SSE follow and the gRPC
 * stream: a run's output so far, and a follow of the LOGS stream (replay from a line, then live,
 * ending after the seal) that rechecks the caller's access while it is open.
 */
@Injectable()
export class LogsService {
  constructor(
    @Inject(RUN_LOG_READER) private readonly reader: RunLogReader,
    @Inject(RunsService) private readonly runs: RunsService,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
  ) {}

  /** The run's output so far (undefined before its process wrote anything). */
  async text(ws: string, run: RunRecord): Promise<RunLogText | null> {
    return this.reader.text(ws, run.id);
  }

  /**
   * The run's whole log as text pieces (a line each; a line written in parts is joined), read
   * from the LOGS stream batch by batch: what a download streams.
   */
  async *download(ws: string, run: RunRecord, signal?: AbortSignal): AsyncGenerator<string> {
    let pending = '';
    for await (const lines of this.reader.stored(ws, run.id, signal)) {
      let chunk = '';
      for (const l of lines) {
        if (l.part) {
          pending += l.text;
          continue;
        }
        chunk += `${pending}${l.text}\n`;
        pending = '';
      }
      if (chunk) yield chunk;
    }
    if (pending) yield `${pending}\n`;
  }

  /** Follows a run's log from line `from` (≥ 1) until the seal, `signal` or the caller losing access. */
  async *follow(
    p: Principal,
    ws: string,
    run: RunRecord,
    from: number,
    signal: AbortSignal,
  ): AsyncGenerator<LogFollowEvent> {
    const abort = new AbortController();
    const stop = () => abort.abort();
    signal.addEventListener('abort', stop, { once: true });
    let lastSeq = 0;
    let lastActivity = Date.now();
    let final: LogFollowEvent | undefined;
    const finish = (e: LogFollowEvent) => {
      if (final) return;
      final = e;
      abort.abort();
    };
    const accessCheck = setInterval(() => {
      void this.access
        .recheck(p, ws)
        .then((denied) => denied && finish({ type: 'refused', ...denied }))
        .catch(() => undefined);
    }, ACCESS_CHECK_MS);
    const statusCheck = setInterval(() => {
      if (Date.now() - lastActivity < UNSEALED_GRACE_MS) return;
      void this.runs
        .require(ws, run.id)
        .then((r) => {
          if (
            TERMINAL_RUN_STATUSES.includes(r.status as RunStatus) &&
            Date.now() - lastActivity > UNSEALED_GRACE_MS
          )
            finish({ type: 'end', lineCount: lastSeq, sealed: false });
        })
        .catch(() => undefined);
    }, STATUS_CHECK_MS);
    try {
      for await (const e of this.reader.follow(ws, run.id, { from, signal: abort.signal })) {
        lastActivity = Date.now();
        if (e.type === 'end') {
          finish({ type: 'end', lineCount: e.lineCount, sealed: true });
          break;
        }
        lastSeq = e.lines.at(-1)?.seq ?? lastSeq;
        if (e.lines.length > 0) yield { type: 'lines', lines: e.lines };
      }
    } catch (err) {
      if (!abort.signal.aborted) final ??= { type: 'error', detail: String(err) };
    } finally {
      clearInterval(accessCheck);
      clearInterval(statusCheck);
      signal.removeEventListener('abort', stop);
    }
    if (final && !signal.aborted) yield final;
  }
}
