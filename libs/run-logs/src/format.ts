import { z } from 'zod';
import { sealedBySchema } from '#libs/contracts';

/**
 * The wire format of run logs in the LOGS stream (DESIGN §7).
 *
 * Per run two subjects: `<prefix>.logs.<workspace>.<runId>.lines` carries batches of numbered lines
 * (one message = many lines, so a run printing 100,000 lines/s is a few hundred messages), and
 * `<prefix>.logs.<workspace>.<runId>.end` carries the seal. A follower reads `….<runId>.>` in stream
 * order; the logs service reads only `*.*.end`.
 */

export type OutputStream = 'stdout' | 'stderr';

/** One line (or one piece of a line longer than 64 KiB: `part` = continues in the next line). */
export interface LogLine {
  seq: number;
  stream: OutputStream;
  /** ms since the epoch, when the worker read it. */
  ts: number;
  text: string;
  part?: true;
}

export const MAX_LINE_BYTES = 64 * 1024;

const lineSchema = z.object({
  stream: z.enum(['stdout', 'stderr']),
  ts: z.number(),
  text: z.string(),
  part: z.literal(true).optional(),
});

/** A batch: lines `first`, `first + 1`, … in order, no gaps. */
export const linesMessageSchema = z.object({
  type: z.literal('lines'),
  first: z.number().int().min(1),
  lines: z.array(lineSchema).min(1),
});
export type LinesMessage = z.infer<typeof linesMessageSchema>;

/** The seal: the run's log is complete with `lineCount` lines (`bytes` of text). */
export const sealMessageSchema = z.object({
  type: z.literal('end'),
  lineCount: z.number().int().min(0),
  bytes: z.number().int().min(0),
  ts: z.number(),
  /** Who sealed: the worker at the end of the run, or the logs service for a run whose worker did not. */
  by: sealedBySchema,
});
export type SealMessage = z.infer<typeof sealMessageSchema>;

export type LogMessage = LinesMessage | SealMessage;

const messageSchema = z.discriminatedUnion('type', [linesMessageSchema, sealMessageSchema]);

const decoder = new TextDecoder();

/** Parses a LOGS message; undefined for anything that is not one (never throws). */
export function parseLogMessage(data: Uint8Array): LogMessage | undefined {
  try {
    const r = messageSchema.safeParse(JSON.parse(decoder.decode(data)));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** Expands a batch to numbered lines. */
export function linesOf(m: LinesMessage): LogLine[] {
  return m.lines.map((l, i) => ({ seq: m.first + i, ...l }));
}

export interface LogsLocation {
  /** The EVENTS stream's name; the LOGS stream is `<events>_LOGS`. */
  eventsStream: string;
  subjectPrefix: string;
}

export function logsStreamName(loc: Pick<LogsLocation, 'eventsStream'>): string {
  return `${loc.eventsStream}_LOGS`;
}

function prefixOf(subjectPrefix: string): string {
  return subjectPrefix ? `${subjectPrefix}.` : '';
}

/** Every subject of the LOGS stream. */
export function logsSubjects(subjectPrefix: string): string {
  return `${prefixOf(subjectPrefix)}logs.>`;
}

/** `….logs.<ws>.<runId>.>`: everything of one run, in order (what a follower reads). */
export function runLogSubjects(subjectPrefix: string, workspaceId: string, runId: string): string {
  return `${prefixOf(subjectPrefix)}logs.${workspaceId}.${runId}.>`;
}

export function runLinesSubject(subjectPrefix: string, workspaceId: string, runId: string): string {
  return `${prefixOf(subjectPrefix)}logs.${workspaceId}.${runId}.lines`;
}

export function runSealSubject(subjectPrefix: string, workspaceId: string, runId: string): string {
  return `${prefixOf(subjectPrefix)}logs.${workspaceId}.${runId}.end`;
}
