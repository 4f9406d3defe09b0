import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { ArchiveError, checkFileList } from '#libs/archive';
import { BlobStore, mapLimit } from '#libs/blobs';
import {
  AggregateTypes,
  type BlobGcReply,
  type CreateDeploymentReply,
  type CreateDeploymentRequest,
  type DeploymentFile,
} from '#libs/contracts';
import { CommandHandler, DomainError, KeyedLock, type AggregateRef } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import { DEPLOYMENTS_DB, type DeploymentsDb } from '../database.js';
import {
  deploymentDecider,
  deploymentFilesDecider,
  type DeploymentCommand,
  type DeploymentState,
  type DeploymentVersion,
  type StagedFilesState,
  type StageFilesCommand,
} from './deployment.decider.js';
import type { DeploymentEvent, DeploymentFilesEvent } from './deployment.events.js';
import { fileListSchema, filesDigest, splitParts, stableUuid } from './files.js';
import { ContentHashCache, hashFiles } from './hash-cache.js';
import { referencedBlobs, referencedBlobSizes } from './read-models/blob-references.queries.js';

export const BLOB_STORE = Symbol('RUNWAY_BLOB_STORE');

/** The 400 a command gets when blobs it names are not (or no longer) in the workspace's store. */
export class BlobsMissingError extends DomainError {
  constructor(readonly missing: string[]) {
    super(
      `${missing.length} file content blob(s) are missing from the workspace's store (upload them, then retry): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
      400,
      'blobs_missing',
    );
  }
}

const deploymentRef = (workspaceId: string): AggregateRef => ({
  workspaceId,
  type: AggregateTypes.deployment,
  id: workspaceId,
});

/**
 * Commands of the deployments service. Creating a version: read the file list blob, check it,
 * check every content blob is present (with its size), stage the list as events, then append
 * DeploymentCreated to the workspace's deployment aggregate (optimistic concurrency assigns the
 * version). The blob sweep runs under the same per-workspace lock, so it never removes a blob
 * between a command's check and its append.
 */
@Injectable()
export class DeploymentHandler implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('deployments');
  /** Per workspace: a create (checks, staging, append) and the blob sweep never overlap. */
  private readonly locks = new KeyedLock();
  private readonly hashCache = new ContentHashCache();
  private readonly deployments: CommandHandler<DeploymentState, DeploymentCommand, DeploymentEvent>;
  private readonly files: CommandHandler<StagedFilesState, StageFilesCommand, DeploymentFilesEvent>;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(DEPLOYMENTS_DB) private readonly db: DeploymentsDb,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {
    // A create reads the state before its checks, then decides on it: kept in memory, the second
    // read is one direct get (nothing new since).
    this.deployments = new CommandHandler(ctx.store, deploymentDecider, {
      maxRetries: 50,
      cache: { maxEntries: 1000 },
    });
    // A file list's parts are appended one after the other: its state stays in memory meanwhile
    // (a few lists, and one remembered result each: a result holds a part of up to 256 KB).
    this.files = new CommandHandler(ctx.store, deploymentFilesDecider, {
      cache: { maxEntries: 16, maxCommands: 1 },
    });
  }

  onModuleInit(): void {
    const every = this.ctx.config.deployments.blobGcIntervalMs;
    if (every > 0) {
      this.timer = setInterval(() => {
        this.sweeping ??= this.gc({})
          .then(
            (r) =>
              r.deleted > 0 &&
              this.logger.log(
                `blob sweep: deleted ${r.deleted} unreferenced blobs (${r.deletedBytes} bytes)`,
              ),
          )
          .catch((err: unknown) =>
            this.logger.warn(`blob sweep failed: ${err instanceof Error ? err.message : String(err)}`),
          )
          .finally(() => (this.sweeping = undefined));
      }, every);
      this.timer.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sweeping;
  }

  async create(req: CreateDeploymentRequest): Promise<CreateDeploymentReply> {
    const ws = req.workspaceId;
    const ref = deploymentRef(ws);
    // The same command always names the same deployment: a retry finds the version it created.
    const deploymentId = stableUuid(`deployment:${ws}:${req.commandId}`);
    return this.locks.run(ws, async () => {
      const { state, seq } = await this.deployments.load(ref);
      // A retried command (same id) gets its original answer, before anything else is checked.
      const before = state.byId.get(deploymentId);
      if (before) return reply(before, true, seq);
      const files = await this.readFileList(ws, req.manifest);
      await this.requireBlobs(ws, files);
      const digest = filesDigest(files);
      if (req.onlyIfChanged && state.latest?.filesDigest === digest) return reply(state.latest, false, seq);
      const contentHash = req.contentHash ?? (await this.contentHashFromBlobs(ws, files));
      const parts = splitParts(files);
      await this.stage(ws, deploymentId, parts, req);
      const r = await this.deployments.handle(
        ref,
        {
          type: 'CreateDeployment',
          deploymentId,
          contentHash,
          filesDigest: digest,
          fileCount: files.length,
          size: files.reduce((n, f) => n + (f.type === 'file' ? f.size : 0), 0),
          archiveSize: req.archiveSize,
          fileParts: parts.length,
          source: req.source,
          ...(req.requirements ? { requirements: req.requirements } : {}),
          onlyIfChanged: req.onlyIfChanged,
        },
        { commandId: req.commandId, actor: req.actor },
      );
      const event = r.events.find((e) => e.type === 'DeploymentCreated');
      if (event) return reply(event.data, true, r.seq);
      // Unchanged after all (a concurrent sync created the same files first) or already created.
      return reply(r.state.latest!, false, r.seq);
    });
  }

  private async readFileList(ws: string, sha256: string): Promise<DeploymentFile[]> {
    const raw = await this.blobs.get(ws, sha256);
    if (!raw) throw new BlobsMissingError([sha256]);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new DomainError('the file list blob is not JSON');
    }
    const parsed = fileListSchema.safeParse(json);
    if (!parsed.success)
      throw new DomainError(
        `invalid file list: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
      );
    const d = this.ctx.config.deployments;
    try {
      return checkFileList(parsed.data, {
        maxFiles: d.maxFiles,
        maxTotalBytes: d.maxTotalBytes,
        maxFileBytes: d.maxTotalBytes,
      });
    } catch (err) {
      if (err instanceof ArchiveError) throw new DomainError(err.message, 400, err.code);
      throw err;
    }
  }

