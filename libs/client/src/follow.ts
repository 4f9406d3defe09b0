import { z } from 'zod';

/** One line of a run's log, as the SSE endpoint sends it (`event: line`). */
export const logLineSchema = z.object({
  seq: z.number().int().min(1),
  stream: z.enum(['stdout', 'stderr']),
  ts: z.number(),
  text: z.string(),
  /** A piece of a long line that continues in the next one: no newline after this text. */
  part: z.boolean().optional(),
});
export type LogLine = z.infer<typeof logLineSchema>;

/** The last event of a follow (`event: end`). */
export const logEndSchema = z.object({
  lineCount: z.number().int().min(0),
  sealed: z.boolean(),
});
export type LogEnd = z.infer<typeof logEndSchema>;

export interface SseMessage {
  event: string;
  id: string | undefined;
  data: string;
}

/**
 * Incremental text/event-stream parser (WHATWG rules): CRLF, CR or LF line ends, `:` comments,
 * several `data:` lines joined with "\n", one optional space after the colon, a blank line
 * dispatches, blocks without data are dropped (the id is still remembered as the last event id).
 */
export class SseParser {
  private buf = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined;
  /** The last `id:` seen (carried over blocks, like EventSource's last event id). */
  lastEventId: string | undefined;

  push(chunk: string): SseMessage[] {
    this.buf += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      // A lone CR at the very end may be the first half of CRLF: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.buf.length - 1) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  private line(line: string): SseMessage | undefined {
    if (line === '') {
      const data = this.data;
      const event = this.event || 'message';
      this.data = [];
      this.event = '';
      if (data.length === 0) return undefined;
      return { event, id: this.id, data: data.join('\n') };
    }
    if (line.startsWith(':')) return undefined;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id' && !value.includes('\0')) {
      this.id = value;
      this.lastEventId = value;
    }
    // `retry` and unknown fields are ignored: reconnection is the caller's policy.
    return undefined;
  }
}

export interface FollowOptions {
  /** First line to return (default 1). */
  from?: number;
  /** Aborting ends the follow (and the HTTP request) with an AbortError. */
  signal?: AbortSignal;
  /** Called for every line, in order, each exactly once; awaited (backpressure). */
  onLine: (line: LogLine) => void | Promise<void>;
  /** Called before each reconnection after a dropped connection. */
  onReconnect?: (info: { attempt: number; from: number; delayMs: number; error: unknown }) => void;
  /** Consecutive failed connections before giving up (default 6). */
  maxRetries?: number;
  /** First backoff delay, doubled per consecutive failure up to `maxDelayMs` (defaults 250 / 5,000 ms). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * A connection that delivers nothing (not even the 15 s `: ping`) for this long is treated as
   * dropped (default 45,000 ms).
   */
  idleTimeoutMs?: number;
}

export interface FollowResult extends LogEnd {
  /** seq of the last line handed to onLine (0: none). */
  lastSeq: number;
  /** Reconnections that were needed. */
  reconnects: number;
}

/** An HTTP answer that retrying cannot fix (4xx), or the end of the retries. */
export class FollowError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(status ? `${detail} (HTTP ${status})` : detail);
    this.name = 'FollowError';
  }
}

/** An error of the caller's onLine: passed on as is, never mistaken for a dropped connection. */
class CallbackFailed extends Error {
  constructor(override readonly cause: unknown) {
    super('onLine failed');
  }
}

/** Waits `ms`; rejects with an AbortError as soon as `signal` aborts. */
export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function abortError(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error && r.name === 'AbortError') return r;
  const e = new Error('the follow was aborted');
  e.name = 'AbortError';
  return e;
}

/** Whether an error is the result of aborting (ours or fetch's). */
export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}

const sseErrorSchema = z.object({ status: z.number().int(), detail: z.string() });

/** An `event: error` carrying a 4xx status and its detail; undefined for any other error event. */
function sseRefusal(data: string): { status: number; detail: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return undefined;
  }
  const e = sseErrorSchema.safeParse(parsed);
  return e.success && e.data.status >= 400 && e.data.status < 500 ? e.data : undefined;
}

