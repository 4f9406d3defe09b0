import { ArgumentsHost, Catch, HttpException, Logger, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import { ConcurrencyError, DomainError } from '#libs/eventstore';
import { RpcCallError } from '#libs/service-host';

/** The compatible error body (Litestar's shape, which the dlt CLI parses). `extra` is never null. */
export interface ErrorBody {
  status_code: number;
  detail: string;
  extra?: Record<string, unknown>;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
  }
}

export const badRequest = (detail: string, extra?: Record<string, unknown>) =>
  new ApiError(400, detail, extra);
export const unauthorized = (detail: string) => new ApiError(401, detail);
export const forbidden = (detail: string) => new ApiError(403, detail);
export const notFound = (detail: string) => new ApiError(404, detail);

export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof ApiError) return { status_code: err.status, detail: err.detail, extra: err.extra };
  if (err instanceof RpcCallError)
    return { status_code: err.error.status, detail: err.error.detail, extra: err.error.extra ?? {} };
  if (err instanceof DomainError)
    return { status_code: err.status, detail: err.message, extra: { code: err.code } };
  if (err instanceof ConcurrencyError) {
    return {
      status_code: 409,
      detail: 'the resource was changed concurrently, retry the request',
      extra: {},
    };
  }
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const res = err.getResponse();
    const msg = typeof res === 'string' ? res : ((res as { message?: unknown }).message ?? err.message);
    const detail = Array.isArray(msg) ? msg.join('; ') : String(msg);
    return {
      status_code: status,
      detail:
        status === 404 && /^Cannot (GET|POST|PUT|DELETE|PATCH)/.test(detail)
          ? `no such route: ${detail.replace(/^Cannot /, '')}`
          : detail,
      extra: {},
    };
  }
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.too.large')
    return { status_code: 413, detail: 'request body is too large', extra: {} };
  if (e?.type === 'entity.parse.failed')
    return {
      status_code: 400,
      detail: `request body is not valid JSON: ${e.message ?? ''}`.trim(),
      extra: {},
    };
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return { status_code: e.status, detail: e.message ?? 'bad request', extra: {} };
  }
  return { status_code: 500, detail: 'internal server error', extra: {} };
}

@Catch()
export class ErrorBodyFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');
  catch(err: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const body = toErrorBody(err);
    if (body.status_code >= 500)
      this.logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    if (res.headersSent) return;
    res.status(body.status_code).json(body);
  }
}
