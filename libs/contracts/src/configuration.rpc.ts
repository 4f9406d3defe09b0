import { z } from 'zod';

/** Request/reply patterns of the configurations service (Nest microservice over NATS). */
export const ConfigurationRpc = {
  create: 'runway.rpc.configurations.create',
} as const;

/**
 * Create a configuration version from an upload the gateway has already unpacked (size limits,
 * paths, content hash). File contents travel base64 encoded in this one request: at most
 * 512 KB of TOML, so the request stays below NATS's 1 MB message limit.
 */
export const createConfigurationRequest = z.object({
  workspaceId: z.string().uuid(),
  actor: z.string().uuid(),
  commandId: z.string().min(1).max(200),
  contentHash: z.string().min(1).max(200),
  size: z.number().int().min(0),
  /** true: when the latest version has the same content hash, create nothing and return it. */
  onlyIfChanged: z.boolean(),
  files: z
    .array(z.object({ path: z.string().min(1).max(1024), content: z.string().max(1_000_000) }))
    .max(1000),
});
export type CreateConfigurationRequest = z.infer<typeof createConfigurationRequest>;

export const createConfigurationReply = z.object({
  configurationId: z.string().uuid(),
  version: z.number().int().min(1),
  created: z.boolean(),
  seq: z.number().int().min(0),
});
export type CreateConfigurationReply = z.infer<typeof createConfigurationReply>;
