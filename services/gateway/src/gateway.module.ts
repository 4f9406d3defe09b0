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
import { TelemetryController } from './run/telemetry.js';
import { RunsService } from './run/runs.service.js';
import { ScriptsController } from './job/scripts.controller.js';
import { ManifestController } from './job/manifest.controller.js';
import { ManifestService } from './job/manifest.service.js';
import { WebhooksController } from './job/webhooks.controller.js';
import { QuotaInterceptor, UploadQuota } from './quota/quota.interceptor.js';
import { AlertsController } from './alert/alerts.controller.js';
import { AlertsService } from './alert/alerts.service.js';
import { CredentialsRepository } from './session/credentials.repository.js';
import { SessionController } from './session/session.controller.js';
import { OidcController } from './session/oidc.controller.js';
import { OidcService } from './session/oidc.service.js';
import { SessionsRepository } from './session/sessions.repository.js';
import { SessionsService } from './session/sessions.service.js';
import { DashboardController } from './dashboard/dashboard.controller.js';
import { DashboardService } from './dashboard/dashboard.service.js';
import { EventsStreamController } from './dashboard/events-stream.controller.js';
import { JobsController } from './job/jobs.controller.js';
import { InteractiveService } from './interactive/interactive.service.js';
import { LinkRevocations } from './interactive/link-revocations.js';
import { ProxyCredentials } from './interactive/proxy-credentials.js';
import { PublicLinksController } from './interactive/public-links.controller.js';

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
        SessionController,
        OidcController,
        MeController,
        TokensController,
        UsersController,
        WorkspaceController,
        ConfigurationController,
        DeploymentController,
        ManifestController,
        WebhooksController,
        ScriptsController,
        RunsController,
        TelemetryController,
        RunLogsStreamController,
        PipelinesController,
        AlertsController,
        DashboardController,
        EventsStreamController,
        JobsController,
        PublicLinksController,
      ],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        { provide: AUTH_OPTIONS, useValue: auth },
        GatewayDatabase,
        UploadQuota,
        SigningKey,
        Authenticator,
        SessionsService,
        OidcService,
        SessionsRepository,
        CredentialsRepository,
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
        DashboardService,
        InteractiveService,
        LinkRevocations,
        ProxyCredentials,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ErrorBodyFilter },
        { provide: APP_INTERCEPTOR, useClass: QuotaInterceptor },
      ],
      exports: [UserHandler, WorkspaceHandler, IdentityRepository, WorkspaceAccess, Authenticator],
    };
  }
}
