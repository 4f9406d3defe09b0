import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import type { Response } from 'express';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { ArchiveError, readPackage, type ReadPackageResult } from '#libs/archive';
import {
  ConfigurationRpc,
  createConfigurationReply,
  type ConfigurationUploadFile,
  type CreateConfigurationRequest,
} from '#libs/contracts';
import { ApiDoc, ApiError, badRequest, notFound, parseInput, readMultipartFile } from '#libs/http';
import { rpc, SERVICES_CLIENT } from '#libs/service-host';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { WorkspaceAccess } from '../auth/workspace-access.js';
import { UploadSealer } from './upload-sealer.js';
import {
  ConfigurationRepository,
  type ConfigurationRow,
  type ProfileRow,
} from './configuration.repository.js';

/** The reference caps uploaded tarballs at 1 MB. */
export const MAX_CONFIGURATION_ARCHIVE_BYTES = 1024 * 1024;
/**
 * Decompressed TOML of one configuration, all files together: it travels in one NATS request
 * (1 MB message limit) to the configurations service.
 */
export const MAX_CONFIGURATION_TOML_BYTES = 512 * 1024;
const MAX_CONFIGURATION_FILES = 200;

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
const uuid = z.string().uuid();

const configurationResponse = z.object({
  id: z.string().uuid(),
  workspace_id: z.string().uuid(),
  version: z.number().int(),
  content_hash: z.string(),
  file_count: z.number().int(),
  file_names: z.string(),
  size: z.number().int(),
  created_by: z.string().uuid(),
  date_added: z.string(),
  date_updated: z.string(),
  profiles: z.string().describe('comma-separated profile names; "default" = config.toml / secrets.toml'),
  warnings: z.array(z.string()),
  profile_keys: z
    .record(z.string(), z.array(z.string()))
    .describe('per profile, the dotted key names its files define (never values)'),
  files: z.array(
    z.object({
      path: z.string(),
      size: z.number().int(),
      kind: z.enum(['config', 'secrets']),
      profile: z.string().nullable(),
      encrypted: z.boolean(),
      keys: z.array(z.string()),
    }),
  ),
});
type ConfigurationResponse = z.infer<typeof configurationResponse>;
const listResponse = z.object({
  items: z.array(configurationResponse),
  limit: z.number(),
  offset: z.number(),
  total: z.number(),
});

function toResponse(row: ConfigurationRow, profiles: readonly ProfileRow[]): ConfigurationResponse {
  const profileKeys: Record<string, string[]> = {};
  for (const p of profiles)
    profileKeys[p.profile] = [...new Set([...p.config_keys, ...p.secret_keys])].sort();
  return {
    id: row.id,
    workspace_id: row.workspace_id,
    version: row.version,
    content_hash: row.content_hash,
    file_count: row.file_count,
    file_names: row.file_names,
    size: Number(row.size),
    created_by: row.created_by,
    date_added: row.created_at.toISOString(),
    date_updated: row.updated_at.toISOString(),
    profiles: row.profiles.join(','),
    warnings: row.warnings,
    profile_keys: profileKeys,
    files: row.files.map((f) => ({
      path: f.path,
      size: f.size,
      kind: f.kind,
      profile: f.profile,
      encrypted: f.encrypted,
      keys: f.keys,
    })),
  };
}

/**
 * Configuration versions of a workspace (`.dlt/*.toml`): the compatible routes #9-#12 of the dlt
 * runtime API plus `POST …/configurations/sync`. Responses name keys, never values.
 */
@Controller('api/v1/workspaces/:ws/configurations')
export class ConfigurationController {
  constructor(
    @Inject(ConfigurationRepository) private readonly repo: ConfigurationRepository,
    @Inject(WorkspaceAccess) private readonly access: WorkspaceAccess,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(UploadSealer) private readonly sealer: UploadSealer,
  ) {}

