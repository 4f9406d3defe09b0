import { ConsoleLogger, Logger, type LogLevel } from '@nestjs/common';
import { AsyncLocalStorage } from 'node:async_hooks';
import { z } from 'zod';
import { activeTraceId } from './tracing.js';

/** What a log line may carry besides its message: set around the work it concerns (a request, a run). */
export interface LogFields {
  correlationId?: string;
  runId?: string;
}

const fields = new AsyncLocalStorage<LogFields>();

/** Runs `fn` with `extra` added to every log line written inside it (JSON format). */
export function withLogFields<T>(extra: LogFields, fn: () => T): T {
  return fields.run({ ...fields.getStore(), ...extra }, fn);
}

const formatSchema = z.enum(['text', 'json']).default('text');

/** RUNWAY_LOG_FORMAT: `text` (default, human) or `json` (one object per line). */
export function logFormat(env: NodeJS.ProcessEnv = process.env): 'text' | 'json' {
  const r = formatSchema.safeParse(env.RUNWAY_LOG_FORMAT || undefined);
  if (!r.success) throw new Error(`RUNWAY_LOG_FORMAT must be text or json, not ${env.RUNWAY_LOG_FORMAT}`);
  return r.data;
}

const LEVEL: Record<LogLevel, string> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/** One JSON object per line: time, level, service, msg, and correlation id / run id / trace id where known. */
export function jsonLine(level: LogLevel, service: string | undefined, msg: string, stack?: string): string {
  const f = fields.getStore();
  const traceId = activeTraceId();
  return JSON.stringify({
    time: new Date().toISOString(),
    level: LEVEL[level],
    ...(service ? { service } : {}),
    msg,
    ...(f?.correlationId ? { correlationId: f.correlationId } : {}),
    ...(f?.runId ? { runId: f.runId } : {}),
    ...(traceId ? { traceId } : {}),
    ...(stack ? { stack } : {}),
    pid: process.pid,
  });
}

const text = (m: unknown): string =>
  typeof m === 'string' ? m : m instanceof Error ? m.message : (JSON.stringify(m) ?? String(m));

/** The Nest logger in JSON format: every `new Logger(context)` of every service writes through it. */
export class JsonLogger extends ConsoleLogger {
  protected override printMessages(
    messages: unknown[],
    context?: string,
    logLevel: LogLevel = 'log',
    writeStreamType?: 'stdout' | 'stderr',
    errorStack?: unknown,
  ): void {
    const stream =
      writeStreamType === 'stderr' || logLevel === 'error' || logLevel === 'fatal'
        ? process.stderr
        : process.stdout;
    for (const m of messages) {
      const stack = typeof errorStack === 'string' ? errorStack : m instanceof Error ? m.stack : undefined;
      stream.write(`${jsonLine(logLevel, context || this.context, text(m), stack)}\n`);
    }
  }
}

let installed = false;

/**
 * Installs the JSON logger as Nest's logger when RUNWAY_LOG_FORMAT=json (idempotent; the text
 * logger stays otherwise). Call it before the first log line of the process.
 */
export function configureLogging(levels?: LogLevel[]): 'text' | 'json' {
  const format = logFormat();
  if (format === 'json' && !installed) {
    installed = true;
    // Until a Nest application sets the configured levels: error, warn and log (as `npm start`).
    Logger.overrideLogger(new JsonLogger({ logLevels: levels ?? ['fatal', 'error', 'warn', 'log'] }));
  }
  return format;
}

/** A service's own line outside Nest's logger (a process's "ready" line): JSON or text as configured. */
export function logLine(service: string, msg: string, level: LogLevel = 'log'): string {
  return logFormat() === 'json' ? jsonLine(level, service, msg) : msg;
}
