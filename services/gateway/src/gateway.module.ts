import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
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
import { ClientsModule, Transport } from '@nestjs/microservices';
import { SERVICES_CLIENT } from '#libs/service-host';

@Module({})
export class GatewayModule {
  static forRoot(ctx: ServiceContext, natsUrl: string): DynamicModule {
    return {
      module: GatewayModule,
      imports: [
        ClientsModule.register([{ name: SERVICES_CLIENT, transport: Transport.NATS, options: { servers: [natsUrl], name: 'runway-gateway-rpc' } }]),
      ],
      controllers: [HealthController, WorkspaceController],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        IdentityRepository,
        WorkspaceRepository,
        WorkspaceHandler,
        UserHandler,
        WorkspaceAccess,
        { provide: APP_GUARD, useClass: AuthGuard },
        { provide: APP_FILTER, useClass: ErrorBodyFilter },
      ],
      exports: [UserHandler, WorkspaceHandler, IdentityRepository, WorkspaceAccess],
    };
  }
}
