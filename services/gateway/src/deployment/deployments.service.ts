import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  ArchiveError,
  checkFileList,
  fileListDigest,
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
import { ApiError, badRequest, humanBytes, notFound } from '#libs/http';
import { rpc, RpcCallError, SERVICE_CONTEXT, SERVICES_CLIENT, type ServiceContext } from '#libs/service-host';
import {
  deploymentById,
  deploymentByVersion,
  deploymentFiles,
  latestDeployment,
  listDeployments,
  referencedBlobs,
  type DeploymentFileRow,
  type DeploymentRow,
} from '../../../deployments/src/deployment/read-models/deployments.queries.js';
import type { Principal } from '../auth/authenticator.js';
import { GatewayDatabase } from '../gateway.database.js';
import type { DeploymentDiff } from '../../../../libs/client/src/dashboard.js';
import { DEPLOYMENT_BLOBS } from './deployment.blobs.js';
import {
  compareFileLists,
  MAX_DIFF_FILE_BYTES,
  textOf,
  unifiedDiff,
  type ChangedFile,
  type DiffFile,
} from './deployment-diff.js';
import { PackageInfoStore, type PackageInfo } from './package-info.js';

export type {
  DeploymentFileRow,
  DeploymentRow,
} from '../../../deployments/src/deployment/read-models/deployments.queries.js';

/** A file as the sync API receives it: a regular file by content hash, or a symlink by target. */
export interface SyncFile {
  path: string;
  size?: number;
  sha256?: string;
  mode?: number;
  target?: string;
}

const PUT_CONCURRENCY = 16;

const uuid = z.string().uuid();

/**
 * Deployments, the one application service behind the REST routes and the gRPC methods: versions
 * and their files; an archive unpacked and checked, its contents stored as blobs (only after the
 * whole archive passed), the file list handed to the deployments service and the resulting
 * version read back; the incremental sync (plan, blobs, commit).
 */
