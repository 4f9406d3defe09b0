import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD, APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { OpenApiController } from './health/openapi.controller.js';
import { ErrorBodyFilter } from '#libs/http';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { AuthGuard } from './auth/auth.guard.js';
import { IdentityRepository } from './auth/identity.repository.js';
import { HealthController } from './health/health.controller.js';
import { WorkspaceController } from './workspace/workspace.controller.js';
import { WorkspaceHandler } from './workspace/workspace.handler.js';
import { WorkspaceRepository } from './workspace/workspace.repository.js';
import { UserHandler } from './user/user.handler.js';
import { WorkspaceAccess } from './auth/workspace-access.js';
import { AUTH_OPTIONS, AuthController, type AuthOptions } from './auth/auth.controller.js';
import { DeviceFlowService } from './auth/device-flow.service.js';
import { DeviceLoginService } from './auth/device-login.service.js';
import { RefreshTokens } from './auth/refresh-tokens.js';
import { PackageInfoStore } from './deployment/package-info.js';
import { SigningKey } from './auth/signing-key.js';
import { MeController } from './account/me.controller.js';
import { AccountsService } from './account/accounts.service.js';
import { TokensController, UsersController } from './account/tokens.controller.js';
import { Authenticator } from './auth/authenticator.js';
import { WorkspacesService } from './workspace/workspaces.service.js';
import { ClientsModule, Transport } from '@nestjs/microservices';
import { ConfigurationController } from './configuration/configuration.controller.js';
import { ConfigurationsService } from './configuration/configurations.service.js';
import { UploadSealer } from './configuration/upload-sealer.js';
import { SERVICES_CLIENT } from '#libs/service-host';
import { natsClientOptions } from '#libs/nats';
import { DeploymentController } from './deployment/deployment.controller.js';
import { deploymentBlobsProvider } from './deployment/deployment.blobs.js';
import { DeploymentsService } from './deployment/deployments.service.js';
import { GatewayDatabase } from './gateway.database.js';
import { JobsService } from './job/jobs.service.js';
import { LogsService } from './log/logs.service.js';
import { runLogReaderProvider } from './log/run-log.reader.js';
import { RunLogsStreamController } from './log/run-logs-stream.controller.js';
import { PipelinesController } from './run/pipelines.controller.js';
import { RunsController } from './run/runs.controller.js';
import { RunsService } from './run/runs.service.js';
import { ScriptsController } from './job/scripts.controller.js';
import { ManifestController } from './job/manifest.controller.js';
import { ManifestService } from './job/manifest.service.js';
import { QuotaInterceptor, UploadQuota } from './quota/quota.interceptor.js';
import { AlertsController } from './alert/alerts.controller.js';
import { AlertsService } from './alert/alerts.service.js';

@Module({})
export class GatewayModule {
  static forRoot(ctx: ServiceContext, natsUrl: string, auth: AuthOptions): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        DiscoveryModule,
        ClientsModule.register([
          {
            name: SERVICES_CLIENT,
            transport: Transport.NATS,
            options: { ...natsClientOptions(natsUrl, ctx.config.nats.auth), name: 'runway-gateway-rpc' },
          },
        ]),
      ],
      controllers: [
        HealthController,
        OpenApiController,
        AuthController,
        MeController,
        TokensController,
        UsersController,
        WorkspaceController,
        ConfigurationController,
        DeploymentController,
        ManifestController,
        ScriptsController,
        RunsController,
        RunLogsStreamController,
        PipelinesController,
        AlertsController,
      ],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        { provide: AUTH_OPTIONS, useValue: auth },
        GatewayDatabase,
        UploadQuota,
        SigningKey,
        Authenticator,
        AccountsService,
        WorkspacesService,
        DeviceFlowService,
        DeviceLoginService,
        RefreshTokens,
        PackageInfoStore,
        IdentityRepository,
        WorkspaceRepository,
        WorkspaceHandler,
        UserHandler,
        WorkspaceAccess,
        ConfigurationsService,
        UploadSealer,
        deploymentBlobsProvider,
        runLogReaderProvider,
        DeploymentsService,
        JobsService,
        ManifestService,
        RunsService,
        LogsService,
        AlertsService,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ErrorBodyFilter },
        { provide: APP_INTERCEPTOR, useClass: QuotaInterceptor },
      ],
      exports: [UserHandler, WorkspaceHandler, IdentityRepository, WorkspaceAccess, Authenticator],
    };
  }
}
