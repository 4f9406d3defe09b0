import { Module, type DynamicModule } from '@nestjs/common';
import { blobBucketName, BlobStore } from '#libs/blobs';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { DEPLOYMENTS_DB, deploymentsDb } from './database.js';
import { DeploymentController } from './deployment/deployment.controller.js';
import { BLOB_STORE, DeploymentHandler } from './deployment/deployment.handler.js';
import { HealthController } from './health/health.controller.js';

@Module({})
export class DeploymentsModule {
  static forRoot(ctx: ServiceContext): DynamicModule {
    return {
      module: DeploymentsModule,
      controllers: [HealthController, DeploymentController],
      providers: [
        { provide: SERVICE_CONTEXT, useValue: ctx },
        { provide: DEPLOYMENTS_DB, useValue: deploymentsDb(ctx) },
        {
          provide: BLOB_STORE,
          useFactory: () =>
            BlobStore.open(ctx.nats, {
              bucket: blobBucketName(ctx.config.events.subjectPrefix),
              replicas: ctx.config.nats.replicas,
            }),
        },
        DeploymentHandler,
      ],
    };
  }
}
