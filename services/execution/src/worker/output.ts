import type { Kysely } from 'kysely';
import { StringDecoder } from 'node:string_decoder';
import type { ExecutionTables } from '../migrations/index.js';

export interface RunOutputRef {
  workspaceId: string;
  runId: string;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  text: string;
  /** ms since the epoch. */
  at: number;
}

/**
 * Where a run's output lines go. Today: a bounded cumulative text per run in Postgres
 * (`run_output`), read by the compatible `/logs` route. The logs service's LOGS stream
 * (`logs.<workspace>.<runId>`) implements the same three calls.
 */
export interface RunOutputSink {
  /** The run started producing output (its logs become "" instead of null). */
  begin(ref: RunOutputRef): Promise<void>;
  /** Complete, masked lines in arrival order; must not block. */
  append(ref: RunOutputRef, lines: readonly OutputLine[]): void;
  /** No more lines: flush everything. */
  end(ref: RunOutputRef): Promise<void>;
}

/** Most bytes of output kept per run: the text stays append-only (the dlt CLI relies on it), the rest is dropped. */
export const MAX_OUTPUT_BYTES = 1024 * 1024;
const FLUSH_MS = 300;

interface Buffered {
  ref: RunOutputRef;
  parts: string[];
  bytes: number;
  truncated: boolean;
  dirty: boolean;
  timer: NodeJS.Timeout | undefined;
  flushing: Promise<void>;
}

/** Cumulative output text in `run_output`, written at most every 300 ms per run. */
export class PostgresOutputSink implements RunOutputSink {
  private readonly runs = new Map<string, Buffered>();

  constructor(
    private readonly db: Kysely<ExecutionTables>,
    private readonly maxBytes = MAX_OUTPUT_BYTES,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  async begin(ref: RunOutputRef): Promise<void> {
    this.runs.set(ref.runId, {
      ref,
      parts: [],
      bytes: 0,
      truncated: false,
      dirty: false,
      timer: undefined,
      flushing: Promise.resolve(),
    });
    await this.db
      .insertInto('run_output')
      .values({
        run_id: ref.runId,
        workspace_id: ref.workspaceId,
        text: '',
        bytes: 0,
        truncated: false,
        updated_at: new Date(),
      })
      .onConflict((oc) =>
        oc.column('run_id').doUpdateSet({ text: '', bytes: 0, truncated: false, updated_at: new Date() }),
      )
      .execute();
  }

  append(ref: RunOutputRef, lines: readonly OutputLine[]): void {
    const b = this.runs.get(ref.runId);
    if (!b || b.truncated) return;
    for (const l of lines) {
      const text = `${l.text}\n`;
      const n = Buffer.byteLength(text);
      if (b.bytes + n > this.maxBytes) {
        const note = `[runway] output truncated: this run wrote more than ${Math.round(this.maxBytes / 1024)} KiB\n`;
        b.parts.push(note);
        b.bytes += Buffer.byteLength(note);
        b.truncated = true;
        break;
      }
      b.parts.push(text);
      b.bytes += n;
    }
    b.dirty = true;
    b.timer ??= setTimeout(() => {
      b.timer = undefined;
      void this.flush(b);
    }, FLUSH_MS);
  }

  private flush(b: Buffered): Promise<void> {
    b.flushing = b.flushing.then(async () => {
      if (!b.dirty) return;
      b.dirty = false;
      const text = b.parts.join('');
      b.parts = [text];
      try {
        await this.db
          .updateTable('run_output')
          .set({ text, bytes: b.bytes, truncated: b.truncated, updated_at: new Date() })
          .where('run_id', '=', b.ref.runId)
          .execute();
      } catch (err) {
        b.dirty = true;
        this.onError(err);
      }
    });
    return b.flushing;
  }

  async end(ref: RunOutputRef): Promise<void> {
    const b = this.runs.get(ref.runId);
    if (!b) return;
    if (b.timer) clearTimeout(b.timer);
    b.timer = undefined;
    await this.flush(b);
    this.runs.delete(ref.runId);
  }
}

const MAX_LINE = 8192;
const STDERR_TAIL_LINES = 50;
const MAX_TAIL_LINE = 2000;

/**
 * Splits a process's stdout and stderr into lines (only complete lines leave, so a reader never
 * sees half a line that later grows), masks known secret values, keeps the last stderr lines.
 */
export class OutputCapture {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly pending = { stdout: '', stderr: '' };
  private readonly tail: string[] = [];

  constructor(
    private readonly ref: RunOutputRef,
    private readonly sink: RunOutputSink,
    /** Secret values of the run's configuration. */
    secretValues: readonly string[] = [],
  ) {
    this.secrets = expandSecrets(secretValues);
  }

  /** Each secret with its base64, base64url and URL-encoded forms; 4 characters or more; longest first. */
  private readonly secrets: readonly string[];

  mask(text: string): string {
    let t = text;
    for (const s of this.secrets) if (s.length >= 4 && t.includes(s)) t = t.split(s).join('***');
    return t;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    let data = this.pending[stream] + this.decoders[stream].write(chunk);
    const lines: string[] = [];
    for (;;) {
      const i = data.indexOf('\n');
      if (i < 0) break;
      lines.push(data.slice(0, i).replace(/\r$/, ''));
      data = data.slice(i + 1);
    }
    while (data.length > MAX_LINE) {
      lines.push(data.slice(0, MAX_LINE));
      data = data.slice(MAX_LINE);
    }
    this.pending[stream] = data;
    this.emit(stream, lines);
  }

  /** Emits the last unterminated lines (the process ended). */
  finish(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.pending[stream] + this.decoders[stream].end();
      this.pending[stream] = '';
      if (rest.length > 0) this.emit(stream, [rest]);
    }
  }

  /** A note from Runway itself, in the run's output. */
  note(text: string): void {
    this.sink.append(this.ref, [{ stream: 'stderr', text: `[runway] ${text}`, at: Date.now() }]);
  }

  stderrTail(): string[] {
    return [...this.tail];
  }

  private emit(stream: 'stdout' | 'stderr', raw: readonly string[]): void {
    if (raw.length === 0) return;
    const at = Date.now();
    const lines = raw.map((r) => ({ stream, text: this.mask(r), at }));
    if (stream === 'stderr') {
      for (const l of lines) {
        this.tail.push(l.text.length > MAX_TAIL_LINE ? `${l.text.slice(0, MAX_TAIL_LINE - 1)}…` : l.text);
        if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
      }
    }
    this.sink.append(this.ref, lines);
  }
}

export function expandSecrets(values: readonly string[]): string[] {
  const all = new Set<string>();
  for (const v of values) {
    if (v.length < 4) continue;
    const b = Buffer.from(v, 'utf8');
    for (const form of [v, b.toString('base64'), b.toString('base64').replace(/=+$/, ''), b.toString('base64url'), encodeURIComponent(v)]) {
      if (form.length >= 4) all.add(form);
    }
  }
  return [...all].sort((a, b) => b.length - a.length);
}
