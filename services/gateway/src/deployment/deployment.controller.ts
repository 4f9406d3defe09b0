import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Inject,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
} from '@nestjs/common';
import type { Response } from 'express';
import { deploymentFileTypeSchema, deploymentSourceSchema } from '#libs/contracts';
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { ApiDoc, ApiError, badRequest, notFound, parseInput, readMultipartParts } from '#libs/http';
import { clientFlavour } from '../compat.js';
import type { AuthedRequest } from '../auth/auth.guard.js';
import { listQuery } from '../page.js';
import { Authenticated } from '../auth/authenticated.decorator.js';
import { principalOf } from '../auth/workspace-access.js';
import { DeploymentsService, type DeploymentRow } from './deployments.service.js';
import { deploymentDiffSchema } from '../../../../libs/client/src/dashboard.js';

const versionRef = z
  .string()
  .regex(/^(\d{1,9}|latest|[0-9a-fA-F-]{36})$/, 'a version number, id or "latest"');
const diffQuery = z.object({ from: versionRef, to: versionRef });

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lower-case hex SHA-256');

const syncFile = z.union([
  z
    .object({
      path: z.string().min(1),
      size: z.number().int().min(0),
      sha256,
      mode: z.number().int().min(0).max(0o7777).optional(),
    })
    .strict(),
  z.object({ path: z.string().min(1), target: z.string().min(1) }).strict(),
]);
const syncBody = z.object({ files: z.array(syncFile) }).strict();

export const deploymentResponse = z.object({
  id: z.string().uuid(),
  workspace_id: z.string().uuid(),
  version: z.number().int(),
  content_hash: z
    .string()
    .describe('what the dlt CLI computes: SHA3-256 over the sorted files/<path> names and contents, base64'),
  file_count: z.number().int(),
  file_names: z.string().describe('the file paths, comma separated (cut after 8 KB)'),
  size: z.number().int().describe('bytes of all files, uncompressed'),
  archive_size: z.number().int().describe('bytes of the uploaded archive; 0 for a sync'),
  source: deploymentSourceSchema,
  created_by: z.string().uuid(),
  date_added: z.string(),
  date_updated: z.string(),
  requirements_size: z
    .number()
    .int()
    .describe('bytes of the requirements.json uploaded with the version (dlt-runtime 0.26.1); 0 if none'),
});
const listResponse = z.object({
  items: z.array(deploymentResponse),
  limit: z.number(),
  offset: z.number(),
  total: z.number(),
});
const fileItem = z.object({
  path: z.string(),
  type: deploymentFileTypeSchema,
  size: z.number().int(),
  sha256: z.string(),
  mode: z.number().int(),
  target: z.string().optional(),
});
const filesResponse = z.object({
  id: z.string(),
  version: z.number(),
  content_hash: z.string(),
  items: z.array(fileItem),
  total: z.number(),
  engine_version: z.number().int().optional().describe('dlt-runtime 0.26.1 only: the files manifest engine'),
  files: z
    .array(
      z.object({
        relative_path: z.string(),
        size_in_bytes: z.number().int(),
        sha3_256: z.string(),
        linkname: z.string().optional(),
      }),
    )
    .optional()
    .describe('dlt-runtime 0.26.1 only: the files manifest as dlt 1.26 writes it (base64 SHA3-256 per file)'),
});
const planResponse = z.object({
  missing: z.array(z.string()).describe('hashes of the blobs to PUT before the commit'),
  missing_bytes: z.number().int(),
  file_count: z.number().int(),
  unchanged: z.boolean().describe('the files equal the latest version: a commit would create nothing'),
});

export function toDeploymentResponse(r: DeploymentRow): z.infer<typeof deploymentResponse> {
  return {
    id: r.id,
    workspace_id: r.workspace_id,
    version: r.version,
    content_hash: r.content_hash,
    file_count: r.file_count,
    file_names: r.file_names,
    size: r.size,
    archive_size: r.archive_size,
    source: r.source as 'archive' | 'sync',
    created_by: r.created_by,
    date_added: r.created_at.toISOString(),
    date_updated: r.created_at.toISOString(),
    requirements_size: Number(r.requirements_size),
  };
}

