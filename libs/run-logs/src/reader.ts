import {
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '#libs/nats';
import {
  linesOf,
  logsStreamName,
  parseLogMessage,
  runLinesSubject,
  runLogSubjects,
  runSealSubject,
  type LogLine,
  type LogMessage,
  type LogsLocation,
  type SealMessage,
} from './format.js';
import { logFollowLatency, secondsSince } from '#libs/observability';

export type FollowEvent =
  | { type: 'lines'; lines: LogLine[] }
  | { type: 'end'; lineCount: number; bytes: number; by: SealMessage['by'] };

/** The cumulative text of a run's log as the compatible `GET …/runs/{id}/logs` serves it. */
export interface RunLogText {
  /** Complete lines, each ending in `\n`; a line split in pieces appears once all pieces are there. */
  text: string;
  lineCount: number;
  sealed: boolean;
  /** The text stopped growing at the size limit (a marker line says so). */
  truncated: boolean;
}

interface Cached {
  /** Next stream sequence to read. */
  next: number;
  parts: string[];
  bytes: number;
  /** Pieces of a line whose last piece has not arrived yet. */
  pending: string;
  lineCount: number;
  sealed: boolean;
  truncated: boolean;
}

export interface RunLogReaderOptions {
  /** The text stops growing at this size (a marker line says so); default 16 MiB. */
  textMaxBytes?: number;
  /** Most runs whose text is kept in memory between reads (a follower polls every 2 s). */
  cacheRuns?: number;
  /** Most bytes of text kept in memory between reads, all runs together; default 64 MiB. */
  cacheBytes?: number;
}

const READ_IDLE_MS = 5_000;
const noMessage = (err: unknown) => /no message found|not found|404/i.test(String(err));

/**
 * Reads run logs from the LOGS stream: `text` for the compatible polling endpoint (incremental: a
 * run's text read before is extended with only the new messages), `follow` for live clients (SSE,
 * gRPC): replay, then live, ending after the seal.
 */
export class RunLogReader {
  private readonly js: JetStreamClient;
  private jsm: Promise<JetStreamManager> | undefined;
  private readonly cache = new Map<string, Cached>();
  private readonly textMaxBytes: number;
  private readonly cacheRuns: number;
  private readonly cacheBytes: number;
  private cachedBytes = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly loc: LogsLocation,
    opts: RunLogReaderOptions = {},
  ) {
    this.js = jetstream(nc);
    this.textMaxBytes = opts.textMaxBytes ?? 16 * 1024 * 1024;
    this.cacheRuns = opts.cacheRuns ?? 200;
    this.cacheBytes = opts.cacheBytes ?? 64 * 1024 * 1024;
  }

  private get stream(): string {
    return logsStreamName(this.loc);
  }

  private manager(): Promise<JetStreamManager> {
    this.jsm ??= jetstreamManager(this.nc).catch((err: unknown) => {
      this.jsm = undefined;
      throw err;
    });
    return this.jsm;
  }

  /** Stream sequence of the last message on a subject, or 0. */
  private async lastSeq(subject: string): Promise<number> {
    const jsm = await this.manager();
    try {
      const m = await jsm.streams.getMessage(this.stream, { last_by_subj: subject });
      return m?.seq ?? 0;
    } catch (err) {
      if (noMessage(err)) return 0;
      throw err;
    }
  }

  /** The run's log text so far; null when nothing of it was ever stored. */
  async text(workspaceId: string, runId: string): Promise<RunLogText | null> {
    const key = `${workspaceId}/${runId}`;
    let c = this.cache.get(key);
    if (c) {
      this.cache.delete(key); // LRU: re-inserted below
      this.cachedBytes -= c.bytes;
    }
    if (!c?.sealed) {
      const sealSeq = await this.lastSeq(runSealSubject(this.loc.subjectPrefix, workspaceId, runId));
      const last =
        sealSeq || (await this.lastSeq(runLinesSubject(this.loc.subjectPrefix, workspaceId, runId)));
      if (last === 0 && !c) return null;
      c ??= { next: 0, parts: [], bytes: 0, pending: '', lineCount: 0, sealed: false, truncated: false };
      if (last >= c.next) await this.readInto(c, workspaceId, runId, last);
    }
    this.cache.set(key, c);
    this.cachedBytes += c.bytes;
    // Least recently read first; the run just read stays (it is the newest).
    while (this.cache.size > 1 && (this.cache.size > this.cacheRuns || this.cachedBytes > this.cacheBytes)) {
      const [oldest, entry] = this.cache.entries().next().value!;
      this.cache.delete(oldest);
      this.cachedBytes -= entry.bytes;
    }
    const text = c.parts.length > 1 ? c.parts.join('') : (c.parts[0] ?? '');
    c.parts = text ? [text] : [];
    return { text, lineCount: c.lineCount, sealed: c.sealed, truncated: c.truncated };
  }

  private async readInto(c: Cached, workspaceId: string, runId: string, last: number): Promise<void> {
    await this.scan(runLogSubjects(this.loc.subjectPrefix, workspaceId, runId), c.next, last, (seq, msg) => {
      c.next = seq + 1;
      if (msg?.type === 'lines') {
        for (const l of msg.lines) this.appendLine(c, l.text, l.part === true);
        c.lineCount = msg.first + msg.lines.length - 1;
      } else if (msg?.type === 'end') {
        if (c.pending) this.appendLine(c, '', false);
        c.lineCount = msg.lineCount;
        c.sealed = true;
        return false;
      }
      return true;
    });
  }

  /**
   * Reads the messages of `filter` from stream sequence `from` (0: the first) up to `last` in
   * order; `onMessage` returns false to stop early.
   */
  private async scan(
    filter: string,
    from: number,
    last: number,
    onMessage: (seq: number, msg: LogMessage | undefined) => boolean,
  ): Promise<void> {
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: filter,
      ...(from > 0
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ max_messages: 256 });
    // Messages removed by retention meanwhile would leave `last` unreachable: stop when idle.
    let idle = setTimeout(() => void messages.close().catch(() => undefined), READ_IDLE_MS);
    try {
      for await (const m of messages) {
        clearTimeout(idle);
        idle = setTimeout(() => void messages.close().catch(() => undefined), READ_IDLE_MS);
        if (!onMessage(m.seq, parseLogMessage(m.data))) break;
        if (m.seq >= last || m.info.pending === 0) break;
      }
    } finally {
      clearTimeout(idle);
      await messages.close().catch(() => undefined);
    }
  }

  /**
   * What is stored of a run's log: its seal if there is one, else the number and bytes of the
   * lines there are (what the logs service seals a run with whose worker could not).
   */
  async stats(
    workspaceId: string,
    runId: string,
  ): Promise<{ lineCount: number; bytes: number; seal: SealMessage | undefined }> {
    const jsm = await this.manager();
    try {
      const m = await jsm.streams.getMessage(this.stream, {
        last_by_subj: runSealSubject(this.loc.subjectPrefix, workspaceId, runId),
      });
      const seal = m ? parseLogMessage(m.data) : undefined;
      if (seal?.type === 'end') return { lineCount: seal.lineCount, bytes: seal.bytes, seal };
    } catch (err) {
      if (!noMessage(err)) throw err;
    }
    const subject = runLinesSubject(this.loc.subjectPrefix, workspaceId, runId);
    const last = await this.lastSeq(subject);
    let lineCount = 0;
    let bytes = 0;
    if (last > 0)
      await this.scan(subject, 0, last, (_seq, msg) => {
        if (msg?.type === 'lines') {
          lineCount = msg.first + msg.lines.length - 1;
          for (const l of msg.lines) bytes += Buffer.byteLength(l.text);
        }
        return true;
      });
    return { lineCount, bytes, seal: undefined };
  }

  private appendLine(c: Cached, text: string, part: boolean): void {
    if (part) {
      c.pending += text;
      return;
    }
    const line = `${c.pending}${text}\n`;
    c.pending = '';
    if (c.truncated) return;
    const n = Buffer.byteLength(line);
    if (c.bytes + n > this.textMaxBytes) {
      const note = `[runway] log text truncated at ${c.bytes} bytes; the whole log: runway logs -f or the /logs/stream endpoint\n`;
      c.parts.push(note);
      c.bytes += Buffer.byteLength(note);
      c.truncated = true;
      return;
    }
    c.parts.push(line);
    c.bytes += n;
  }

  /**
   * Every line stored of the run when called, in order, batch by batch (up to the seal, or the
   * last line so far of a run still writing): a download streams the whole log without holding it.
   */
  async *stored(workspaceId: string, runId: string, signal?: AbortSignal): AsyncGenerator<LogLine[]> {
    const sealSeq = await this.lastSeq(runSealSubject(this.loc.subjectPrefix, workspaceId, runId));
    const last = sealSeq || (await this.lastSeq(runLinesSubject(this.loc.subjectPrefix, workspaceId, runId)));
    if (last === 0 || signal?.aborted) return;
    const consumer = await this.js.consumers.get(this.stream, {
      filter_subjects: runLogSubjects(this.loc.subjectPrefix, workspaceId, runId),
      deliver_policy: DeliverPolicy.All,
    });
    const messages = await consumer.consume({ max_messages: 256 });
    const close = () => void messages.close().catch(() => undefined);
    signal?.addEventListener('abort', close);
    // Messages removed by retention meanwhile would leave `last` unreachable: stop when idle.
    let idle = setTimeout(close, READ_IDLE_MS);
    try {
      for await (const m of messages) {
        clearTimeout(idle);
        const msg = parseLogMessage(m.data);
        if (msg?.type === 'end') break;
        if (msg) yield linesOf(msg);
        if (m.seq >= last || m.info.pending === 0) break;
        idle = setTimeout(close, READ_IDLE_MS);
      }
    } finally {
      clearTimeout(idle);
      signal?.removeEventListener('abort', close);
      await messages.close().catch(() => undefined);
    }
  }

  /**
   * Every line of the run from line `from` (default 1) in order, batch by batch, live; the last
   * event is the seal. Stops early when `signal` aborts.
   */
  async *follow(
    workspaceId: string,
    runId: string,
    opts: { from?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<FollowEvent> {
    const from = opts.from ?? 1;
    const consumer = await this.js.consumers.get(this.stream, {
      // one wildcard covers the run's lines and its seal
      filter_subjects: runLogSubjects(this.loc.subjectPrefix, workspaceId, runId),
      deliver_policy: DeliverPolicy.All,
    });
    if (opts.signal?.aborted) return;
    const messages = await consumer.consume({ max_messages: 256 });
    const onAbort = () => void messages.close().catch(() => undefined);
    opts.signal?.addEventListener('abort', onAbort);
    try {
      for await (const m of messages) {
        const msg = parseLogMessage(m.data);
        if (!msg) continue;
        if (msg.type === 'end') {
          yield { type: 'end', lineCount: msg.lineCount, bytes: msg.bytes, by: msg.by };
          return;
        }
        if (msg.first + msg.lines.length <= from) continue;
        const lines = linesOf(msg);
        // runway_log_follow_latency_seconds: write (the worker read the line) → a live follower reads it.
        if (m.info.pending === 0) logFollowLatency.observe(secondsSince(lines[lines.length - 1]!.ts));
        yield { type: 'lines', lines: msg.first >= from ? lines : lines.filter((l) => l.seq >= from) };
      }
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
      await messages.close().catch(() => undefined);
    }
  }
}
