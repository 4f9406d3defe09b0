import { parse } from 'smol-toml';
import {
  AggregateTypes,
  ConfigurationCreated,
  DataKeyCreated,
  DEFAULT_PROFILE,
  type ConfigurationFile,
} from '#libs/contracts';
import { NotFoundError, type EventStore } from '#libs/eventstore';
import { eventsOf } from '#libs/projections';
import { decryptFile, unwrapDataKey, type MasterKey, type WrappedDataKey } from '#libs/secrets';
import type { ConfigurationContentStore } from './content-store.js';

/** Profiles a runtime falls back to, in order, when the requested one has no files (reference/dlt-workspace.md). */
const FALLBACKS: Record<string, readonly string[]> = { access: ['access', 'prod'], prod: ['prod'] };

export interface ProfileResolution {
  /** Value for WORKSPACE__PROFILE: the first profile of the fallback chain that has files, else the requested one. */
  profile: string;
  /** The profile whose own files are written (null: only config.toml / secrets.toml apply). */
  filesOf: string | null;
  warnings: string[];
}

/** access → prod → default files; prod → default files; any other profile → its files, else default files. */
export function resolveProfile(available: readonly string[], requested: string): ProfileResolution {
  if (requested === DEFAULT_PROFILE) return { profile: requested, filesOf: null, warnings: [] };
  const chain = FALLBACKS[requested] ?? [requested];
  const found = chain.find((p) => available.includes(p));
  if (found === requested) return { profile: requested, filesOf: requested, warnings: [] };
  if (found) {
    return {
      profile: found,
      filesOf: found,
      warnings: [`profile "${requested}" is not defined: using profile "${found}" instead`],
    };
  }
  return {
    profile: requested,
    filesOf: null,
    warnings: [`profile "${requested}" is not defined: only config.toml and secrets.toml apply`],
  };
}

export interface MaterializedFile {
  /** POSIX path relative to the run's `.dlt/` directory. */
  path: string;
  content: Buffer;
  /** 0o600 for secrets, 0o644 for config. */
  mode: number;
  secret: boolean;
}

export interface MaterializedConfiguration {
  configurationId: string;
  version: number;
  requestedProfile: string;
  /** Set WORKSPACE__PROFILE to this. */
  profile: string;
  files: MaterializedFile[];
  /** String values of the secrets written (longest first), for masking them in logs. */
  secretValues: string[];
  warnings: string[];
}

export interface MaterializeDeps {
  store: EventStore;
  /** The configuration files' object store (ConfigurationContentStore.open). */
  blobs: ConfigurationContentStore;
  masterKey: MasterKey;
}

const configurationCreated = eventsOf(ConfigurationCreated);
const dataKeyCreated = eventsOf(DataKeyCreated);

interface VersionEntry {
  configurationId: string;
  profiles: readonly string[];
  files: readonly ConfigurationFile[];
}

/** The workspace's configuration versions, from its `configuration` aggregate's ConfigurationCreated events. */
async function versionsOf(store: EventStore, workspaceId: string): Promise<Map<number, VersionEntry>> {
  const { events } = await store.read({ workspaceId, type: AggregateTypes.configuration, id: workspaceId });
  const versions = new Map<number, VersionEntry>();
  for (const e of events)
    if (configurationCreated.is(e))
      versions.set(e.data.version, {
        configurationId: e.data.configurationId,
        profiles: e.data.profiles,
        files: e.data.files,
      });
  return versions;
}

/** The workspace's data keys (wrapped), from its `keyring` aggregate's DataKeyCreated events. */
async function wrappedKeysOf(store: EventStore, workspaceId: string): Promise<Map<string, WrappedDataKey>> {
  const { events } = await store.read({ workspaceId, type: AggregateTypes.keyring, id: workspaceId });
  const keys = new Map<string, WrappedDataKey>();
  for (const e of events) if (dataKeyCreated.is(e)) keys.set(e.data.keyId, e.data);
  return keys;
}