@Injectable()
export class DeploymentsService {
  private readonly logger = new Logger('DeploymentsService');

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(DEPLOYMENT_BLOBS) private readonly blobs: BlobStore,
    @Inject(SERVICES_CLIENT) private readonly client: ClientProxy,
    @Inject(GatewayDatabase) private readonly db: GatewayDatabase,
    @Inject(PackageInfoStore) private readonly packages: PackageInfoStore,
  ) {}

  list(ws: string, limit: number, offset: number) {
    return listDeployments(this.db.readModels.deployments, ws, limit, offset);
  }

  /** A version by id (UUID), number or "latest"; 404 when there is none. */
  async resolve(ws: string, idOrVersion: string): Promise<DeploymentRow> {
    let row: DeploymentRow | undefined;
    if (idOrVersion === 'latest') {
      row = await latestDeployment(this.db.readModels.deployments, ws);
      if (!row) throw notFound('no deployment yet in this workspace');
      return row;
    }
    if (/^\d{1,9}$/.test(idOrVersion))
      row = await deploymentByVersion(this.db.readModels.deployments, ws, Number(idOrVersion));
    else if (uuid.safeParse(idOrVersion).success)
      row = await deploymentById(this.db.readModels.deployments, ws, idOrVersion.toLowerCase());
    else
      throw badRequest(
        `deployment_id_or_version must be a UUID or a version number, got ${JSON.stringify(idOrVersion)}`,
      );
    if (!row) throw notFound(`deployment ${idOrVersion} not found`);
    return row;
  }

  /** Files of a version, in code point order of their paths. */
  files(row: DeploymentRow): Promise<DeploymentFileRow[]> {
    return deploymentFiles(this.db.readModels.deployments, row.id);
  }

  /**
   * What changed between two versions: added, removed and changed files, and a unified diff of
   * each changed text file up to MAX_DIFF_FILE_BYTES a side (binary files get none).
   */
  async diff(ws: string, fromRef: string, toRef: string): Promise<DeploymentDiff> {
    const [from, to] = await Promise.all([this.resolve(ws, fromRef), this.resolve(ws, toRef)]);
    const [before, after] = await Promise.all([this.files(from), this.files(to)]);
    const asDiffFile = (f: DeploymentFileRow): DiffFile => ({
      path: f.path,
      type: f.type,
      size: Number(f.size),
      sha256: f.sha256,
      link_target: f.link_target,
    });
    const cmp = compareFileLists(before.map(asDiffFile), after.map(asDiffFile));
    const changed = await mapLimit(cmp.changed, 8, async ({ before: b, after: a }): Promise<ChangedFile> => {
      const entry = {
        path: a.path,
        before: { size: b.size, sha256: b.sha256 },
        after: { size: a.size, sha256: a.sha256 },
      };
      if (a.type !== 'file' || b.type !== 'file')
        return { ...entry, binary: false, too_large: false, diff: null };
      if (a.size > MAX_DIFF_FILE_BYTES || b.size > MAX_DIFF_FILE_BYTES)
        return { ...entry, binary: false, too_large: true, diff: null };
      const [x, y] = await Promise.all([this.blobs.get(ws, b.sha256), this.blobs.get(ws, a.sha256)]);
      const tx = x ? textOf(x) : undefined;
      const ty = y ? textOf(y) : undefined;
      if (tx === undefined || ty === undefined)
        return { ...entry, binary: true, too_large: false, diff: null };
      return { ...entry, binary: false, too_large: false, diff: unifiedDiff(a.path, tx, ty) };
    });
    return {
      from: { id: from.id, version: from.version },
      to: { id: to.id, version: to.version },
      added: cmp.added,
      removed: cmp.removed,
      changed,
      unchanged: cmp.unchanged,
    };
  }

  /** Incremental sync, step 1: which contents the server lacks, and whether anything changed. */
  async plan(ws: string, files: readonly DeploymentFile[]) {
    const [{ missing, missingBytes }, latest] = await Promise.all([
      this.missing(ws, files),
      latestDeployment(this.db.readModels.deployments, ws),
    ]);
    return { missing, missingBytes, unchanged: latest?.files_digest === fileListDigest(files) };
  }

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

  /** A new version from the dlt CLI's tarball (files/… + manifest.yaml). */
  async fromArchive(
    p: Principal,
    workspaceId: string,
    archive: Buffer,
    idempotencyKey: string | undefined,
    requirementsJson?: Buffer,
  ): Promise<{ row: DeploymentRow; created: boolean }> {
    const actor = p.userId;
    const requirements = requirementsJson ? checkRequirements(requirementsJson) : undefined;
    const commandId = idempotencyKey ? `deployment:${idempotencyKey}` : undefined;
    const limits = this.limits;
    if (archive.length > limits.maxArchiveBytes)
      throw new ApiError(
        413,
        `deployment package too large: more than ${humanBytes(limits.maxArchiveBytes)}`,
        { code: 'archive_too_large' },
      );
    let pkg;
    try {
      pkg = await readPackage(archive, limits);
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
      if (requirementsJson && requirements)
        await this.blobs.put(workspaceId, requirementsJson, requirements.sha256);
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
        ...(requirements ? { requirements } : {}),
      });
    let reply: CreateDeploymentReply;
    try {
      reply = await request(await upload());
    } catch (err) {
      // A blob the sweep removed between our check and the command: store again, retry once.
      if (!(err instanceof RpcCallError && err.error.extra?.code === 'blobs_missing')) throw err;
      reply = await request(await upload());
    }
    await this.packages
      .put('deployment', reply.deploymentId, PackageInfoStore.of(pkg.files))
      .catch((err: unknown) =>
        this.logger.warn(
          `files manifest of deployment ${reply.deploymentId} not kept (dlt-runtime 0.26.1 will see every file as changed): ${err instanceof Error ? err.message : String(err)}`,
        ),
      );
    return this.readBack(workspaceId, reply);
  }

  /**
   * The files manifest (per-file SHA3-256) and dlt ≥ 1.26 content hash of a version, as
   * dlt-runtime 0.26.1 compares them: kept at upload, else computed from the version's blobs.
   */
  async packageInfo(row: DeploymentRow): Promise<PackageInfo> {
    const kept = await this.packages.get('deployment', row.id);
    if (kept) return kept;
    const files = await this.files(row);
    const entries = await mapLimit(files, PUT_CONCURRENCY, async (f) => {
      if (f.type === 'symlink')
        return {
          path: f.path,
          type: 'symlink' as const,
          content: Buffer.alloc(0),
          target: f.link_target ?? '',
        };
      const content = await this.blobs.get(row.workspace_id, f.sha256);
      if (!content) throw new ApiError(503, `a file of deployment ${row.id} is missing from the blob store`);
      return { path: f.path, type: 'file' as const, content };
    });
    return PackageInfoStore.of(entries);
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
    const known = await referencedBlobs(this.db.readModels.deployments, workspaceId, [...sizes.keys()]);
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
    p: Principal,
    workspaceId: string,
    files: DeploymentFile[],
    idempotencyKey: string | undefined,
  ): Promise<{ row: DeploymentRow; created: boolean }> {
    const actor = p.userId;
    const commandId = idempotencyKey ? `deployment:${idempotencyKey}` : undefined;
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
    await this.db.waitForProjection('deployments', reply.seq, 15_000).catch(() => undefined);
    const row = await deploymentById(this.db.readModels.deployments, workspaceId, reply.deploymentId);
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

/** Most bytes of an uploaded requirements.json. */
const MAX_REQUIREMENTS_BYTES = 1024 * 1024;

/** Checks an uploaded requirements.json (a JSON object, at most 1 MiB): 400 otherwise. */
function checkRequirements(data: Buffer): { sha256: string; size: number } {
  if (data.length > MAX_REQUIREMENTS_BYTES)
    throw badRequest(
      `requirements too large: ${data.length} bytes (at most ${humanBytes(MAX_REQUIREMENTS_BYTES)})`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    throw badRequest('invalid requirements: the "requirements" part is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw badRequest('invalid requirements: the "requirements" part must be a JSON object');
  return { sha256: sha256Hex(data), size: data.length };
}
