import { Inject, Injectable } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';
import {
  ArchiveError,
  checkFileList,
  readPackage,
  readTar,
  sha256Hex,
  type ArchiveLimits,
  type PackageFile,
} from '#libs/archive';
import { BlobIntegrityError, mapLimit, type BlobStore } from '#libs/blobs';
import {
  createDeploymentReply,
  DeploymentRpc,
  type CreateDeploymentReply,
  type CreateDeploymentRequest,
  type DeploymentFile,
} from '#libs/contracts';
import { ApiError, badRequest, readMultipartFile } from '#libs/http';
import { rpc, RpcCallError, SERVICE_CONTEXT, SERVICES_CLIENT, type ServiceContext } from '#libs/service-host';
import { DEPLOYMENT_BLOBS } from './deployment.blobs.js';
import { DeploymentRepository, type DeploymentRow } from './deployment.repository.js';

/** A file as the sync API receives it: a regular file by content hash, or a symlink by target. */
export interface SyncFile {
  path: string;
  size?: number;
  sha256?: string;
  mode?: number;
  target?: string;
}

const PUT_CONCURRENCY = 16;

/**
 * The work behind the deployment routes: unpack and check an archive, store its contents as
 * blobs (only after the whole archive passed), hand the file list to the deployments service,
 * and read the resulting version back.
 */
