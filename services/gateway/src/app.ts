import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { logLevels, type RunningService } from '#libs/service-host';
import { GatewayModule } from './gateway.module.js';

/** The gateway's HTTP application (REST /api and /auth), not yet listening. */
export async function createGatewayHttp(service: RunningService, natsUrl: string): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(GatewayModule.forRoot(service.ctx, natsUrl), {
    logger: logLevels(service.ctx.config),
    bodyParser: false,
  });
  app.useBodyParser('json', { limit: '1mb' });
  app.disable('x-powered-by');
  app.enableShutdownHooks([]);
  return app;
}
