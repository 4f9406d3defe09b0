import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { z } from 'zod';
import { configurationFileKindSchema } from '#libs/contracts';
import { ApiDoc, ApiError, parseInput, readMultipartFile } from '#libs/http';
import {
  configurationProfilesSchema,
  type ConfigurationProfiles,
} from '../../../../libs/client/src/dashboard.js';
import { clientFlavour } from '../compat.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { listQuery } from '../page.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import {
  ConfigurationsService,
  MAX_CONFIGURATION_ARCHIVE_BYTES,
  type ConfigurationWithProfiles,
} from './configurations.service.js';

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
      kind: configurationFileKindSchema,
      profile: z.string().nullable(),
      encrypted: z.boolean(),
      keys: z.array(z.string()),
    }),
  ),
});
type ConfigurationResponse = z.infer<typeof configurationResponse>;
const profilesQuery = z.object({
  version: z
    .string()
    .regex(/^(\d{1,9}|latest|[0-9a-fA-F-]{36})$/, 'a version number, id or "latest"')
    .default('latest'),
});
const listResponse = z.object({
  items: z.array(configurationResponse),
  limit: z.number(),
  offset: z.number(),
  total: z.number(),
});

export function toConfigurationResponse({ row, profiles }: ConfigurationWithProfiles): ConfigurationResponse {
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
  constructor(@Inject(ConfigurationsService) private readonly configurations: ConfigurationsService) {}

  @ApiDoc({ summary: 'List configuration versions, newest first', response: listResponse })
  @Authenticated({ workspace: 'read' })
  @Get()
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(listQuery, query, 'query');
    const { rows, total } = await this.configurations.list(ws, q.limit, q.offset);
    return {
      items: await Promise.all(rows.map((r) => this.view(req, r))),
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
  @Authenticated({ workspace: 'write' })
  @Post()
  @HttpCode(201)
  async create(@Req() req: AuthedRequest, @Param('ws') ws: string, @Headers('idempotency-key') key?: string) {
    return this.view(req, await this.upload(req, ws, false, key));
  }

  @ApiDoc({
    summary:
      'Upload the .dlt configuration unless the latest version has the same content hash (201 created, 200 unchanged)',
    bodyContentType: 'multipart/form-data',
    response: configurationResponse.extend({ created: z.boolean() }),
    successStatus: 201,
  })
  @Authenticated({ workspace: 'write' })
  @Post('sync')
  async sync(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Res({ passthrough: true }) res: Response,
    @Headers('idempotency-key') key?: string,
  ) {
    const r = await this.upload(req, ws, true, key);
    res.status(r.created ? 201 : 200);
    return { ...toConfigurationResponse(r), created: r.created };
  }

  @ApiDoc({
    summary: 'The newest configuration version (404 when there is none)',
    response: configurationResponse,
  })
  @Authenticated({ workspace: 'read' })
  @Get('latest')
  async latest(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    return this.view(req, await this.configurations.resolve(ws, 'latest'));
  }

  @ApiDoc({
    summary:
      'Files manifest of the newest configuration version (dlt-runtime 0.26.1: path, size, base64 SHA3-256; never contents)',
  })
  @Authenticated({ workspace: 'read' })
  @Get('latest/files')
  async latestFiles(@Param('ws') ws: string) {
    return this.filesManifest(await this.configurations.resolve(ws, 'latest'));
  }

  @ApiDoc({
    summary: 'Files manifest of a configuration version by id or version number (dlt-runtime 0.26.1)',
  })
  @Authenticated({ workspace: 'read' })
  @Get(':idOrVersion/files')
  async files(@Param('ws') ws: string, @Param('idOrVersion') idOrVersion: string) {
    return this.filesManifest(await this.configurations.resolve(ws, idOrVersion));
  }

  @ApiDoc({
    summary:
      'The profiles of a configuration version (default: latest) with the keys each defines, never values, and the warnings (no prod, no access)',
    response: configurationProfilesSchema,
  })
  @Authenticated({ workspace: 'read' })
  @Get('profiles')
  async profiles(@Param('ws') ws: string, @Query() query: unknown): Promise<ConfigurationProfiles> {
    const q = parseInput(profilesQuery, query, 'query');
    let c: ConfigurationWithProfiles;
    try {
      c = await this.configurations.resolve(ws, q.version);
    } catch (err) {
      // No configuration uploaded yet: no profiles, and dlt's warnings for that.
      if (q.version === 'latest' && err instanceof ApiError && err.status === 404)
        return { configuration: null, profiles: [], warnings: ['no configuration uploaded yet'] };
      throw err;
    }
    return {
      configuration: {
        id: c.row.id,
        version: c.row.version,
        created_at: c.row.created_at.toISOString(),
      },
      profiles: c.profiles.map((p) => ({
        name: p.profile,
        files: [...p.files],
        config_keys: [...p.config_keys].sort(),
        secret_keys: [...p.secret_keys].sort(),
      })),
      warnings: c.row.warnings,
    };
  }

  @ApiDoc({
    summary: 'A configuration version by id (uuid) or version number',
    response: configurationResponse,
  })
  @Authenticated({ workspace: 'read' })
  @Get(':idOrVersion')
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('idOrVersion') idOrVersion: string) {
    return this.view(req, await this.configurations.resolve(ws, idOrVersion));
  }

  /** dlt-runtime 0.26.1 (dlt 1.26) hashes packages differently from dlt 1.20: it gets its own hash. */
  private async view(req: AuthedRequest, c: ConfigurationWithProfiles) {
    const r = toConfigurationResponse(c);
    if (clientFlavour(req) !== 'runtime-026') return r;
    const info = await this.configurations.packageInfo(c.row.id);
    return { ...r, content_hash: info?.filesHash ?? r.content_hash };
  }

  private async filesManifest(c: ConfigurationWithProfiles) {
    const info = await this.configurations.packageInfo(c.row.id);
    return { engine_version: 1, files: info?.files ?? [] };
  }

  private async upload(req: AuthedRequest, ws: string, onlyIfChanged: boolean, key: string | undefined) {
    const part = await readMultipartFile(req, {
      field: 'file',
      maxBytes: MAX_CONFIGURATION_ARCHIVE_BYTES,
      what: 'configuration archive',
    });
    return this.configurations.upload(principalOf(req), ws, part.data, onlyIfChanged, key);
  }
}
