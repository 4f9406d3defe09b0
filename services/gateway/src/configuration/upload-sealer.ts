import { Inject, Injectable, Logger } from '@nestjs/common';
import { encodeConfigurationFiles, type ConfigurationUploadFile } from '#libs/contracts';
import { loadMasterKey, sealUpload, transportKey } from '#libs/secrets';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

/**
 * Seals configuration uploads before they become NATS messages: the files are framed and
 * encrypted with the upload transport key (derived from the master key, which the gateway loads
 * like the configurations service and the workers do), bound to the workspace and the command id.
 * Only a holder of the master key opens them; the bus never carries a configuration in clear.
 */
@Injectable()
export class UploadSealer {
  private key: Buffer | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  private uploadKey(): Buffer {
    if (!this.key) {
      const logger = new Logger('gateway');
      const master = loadMasterKey(
        { masterKey: this.ctx.config.masterKey, dataDir: this.ctx.config.dataDir },
        (m) => logger.log(m),
      );
      this.key = transportKey(master, 'configuration-upload');
    }
    return this.key;
  }

  /** base64 of the sealed files, for CreateConfigurationRequest.sealedFiles. */
  seal(workspaceId: string, commandId: string, files: readonly ConfigurationUploadFile[]): string {
    return sealUpload(this.uploadKey(), encodeConfigurationFiles(files), { workspaceId, commandId }).toString(
      'base64',
    );
  }
}
