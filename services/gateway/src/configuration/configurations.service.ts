import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ArchiveError, readPackage, type ReadPackageResult } from '#libs/archive';
import {
  ConfigurationRpc,
  createConfigurationReply,
  type ConfigurationUploadFile,
  type CreateConfigurationRequest,
} from '#libs/contracts';
import { ApiError, badRequest, humanBytes, notFound } from '#libs/http';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import {
  configurationById,
  configurationByVersion,
  configurationProfiles,
  latestConfiguration,
  listConfigurations,
  type ConfigurationRow,
  type ProfileRow,
} from '../../../configurations/src/configuration/read-models/configurations.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import { UploadSealer } from './upload-sealer.js';
import { PackageInfoStore, type PackageInfo } from '../deployment/package-info.js';

export type {
  ConfigurationRow,
  ProfileRow,
} from '../../../configurations/src/configuration/read-models/configurations.queries.js';

/** The reference caps uploaded tarballs at 1 MB. */
export const MAX_CONFIGURATION_ARCHIVE_BYTES = 1024 * 1024;
/**
 * Decompressed TOML of one configuration, all files together: it travels in one NATS request
 * (1 MB message limit) to the configurations service.
 */
export const MAX_CONFIGURATION_TOML_BYTES = 512 * 1024;
const MAX_CONFIGURATION_FILES = 200;
const uuid = z.string().uuid();

/** A configuration version with its profiles (their key names, never values). */
export interface ConfigurationWithProfiles {
  row: ConfigurationRow;
  profiles: ProfileRow[];
}

/**
 * Configurations (`.dlt/*.toml`), the one application service behind the REST routes and the gRPC
 * methods: versions with their profiles; an upload checked, its secrets sealed for the
 * configurations service, the resulting version read back.
 */
@Injectable()
export class ConfigurationsService {
  constructor(
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(UploadSealer) private readonly sealer: UploadSealer,
    @Inject(PackageInfoStore) private readonly packages: PackageInfoStore,
  ) {}

  async list(ws: string, limit: number, offset: number) {
    const { rows, total } = await listConfigurations(this.db.readModels.configurations, ws, limit, offset);
    const profiles = await configurationProfiles(
      this.db.readModels.configurations,
      rows.map((r) => r.id),
    );
    return { rows: rows.map((row) => ({ row, profiles: profiles.get(row.id) ?? [] })), total };
  }

  /** A version by id (UUID), number (0 = the latest) or "latest"; 404 when there is none. */
  async resolve(ws: string, idOrVersion: string): Promise<ConfigurationWithProfiles> {
    let row: ConfigurationRow | undefined;
    if (idOrVersion === 'latest') {
      row = await latestConfiguration(this.db.readModels.configurations, ws);
      if (!row) throw notFound(`no configuration in workspace ${ws} yet`);
      return this.withProfiles(row);
    }
    if (uuid.safeParse(idOrVersion).success)
      row = await configurationById(this.db.readModels.configurations, ws, idOrVersion.toLowerCase());
    else if (/^\d{1,9}$/.test(idOrVersion)) {
      const version = Number(idOrVersion);
      row =
        version === 0
          ? await latestConfiguration(this.db.readModels.configurations, ws)
          : await configurationByVersion(this.db.readModels.configurations, ws, version);
    }
    if (!row) throw notFound(`configuration ${idOrVersion} not found in workspace ${ws}`);
    return this.withProfiles(row);
  }

  /**
   * The files manifest and dlt ≥ 1.26 content hash of a version (dlt-runtime 0.26.1): kept at upload;
   * undefined for a version uploaded otherwise (its sealed files are not read back for this).
   */
  packageInfo(id: string): Promise<PackageInfo | undefined> {
    return this.packages.get('configuration', id);
  }

  /** A new version from the CLI's configurations.tar.gz (none when `onlyIfChanged` and the content is the latest's). */
  async upload(
    p: Principal,
    ws: string,
    archive: Buffer,
    onlyIfChanged: boolean,
    idempotencyKey: string | undefined,
  ): Promise<ConfigurationWithProfiles & { created: boolean }> {
    if (archive.length > MAX_CONFIGURATION_ARCHIVE_BYTES)
      throw badRequest(
        `configuration archive too large: more than ${humanBytes(MAX_CONFIGURATION_ARCHIVE_BYTES)}`,
        { code: 'archive_too_large' },
      );
    let pkg: ReadPackageResult;
    try {
      pkg = await readPackage(archive, {
        maxArchiveBytes: MAX_CONFIGURATION_ARCHIVE_BYTES,
        maxFiles: MAX_CONFIGURATION_FILES,
        maxTotalBytes: MAX_CONFIGURATION_TOML_BYTES,
        maxFileBytes: MAX_CONFIGURATION_TOML_BYTES,
        maxManifestBytes: 256 * 1024,
      });
    } catch (err) {
      if (err instanceof ArchiveError)
        throw badRequest(`invalid configuration archive: ${err.message}`, {
          code: err.code,
          ...(err.member ? { member: err.member } : {}),
        });
      throw err;
    }
    const files: ConfigurationUploadFile[] = [];
    for (const f of pkg.files) {
      if (f.type !== 'file')
        throw badRequest(`${f.path}: a ${f.type}; only regular files are accepted in a configuration`);
      files.push({ path: f.path, content: f.content });
    }
    const commandId = idempotencyKey ? `configuration:${idempotencyKey}` : randomUUID();
    const reply = await rpc(
      this.client,
      ConfigurationRpc.create,
      {
        workspaceId: ws,
        actor: p.userId,
        commandId,
        contentHash: pkg.contentHash,
        size: archive.length,
        onlyIfChanged,
        sealedFiles: this.sealer.seal(ws, commandId, files),
      } satisfies CreateConfigurationRequest,
      createConfigurationReply,
    );
    await this.db.waitForProjection('configurations', reply.seq);
    // What dlt-runtime 0.26.1 compares (digests of the files, never their contents).
    await this.packages
      .put('configuration', reply.configurationId, PackageInfoStore.of(pkg.files))
      .catch(() => undefined);
    const row = await configurationById(this.db.readModels.configurations, ws, reply.configurationId);
    if (!row)
      throw new ApiError(
        503,
        `configuration ${reply.configurationId} was stored but is not readable yet, retry`,
      );
    return { created: reply.created, ...(await this.withProfiles(row)) };
  }

  private async withProfiles(row: ConfigurationRow): Promise<ConfigurationWithProfiles> {
    const profiles = await configurationProfiles(this.db.readModels.configurations, [row.id]);
    return { row, profiles: profiles.get(row.id) ?? [] };
  }
}
