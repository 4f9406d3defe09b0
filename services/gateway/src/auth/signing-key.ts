import { Inject, Injectable } from '@nestjs/common';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { parseMasterKey } from '#libs/secrets';
import { loadSigningKey } from './jwt.js';

/** The JWT signing key of this instance (jwt.key in the data dir, or derived from RUNWAY_MASTER_KEY). */
@Injectable()
export class SigningKey {
  readonly key: Buffer;
  constructor(@Inject(SERVICE_CONTEXT) ctx: ServiceContext) {
    const master = ctx.config.masterKey;
    this.key = loadSigningKey(ctx.config.dataDir, master ? parseMasterKey(master) : undefined);
  }
}
