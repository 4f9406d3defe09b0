import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import { readiness } from '#libs/observability';
import { SERVICES, Subjects } from '#libs/contracts';
import { SERVICE_CONTEXT, subjectFor, type ServiceContext } from '#libs/service-host';
import { Public } from '../auth/auth.guard.js';

@Controller()
export class HealthController {
  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  @Public()
  @Get('api/v1/ping')
  ping() {
    return { message: 'pong', service: 'api' };
  }

  /**
   * Readiness: 200 only when this instance can take work (NATS connected, PostgreSQL reachable,
   * migrations done, projections started, the first admin's token written when it bootstraps
   * it); 503 with the reasons otherwise. /api/v1/ping stays the liveness answer.
   */
  @Public()
  @Get('api/v1/ready')
  async ready(@Res({ passthrough: true }) res: Response) {
    const r = await readiness.report();
    res.status(r.ready ? 200 : 503);
    return { status: r.ready ? 'ready' : 'not ready', reasons: r.reasons };
  }

  @Public()
  @Get('auth/v1/ping')
  authPing() {
    return { message: 'pong', service: 'auth' };
  }

  /** Asks every service over NATS; a service that does not answer within 1 s is reported down. */
  @Public()
  @Get('api/v1/health')
  async health() {
    const services = await Promise.all(
      SERVICES.map(async (name) => {
        try {
          const reply = await this.ctx.nats.request(subjectFor(this.ctx, Subjects.health(name)), '', {
            timeout: 1000,
          });
          return { name, ...(reply.json() as object), status: 'ok' };
        } catch {
          return { name, status: 'down' };
        }
      }),
    );
    return { status: services.every((s) => s.status === 'ok') ? 'ok' : 'degraded', services };
  }
}
