import { z } from 'zod';

/** Request/reply patterns of the configurations service (Nest microservice over NATS). */
export const ConfigurationRpc = {
  create: 'runway.rpc.configurations.create',
} as const;

/**
 * Create a configuration version from an upload the gateway has already unpacked (size limits,
 * paths, content hash). The files travel in this one request, framed by
 * `encodeConfigurationFiles` and sealed (AES-256-GCM, `#libs/secrets` sealUpload, bound to the
 * workspace and command id) with a key the gateway and the configurations service derive from the
 * master key: no configuration value crosses the bus in clear. At most 512 KB of TOML, so the
 * request stays below NATS's 1 MB message limit.
 */
export const createConfigurationRequest = z.object({
  workspaceId: z.string().uuid(),
  actor: z.string().uuid(),
  commandId: z.string().min(1).max(200),
  contentHash: z.string().min(1).max(200),
  size: z.number().int().min(0),
  /** true: when the latest version has the same content hash, create nothing and return it. */
  onlyIfChanged: z.boolean(),
  /** base64 of the sealed, framed files. */
  sealedFiles: z.string().min(1).max(1_000_000),
});
export type CreateConfigurationRequest = z.infer<typeof createConfigurationRequest>;

export const createConfigurationReply = z.object({
  configurationId: z.string().uuid(),
  version: z.number().int().min(1),
  created: z.boolean(),
  seq: z.number().int().min(0),
});
export type CreateConfigurationReply = z.infer<typeof createConfigurationReply>;

export interface ConfigurationUploadFile {
  path: string;
  content: Uint8Array;
}

const uploadFile = z.object({
  path: z.string().min(1).max(1024),
  content: z.instanceof(Uint8Array),
});
const uploadFiles = z.array(uploadFile).max(1000);

/**
 * The files of an upload as one buffer: per file, u32 length + UTF-8 path, u32 length + content
 * (big endian). Binary, so sealing adds no base64 round on top of the one the JSON request needs.
 */
export function encodeConfigurationFiles(files: readonly ConfigurationUploadFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of uploadFiles.parse(files)) {
    const path = Buffer.from(f.path, 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(path.length);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(f.content.length);
    parts.push(head, path, len, Buffer.from(f.content));
  }
  return Buffer.concat(parts);
}

export class MalformedUploadError extends Error {
  constructor(message: string) {
    super(`malformed configuration upload: ${message}`);
    this.name = 'MalformedUploadError';
  }
}

/** The inverse of encodeConfigurationFiles; throws MalformedUploadError on anything else. */
export function decodeConfigurationFiles(buf: Uint8Array): ConfigurationUploadFile[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: ConfigurationUploadFile[] = [];
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let off = 0;
  const take = (what: string): Buffer => {
    if (off + 4 > b.length) throw new MalformedUploadError(`truncated ${what} length`);
    const n = b.readUInt32BE(off);
    off += 4;
    if (off + n > b.length) throw new MalformedUploadError(`truncated ${what}`);
    const v = b.subarray(off, off + n);
    off += n;
    return v;
  };
  while (off < b.length) {
    let path: string;
    try {
      path = utf8.decode(take('path'));
    } catch (err) {
      if (err instanceof MalformedUploadError) throw err;
      throw new MalformedUploadError('a path is not UTF-8');
    }
    out.push({ path, content: take('content') });
  }
  const parsed = uploadFiles.safeParse(out);
  if (!parsed.success) throw new MalformedUploadError(parsed.error.issues[0]?.message ?? 'invalid files');
  return parsed.data;
}