@Injectable()
export class DeploymentUploads {
  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(DEPLOYMENT_BLOBS) private readonly blobs: BlobStore,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(DeploymentRepository) private readonly repo: DeploymentRepository,
  ) {}

  get limits(): ArchiveLimits {
    const d = this.ctx.config.deployments;
    return {
      maxArchiveBytes: d.maxUploadBytes,
      maxFiles: d.maxFiles,
      maxTotalBytes: d.maxTotalBytes,
      maxFileBytes: Math.min(d.maxTotalBytes, d.maxUploadBytes),
      // manifest.yaml: a few hundred bytes per file is plenty.
      maxManifestBytes: Math.min(32 * 1024 * 1024, 64 * 1024 + d.maxFiles * 8 * 1024),
    };
  }

  /** POST …/deployments: the dlt CLI's tarball, multipart part `file`. */
  async fromArchive(
    req: IncomingMessage,
    workspaceId: string,
    actor: string,
    commandId: string | undefined,
  ): Promise<{ row: DeploymentRow; created: boolean }> {
    const limits = this.limits;
    let part;
    try {
      part = await readMultipartFile(req, {
        field: 'file',
        maxBytes: limits.maxArchiveBytes,
        what: 'deployment package',
      });
    } catch (err) {
      // An oversize body is a 413; the other multipart errors stay 400.
      if (err instanceof ApiError && err.extra.code === 'archive_too_large')
        throw new ApiError(413, err.detail, err.extra);
      throw err;
    }
    let pkg;
    try {
      pkg = await readPackage(part.data, limits);
    } catch (err) {
      if (err instanceof ArchiveError)
        throw badRequest(`invalid deployment package: ${err.message}`, {
          code: err.code,
          ...(err.member ? { member: err.member } : {}),
        });
      throw err;
    }
    const files = pkg.files.map(toDeploymentFile);
    const contents = new Map<string, PackageFile>();
    for (const f of pkg.files) if (f.type === 'file') contents.set(f.sha256, f);
    const upload = async () => {
      await mapLimit([...contents.values()], PUT_CONCURRENCY, (f) =>
        this.blobs.put(workspaceId, f.content, f.sha256),
      );
      return this.putFileList(workspaceId, files);
    };
    const request = async (manifest: string) =>
      this.create({
        workspaceId,
        actor,
        commandId: commandId ?? randomUUID(),
        manifest,
        contentHash: pkg.contentHash,
        archiveSize: pkg.archiveBytes,
        source: 'archive',
        onlyIfChanged: false,
      });
    let reply: CreateDeploymentReply;
    try {
      reply = await request(await upload());
    } catch (err) {
      // A blob the sweep removed between our check and the command: store again, retry once.
      if (!(err instanceof RpcCallError && err.error.extra?.code === 'blobs_missing')) throw err;
      reply = await request(await upload());
    }
    return this.readBack(workspaceId, reply);
  }

  /** Normalizes and checks a sync file list; ArchiveError → 400. */
  checkSyncFiles(input: readonly SyncFile[]): DeploymentFile[] {
    const files: DeploymentFile[] = input.map((f) =>
      f.target !== undefined
        ? {
            path: f.path,
            type: 'symlink',
            size: 0,
            sha256: sha256Hex(f.target),
            mode: 0o777,
            target: f.target,
          }
        : {
            path: f.path,
            type: 'file',
            size: f.size ?? 0,
            sha256: f.sha256 ?? '',
            mode: (f.mode ?? 0o644) & 0o777,
          },
    );
    const l = this.limits;
    try {
      return checkFileList(files, {
        maxFiles: l.maxFiles,
        maxTotalBytes: l.maxTotalBytes,
        maxFileBytes: l.maxFileBytes,
      });
    } catch (err) {
      if (err instanceof ArchiveError)
        throw badRequest(`invalid file list: ${err.message}`, {
          code: err.code,
          ...(err.member ? { member: err.member } : {}),
        });
      throw err;
    }
  }

  /** Blob hashes of `files` that the workspace does not hold yet. */
  async missing(
    workspaceId: string,
    files: readonly DeploymentFile[],
  ): Promise<{ missing: string[]; missingBytes: number }> {
    const sizes = new Map<string, number>();
    for (const f of files) if (f.type === 'file') sizes.set(f.sha256, f.size);
    const known = await this.repo.referencedBlobs(workspaceId, [...sizes.keys()]);
    const unknown = [...sizes.keys()].filter((s) => !known.has(s));
    const missing = await this.blobs.missing(workspaceId, unknown);
    return { missing, missingBytes: missing.reduce((n, s) => n + (sizes.get(s) ?? 0), 0) };
  }

  /** PUT …/blobs/:sha256: stores one verified blob. */
  async putBlob(
    workspaceId: string,
    sha256: string,
    data: Buffer,
  ): Promise<{ sha256: string; size: number; created: boolean }> {
    try {
      return await this.blobs.put(workspaceId, data, sha256);
    } catch (err) {
      if (err instanceof BlobIntegrityError) throw badRequest(err.message, { code: 'hash_mismatch' });
      throw err;
    }
  }

  /**
   * POST …/blobs: many blobs in one request, as an uncompressed tar whose members are named by
   * their SHA-256. Every member is checked before any is stored.
   */
  async putBlobBatch(
    workspaceId: string,
    tar: Buffer,
  ): Promise<{ stored: number; created: number; bytes: number }> {
    const l = this.limits;
    let members;
    try {
      members = readTar(tar, {
        maxMembers: l.maxFiles,
        maxFileBytes: l.maxFileBytes,
        maxTotalBytes: l.maxArchiveBytes,
      });
    } catch (err) {
      if (err instanceof ArchiveError)
        throw badRequest(`invalid blob batch: ${err.message}`, { code: err.code });
      throw err;
    }
    for (const m of members) {
      if (m.type !== 'file' || !/^[0-9a-f]{64}$/.test(m.name)) {
        throw badRequest(
          `invalid blob batch: member ${JSON.stringify(m.name)} must be a regular file named by the hex SHA-256 of its content`,
          { code: 'unexpected_member' },
        );
      }
      if (sha256Hex(m.data) !== m.name)
        throw badRequest(`invalid blob batch: the content of member ${m.name} does not match its hash`, {
          code: 'hash_mismatch',
        });
    }
    const results = await mapLimit(members, PUT_CONCURRENCY, (m) =>
      this.blobs.put(workspaceId, m.data, m.name),
    );
    return {
      stored: results.length,
      created: results.filter((r) => r.created).length,
      bytes: results.reduce((n, r) => n + r.size, 0),
    };
  }

  getBlob(workspaceId: string, sha256: string): Promise<Buffer | null> {
    return this.blobs.get(workspaceId, sha256);
  }

  /** POST …/deployments/sync/commit: a version from blobs already uploaded (none if unchanged). */
  async commit(
    workspaceId: string,
    actor: string,
    files: DeploymentFile[],
    commandId: string | undefined,
  ): Promise<{ row: DeploymentRow; created: boolean }> {
    const reply = await this.create({
      workspaceId,
      actor,
      commandId: commandId ?? randomUUID(),
      manifest: await this.putFileList(workspaceId, files),
      archiveSize: 0,
      source: 'sync',
      onlyIfChanged: true,
    });
    return this.readBack(workspaceId, reply);
  }

  /** The file list travels to the service as a blob: it can exceed NATS's 1 MB message limit. */
  private async putFileList(workspaceId: string, files: readonly DeploymentFile[]): Promise<string> {
    return (await this.blobs.put(workspaceId, Buffer.from(JSON.stringify(files), 'utf8'))).sha256;
  }

  private create(req: CreateDeploymentRequest): Promise<CreateDeploymentReply> {
    return rpc(this.client, DeploymentRpc.create, req, createDeploymentReply, 120_000);
  }

  private async readBack(
    workspaceId: string,
    reply: CreateDeploymentReply,
  ): Promise<{ row: DeploymentRow; created: boolean }> {
    await this.repo.waitForProjection(reply.seq);
    const row = await this.repo.byId(workspaceId, reply.deploymentId);
    if (!row)
      throw new ApiError(
        503,
        `deployment ${reply.deploymentId} was stored but is not readable yet; retry the request`,
      );
    return { row, created: reply.created };
  }
}

function toDeploymentFile(f: PackageFile): DeploymentFile {
  return f.type === 'symlink'
    ? { path: f.path, type: 'symlink', size: 0, sha256: f.sha256, mode: 0o777, target: f.target! }
    : { path: f.path, type: 'file', size: f.size, sha256: f.sha256, mode: f.mode };
}
