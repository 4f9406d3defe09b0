import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { logLevels, type RunningService } from '#libs/service-host';
import type { AuthOptions } from './auth/auth.controller.js';
import { GatewayModule } from './gateway.module.js';

/** The gateway's HTTP application (REST /api and /auth), not yet listening. */
export async function createGatewayHttp(service: RunningService, natsUrl: string, auth: AuthOptions): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(GatewayModule.forRoot(service.ctx, natsUrl, auth), {
    logger: logLevels(service.ctx.config),
    bodyParser: false,
  });
  app.useBodyParser('json', { limit: '1mb' });
  app.disable('x-powered-by');
  app.enableShutdownHooks([]);
  return app;
}
