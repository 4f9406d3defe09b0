import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '#libs/nats';
import type { OutputLine, RunOutputRef, RunOutputSink } from '../../../execution/src/worker/output.js';

/** Where the LOGS stream lives: one stream per installation (its name follows the EVENTS stream). */
export interface LogsStreamConfig {
  /** The EVENTS stream's name; the LOGS stream is `<events>_LOGS`. */
  eventsStream: string;
  subjectPrefix: string;
  /** Retention by age (ms); default 7 days. */
  maxAgeMs?: number;
  /** Retention by bytes; default unlimited (-1). */
  maxBytes?: number;
}

export function logsStreamName(cfg: Pick<LogsStreamConfig, 'eventsStream'>): string {
  return `${cfg.eventsStream}_LOGS`;
}

function prefixOf(subjectPrefix: string): string {
  return subjectPrefix ? `${subjectPrefix}.` : '';
}

/** `<prefix>.logs.<workspace>.<runId>` (no prefix: `logs.<workspace>.<runId>`). */
export function logsSubject(subjectPrefix: string, workspaceId: string, runId: string): string {
  return `${prefixOf(subjectPrefix)}logs.${workspaceId}.${runId}`;
}

/** One line of a run's log. `seq` starts at 1 and has no gaps (dropped lines are not numbered). */
export interface LogLineMessage {
  type: 'line';
  seq: number;
  stream: 'stdout' | 'stderr';
  /** ms since the epoch. */
  ts: number;
  text: string;
}

/** The seal: the run's output is complete; `lineCount` = the last line's seq. */
export interface LogSealMessage {
  type: 'end';
  lineCount: number;
  ts: number;
}

export type LogMessage = LogLineMessage | LogSealMessage;

export function parseLogMessage(data: Uint8Array): LogMessage | undefined {
  try {
    const m = JSON.parse(new TextDecoder().decode(data)) as Partial<LogMessage> | null;
    if (m && m.type === 'line' && typeof m.seq === 'number') return m as LogLineMessage;
    if (m && m.type === 'end' && typeof m.lineCount === 'number') return m as LogSealMessage;
  } catch {
    // not ours
  }
  return undefined;
}

const DEFAULT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

/** Creates (or updates the retention of) the LOGS stream. */
export async function ensureLogsStream(nc: NatsConnection, cfg: LogsStreamConfig): Promise<string> {
  const jsm = await jetstreamManager(nc);
  const name = logsStreamName(cfg);
  const wanted = {
    name,
    subjects: [`${prefixOf(cfg.subjectPrefix)}logs.>`],
    max_age: (cfg.maxAgeMs ?? DEFAULT_MAX_AGE_MS) * 1_000_000,
    max_bytes: cfg.maxBytes ?? -1,
    duplicate_window: DUPLICATE_WINDOW_MS * 1_000_000,
  };
  try {
    await jsm.streams.info(name);
    await jsm.streams.update(name, wanted);
  } catch (err) {
    if (!/not found/i.test(String(err))) throw err;
    try {
      await jsm.streams.add(wanted);
    } catch (e) {
      // Another process created it meanwhile.
      if (!/already in use|exists/i.test(String(e))) throw e;
    }
  }
  return name;
}

export interface JetStreamLogSinkOptions {
  /** Most lines queued per run before lines are dropped (reported by a marker line). Default 20,000. */
  maxQueued?: number;
  /** Most messages in flight per publish batch. Default 1024. */
  batch?: number;
  onError?: (err: unknown) => void;
}

interface Pending {
  subject: string;
  msgId: string;
  body: string;
}

interface RunLog {
  ref: RunOutputRef;
  subject: string;
  seq: number;
  queue: Pending[];
  dropped: number;
  pumping: Promise<void> | undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A run's lines to `logs.<workspace>.<runId>` in the LOGS stream: one message per line, numbered,
 * published asynchronously in batches (in order: one batch at a time, each sent in order on one
 * connection). `append` never blocks: past `maxQueued` waiting lines, lines are dropped and a
 * `[runway] N lines dropped` marker takes their place. Every message carries a Nats-Msg-Id
 * (`<runId>:<seq>`), so a batch retried after an error is not stored twice. `end` publishes the
 * seal `{type: "end", lineCount}` after the last line.
 */
export class JetStreamLogSink implements RunOutputSink {
  private readonly runs = new Map<string, RunLog>();
  private readonly js: JetStreamClient;
  private readonly maxQueued: number;
  private readonly batch: number;
  private readonly onError: (err: unknown) => void;