/** Reads a raw request body up to `max` bytes; more is a 413 (the rest is drained). */
function readRaw(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > max) {
    req.resume();
    return Promise.reject(
      new ApiError(413, `request body too large: ${declared} bytes (at most ${max})`, {
        code: 'body_too_large',
      }),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let failed = false;
    req.on('data', (c: Buffer) => {
      if (failed) return;
      n += c.length;
      if (n > max) {
        failed = true;
        chunks.length = 0;
        reject(
          new ApiError(413, `request body too large: more than ${max} bytes`, { code: 'body_too_large' }),
        );
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => !failed && resolve(Buffer.concat(chunks, n)));
    req.on('aborted', () => !failed && ((failed = true), reject(badRequest('the request was aborted'))));
    req.on(
      'error',
      (err) => !failed && ((failed = true), reject(badRequest(`reading the request failed: ${err.message}`))),
    );
  });
}

/**
 * Deployments: the dlt-compatible routes (list, upload a tarball, latest, by id or version) plus
 * Runway's file listing and its incremental sync (plan → PUT missing blobs → commit).
 */
@Controller('api/v1/workspaces/:ws')
export class DeploymentController {
  constructor(@Inject(DeploymentsService) private readonly deployments: DeploymentsService) {}

  @Get('deployments')
  @ApiDoc({ summary: 'List deployment versions, newest first', response: listResponse })
  @Authenticated({ workspace: 'read' })
  async list(@Req() req: AuthedRequest, @Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(listQuery, query, 'query');
    const { rows, total } = await this.deployments.list(ws, q.limit, q.offset);
    return {
      items: await Promise.all(rows.map((r) => this.view(req, r))),
      limit: q.limit,
      offset: q.offset,
      total,
    };
  }

  @Post('deployments')
  @HttpCode(201)
  @ApiDoc({
    summary:
      'Upload a deployment package (the dlt CLI tarball: files/… + manifest.yaml) as multipart part "file" (0.20) or "files" (0.26.1, with an optional "requirements" part: requirements.json)',
    bodyContentType: 'multipart/form-data',
    response: deploymentResponse,
  })
  @Authenticated({ workspace: 'write' })
  async upload(@Req() req: AuthedRequest, @Param('ws') ws: string, @Headers('idempotency-key') key?: string) {
    let parts;
    try {
      parts = await readMultipartParts(req, {
        main: {
          fields: ['file', 'files'],
          maxBytes: this.deployments.limits.maxArchiveBytes,
          what: 'deployment package',
        },
        extra: { requirements: { maxBytes: 1024 * 1024, what: 'requirements' } },
      });
    } catch (err) {
      // An oversize body is a 413; the other multipart errors stay 400.
      if (err instanceof ApiError && err.extra.code === 'archive_too_large')
        throw new ApiError(413, err.detail, err.extra);
      throw err;
    }
    const { row } = await this.deployments.fromArchive(
      principalOf(req),
      ws,
      parts.main.data,
      key,
      parts.extra.get('requirements')?.data,
    );
    return this.view(req, row);
  }

  @Post('deployments/sync/plan')
  @HttpCode(201)
  @ApiDoc({
    summary: 'Incremental sync, step 1: which file contents the server lacks',
    body: syncBody,
    response: planResponse,
  })
  @Authenticated({ workspace: 'write' })
  async plan(@Param('ws') ws: string, @Body() body: unknown) {
    const files = this.deployments.checkSyncFiles(parseInput(syncBody, body, 'body').files);
    const { missing, missingBytes, unchanged } = await this.deployments.plan(ws, files);
    return { missing, missing_bytes: missingBytes, file_count: files.length, unchanged };
  }

  @Post('deployments/sync/commit')
  @HttpCode(201)
  @ApiDoc({
    summary:
      'Incremental sync, step 3: create a version from uploaded blobs (none when nothing changed; `created` tells)',
    body: syncBody,
    response: deploymentResponse.extend({ created: z.boolean() }),
  })
  @Authenticated({ workspace: 'write' })
  async commit(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Body() body: unknown,
    @Headers('idempotency-key') key?: string,
  ) {
    const files = this.deployments.checkSyncFiles(parseInput(syncBody, body, 'body').files);
    const { row, created } = await this.deployments.commit(principalOf(req), ws, files, key);
    return { ...toDeploymentResponse(row), created };
  }

  @Get('deployments/diff')
  @ApiDoc({
    summary:
      'What changed between two versions (from, to: numbers or ids): added, removed, changed files; a unified diff of changed text files up to 256 KiB',
    response: deploymentDiffSchema,
  })
  @Authenticated({ workspace: 'read' })
  async diff(@Param('ws') ws: string, @Query() query: unknown) {
    const q = parseInput(diffQuery, query, 'query');
    return this.deployments.diff(ws, q.from, q.to);
  }

  @Get('deployments/latest')
  @ApiDoc({ summary: 'The newest deployment version (404 when there is none)', response: deploymentResponse })
  @Authenticated({ workspace: 'read' })
  async latest(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    return this.view(req, await this.deployments.resolve(ws, 'latest'));
  }

  @Get('deployments/latest/files')
  @ApiDoc({ summary: 'Files of the newest deployment version', response: filesResponse })
  @Authenticated({ workspace: 'read' })
  async latestFiles(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    return this.files(req, await this.deployments.resolve(ws, 'latest'));
  }

  @Get('deployments/:idOrVersion')
  @ApiDoc({ summary: 'A deployment version by id (UUID) or version number', response: deploymentResponse })
  @Authenticated({ workspace: 'read' })
  async get(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('idOrVersion') idOrVersion: string) {
    return this.view(req, await this.deployments.resolve(ws, idOrVersion));
  }

  @Get('deployments/:idOrVersion/files')
  @ApiDoc({
    summary: 'Files of a deployment version: path, type, size, sha256, mode (and target for symlinks)',
    response: filesResponse,
  })
  @Authenticated({ workspace: 'read' })
  async getFiles(
    @Req() req: AuthedRequest,
    @Param('ws') ws: string,
    @Param('idOrVersion') idOrVersion: string,
  ) {
    return this.files(req, await this.deployments.resolve(ws, idOrVersion));
  }

  @Put('blobs/:sha256')
  @HttpCode(201)
  @ApiDoc({
    summary: 'Incremental sync, step 2: upload one file content (raw body, verified against its SHA-256)',
    bodyContentType: 'application/octet-stream',
  })
  @Authenticated({ workspace: 'write' })
  async putBlob(@Req() req: AuthedRequest, @Param('ws') ws: string, @Param('sha256') hash: string) {
    if (!sha256.safeParse(hash).success)
      throw badRequest(`invalid blob hash ${JSON.stringify(hash)}: expected a lower-case hex SHA-256`);
    const type = (req.headers['content-type'] ?? 'application/octet-stream')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/octet-stream' || (req as { _body?: boolean })._body) {
      req.resume();
      throw badRequest(
        `send the blob as a raw body with Content-Type application/octet-stream (got ${type})`,
      );
    }
    const data = await readRaw(req, this.deployments.limits.maxFileBytes);
    return this.deployments.putBlob(ws, hash, data);
  }

  @Post('blobs')
  @HttpCode(201)
  @ApiDoc({
    summary:
      'Incremental sync, step 2 in bulk: upload many file contents as an uncompressed tar whose members are named by their SHA-256',
    bodyContentType: 'application/x-tar',
  })
  @Authenticated({ workspace: 'write' })
  async putBlobs(@Req() req: AuthedRequest, @Param('ws') ws: string) {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-tar' || (req as { _body?: boolean })._body) {
      req.resume();
      throw badRequest(
        `send the blobs as an uncompressed tar with Content-Type application/x-tar (got ${type || 'none'})`,
      );
    }
    const data = await readRaw(req, this.deployments.limits.maxArchiveBytes);
    return this.deployments.putBlobBatch(ws, data);
  }

  @Get('blobs/:sha256')
  @ApiDoc({ summary: 'Download one file content of the workspace by its SHA-256' })
  @Authenticated({ workspace: 'read' })
  async getBlob(@Param('ws') ws: string, @Param('sha256') hash: string, @Res() res: Response) {
    if (!sha256.safeParse(hash).success)
      throw badRequest(`invalid blob hash ${JSON.stringify(hash)}: expected a lower-case hex SHA-256`);
    const data = await this.deployments.getBlob(ws, hash);
    if (!data) throw notFound(`blob ${hash} not found`);
    res.status(200).type('application/octet-stream').send(data);
  }

  /**
   * A version as the caller's client compares it: dlt-runtime 0.26.1 (dlt 1.26) hashes packages
   * differently from dlt 1.20, so it gets its own content hash.
   */
  private async view(req: AuthedRequest, row: DeploymentRow) {
    const r = toDeploymentResponse(row);
    if (clientFlavour(req) !== 'runtime-026') return r;
    return { ...r, content_hash: (await this.deployments.packageInfo(row)).filesHash };
  }

  private async files(req: AuthedRequest, row: DeploymentRow) {
    const files = await this.deployments.files(row);
    const manifest =
      clientFlavour(req) === 'runtime-026'
        ? { engine_version: 1, files: (await this.deployments.packageInfo(row)).files }
        : {};
    return {
      ...manifest,
      id: row.id,
      version: row.version,
      content_hash: row.content_hash,
      items: files.map((f) => ({
        path: f.path,
        type: f.type,
        size: f.size,
        sha256: f.sha256,
        mode: f.mode,
        ...(f.link_target !== null ? { target: f.link_target } : {}),
      })),
      total: files.length,
    };
  }
}
