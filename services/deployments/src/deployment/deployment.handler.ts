import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Kysely } from 'kysely';
import { ArchiveError, checkFileList } from '#libs/archive';
import { BlobStore, mapLimit } from '#libs/blobs';
import {
  AggregateTypes,
  type BlobGcReply,
  type CreateDeploymentReply,
  type CreateDeploymentRequest,
  type DeploymentEvent,
  type DeploymentFile,
} from '#libs/contracts';
import { ConcurrencyError, DomainError, fold, handleCommand, type AggregateRef } from '#libs/eventstore';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';
import type { DeploymentsTables } from '../migrations/index.js';
import { deploymentDecider, deploymentFilesDecider, type DeploymentState } from './deployment.decider.js';
import { fileListSchema, filesDigest, splitParts, stableUuid } from './files.js';
import { ContentHashCache, hashFiles } from './hash-cache.js';
import { KeyedMutex } from './keyed-mutex.js';

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
  private readonly locks = new KeyedMutex();
  private readonly hashCache = new ContentHashCache();
  private readonly db: Kysely<DeploymentsTables>;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<unknown> | undefined;

  constructor(
    @Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
  ) {
    this.db = ctx.db as Kysely<DeploymentsTables>;
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

  private ref(workspaceId: string): AggregateRef {
    return { workspaceId, type: AggregateTypes.deployment, id: workspaceId };
  }

  async create(req: CreateDeploymentRequest): Promise<CreateDeploymentReply> {
    const ws = req.workspaceId;
    return this.locks.run(ws, async () => {
      const { commits, lastSeq } = await this.ctx.store.read(this.ref(ws));
      const state: DeploymentState = fold(
        deploymentDecider,
        commits.flatMap((c) => c.events.map((e) => ({ type: e.type, data: e.data }) as DeploymentEvent)),
      );
      // A retried command (same id) gets its original answer, before anything else is checked.
      const previous = commits.find((c) => c.meta.commandId === req.commandId);
      const before = previous?.events.find((e) => e.type === 'DeploymentCreated');
      if (before)
        return this.reply(
          before.data as Extract<DeploymentEvent, { type: 'DeploymentCreated' }>['data'],
          true,
          previous!.seq,
        );
      const files = await this.readFileList(ws, req.manifest);
      await this.requireBlobs(ws, files);
      const digest = filesDigest(files);
      if (req.onlyIfChanged && state.latest?.filesDigest === digest) {
        return {
          deploymentId: state.latest.deploymentId,
          version: state.latest.version,
          contentHash: state.latest.contentHash,
          created: false,
          seq: lastSeq,
        };
      }
      const contentHash = req.contentHash ?? (await this.contentHashFromBlobs(ws, files));
      const deploymentId = stableUuid(`deployment:${ws}:${req.commandId}`);
      const parts = splitParts(files);
      await this.stage(ws, deploymentId, parts, req);
      const r = await handleCommand(
        this.ctx.store,
        deploymentDecider,
        this.ref(ws),
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
          onlyIfChanged: req.onlyIfChanged,
        },
        { commandId: req.commandId, actor: req.actor },
        { maxRetries: 50 },
      );
      const event = r.events.find((e) => e.type === 'DeploymentCreated');
      if (event) return this.reply(event.data, true, r.seq);
      // Unchanged after all (a concurrent sync created the same files first) or already created.
      const latest = r.state.latest!;
      return {
        deploymentId: latest.deploymentId,
        version: latest.version,
        contentHash: latest.contentHash,
        created: false,
        seq: r.seq,
      };
    });
  }

  private reply(
    data: Extract<DeploymentEvent, { type: 'DeploymentCreated' }>['data'],
    created: boolean,
    seq: number,
  ): CreateDeploymentReply {
    return {
      deploymentId: data.deploymentId,
      version: data.version,
      contentHash: data.contentHash,
      created,
      seq,
    };
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
    const known = new Map<string, number>();
    const hashes = [...wanted.keys()];
    for (let i = 0; i < hashes.length; i += 5000) {
      const rows = await this.db
        .selectFrom('deployment_files as f')
        .innerJoin('deployments as d', 'd.id', 'f.deployment_id')
        .select(['f.sha256', 'f.size'])
        .distinct()
        .where('f.workspace_id', '=', ws)
        .where('f.type', '=', 'file')
        .where('f.sha256', 'in', hashes.slice(i, i + 5000))
        .execute();
      for (const r of rows) known.set(r.sha256, r.size);
    }
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
    if (parts.length === 0) return;
    const ref: AggregateRef = { workspaceId: ws, type: AggregateTypes.deploymentFiles, id: deploymentId };
    for (let attempt = 0; ; attempt++) {
      const { events, lastSeq } = await this.ctx.store.read(ref);
      let state = fold(
        deploymentFilesDecider,
        events.map((e) => ({ type: e.type, data: e.data }) as DeploymentEvent),
      );
      let seq = lastSeq;
      try {
        for (let part = state.staged; part < parts.length; part++) {
          const out = deploymentFilesDecider.decide(
            { type: 'StageFilesPart', deploymentId, part, parts: parts.length, files: parts[part]! },
            state,
          );
          if (out.length === 0) continue;
          const res = await this.ctx.store.append(ref, seq, out, {
            commandId: `${req.commandId}:files:${part}`,
            actor: req.actor,
            correlationId: req.commandId,
          });
          seq = res.seq;
          state = out.reduce(deploymentFilesDecider.evolve, state);
        }
        return;
      } catch (err) {
        if (err instanceof ConcurrencyError && attempt < 5) continue;
        throw err;
      }
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
        const lastSeq = await this.ctx.store.lastSequenceOf(this.ref(ws));
        await this.waitForProjection(lastSeq);
        const rows = await this.db
          .selectFrom('deployment_files as f')
          .innerJoin('deployments as d', 'd.id', 'f.deployment_id')
          .select('f.sha256')
          .distinct()
          .where('f.workspace_id', '=', ws)
          .where('f.type', '=', 'file')
          .execute();
        const referenced = new Set(rows.map((r) => r.sha256));
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

  private waitForProjection(seq: number, timeoutMs = 30_000): Promise<void> {
    return this.ctx.waitForProjection('deployments', seq, timeoutMs);
  }
}
