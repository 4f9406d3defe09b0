import { Inject, Injectable } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { loadSigningKey } from './jwt.js';

/** The JWT signing key of this instance (persisted in the data dir). */
@Injectable()
export class SigningKey {
  readonly key: Buffer;
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    this.key = loadSigningKey(ctx.config.dataDir);
  }
}
