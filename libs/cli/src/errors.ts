import { CommanderError } from 'commander';
import { ConfigError } from '#libs/config';
import { ClientError } from '#libs/client';
import { CliError } from './instance.js';

/**
 * How the CLI ends on an error: one line `runway: <message>` on stderr, or with `--json` one JSON
 * object `{"error": {"code", "message", "exit_code", …}}` on stderr, and the same exit code either
 * way: 1 failed (the server refused, a run failed, not found), 2 usage, 3 Runway unreachable,
 * 130 interrupted, 141 output closed.
 */
export interface CliErrorBody {
  code: string;
  message: string;
  exit_code: number;
  /** The HTTP status of a refusal by the server. */
  status?: number;
  [key: string]: unknown;
}

const EXIT_CODES: Record<number, string> = {
  1: 'failed',
  2: 'usage',
  3: 'unreachable',
  130: 'interrupted',
  141: 'output_closed',
};
const HTTP_CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'too_large',
  422: 'unprocessable',
  429: 'too_many_requests',
  503: 'unavailable',
};

const codeOfExit = (exitCode: number) => EXIT_CODES[exitCode] ?? 'failed';

/** The exit code and the error body of anything main() caught (a CommanderError has printed already). */
export function describeError(err: unknown): CliErrorBody {
  if (err instanceof ClientError) {
    if (err.status === 0) return { code: 'unreachable', message: err.message, exit_code: 3 };
    const serverCode = err.extra['code'];
    return {
      code: typeof serverCode === 'string' ? serverCode : (HTTP_CODES[err.status] ?? `http_${err.status}`),
      message: err.message,
      exit_code: 1,
      status: err.status,
      detail: err.detail,
      ...(Object.keys(err.extra).length ? { extra: err.extra } : {}),
    };
  }
  if (err instanceof CliError)
    return {
      ...err.details,
      code: err.code ?? codeOfExit(err.exitCode),
      message: err.message,
      exit_code: err.exitCode,
    };
  if (err instanceof ConfigError) return { code: 'config', message: err.message, exit_code: 2 };
  if (err instanceof CommanderError)
    return { code: 'usage', message: err.message, exit_code: err.exitCode === 0 ? 0 : 2 };
  return { code: 'failed', message: err instanceof Error ? err.message : String(err), exit_code: 1 };
}

/** Writes the error (text or JSON, see above) and returns the exit code. */
export function reportError(err: unknown, json: boolean): number {
  const body = describeError(err);
  if (err instanceof CommanderError) {
    // Commander wrote its own message (through `commanderOutput`), or help / the version (exit 0).
    return body.exit_code;
  }
  process.stderr.write(json ? JSON.stringify({ error: body }) + '\n' : `runway: ${body.message}\n`);
  return body.exit_code;
}

/** Whether the command line asks for JSON (before `--`; the option may not be parsed yet). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/** Commander's output: its usage errors as one JSON object on stderr with `--json`. */
export function commanderOutput(json: () => boolean) {
  return {
    outputError: (text: string, write: (s: string) => void) => {
      if (!json()) return write(text);
      const message = text.trim().replace(/^error: /, '');
      write(
        JSON.stringify({ error: { code: 'usage', message, exit_code: 2 } satisfies CliErrorBody }) + '\n',
      );
    },
  };
}
