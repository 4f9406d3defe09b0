import { z } from 'zod';
import { defineEvent, type EventOf } from '#libs/events';
import { configurationFileKindSchema } from './enums.js';

const uuid = z.string().uuid();

/** A profile name as found in a file name (`prod.secrets.toml` → prod); `default` = config.toml / secrets.toml. */
export const profileNameSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
export const DEFAULT_PROFILE = 'default';

/**
 * One file of a configuration version, described without its content: the dotted key names it
 * defines (never values, never hashes of values) and where its bytes are stored.
 */
export const configurationFileSchema = z.object({
  /** POSIX path relative to `.dlt/`. */
  path: z.string().min(1).max(1024),
  size: z.number().int().min(0),
  kind: configurationFileKindSchema,
  /** null when dlt does not read the file under any profile (e.g. `myconfig.toml`). */
  profile: profileNameSchema.nullable(),
  /** Secret files are stored encrypted only. */
  encrypted: z.boolean(),
  /** Dotted key names (`destination.postgres.credentials.password`), sorted. */
  keys: z.array(z.string().max(2048)).max(20_000),
  /** The stored bytes: a row of the configurations service's blob table. */
  blobId: uuid,
  /** Id of the workspace data key that encrypted it (encrypted files only). */
  keyId: z.string().min(1).max(100).nullable(),
});
export type ConfigurationFile = z.infer<typeof configurationFileSchema>;

/** A new immutable configuration version (per workspace: 1, 2, 3, … without gaps). */
export const ConfigurationCreated = defineEvent(
  'ConfigurationCreated',
  z.object({
    configurationId: uuid,
    version: z.number().int().min(1),
    /** The archive hash as the dlt CLI computes it (SHA3-256, base64). */
    contentHash: z.string().min(1).max(200),
    fileCount: z.number().int().min(0),
    /** Bytes of the uploaded archive. */
    size: z.number().int().min(0),
    /** Profiles present, `default` first, then by name. */
    profiles: z.array(profileNameSchema),
    warnings: z.array(z.string().max(2000)).max(100),
    files: z.array(configurationFileSchema).max(1000),
    createdBy: uuid,
  }),
);

/**
 * A workspace's data key, wrapped (AES-256-GCM) by the server's master key. Aggregate `keyring`,
 * one per workspace. The wrapped key is useless without the master key, which is never stored.
 */
export const DataKeyCreated = defineEvent(
  'DataKeyCreated',
  z.object({
    keyId: z.string().min(1).max(100),
    wrappedKey: z.string().min(1).max(200),
    /** Fingerprint of the master key that wrapped it. */
    kek: z.string().regex(/^[0-9a-f]{16}$/),
    alg: z.literal('A256GCM'),
  }),
);

export const configurationEvents = [ConfigurationCreated] as const;
export type ConfigurationEvent = EventOf<typeof configurationEvents>;
export const keyringEvents = [DataKeyCreated] as const;
export type KeyringEvent = EventOf<typeof keyringEvents>;
