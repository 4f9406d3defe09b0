import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '#libs/nats';
import { runLinesSubject, runSealSubject, type OutputStream, type SealMessage } from './format.js';

export interface RunOutputRef {
  workspaceId: string;
  runId: string;
}

/** A complete, masked line of a run's output (or a piece of a longer one: `part`). */
export interface OutputLine {
  stream: OutputStream;
  text: string;
  /** ms since the epoch. */
  at: number;
  /** This piece of a line longer than 64 KiB continues in the next line. */
  part?: boolean;
}

/** Where a run's output lines go. */
export interface RunOutputSink {
  /** The run's process is about to start. */
  begin(ref: RunOutputRef): Promise<void>;
  /** Lines in arrival order; must not block. */
  append(ref: RunOutputRef, lines: readonly OutputLine[]): void;
  /** No more lines: store everything, then seal. */
  end(ref: RunOutputRef): Promise<void>;
}

export interface JetStreamLogSinkOptions {
  /** Per run, most bytes of lines waiting to be published; past it lines are dropped (with a marker). */
  maxQueuedBytes?: number;
  /** How long `end` keeps trying to store what is left and the seal when NATS is unreachable. */
  endTimeoutMs?: number;
  onError?: (err: unknown) => void;
}

/** A message stays well under nats-server's default 1 MB max_payload. */
const MAX_BATCH_BYTES = 512 * 1024;
const MAX_BATCH_LINES = 8192;

interface Batch {
  first: number;
  count: number;
  bytes: number;
  body: string;
}

interface RunLog {
  ref: RunOutputRef;
  linesSubject: string;
  sealSubject: string;
  /** Last line number given out. */
  seq: number;
  /** Line number of queue[head]. */
  queueFirst: number;
  queue: string[];
  head: number;
  queuedBytes: number;
  dropped: number;
  textBytes: number;
  inflight: Batch | undefined;
  pumping: Promise<void> | undefined;
  failing: boolean;
  /** `end` gave up or finished: the pump stops. */
  closed: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Waits for `p`, or `ms` at most (without leaving a timer behind). */
async function waitAtMost(p: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, Math.max(1, ms))))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Publishes a run's lines to its `….lines` subject in the LOGS stream, numbered from 1 without
 * gaps, many lines per message, in order: while one batch is being stored the next lines collect,
 * so a quiet run sends each line at once and a flooding one sends large batches. `append` never
 * blocks; past `maxQueuedBytes` waiting lines are dropped and counted, and as soon as there is room
 * a numbered `[runway] N lines dropped` line takes their place: nothing is lost silently. Each
 * message has the Nats-Msg-Id `<runId>:<first line>`, so a batch retried after an error is stored
 * once. `end` stores what is left, then the seal `{type: "end", lineCount, bytes}` on `….end`.
 */
export class JetStreamLogSink implements RunOutputSink {
  private readonly runs = new Map<string, RunLog>();
  private readonly js: JetStreamClient;
  private readonly maxQueuedBytes: number;
  private readonly endTimeoutMs: number;
  private readonly onError: (err: unknown) => void;

  constructor(
    nc: NatsConnection,
    private readonly subjectPrefix: string,
    opts: JetStreamLogSinkOptions = {},
  ) {
    this.js = jetstream(nc);
    this.maxQueuedBytes = opts.maxQueuedBytes ?? 32 * 1024 * 1024;
    this.endTimeoutMs = opts.endTimeoutMs ?? 60_000;
    this.onError = opts.onError ?? (() => undefined);
  }

  begin(ref: RunOutputRef): Promise<void> {
    this.runs.set(ref.runId, {
      ref,
      linesSubject: runLinesSubject(this.subjectPrefix, ref.workspaceId, ref.runId),
      sealSubject: runSealSubject(this.subjectPrefix, ref.workspaceId, ref.runId),
      seq: 0,
      queueFirst: 1,
      queue: [],
      head: 0,
      queuedBytes: 0,
      dropped: 0,
      textBytes: 0,
      inflight: undefined,
      pumping: undefined,
      failing: false,
      closed: false,
    });
    return Promise.resolve();
  }

