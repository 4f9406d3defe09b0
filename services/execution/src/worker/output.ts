import { StringDecoder } from 'node:string_decoder';
import { MAX_LINE_BYTES, type OutputLine, type RunOutputRef, type RunOutputSink } from '#libs/run-logs';

export type { OutputLine, RunOutputRef, RunOutputSink } from '#libs/run-logs';

/** A string this short is under MAX_LINE_BYTES whatever its characters (≤ 3 UTF-8 bytes per UTF-16 unit). */
const SAFE_CHARS = Math.floor(MAX_LINE_BYTES / 3);
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
  private loggedBytes = 0;
  private dropped = 0;

  constructor(
    private readonly ref: RunOutputRef,
    private readonly sink: RunOutputSink,
    /** Secret values of the run's configuration. */
    secretValues: readonly string[] = [],
    /** Most bytes of output the run may log; past it lines are dropped (one note says so). */
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    this.secrets = expandSecrets(secretValues);
    this.longestSecret = this.secrets.reduce((n, x) => Math.max(n, Buffer.byteLength(x)), 0);
  }

  /** Each secret with its base64, base64url and URL-encoded forms; 4 characters or more; longest first. */
  private readonly secrets: readonly string[];
  private readonly longestSecret: number;

  mask(text: string): string {
    let t = text;
    for (const s of this.secrets) if (t.includes(s)) t = t.split(s).join('***');
    return t;
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const data = this.pending[stream] + this.decoders[stream].write(chunk);
    const out: Piece[] = [];
    let pos = 0;
    for (;;) {
      const i = data.indexOf('\n', pos);
      if (i < 0) break;
      const end = i > pos && data.charCodeAt(i - 1) === 13 ? i - 1 : i;
      this.addLine(out, data.slice(pos, end));
      pos = i + 1;
    }
    let rest = pos === 0 ? data : data.slice(pos);
    if (rest.length > SAFE_CHARS) rest = this.cutUnterminated(out, rest);
    this.pending[stream] = rest;
    this.emit(stream, out);
  }

  /** Emits the last unterminated lines (the process ended). */
  finish(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const rest = this.pending[stream] + this.decoders[stream].end();
      this.pending[stream] = '';
      if (rest.length === 0) continue;
      const out: Piece[] = [];
      this.addLine(out, rest);
      this.emit(stream, out);
    }
  }

  /** A note from Runway itself, in the run's output. */
  note(text: string): void {
    this.sink.append(this.ref, [{ stream: 'stderr', text: `[runway] ${text}`, at: Date.now() }]);
  }

  stderrTail(): string[] {
    return [...this.tail];
  }

  /** A complete line: masked whole (a secret cannot hide across a cut), then cut at 64 KiB. */
  private addLine(out: Piece[], raw: string): void {
    const text = this.mask(raw);
    if (text.length <= SAFE_CHARS) {
      out.push({ text, part: false });
      return;
    }
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (buf.length - off > MAX_LINE_BYTES) {
      const cut = utf8Boundary(buf, off + MAX_LINE_BYTES);
      out.push({ text: buf.toString('utf8', off, cut), part: true });
      off = cut;
    }
    out.push({ text: off === 0 ? text : buf.toString('utf8', off), part: false });
  }

  /**
   * A line still without its end but already long: its first 64 KiB pieces leave now (so a
   * process printing one endless line neither stalls the log nor grows memory). The text is masked
   * first and the last `4 × longest secret` bytes always stay behind, so a secret that is still
   * being written is never cut in two.
   */
  private cutUnterminated(out: Piece[], rest: string): string {
    const text = this.mask(rest);
    const keep = 4 * this.longestSecret;
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (buf.length - off > MAX_LINE_BYTES + keep) {
      const cut = utf8Boundary(buf, off + MAX_LINE_BYTES);
      out.push({ text: buf.toString('utf8', off, cut), part: true });
      off = cut;
    }
    return off === 0 ? text : buf.toString('utf8', off);
  }

  private emit(stream: 'stdout' | 'stderr', pieces: readonly Piece[]): void {
    if (pieces.length === 0) return;
    const at = Date.now();
    const lines: OutputLine[] = pieces.map((p) =>
      p.part ? { stream, text: p.text, at, part: true } : { stream, text: p.text, at },
    );
    if (stream === 'stderr') {
      for (const l of lines) {
        this.tail.push(l.text.length > MAX_TAIL_LINE ? `${l.text.slice(0, MAX_TAIL_LINE - 1)}…` : l.text);
        if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
      }
    }
    if (this.dropped > 0) {
      this.dropped += lines.length;
      return;
    }
    let n = 0;
    for (; n < lines.length; n++) {
      const size = Buffer.byteLength(lines[n]!.text) + 1;
      if (this.loggedBytes + size > this.maxBytes) break;
      this.loggedBytes += size;
    }
    if (n > 0) this.sink.append(this.ref, n === lines.length ? lines : lines.slice(0, n));
    if (n < lines.length) {
      this.dropped = lines.length - n;
      this.note(
        `the run's log reached its limit of ${this.maxBytes} bytes (RUNWAY_RUN_LOG_MAX_BYTES): further output is dropped`,
      );
    }
  }

  /** Lines dropped past the log limit. */
  get droppedLines(): number {
    return this.dropped;
  }
}

interface Piece {
  text: string;
  part: boolean;
}

/** The largest position ≤ pos that does not split a UTF-8 sequence. */
function utf8Boundary(buf: Buffer, pos: number): number {
  let p = Math.min(pos, buf.length);
  while (p > 0 && p < buf.length && (buf[p]! & 0xc0) === 0x80) p--;
  return p;
}

/**
 * The forms of each secret value that are masked: the value, its base64 (padded and not),
 * base64url and URL-encoded forms, and each line of a multi-line value (output is masked line by
 * line). Forms under 4 characters are not masked. Longest first.
 */
export function expandSecrets(values: readonly string[]): string[] {
  const all = new Set<string>();
  const candidates = [...values];
  for (const v of values) if (v.includes('\n')) candidates.push(...v.split(/\r?\n/).map((l) => l.trim()));
  for (const v of candidates) {
    if (v.length < 4) continue;
    const b = Buffer.from(v, 'utf8');
    for (const form of [
      v,
      b.toString('base64'),
      b.toString('base64').replace(/=+$/, ''),
      b.toString('base64url'),
      encodeURIComponent(v),
    ]) {
      if (form.length >= 4) all.add(form);
    }
  }
  return [...all].sort((a, b) => b.length - a.length);
}
