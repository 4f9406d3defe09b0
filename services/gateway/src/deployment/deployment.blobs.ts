import type { Provider } from '@nestjs/common';
import { blobBucketName, BlobStore } from '#libs/blobs';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

/** Nest token of the gateway's handle on the deployment blob store (uploads and downloads). */
export const DEPLOYMENT_BLOBS = Symbol('RUNWAY_DEPLOYMENT_BLOBS');

export const deploymentBlobsProvider: Provider = {
  provide: DEPLOYMENT_BLOBS,
  inject: [SERVICE_CONTEXT],
  useFactory: (ctx: ServiceContext) =>
    BlobStore.open(ctx.nats, {
      bucket: blobBucketName(ctx.config.events.subjectPrefix),
      replicas: ctx.config.nats.replicas,
    }),
};