  @ApiDoc({ summary: 'List configuration versions, newest first', response: listResponse })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    await this.access.require(req, ws, 'read');
    const q = parseInput(listQuery, query, 'query');
    const { rows, total } = await this.repo.list(ws, q.limit, q.offset);
    const profiles = await this.repo.profiles(rows.map((r) => r.id));
    return {
      items: rows.map((r) => toResponse(r, profiles.get(r.id) ?? [])),
      limit: q.limit,
      offset: q.offset,
      total,
    };
  }

  @ApiDoc({
    summary:
      'Upload the .dlt configuration (multipart part "file": configurations.tar.gz); always creates a version',
    bodyContentType: 'multipart/form-data',
    response: configurationResponse,
    successStatus: 201,
  })
  @Post()
  @HttpCode(201)
  async create(@Req() req: AuthedRequest, @Param('ws') ws: string, @Headers('idempotency-key') key?: string) {
    const r = await this.upload(req, ws, false, key);
    return r.body;
  }

  @ApiDoc({
    summary:
      'Upload the .dlt configuration unless the latest version has the same content hash (201 created, 200 unchanged)',
    bodyContentType: 'multipart/form-data',
    response: configurationResponse.extend({ created: z.boolean() }),
    successStatus: 201,
  })
  @Post('sync')
  async sync(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Res({ passthrough: true }) res: Response,
    @Headers('idempotency-key') key?: string,
  ) {
    const r = await this.upload(req, ws, true, key);
    res.status(r.created ? 201 : 200);
    return { ...r.body, created: r.created };
  }

  @ApiDoc({
    summary: 'The newest configuration version (404 when there is none)',
    response: configurationResponse,
  })
  @Get('latest')
  async latest(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    await this.access.require(req, ws, 'read');
    const row = await this.repo.latest(ws);
    if (!row) throw notFound(`no configuration in workspace ${ws} yet`);
    return this.respond(row);
  }

  @ApiDoc({
    summary: 'A configuration version by id (uuid) or version number',
    response: configurationResponse,
  })
  @Get(':idOrVersion')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('idOrVersion') idOrVersion: string) {
    await this.access.require(req, ws, 'read');
    let row: ConfigurationRow | undefined;
    if (uuid.safeParse(idOrVersion).success) row = await this.repo.byId(ws, idOrVersion.toLowerCase());
    else if (/^\d{1,9}$/.test(idOrVersion)) {
      const version = Number(idOrVersion);
      row = version === 0 ? await this.repo.latest(ws) : await this.repo.byVersion(ws, version);
    }
    if (!row) throw notFound(`configuration ${idOrVersion} not found in workspace ${ws}`);
    return this.respond(row);
  }

  private async respond(row: ConfigurationRow): Promise<ConfigurationResponse> {
    const profiles = await this.repo.profiles([row.id]);
    return toResponse(row, profiles.get(row.id) ?? []);
  }

  private async upload(req: AuthedRequest, ws: string, onlyIfChanged: boolean, key: string | undefined) {
    const { principal } = await this.access.require(req, ws, 'write');
    const part = await readMultipartFile(req, {
      field: 'file',
      maxBytes: MAX_CONFIGURATION_ARCHIVE_BYTES,
      what: 'configuration archive',
    });
    let pkg: ReadPackageResult;
    try {
      pkg = await readPackage(part.data, {
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
    const commandId = key ? `configuration:${key}` : randomUUID();
    const reply = await rpc(
      this.client,
      ConfigurationRpc.create,
      {
        workspaceId: ws,
        actor: principal.userId,
        commandId,
        contentHash: pkg.contentHash,
        size: part.data.length,
        onlyIfChanged,
        sealedFiles: this.sealer.seal(ws, commandId, files),
      } satisfies CreateConfigurationRequest,
      createConfigurationReply,
    );
    await this.repo.waitForProjection('configurations', reply.seq);
    const row = await this.repo.byId(ws, reply.configurationId);
    if (!row)
      throw new ApiError(
        503,
        `configuration ${reply.configurationId} was stored but is not readable yet, retry`,
      );
    return { created: reply.created, body: await this.respond(row) };
  }
}