  constructor(
    nc: NatsConnection,
    private readonly subjectPrefix: string,
    opts: JetStreamLogSinkOptions = {},
  ) {
    this.js = jetstream(nc);
    this.maxQueued = opts.maxQueued ?? 20_000;
    this.batch = opts.batch ?? 1024;
    this.onError = opts.onError ?? (() => undefined);
  }

  /** Ensures the stream, then a sink on it. */
  static async open(
    nc: NatsConnection,
    cfg: LogsStreamConfig,
    opts: JetStreamLogSinkOptions = {},
  ): Promise<JetStreamLogSink> {
    await ensureLogsStream(nc, cfg);
    return new JetStreamLogSink(nc, cfg.subjectPrefix, opts);
  }

  begin(ref: RunOutputRef): Promise<void> {
    this.runs.set(ref.runId, {
      ref,
      subject: logsSubject(this.subjectPrefix, ref.workspaceId, ref.runId),
      seq: 0,
      queue: [],
      dropped: 0,
      pumping: undefined,
    });
    return Promise.resolve();
  }

  append(ref: RunOutputRef, lines: readonly OutputLine[]): void {
    const r = this.runs.get(ref.runId);
    if (!r) return;
    for (const l of lines) {
      if (r.queue.length >= this.maxQueued) {
        r.dropped++;
        continue;
      }
      this.flushDropped(r, l.at);
      this.push(r, l.stream, l.at, l.text);
    }
    this.kick(r);
  }

  async end(ref: RunOutputRef): Promise<void> {
    const r = this.runs.get(ref.runId);
    if (!r) return;
    this.flushDropped(r, Date.now());
    const seal: LogSealMessage = { type: 'end', lineCount: r.seq, ts: Date.now() };
    r.queue.push({ subject: r.subject, msgId: `${ref.runId}:end`, body: JSON.stringify(seal) });
    this.kick(r);
    while (r.pumping) await r.pumping;
    this.runs.delete(ref.runId);
  }

  /** Lines waiting to be published (all runs). */
  get queued(): number {
    let n = 0;
    for (const r of this.runs.values()) n += r.queue.length;
    return n;
  }

  private flushDropped(r: RunLog, at: number): void {
    if (r.dropped === 0) return;
    const n = r.dropped;
    r.dropped = 0;
    this.push(r, 'stderr', at, `[runway] ${n} lines dropped`);
  }

  private push(r: RunLog, stream: 'stdout' | 'stderr', ts: number, text: string): void {
    const seq = ++r.seq;
    const msg: LogLineMessage = { type: 'line', seq, stream, ts, text };
    r.queue.push({ subject: r.subject, msgId: `${r.ref.runId}:${seq}`, body: JSON.stringify(msg) });
  }

  private kick(r: RunLog): void {
    if (r.pumping || r.queue.length === 0) return;
    r.pumping = this.pump(r).finally(() => {
      r.pumping = undefined;
      if (r.queue.length > 0) this.kick(r);
    });
  }

  private async pump(r: RunLog): Promise<void> {
    let failures = 0;
    while (r.queue.length > 0) {
      const batch = r.queue.slice(0, this.batch);
      try {
        await Promise.all(batch.map((p) => this.js.publish(p.subject, p.body, { msgID: p.msgId })));
        r.queue.splice(0, batch.length);
        failures = 0;
      } catch (err) {
        this.onError(err);
        failures++;
        // Retried as a whole: the message ids make the retry idempotent.
        await sleep(Math.min(2_000, 50 * 2 ** failures));
      }
    }
  }
}

/** Sends every call to each sink (e.g. the Postgres `run_output` text and the LOGS stream). */
export class CompositeOutputSink implements RunOutputSink {
  constructor(private readonly sinks: readonly RunOutputSink[]) {}

  async begin(ref: RunOutputRef): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.begin(ref)));
  }

  append(ref: RunOutputRef, lines: readonly OutputLine[]): void {
    for (const s of this.sinks) s.append(ref, lines);
  }

  async end(ref: RunOutputRef): Promise<void> {
    await Promise.all(this.sinks.map((s) => s.end(ref)));
  }
}
