import { Inject, Injectable } from '@nestjs/common';
import { Kvm, type KV } from '@nats-io/kv';
import { z } from 'zod';
import { filesManifest, filesManifestHash, type FilesManifestItem } from '#libs/archive';
import { SERVICE_CONTEXT, type ServiceContext } from '#libs/service-host';

const itemSchema = z.object({
  relative_path: z.string(),
  size_in_bytes: z.number().int().nonnegative(),
  sha3_256: z.string(),
  linkname: z.string().optional(),
});
const infoSchema = z.object({
  /** dlt ≥ 1.26's content hash of the package (`compute_package_content_hash`). */
  filesHash: z.string(),
  files: z.array(itemSchema),
});
export type PackageInfo = z.infer<typeof infoSchema>;

export type PackageKind = 'deployment' | 'configuration';

/**
 * What dlt-runtime 0.26.1 compares a local package with, per uploaded deployment or configuration
 * version: its files manifest (per-file SHA3-256, as dlt 1.26 writes `manifest.yaml`) and the content
 * hash derived from it (dlt 1.26 changed the hash: it no longer equals the dlt 1.20 hash Runway keeps
 * on the version). Kept in a JetStream KV bucket beside the versions, written at upload; a version
 * made another way (dlt 1.20, Runway's sync) has none and is compared by its own hash.
 */
@Injectable()
export class PackageInfoStore {
  private kv: Promise<KV> | undefined;

  constructor(@Inject(SERVICE_CONTEXT) private readonly ctx: ServiceContext) {}

  private bucket(): Promise<KV> {
    this.kv ??= new Kvm(this.ctx.nats).create(`${this.ctx.config.events.stream}_package_info`, {
      history: 1,
      replicas: this.ctx.config.nats.replicas,
      ...(this.ctx.config.kvMaxBytes > 0 ? { max_bytes: this.ctx.config.kvMaxBytes } : {}),
    });
    return this.kv;
  }

  static of(
    files: readonly { path: string; type: 'file' | 'symlink'; content: Uint8Array; target?: string }[],
  ): PackageInfo {
    const items: FilesManifestItem[] = filesManifest(files);
    return { filesHash: filesManifestHash(items), files: items };
  }

  async put(kind: PackageKind, id: string, info: PackageInfo): Promise<void> {
    const kv = await this.bucket();
    await kv.put(`${kind}.${id}`, JSON.stringify(info));
  }

  async get(kind: PackageKind, id: string): Promise<PackageInfo | undefined> {
    const kv = await this.bucket();
    const e = await kv.get(`${kind}.${id}`);
    if (!e || e.operation !== 'PUT') return undefined;
    return infoSchema.parse(e.json());
  }
}
