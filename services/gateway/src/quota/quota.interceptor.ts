import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { finalize, type Observable } from 'rxjs';
import { ApiError } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { ConcurrencyLimiter, RateLimiter } from './rate-limiter.js';

/** Unauthenticated routes with a request rate per client address (`METHOD route-pattern`). */
const RATED = {
  'POST /auth/v1/github/device-flow/code': 'deviceCodes',
  'POST /auth/v1/github/device-flow/token': 'tokenPolls',
} as const;

/** Upload routes: at most `RUNWAY_MAX_CONCURRENT_UPLOADS` in flight per workspace (`:ws`). */
const UPLOADS = new Set([
  'POST /api/v1/workspaces/:ws/deployments',
  'PUT /api/v1/workspaces/:ws/blobs/:sha256',
  'POST /api/v1/workspaces/:ws/blobs',
  'POST /api/v1/workspaces/:ws/configurations',
  'POST /api/v1/workspaces/:ws/configurations/sync',
]);

/** Uploads in flight per workspace (`RUNWAY_MAX_CONCURRENT_UPLOADS`), shared by REST and gRPC. */
@Injectable()
export class UploadQuota {
  private readonly limiter: ConcurrencyLimiter;
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    this.limiter = new ConcurrencyLimiter(ctx.config.quotas.concurrentUploads);
  }

  /** A slot for one upload in the workspace (call the result when done), or a 429 when all are taken. */
  acquire(ws: string): () => void {
    const release = this.limiter.acquire(ws);
    if (!release)
      throw new ApiError(
        429,
        `too many uploads in progress in this workspace (at most ${this.limiter.max} at once): retry when one has finished`,
        { code: 'too_many_uploads', limit: this.limiter.max },
      );
    return release;
  }
}

/**
 * The request quotas of the REST API (docs/quotas.md), in one place: rates on the unauthenticated
 * device-code routes, uploads in flight per workspace. Past a quota: 429 with the usual error body
 * (and `Retry-After` for rates). Counted per gateway process.
 */
@Injectable()
export class QuotaInterceptor implements NestInterceptor {
  private readonly rates: Record<(typeof RATED)[keyof typeof RATED], RateLimiter>;

  constructor(
    @Inject(SERVICE_CONTEXT) ctx: ServiceContext,
    @Inject(UploadQuota) private readonly uploads: UploadQuota,
  ) {
    const q = ctx.config.quotas;
    this.rates = {
      deviceCodes: new RateLimiter(q.deviceCodesPerMinute),
      tokenPolls: new RateLimiter(q.tokenPollsPerMinute),
    };
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const pattern: unknown = req.route?.path;
    if (typeof pattern !== 'string') return next.handle();
    const route = `${req.method} ${pattern}`;
    const rated = Object.entries(RATED).find(([r]) => r === route)?.[1];
    if (rated) {
      const wait = this.rates[rated].take(req.ip ?? req.socket.remoteAddress ?? 'unknown');
      if (wait > 0) {
        http.getResponse<Response>().setHeader('Retry-After', String(wait));
        req.resume();
        throw new ApiError(429, `too many requests: retry in ${wait} s`, {
          code: 'rate_limited',
          retry_after: wait,
        });
      }
      return next.handle();
    }
    if (UPLOADS.has(route)) {
      const ws = typeof req.params.ws === 'string' ? req.params.ws : '';
      let release: () => void;
      try {
        release = this.uploads.acquire(ws);
      } catch (err) {
        req.resume();
        throw err;
      }
      return next.handle().pipe(finalize(release));
    }
    return next.handle();
  }
}