/**
 * Follows a run's log over SSE (`GET …/runs/{id}/logs/stream`) to its end: every line once, in
 * order, then the end info. A dropped connection (network error, a response that ends before
 * `event: end`, 5xx, or silence beyond `idleTimeoutMs`) is resumed after the last line received
 * (`?from=` and `Last-Event-ID`), with exponential backoff, at most `maxRetries` times in a row.
 * 4xx answers are not retried: they throw a FollowError with the server's detail.
 */
export async function followSse(
  url: string,
  headers: Record<string, string>,
  opts: FollowOptions,
  fetchImpl: typeof fetch = fetch,
): Promise<FollowResult> {
  const maxRetries = opts.maxRetries ?? 6;
  const base = opts.baseDelayMs ?? 250;
  const maxDelay = opts.maxDelayMs ?? 5_000;
  const idleMs = opts.idleTimeoutMs ?? 45_000;
  let lastSeq = Math.max(0, (opts.from ?? 1) - 1);
  let failures = 0;
  let reconnects = 0;

  for (;;) {
    if (opts.signal?.aborted) throw abortError(opts.signal);
    const from = lastSeq + 1;
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let idle: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => ac.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
    };
    let error: unknown;
    try {
      touch();
      const u = new URL(url);
      u.searchParams.set('from', String(from));
      const h: Record<string, string> = { ...headers, accept: 'text/event-stream' };
      if (lastSeq > 0) h['last-event-id'] = String(lastSeq);
      const res = await fetchImpl(u, { headers: h, signal: ac.signal });
      if (res.status !== 200 || !res.body) {
        const text = await res.text().catch(() => '');
        let detail = text.slice(0, 200) || res.statusText;
        try {
          const j = JSON.parse(text) as { detail?: unknown };
          if (typeof j.detail === 'string') detail = j.detail;
        } catch {
          /* not JSON */
        }
        if (res.status >= 400 && res.status < 500) throw new FollowError(res.status, detail);
        throw new Error(`HTTP ${res.status}: ${detail}`);
      }
      const parser = new SseParser();
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        touch();
        for (const msg of parser.push(decoder.decode(chunk, { stream: true }))) {
          if (msg.event === 'line') {
            const line = logLineSchema.parse(JSON.parse(msg.data));
            if (line.seq <= lastSeq) continue; // replayed after a resume
            try {
              await opts.onLine(line);
            } catch (err) {
              throw new CallbackFailed(err);
            }
            lastSeq = line.seq;
            failures = 0;
          } else if (msg.event === 'error') {
            // The server withdrew access mid-stream (revoked or expired token, disabled user, removed
            // member): a 4xx status is final, as it would be on a new request. Others resume.
            const refused = sseRefusal(msg.data);
            if (refused) {
              void res.body.cancel().catch(() => undefined);
              throw new FollowError(refused.status, refused.detail);
            }
          } else if (msg.event === 'end') {
            const end = logEndSchema.parse(JSON.parse(msg.data));
            void res.body.cancel().catch(() => undefined);
            return { ...end, lastSeq, reconnects };
          }
        }
      }
      throw new Error('the log stream ended before its end event');
    } catch (err) {
      if (opts.signal?.aborted) throw abortError(opts.signal);
      if (err instanceof CallbackFailed) throw err.cause;
      if (err instanceof FollowError || err instanceof z.ZodError || err instanceof SyntaxError) throw err;
      error = err instanceof Error && err.name === 'AbortError' && ac.signal.reason ? ac.signal.reason : err;
    } finally {
      clearTimeout(idle);
      opts.signal?.removeEventListener('abort', onAbort);
      ac.abort();
    }
    failures += 1;
    if (failures > maxRetries) {
      const why =
        error instanceof Error
          ? error.cause instanceof Error
            ? error.cause.message
            : error.message
          : String(error);
      throw new FollowError(0, `lost the log stream after ${maxRetries} retries: ${why}`);
    }
    const delayMs = Math.min(maxDelay, base * 2 ** (failures - 1));
    reconnects += 1;
    opts.onReconnect?.({ attempt: failures, from: lastSeq + 1, delayMs, error });
    await sleep(delayMs, opts.signal);
  }
}
