import { NestFactory } from '@nestjs/core';
import { Transport, type MicroserviceOptions } from '@nestjs/microservices';
import type { INestMicroservice, LogLevel } from '@nestjs/common';
import type { RunwayConfig } from '#libs/config';
import { natsClientOptions } from '#libs/nats';
import { RpcErrorFilter } from './rpc.js';
import { TraceInterceptor } from './trace-interceptor.js';

const LEVELS: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];
export function logLevels(config: RunwayConfig): LogLevel[] {
  return LEVELS.slice(0, LEVELS.indexOf(config.logLevel) + 1);
}

/** Boots a service's Nest module as a microservice on the NATS transport (request/reply commands). */
export async function startNestMicroservice(
  module: unknown,
  natsUrl: string,
  name: string,
  config: RunwayConfig,
): Promise<INestMicroservice> {
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(module as never, {
    transport: Transport.NATS,
    options: {
      ...natsClientOptions(natsUrl, config.nats.auth),
      queue: `runway-${name}`,
      name: `runway-${name}-rpc`,
    },
    logger: logLevels(config),
  });
  app.useGlobalFilters(new RpcErrorFilter());
  app.useGlobalInterceptors(new TraceInterceptor(name));
  await app.listen();
  return app;
}