/** String values of a decrypted secrets file (the file was validated as TOML when it was uploaded). */
function secretStrings(path: string, content: Buffer, out: Set<string>): void {
  let text: string;
  let doc: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    doc = parse(text, { integersAsBigInt: 'asNeeded', maxDepth: 100 });
  } catch {
    // Never the parser's message: it quotes the line, which may hold a secret.
    throw new Error(`${path}: not a valid TOML document`);
  }
  stringLeaves(doc, out);
}

function stringLeaves(v: unknown, out: Set<string>): void {
  if (typeof v === 'string') {
    if (v.length >= 4) out.add(v);
  } else if (Array.isArray(v)) for (const x of v) stringLeaves(x, out);
  else if (v && typeof v === 'object' && !(v instanceof Date))
    for (const x of Object.values(v)) stringLeaves(x, out);
}

/**
 * The files a run writes into its `.dlt/` for one configuration version (number or id) and profile:
 * `config.toml` / `secrets.toml` plus the files of the profile chosen by the fallback rules, and no
 * other profile's files. Secrets are decrypted here and only here; the result lives in memory.
 */
export async function materializeConfiguration(
  deps: MaterializeDeps,
  workspaceId: string,
  versionOrId: number | string,
  requestedProfile: string,
): Promise<MaterializedConfiguration> {
  const versions = await versionsOf(deps.store, workspaceId);
  let version: number | undefined;
  if (typeof versionOrId === 'number') version = versions.has(versionOrId) ? versionOrId : undefined;
  else for (const [v, c] of versions) if (c.configurationId === versionOrId) version = v;
  const entry = version === undefined ? undefined : versions.get(version);
  if (version === undefined || !entry)
    throw new NotFoundError(`configuration ${versionOrId} not found in workspace ${workspaceId}`);
  const resolution = resolveProfile(entry.profiles, requestedProfile);
  const wanted = entry.files.filter(
    (f) => f.profile === DEFAULT_PROFILE || (resolution.filesOf !== null && f.profile === resolution.filesOf),
  );
  const blobs = await deps.blobs.get(
    workspaceId,
    entry.configurationId,
    wanted.map((f) => f.blobId),
  );
  let wrapped: Map<string, WrappedDataKey> | undefined;
  const keys = new Map<string, Buffer>();
  const keyFor = async (keyId: string) => {
    let k = keys.get(keyId);
    if (!k) {
      wrapped ??= await wrappedKeysOf(deps.store, workspaceId);
      const w = wrapped.get(keyId);
      if (!w) throw new Error(`workspace ${workspaceId} has no data key ${keyId}`);
      keys.set(keyId, (k = unwrapDataKey(deps.masterKey, workspaceId, w)));
    }
    return k;
  };
  const secrets = new Set<string>();
  const files: MaterializedFile[] = [];
  for (const f of wanted) {
    const blob = blobs.get(f.blobId);
    if (!blob) throw new Error(`the stored bytes of ${f.path} (configuration ${version}) are missing`);
    if (blob.path !== f.path || blob.version !== version)
      throw new Error(`the stored bytes of ${f.path} (configuration ${version}) belong to another file`);
    let content = blob.content;
    if (f.encrypted) {
      if (!f.keyId || blob.keyId !== f.keyId)
        throw new Error(`${f.path} (configuration ${version}) has no usable data key`);
      content = decryptFile(await keyFor(f.keyId), blob.content, {
        workspaceId,
        ownerId: entry.configurationId,
        version,
        path: f.path,
      });
      secretStrings(f.path, content, secrets);
    }
    files.push({
      path: f.path,
      content,
      mode: f.kind === 'secrets' ? 0o600 : 0o644,
      secret: f.kind === 'secrets',
    });
  }
  return {
    configurationId: entry.configurationId,
    version,
    requestedProfile,
    profile: resolution.profile,
    files,
    secretValues: [...secrets].sort((a, b) => b.length - a.length || (a < b ? -1 : 1)),
    warnings: resolution.warnings,
  };
}
