import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { deploymentFileTypeSchema, deploymentSourceSchema } from './enums.js';

const uuid = z.string().uuid();
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a hex SHA-256');

/**
 * One file of a deployment version. Contents live in the workspace's blob store under `sha256`.
 * A symlink has `target`; its `sha256` hashes the target string and no blob is stored for it.
 */
export const deploymentFileSchema = z.object({
  path: z.string().min(1).max(4096),
  type: deploymentFileTypeSchema,
  size: z.number().int().nonnegative(),
  sha256,
  mode: z.number().int().min(0).max(0o777),
  target: z.string().min(1).max(4096).optional(),
});
export type DeploymentFile = z.infer<typeof deploymentFileSchema>;

/**
 * The file list of a deployment that is about to be created, in parts small enough for one
 * JetStream message each (a 20,000-file list is several MB; NATS's default limit is 1 MB).
 * Written to the aggregate `deployment-files/<deploymentId>` before `DeploymentCreated`; a list
 * whose DeploymentCreated never follows (a crash in between) belongs to no version.
 */
export const DeploymentFilesStaged = defineEvent(
  'DeploymentFilesStaged',
  z.object({
    deploymentId: uuid,
    part: z.number().int().nonnegative(),
    parts: z.number().int().min(1),
    files: z.array(deploymentFileSchema).max(10_000),
  }),
);

/** A new deployment version (aggregate `deployment/<workspaceId>`: one per workspace). */
export const DeploymentCreated = defineEvent(
  'DeploymentCreated',
  z.object({
    deploymentId: uuid,
    version: z.number().int().min(1),
    /** What the dlt CLI computes for the same files (SHA3-256 over sorted names + contents, base64). */
    contentHash: z.string().regex(/^[A-Za-z0-9+/]{43}=$/),
    /** SHA-256 over the sorted (path, type, sha256) list: "same files" without reading contents. */
    filesDigest: sha256,
    fileCount: z.number().int().nonnegative(),
    /** Sum of the files' sizes (uncompressed). */
    size: z.number().int().nonnegative(),
    /** Size of the uploaded archive; 0 for an incremental sync. */
    archiveSize: z.number().int().nonnegative(),
    /** Number of DeploymentFilesStaged parts holding the file list. */
    fileParts: z.number().int().nonnegative(),
    source: deploymentSourceSchema,
    /**
     * The `requirements.json` uploaded beside the files (dlt-runtime 0.26.1, multipart part
     * `requirements`): its blob (hex SHA-256 in the workspace's blob store) and size. Absent when none
     * was uploaded. It is no file of the deployment (listings and content hash leave it out).
     */
    requirements: z.object({ sha256, size: z.number().int().nonnegative() }).optional(),
  }),
);

export const deploymentEvents = [DeploymentFilesStaged, DeploymentCreated] as const;
export type DeploymentEvent = EventOf<typeof deploymentEvents>;