  append(ref: RunOutputRef, lines: readonly OutputLine[]): void {
    const r = this.runs.get(ref.runId);
    if (!r) return;
    for (const l of lines) {
      if (r.queuedBytes >= this.maxQueuedBytes) {
        r.dropped++;
        continue;
      }
      this.flushDropped(r, l.at);
      this.push(r, l.stream, l.at, l.text, l.part === true);
    }
    this.kick(r);
  }

  async end(ref: RunOutputRef): Promise<void> {
    const r = this.runs.get(ref.runId);
    if (!r) return;
    const deadline = Date.now() + this.endTimeoutMs;
    try {
      this.flushDropped(r, Date.now());
      this.kick(r);
      while (r.pumping || r.head < r.queue.length) {
        if (Date.now() > deadline) {
          this.onError(
            new Error(
              `run ${ref.runId}: ${r.queue.length - r.head} lines not stored before the seal timeout`,
            ),
          );
          return;
        }
        if (r.pumping) await waitAtMost(r.pumping, deadline - Date.now());
        else this.kick(r);
      }
      const seal: SealMessage = {
        type: 'end',
        lineCount: r.seq,
        bytes: r.textBytes,
        ts: Date.now(),
        by: 'worker',
      };
      for (let attempt = 0; ; attempt++) {
        try {
          await this.js.publish(r.sealSubject, JSON.stringify(seal), { msgID: `${ref.runId}:end` });
          return;
        } catch (err) {
          this.onError(err);
          if (Date.now() > deadline) return;
          await sleep(Math.min(2_000, 50 * 2 ** attempt));
        }
      }
    } finally {
      r.closed = true;
      this.runs.delete(ref.runId);
    }
  }

  /** Lines waiting to be published (all runs). */
  get queued(): number {
    let n = 0;
    for (const r of this.runs.values()) n += r.queue.length - r.head + (r.inflight?.count ?? 0);
    return n;
  }

  private flushDropped(r: RunLog, at: number): void {
    if (r.dropped === 0) return;
    const n = r.dropped;
    r.dropped = 0;
    this.push(r, 'stderr', at, `[runway] ${n} lines dropped`, false);
  }

  private push(r: RunLog, stream: OutputStream, ts: number, text: string, part: boolean): void {
    r.seq++;
    const json = JSON.stringify(part ? { stream, ts, text, part: true } : { stream, ts, text });
    r.queue.push(json);
    r.queuedBytes += json.length;
    r.textBytes += Buffer.byteLength(text);
  }

  private kick(r: RunLog): void {
    if (r.pumping || (r.head >= r.queue.length && !r.inflight)) return;
    r.pumping = this.pump(r).finally(() => {
      r.pumping = undefined;
      if (r.head < r.queue.length && this.runs.get(r.ref.runId) === r) this.kick(r);
    });
  }

  /** The next batch from the front of the queue (at least one line). */
  private take(r: RunLog): Batch {
    const parts: string[] = [];
    let bytes = 0;
    while (r.head < r.queue.length && parts.length < MAX_BATCH_LINES) {
      const j = r.queue[r.head]!;
      if (parts.length > 0 && bytes + j.length + 1 > MAX_BATCH_BYTES) break;
      parts.push(j);
      bytes += j.length + 1;
      r.head++;
    }
    const first = r.queueFirst;
    r.queueFirst += parts.length;
    r.queuedBytes -= bytes - parts.length;
    if (r.head > 4096 && r.head * 2 > r.queue.length) {
      r.queue = r.queue.slice(r.head);
      r.head = 0;
    }
    return {
      first,
      count: parts.length,
      bytes,
      body: `{"type":"lines","first":${first},"lines":[${parts.join(',')}]}`,
    };
  }

  private async pump(r: RunLog): Promise<void> {
    let failures = 0;
    while (!r.closed && (r.inflight || r.head < r.queue.length)) {
      r.inflight ??= this.take(r);
      try {
        await this.js.publish(r.linesSubject, r.inflight.body, {
          msgID: `${r.ref.runId}:${r.inflight.first}`,
        });
        r.inflight = undefined;
        failures = 0;
        r.failing = false;
      } catch (err) {
        if (!r.failing) this.onError(err);
        r.failing = true;
        failures++;
        // The same batch again: its message id makes the retry idempotent.
        await sleep(Math.min(2_000, 25 * 2 ** failures));
      }
    }
  }
}
