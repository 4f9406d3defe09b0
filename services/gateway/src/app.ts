import 'reflect-metadata';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { json, type NextFunction, type Request, type Response } from 'express';
import { httpObservability, metricsEndpoint } from '#libs/observability';
import { loadMasterKey, type MasterKey } from '#libs/secrets';
import { logLevels, type RunningService } from '#libs/service-host';
import type { AuthOptions } from './auth/auth.controller.js';
import { GatewayModule } from './gateway.module.js';
import { dashboardStatic } from './web/dashboard-static.js';
import { AppProxy } from './interactive/app-proxy.js';
import { InteractiveService } from './interactive/interactive.service.js';
import { LinkRevocations } from './interactive/link-revocations.js';
import { ProxyCredentials } from './interactive/proxy-credentials.js';

const SYNC_ROUTE = /^\/api\/v1\/workspaces\/[^/]+\/deployments\/sync\//;

/** The gateway's HTTP application (REST /api and /auth), not yet listening. */
export async function createGatewayHttp(
  service: RunningService,
  natsUrl: string,
  auth: AuthOptions,
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(
    GatewayModule.forRoot(service.ctx, natsUrl, auth),
    {
      logger: logLevels(service.ctx.config),
      bodyParser: false,
    },
  );
  // Prometheus metrics of the whole process (every service hosted in it), and every request's
  // span, latency and status (docs/observability.md).
  app.use(metricsEndpoint());
  app.use(httpObservability('gateway'));
  // Interactive apps (`/i/…`, `/p/…`): proxied before any body parser reads a request, and their
  // WebSocket upgrades (docs/interactive.md).
  const config = service.ctx.config;
  let masterKey: MasterKey | undefined;
  const proxy = new AppProxy({
    service: app.get(InteractiveService),
    revocations: app.get(LinkRevocations),
    credentials: app.get(ProxyCredentials).of,
    masterKey: () => (masterKey ??= loadMasterKey({ masterKey: config.masterKey, dataDir: config.dataDir })),
  });
  app.use((req: Request, res: Response, next: NextFunction) => {
    if (AppProxy.owns(req.url)) return void proxy.handle(req, res);
    proxy.passOver(req);
    next();
  });
  const server: Server = app.getHttpServer();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (AppProxy.owns(req.url)) void proxy.upgrade(req, socket, head);
    else socket.destroy();
  });
  server.on('close', () => proxy.close());
  // The deployment sync API carries whole file lists (20,000 files are about 2.5 MB of JSON).
  const syncJson = json({ limit: '32mb' });
  app.use((req: Request, res: Response, next: NextFunction) =>
    SYNC_ROUTE.test(req.path) ? syncJson(req, res, next) : next(),
  );
  app.useBodyParser('json', { limit: '1mb' });
  // The web dashboard (web/dist) at `/`; never the /api, /auth, compatible or probe paths.
  app.use(dashboardStatic());
  app.disable('x-powered-by');
  app.enableShutdownHooks([]);
  return app;
}