  /**
   * Every content blob must be in the workspace's store with the listed size. Blobs some version
   * already references are known to be there (the sweep never removes those): only the others
   * are looked up in the store.
   */
  private async requireBlobs(ws: string, files: readonly DeploymentFile[]): Promise<void> {
    const wanted = new Map<string, number>();
    for (const f of files) if (f.type === 'file') wanted.set(f.sha256, f.size);
    const hashes = [...wanted.keys()];
    const known = await referencedBlobSizes(this.db, ws, hashes);
    const unknown = hashes.filter((h) => !known.has(h));
    const infos = await mapLimit(unknown, 64, (s) => this.blobs.stat(ws, s));
    const sizes = new Map(known);
    const missing: string[] = [];
    infos.forEach((info, i) => (info ? sizes.set(unknown[i]!, info.size) : missing.push(unknown[i]!)));
    if (missing.length > 0) throw new BlobsMissingError(missing);
    for (const [sha, size] of wanted) {
      if (sizes.get(sha) !== size)
        throw new DomainError(
          `the file list gives blob ${sha} a size of ${size} bytes, but it has ${sizes.get(sha)}`,
        );
    }
  }

  /**
   * The dlt CLI's hash of these files: contents streamed from the blob store in path order,
   * resuming from the longest prefix hashed before (ContentHashCache).
   */
  private contentHashFromBlobs(ws: string, files: readonly DeploymentFile[]): Promise<string> {
    return hashFiles(ws, files, this.hashCache, async (f) => {
      const data = await this.blobs.get(ws, f.sha256);
      if (!data) throw new BlobsMissingError([f.sha256]);
      return data;
    });
  }

  /** Appends the file list as parts of `deployment-files/<id>`; a retried command resumes. */
  private async stage(
    ws: string,
    deploymentId: string,
    parts: DeploymentFile[][],
    req: CreateDeploymentRequest,
  ): Promise<void> {
    const ref: AggregateRef = { workspaceId: ws, type: AggregateTypes.deploymentFiles, id: deploymentId };
    for (let part = 0; part < parts.length; part++) {
      await this.files.handle(
        ref,
        { type: 'StageFilesPart', deploymentId, part, parts: parts.length, files: parts[part]! },
        { commandId: `${req.commandId}:files:${part}`, actor: req.actor, correlationId: req.commandId },
      );
    }
  }

  /**
   * Deletes blobs that no deployment version references and that are older than the grace period
   * (uploads of a sync in progress are younger). Per workspace, under the command lock, once the
   * projection has caught up with the workspace's last version.
   */
  async gc(req: { workspaceId?: string; graceMs?: number }): Promise<BlobGcReply> {
    const grace = req.graceMs ?? this.ctx.config.deployments.blobGcGraceMs;
    const all = await this.blobs.list(req.workspaceId);
    const byWs = new Map<string, typeof all>();
    for (const b of all) byWs.set(b.workspaceId, [...(byWs.get(b.workspaceId) ?? []), b]);
    let deleted = 0;
    let deletedBytes = 0;
    for (const [ws, blobs] of byWs) {
      await this.locks.run(ws, async () => {
        const lastSeq = await this.ctx.store.lastSequenceOf(deploymentRef(ws));
        await this.ctx.waitForProjection('deployments', lastSeq, 30_000);
        const referenced = await referencedBlobs(this.db, ws);
        const cutoff = Date.now() - grace;
        for (const b of blobs) {
          if (referenced.has(b.sha256) || b.mtime.getTime() > cutoff) continue;
          await this.blobs.delete(ws, b.sha256);
          deleted++;
          deletedBytes += b.size;
        }
      });
    }
    return { scanned: all.length, deleted, deletedBytes };
  }
}

function reply(
  v: Pick<DeploymentVersion, 'deploymentId' | 'version' | 'contentHash'>,
  created: boolean,
  seq: number,
): CreateDeploymentReply {
  return { deploymentId: v.deploymentId, version: v.version, contentHash: v.contentHash, created, seq };
}
