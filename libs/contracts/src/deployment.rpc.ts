import { z } from 'zod';
import { deploymentSourceSchema } from './enums.js';

/** Request/reply patterns of the deployments service (Nest microservice over NATS). */
export const DeploymentRpc = {
  create: 'runway.rpc.deployments.create',
  gc: 'runway.rpc.deployments.gc',
} as const;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/**
 * Create a deployment version from files whose blobs are already in the workspace's blob store.
 * The file list itself is a blob too (`manifest`: JSON array of DeploymentFile, sorted by path),
 * because it can exceed NATS's 1 MB message limit.
 */
export const createDeploymentRequest = z.object({
  workspaceId: z.string().uuid(),
  actor: z.string().uuid(),
  commandId: z.string().min(1).max(200),
  manifest: sha256,
  /** The archive's content hash (computed by the gateway from the archive itself); for a sync, the service computes it. */
  contentHash: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/)
    .optional(),
  archiveSize: z.number().int().min(0),
  source: deploymentSourceSchema,
  /** true: when the latest version holds the same files, create nothing and return it. */
  onlyIfChanged: z.boolean(),
  /**
   * The `requirements.json` a client uploaded beside the files (dlt-runtime 0.26.1's multipart part
   * `requirements`), already in the workspace's blob store: recorded on the version.
   */
  requirements: z.object({ sha256, size: z.number().int().min(0) }).optional(),
});
export type CreateDeploymentRequest = z.infer<typeof createDeploymentRequest>;

export const createDeploymentReply = z.object({
  deploymentId: z.string().uuid(),
  version: z.number().int().min(1),
  contentHash: z.string(),
  created: z.boolean(),
  /** Stream sequence to wait for in the `deployments` projection before reading the version. */
  seq: z.number().int().min(0),
});
export type CreateDeploymentReply = z.infer<typeof createDeploymentReply>;

/** Delete blobs of a workspace (or all) that no deployment references and are older than the grace period. */
export const blobGcRequest = z.object({
  workspaceId: z.string().uuid().optional(),
  graceMs: z.number().int().min(0).optional(),
});
export const blobGcReply = z.object({
  scanned: z.number().int(),
  deleted: z.number().int(),
  deletedBytes: z.number().int(),
});
export type BlobGcReply = z.infer<typeof blobGcReply>;
