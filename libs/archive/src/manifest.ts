import { parseDocument, Scalar, stringify, YAMLMap } from 'yaml';
import { z } from 'zod';
import { ArchiveError } from './errors.js';

/** Engine version of dlt's files manifest (`DEPLOYMENT_ENGINE_VERSION`). */
export const MANIFEST_ENGINE_VERSION = 1;
export const MANIFEST_NAME = 'manifest.yaml';
export const FILES_PREFIX = 'files/';

/** One entry of `manifest.yaml`. Current dlt writes `sha3_256` (and `linkname` for symlinks). */
export interface ManifestEntry {
  relative_path: string;
  size_in_bytes: number;
  sha3_256?: string;
  linkname?: string;
}

export interface PackageManifest {
  engine_version: number;
  files: ManifestEntry[];
}

const entrySchema = z.looseObject({
  relative_path: z.string().min(1),
  size_in_bytes: z.number().int().nonnegative(),
  sha3_256: z
    .string()
    .regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 SHA3-256 digest')
    .optional(),
  linkname: z.string().min(1).optional(),
});
const manifestSchema = z.looseObject({
  engine_version: z.literal(MANIFEST_ENGINE_VERSION, { error: `must be ${MANIFEST_ENGINE_VERSION}` }),
  files: z.array(entrySchema),
});

/** Parses and checks `manifest.yaml` (YAML 1.1, as PyYAML reads and writes it). */
export function parseManifest(bytes: Uint8Array): PackageManifest {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ArchiveError('invalid_manifest', 'manifest.yaml is not valid UTF-8', MANIFEST_NAME);
  }
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ArchiveError(
      'invalid_manifest',
      `manifest.yaml is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`,
      MANIFEST_NAME,
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 0 });
  } catch (err) {
    throw new ArchiveError(
      'invalid_manifest',
      `manifest.yaml cannot be read: ${err instanceof Error ? err.message : String(err)}`,
      MANIFEST_NAME,
    );
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    const where = i.path.length ? i.path.join('.') : '(root)';
    throw new ArchiveError(
      'invalid_manifest',
      `manifest.yaml is invalid: ${where}: ${i.message}`,
      MANIFEST_NAME,
    );
  }
  return {
    engine_version: parsed.data.engine_version,
    files: parsed.data.files.map((f) => ({
      relative_path: f.relative_path,
      size_in_bytes: f.size_in_bytes,
      ...(f.sha3_256 !== undefined ? { sha3_256: f.sha3_256 } : {}),
      ...(f.linkname !== undefined ? { linkname: f.linkname } : {}),
    })),
  };
}

/**
 * Writes `manifest.yaml` the way dlt does (`yaml.dump(..., default_flow_style=False,
 * sort_keys=False, allow_unicode=True)`): block style, keys in insertion order, sequences not
 * indented below their key. Exact bytes only matter for the legacy (§5) hash; common paths
 * match PyYAML's output byte for byte.
 */
export function stringifyManifest(manifest: PackageManifest): string {
  const root = new YAMLMap();
  root.set('engine_version', manifest.engine_version);
  root.set(
    'files',
    manifest.files.map((f) => {
      const m = new YAMLMap();
      m.set('relative_path', f.relative_path);
      m.set('size_in_bytes', f.size_in_bytes);
      if (f.sha3_256 !== undefined) m.set('sha3_256', f.sha3_256);
      if (f.linkname !== undefined) m.set('linkname', f.linkname);
      return m;
    }),
  );
  return stringify(root, {
    version: '1.1',
    indentSeq: false,
    lineWidth: 0,
    singleQuote: true,
    defaultStringType: Scalar.PLAIN,
    flowCollectionPadding: false,
  });
}
